package timeline

import (
	"bytes"
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// t0 is the fixed clock of these tests.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

// issued is a CredentialIssued event.
func issued(seq uint64, cred, parent string, depth int, expires time.Time, scopes ...string) Event {
	return Event{
		Seq: seq, Time: t0.Add(time.Duration(seq) * time.Second), Kind: CredentialIssued,
		Credential: cred, Parent: parent, Scopes: scopes, Audience: "secrets-api",
		Depth: depth, Expires: expires.Unix(),
	}
}

// The credentials of the sample tree.
const (
	credA = "aaaaaaaa-0000-4000-8000-000000000000"
	credB = "bbbbbbbb-1111-4111-8111-111111111111"
	credC = "cccccccc-2222-4222-8222-222222222222"
	credD = "dddddddd"
)

// sampleEvents is a small session: credA is a root with two children, credB
// (live) and credC (already expired), and credD is an unrelated root that
// was reported on, once as a misuse. Events of other kinds are mixed in.
func sampleEvents() []Event {
	a := issued(2, credA, "", 0, t0.Add(time.Hour), "list,read:secrets/web/*", "read:db/creds/ro")
	a.Description, a.Actor = "fetch cert", "agent-a"
	b := issued(3, credB, credA, 1, t0.Add(30*time.Minute), "read:secrets/web/tls")
	b.Description = "read tls"
	c := issued(4, credC, credA, 1, t0.Add(-time.Minute), "list:secrets/web")
	c.Actor = "sub-agent"
	d := issued(6, credD, "", 0, t0.Add(time.Hour), "read:db/creds/ro")
	d.Audience = "db"
	return []Event{
		{Seq: 1, Time: t0, Kind: SessionStart},
		a, b, c,
		{Seq: 5, Time: t0, Kind: RequestRefused, Credential: credA, Detail: "malformed"},
		d,
		{Seq: 7, Time: t0, Kind: Report, Credential: credD, Action: "read", Resource: "db/creds/ro"},
		{Seq: 8, Time: t0, Kind: Violation, Violation: "reported_misuse", Credential: credD},
		{Seq: 9, Time: t0, Kind: Report, Credential: credD, Action: "read", Resource: "db/creds/ro"},
		{Seq: 10, Time: t0, Kind: SessionRenew},
	}
}

func sampleGraph() Graph {
	return Build("sess-1", sampleEvents(), "active", t0, false)
}

// renderDOT pipes src through `dot -Tsvg` and returns the SVG. Graphviz
// is required: CI installs it, so a missing dot is a failure, not a skip.
func renderDOT(t *testing.T, src string) string {
	t.Helper()
	dot, err := exec.LookPath("dot")
	if err != nil {
		t.Fatalf("Graphviz's dot is not on PATH (%v): install graphviz (apt-get install -y graphviz; CI installs it) so the DOT output can be checked", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, dot, "-Tsvg")
	cmd.Stdin = strings.NewReader(src)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("dot -Tsvg failed: %v\nstderr:\n%s\ninput:\n%s", err, errb.String(), src)
	}
	if s := strings.ToLower(errb.String()); strings.Contains(s, "error") || strings.Contains(s, "syntax") {
		t.Fatalf("dot -Tsvg complained:\n%s\ninput:\n%s", errb.String(), src)
	} else if s != "" {
		t.Logf("dot -Tsvg stderr: %s", errb.String())
	}
	svg := out.String()
	if !strings.Contains(svg, "<svg") || !strings.Contains(svg, "</svg>") {
		t.Fatalf("dot -Tsvg did not produce an SVG:\n%s", svg)
	}
	return svg
}

// The lines a DOT() output may be made of. A label is a DOT quoted string:
// no raw quote, no raw newline, every backslash escaping one character.
var (
	dotQuoted = `"(?:[^"\\\n]|\\.)*"`
	dotLines  = []*regexp.Regexp{
		regexp.MustCompile(`^digraph access_path \{$`),
		regexp.MustCompile(`^  rankdir=LR;$`),
		regexp.MustCompile(`^  node \[shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10\];$`),
		regexp.MustCompile(`^  session \[label=` + dotQuoted + `, shape=ellipse, fillcolor=white\];$`),
		regexp.MustCompile(`^  c[0-9]+ \[label=` + dotQuoted + `, fillcolor=[a-z]+\];$`),
		regexp.MustCompile(`^  (?:session|c[0-9]+) -> c[0-9]+;$`),
		regexp.MustCompile(`^\}$`),
	}
	mermaidQuoted = `"[^"\n]*"`
	mermaidLines  = []*regexp.Regexp{
		regexp.MustCompile(`^flowchart LR$`),
		regexp.MustCompile(`^  session\(\[` + mermaidQuoted + `\]\)$`),
		regexp.MustCompile(`^  c[0-9]+\[` + mermaidQuoted + `\](?::::(?:active|expired|ended|revoked|refused|unaccounted))?$`),
		regexp.MustCompile(`^  (?:session|c[0-9]+) --> c[0-9]+$`),
		regexp.MustCompile(`^  classDef (?:active|expired|ended|revoked|refused|unaccounted) fill:#[0-9a-f]{6}$`),
	}
)

// checkLines reports every line of out that matches none of the patterns;
// it returns the lines.
func checkLines(t *testing.T, what, out string, patterns []*regexp.Regexp) []string {
	t.Helper()
	if !strings.HasSuffix(out, "\n") {
		t.Errorf("%s output does not end with a newline:\n%s", what, out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
next:
	for i, l := range lines {
		for _, p := range patterns {
			if p.MatchString(l) {
				continue next
			}
		}
		t.Errorf("%s line %d is malformed: %q\nwhole output:\n%s", what, i+1, l, out)
	}
	return lines
}

// countLines counts the lines containing sub.
func countLines(lines []string, sub string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}

var edgeLine = regexp.MustCompile(`^  (?:session|c[0-9]+) (?:->|-->) c[0-9]+;?$`)

// countEdges counts the edge lines drawn with arrow (" -> " in DOT,
// " --> " in Mermaid).
func countEdges(lines []string, arrow string) int {
	n := 0
	for _, l := range lines {
		if edgeLine.MatchString(l) && strings.Contains(l, arrow) {
			n++
		}
	}
	return n
}
