//go:build acceptance

package acceptance

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/verifier"
)

// liveVerifier is a verifier process in another language: it prints
// "accepted <txn>", then waits for a line on stdin (the kill), then prints
// "refused <code> after <n> ms".
type liveVerifier struct {
	name  string
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
}

func startLive(t *testing.T, name string, cmd *exec.Cmd) *liveVerifier {
	t.Helper()
	in, err := cmd.StdinPipe()
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start(), name)
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lv := &liveVerifier{name: name, cmd: cmd, in: in, lines: make(chan string, 4)}
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			lv.lines <- s.Text()
		}
		close(lv.lines)
	}()
	return lv
}

func (lv *liveVerifier) next(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-lv.lines:
		require.True(t, ok, "%s exited", lv.name)
		return l
	case <-time.After(30 * time.Second):
		t.Fatalf("%s said nothing for 30 s", lv.name)
		return ""
	}
}

// TestEveryLanguageRefusesAKilledSession: a live credential from a real
// Vault is accepted by the Go, TypeScript and Python verifiers; the session
// is killed; each refuses the credential within a second (each holds a
// blocking revocations query).
func TestEveryLanguageRefusesAKilledSession(t *testing.T) {
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	if _, err := os.Stat(filepath.Join(root, "sdks/typescript/node_modules/jose")); err != nil {
		npm := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		npm.Dir = filepath.Join(root, "sdks/typescript")
		out, err := npm.CombinedOutput()
		require.NoError(t, err, "npm ci: %s", out)
	}
	python := os.Getenv("PYTHON")
	if python == "" {
		python = "/usr/bin/python3"
	}

	v := startVault(t, devMode)
	agent, _ := setupJourney(t, v)
	id := v.startSession(agent, "scopes=read:secrets/web/*", "audiences=secrets-api").Data["session_id"].(string)
	tok := v.mustJSONAs(agent, "read", "agent/creds/"+id, "scopes=read:secrets/web/tls", "audience=secrets-api").Data["token"].(string)
	issuer := "vault:agent"

	goV, err := verifier.New(context.Background(), verifier.Config{VaultAddr: v.addr, Issuer: issuer, Audience: "secrets-api"})
	require.NoError(t, err)
	defer goV.Close()
	_, err = goV.Verify(context.Background(), tok)
	require.NoError(t, err, "Go")

	node := exec.Command("node", filepath.Join(root, "acceptance/testdata/verify_live.mjs"), v.addr, issuer, "secrets-api", tok)
	py := exec.Command(python, filepath.Join(root, "acceptance/testdata/verify_live.py"), v.addr, issuer, "secrets-api", tok)
	py.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(root, "sdks/python"))
	others := []*liveVerifier{startLive(t, "TypeScript", node), startLive(t, "Python", py)}
	for _, lv := range others {
		require.Equal(t, "accepted "+id, lv.next(t), lv.name)
	}
	time.Sleep(200 * time.Millisecond) // every blocking query is held

	v.mustCLI("write", "-f", "agent/sessions/"+id+"/revoke", "reason=drill")
	killed := time.Now()
	for _, lv := range others {
		_, err := io.WriteString(lv.in, "killed\n")
		require.NoError(t, err)
	}
	for {
		if _, err := goV.Verify(context.Background(), tok); err != nil {
			require.ErrorIs(t, err, verifier.ErrSessionClosed)
			break
		}
		require.Less(t, time.Since(killed), time.Second, "Go: the kill took more than a second")
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("Go refused after %s", time.Since(killed).Round(time.Millisecond))
	for _, lv := range others {
		l := lv.next(t)
		t.Logf("%s: %s", lv.name, l)
		var code string
		var ms int
		_, err := fmt.Sscanf(l, "refused %s after %d ms", &code, &ms)
		require.NoError(t, err, "%s: %q", lv.name, l)
		require.Equal(t, "session_closed", code, lv.name)
		require.Less(t, ms, 1000, "%s took %d ms", lv.name, ms)
	}
}
