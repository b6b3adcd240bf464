//go:build acceptance

package acceptance

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestReadmeWalkthrough runs README.md's walkthrough as a newcomer would:
// every command of its "## Walkthrough" section, top to bottom, in one
// shell, against a throw-away dev Vault with the plugin mounted at agent/
// (what `make dev` gives). It fails when a command fails that the README
// shows succeeding (or succeeds where it shows an error), and when an
// output no longer has what the README shows.
//
// How the README is read:
//   - a ```sh block runs as it is (heredocs included), and every command
//     in it must succeed;
//   - in a ```text block, a line starting with "$ " is a command (with its
//     "\" continuation lines); the lines up to the next command are its
//     output as shown;
//   - other blocks (hcl, json, go) are illustrations and are not run.
//
// How an output is compared: a Vault table (Key/Value) must have every
// key shown; any other shown line must appear, in order, in the actual
// output once values that differ from run to run (IDs, times, numbers,
// tokens, hashes) are masked and runs of spaces collapsed. A shown line
// holding "..." stands for an elided part and is not compared. An output
// shown with "Code: NNN" must come from a command that failed with it.
func TestReadmeWalkthrough(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	steps := walkthroughSteps(t, string(readme))
	require.NotEmpty(t, steps, "the README has no walkthrough commands")

	v := startVault(t, devMode)
	v.registerAndMount("agent")
	// As make dev mounts it (scripts/dev.sh).
	v.mustCLI("secrets", "tune", "-passthrough-request-headers=DPoP", "agent/")

	work := t.TempDir()
	var script strings.Builder
	script.WriteString("set -o pipefail\ncd " + strconv.Quote(work) + "\n")
	for i, s := range steps {
		file := filepath.Join(work, fmt.Sprintf("step-%03d.sh", i))
		require.NoError(t, os.WriteFile(file, []byte(s.code+"\n"), 0o644))
		out := filepath.Join(work, fmt.Sprintf("out-%03d", i))
		rc := filepath.Join(work, fmt.Sprintf("rc-%03d", i))
		if s.block {
			// Every command of a sh block must succeed: set -e ends the
			// whole script at the first failure.
			fmt.Fprintf(&script, "set -e\nsource %q >%q 2>&1\nset +e\necho 0 >%q\n", file, out, rc)
		} else {
			fmt.Fprintf(&script, "source %q >%q 2>&1\necho $? >%q\n", file, out, rc)
		}
	}
	scriptFile := filepath.Join(work, "walkthrough.sh")
	require.NoError(t, os.WriteFile(scriptFile, []byte(script.String()), 0o644))

	home := t.TempDir()
	cmd := exec.Command("bash", scriptFile)
	cmd.Dir = work
	cmd.Env = append(os.Environ(),
		"VAULT_ADDR="+v.addr, "VAULT_TOKEN="+rootToken, "HOME="+home, "NO_COLOR=1", "VAULT_FORMAT=",
		"PATH="+filepath.Dir(v.bin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"MAKE_DEV_PLUGIN_DIR="+filepath.Join(v.dir, "plugins"),
	)
	done := make(chan error, 1)
	require.NoError(t, cmd.Start())
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("the walkthrough did not finish within 5 minutes")
	}

	if os.Getenv("UPDATE_README") != "" {
		updateReadme(t, string(readme), steps, work, v.addr)
		// The picture of the access path the walkthrough draws, as the
		// README shows it.
		if svg, err := os.ReadFile(filepath.Join(work, "access-path.svg")); err == nil {
			require.NoError(t, os.WriteFile("../docs/access-path.svg", svg, 0o644))
		}
		return
	}
	for i, s := range steps {
		outB, oerr := os.ReadFile(filepath.Join(work, fmt.Sprintf("out-%03d", i)))
		rcB, rerr := os.ReadFile(filepath.Join(work, fmt.Sprintf("rc-%03d", i)))
		if oerr != nil || rerr != nil {
			t.Fatalf("README line %d: the walkthrough stopped here; this block failed:\n%s\n--- output ---\n%s",
				s.line, s.code, string(outB))
		}
		out := string(outB)
		rc := strings.TrimSpace(string(rcB))
		wantCode := codeRE.FindString(s.shown)
		switch {
		case wantCode != "" && rc == "0":
			t.Errorf("README line %d: `%s` succeeded, but the README shows it failing with %s:\n%s", s.line, s.summary(), wantCode, out)
			continue
		case wantCode == "" && rc != "0":
			t.Errorf("README line %d: `%s` failed (exit %s):\n%s", s.line, s.summary(), rc, out)
			continue
		}
		if msg := compareOutput(s.shown, out); msg != "" {
			t.Errorf("README line %d: `%s`: %s\n--- shown in the README ---\n%s\n--- actual ---\n%s", s.line, s.summary(), msg, s.shown, out)
		}
	}
	// Nothing was written where a newcomer keeps things: the walkthrough
	// works in its own folder, and the dev token is not stored.
	_, err = os.Stat(filepath.Join(home, ".vault-token"))
	require.True(t, os.IsNotExist(err), "the walkthrough left ~/.vault-token behind")
}

// walkStep is one thing the walkthrough runs.
type walkStep struct {
	line  int    // where it starts in README.md
	code  string // the shell code
	shown string // the output shown after it ("" for sh blocks)
	block bool   // a whole sh block
	// shownFrom and shownTo are the README's line indexes (0-based,
	// end exclusive) of the shown output, for UPDATE_README.
	shownFrom, shownTo int
}

func (s walkStep) summary() string {
	first, _, _ := strings.Cut(s.code, "\n")
	if len(first) > 100 {
		first = first[:100] + "..."
	}
	return first
}

var codeRE = regexp.MustCompile(`Code: \d{3}`)

// walkthroughSteps reads the commands of README.md's walkthrough section.
func walkthroughSteps(t *testing.T, readme string) []walkStep {
	t.Helper()
	lines := strings.Split(readme, "\n")
	var steps []walkStep
	in := false
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(l, "## ") {
			in = strings.TrimSpace(l) == "## Walkthrough"
			continue
		}
		if !in || !strings.HasPrefix(l, "```") {
			continue
		}
		lang := strings.TrimSpace(strings.TrimPrefix(l, "```"))
		start := i + 1
		j := start
		for j < len(lines) && !strings.HasPrefix(lines[j], "```") {
			j++
		}
		require.Less(t, j, len(lines), "README line %d: unterminated code block", i+1)
		body := lines[start:j]
		i = j
		switch lang {
		case "sh":
			steps = append(steps, walkStep{line: start + 1, code: strings.Join(body, "\n"), block: true})
		case "text":
			steps = append(steps, textSteps(start, body)...)
		}
	}
	return steps
}

// textSteps splits a text block into its "$ " commands and their shown
// outputs.
func textSteps(start int, body []string) []walkStep {
	var steps []walkStep
	for k := 0; k < len(body); k++ {
		if !strings.HasPrefix(body[k], "$ ") {
			continue
		}
		s := walkStep{line: start + k + 1}
		code := []string{strings.TrimPrefix(body[k], "$ ")}
		for strings.HasSuffix(code[len(code)-1], "\\") && k+1 < len(body) {
			k++
			code = append(code, body[k])
		}
		s.code = strings.Join(code, "\n")
		var shown []string
		s.shownFrom = start + k + 1
		for k+1 < len(body) && !strings.HasPrefix(body[k+1], "$ ") {
			k++
			shown = append(shown, body[k])
		}
		s.shownTo = start + k + 1
		s.shown = strings.TrimSpace(strings.Join(shown, "\n"))
		steps = append(steps, s)
	}
	return steps
}

// Values that differ from run to run, masked before comparing.
var masks = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`), "<time>"},
	{regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`), "<id>"},
	// Numbers, and durations such as 4m59s as a whole.
	{regexp.MustCompile(`\d[0-9.hms]*`), "<n>"},
	{regexp.MustCompile(`\s+`), " "},
}

// tokenLike matches what may be a token, key, hash or lease ID: masked
// when it is long and holds a digit, so that words stay comparable.
var tokenLike = regexp.MustCompile(`[A-Za-z0-9_\-]{16,}(\.[A-Za-z0-9_\-]+)*`)

func mask(s string) string {
	for i, m := range masks {
		if i == 2 { // after times and IDs, before numbers
			s = tokenLike.ReplaceAllStringFunc(s, func(w string) string {
				if strings.ContainsAny(w, "0123456789") {
					return "<tok>"
				}
				return w
			})
		}
		s = m.re.ReplaceAllString(s, m.with)
	}
	return strings.TrimSpace(s)
}

var tableRow = regexp.MustCompile(`^(\S+)\s{2,}`)

// compareOutput says what of shown is missing from actual, or "".
func compareOutput(shown, actual string) string {
	if shown == "" {
		return ""
	}
	shownLines := strings.Split(shown, "\n")
	// A Vault table: every key shown must be there.
	if len(shownLines) >= 2 && strings.HasPrefix(strings.TrimSpace(shownLines[0]), "Key") &&
		strings.HasPrefix(strings.TrimSpace(shownLines[1]), "---") {
		keys := map[string]bool{}
		for _, l := range strings.Split(actual, "\n") {
			if m := tableRow.FindStringSubmatch(l); m != nil {
				keys[m[1]] = true
			}
		}
		var missing []string
		for _, l := range shownLines[2:] {
			if m := tableRow.FindStringSubmatch(l); m != nil && !keys[m[1]] {
				missing = append(missing, m[1])
			}
		}
		if len(missing) > 0 {
			return fmt.Sprintf("the output no longer has the field(s) %s", strings.Join(missing, ", "))
		}
		return ""
	}
	var got []string
	for _, l := range strings.Split(actual, "\n") {
		if m := mask(l); m != "" {
			got = append(got, m)
		}
	}
	k := 0
	for _, l := range shownLines {
		if strings.Contains(l, "...") || strings.TrimSpace(l) == "" {
			continue
		}
		want := mask(l)
		for k < len(got) && got[k] != want {
			k++
		}
		if k == len(got) {
			return fmt.Sprintf("the output no longer has the line %q (masked: %q), in this order", l, want)
		}
		k++
	}
	return ""
}

// updateReadme writes each command's real output into README.md in place
// of what it showed (UPDATE_README=1 make test-acc, or go test -run
// TestReadmeWalkthrough with UPDATE_README=1): the way to keep the
// walkthrough's output real after a change. Long values are cut to keep
// the page readable; a cut line ends in "..." and is compared by its key
// only.
func updateReadme(t *testing.T, readme string, steps []walkStep, work, addr string) {
	lines := strings.Split(readme, "\n")
	for i := len(steps) - 1; i >= 0; i-- {
		s := steps[i]
		if s.block {
			continue
		}
		out, err := os.ReadFile(filepath.Join(work, fmt.Sprintf("out-%03d", i)))
		if err != nil {
			t.Fatalf("README line %d: the walkthrough stopped before this command", s.line)
		}
		var shown []string
		// The test's Vault listens where make dev's does not.
		text := strings.ReplaceAll(strings.TrimRight(string(out), "\n"), addr, "http://127.0.0.1:8200")
		for _, l := range strings.Split(text, "\n") {
			if text == "" {
				break
			}
			l = strings.TrimRight(l, " ")
			if len(l) > 110 && !strings.HasPrefix(l, "* ") && !strings.HasPrefix(l, "URL: ") {
				l = l[:100] + "..."
			}
			shown = append(shown, l)
		}
		// A blank line separates this output from the next command.
		if s.shownTo < len(lines) && strings.HasPrefix(lines[s.shownTo], "$ ") {
			shown = append(shown, "")
		}
		lines = append(lines[:s.shownFrom], append(shown, lines[s.shownTo:]...)...)
	}
	require.NoError(t, os.WriteFile("../README.md", []byte(strings.Join(lines, "\n")), 0o644))
	t.Log("README.md updated with the walkthrough's real output")
}
