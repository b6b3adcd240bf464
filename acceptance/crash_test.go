//go:build acceptance

package acceptance

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

// pluginPIDs finds the plugin processes this Vault started.
func (v *vaultServer) pluginPIDs() []int {
	want := filepath.Join(v.dir, "plugins", pluginName)
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.HasPrefix(string(cmd), want) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestPluginCrashDuringIssuance kills the plugin process (SIGKILL) while
// credentials are being issued on raft storage. Vault starts it again;
// afterwards no session is half-written and every guarantee holds: every
// credential an agent received was counted against the budget, the budget
// was never exceeded, every credential verifies, and ending the session
// revokes them all.
func TestPluginCrashDuringIssuance(t *testing.T) {
	v := startVault(t, raftMode)
	agent1, _ := setupJourney(t, v, "max_steps=100000", "max_rate=100000", "on_violation=deny", "violation_limit=1000")
	// Every event kept: the timeline is checked against the budget below.
	v.mustCLI("write", "agent/config", "max_events=100000")
	id := v.startSession(agent1, "max_steps=100000").Data["session_id"].(string)
	c := v.agentClient(agent1)

	var mu sync.Mutex
	var tokens []string
	failures := 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				s, err := c.Logical().Write("agent/creds/"+id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
				mu.Lock()
				if err == nil {
					tokens = append(tokens, s.Data["token"].(string))
				} else {
					failures++
				}
				mu.Unlock()
				if err != nil && strings.Contains(err.Error(), "budget_exhausted") {
					return
				}
			}
		}()
	}
	// Let issuance run, then kill the plugin mid-flight, twice.
	for round := 0; round < 2; round++ {
		time.Sleep(400 * time.Millisecond)
		var pids []int
		waitFor(t, "the plugin process to run", func() bool {
			pids = v.pluginPIDs()
			return len(pids) > 0
		})
		for _, pid := range pids {
			require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		}
		t.Logf("killed plugin process(es) %v", pids)
	}
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()

	// Vault starts the plugin again on demand.
	waitFor(t, "the plugin to serve again", func() bool {
		_, err := c.Logical().Read("agent/session/" + id)
		return err == nil
	})
	st := v.sessionState(id)
	t.Logf("received %d credentials, %d requests failed around the crashes; steps_used=%v", len(tokens), failures, st["steps_used"])
	require.NotEmpty(t, tokens)
	assert.Equal(t, "active", st["state"])
	used := int(st["steps_used"].(float64))
	assert.GreaterOrEqual(t, used, len(tokens), "every credential received was counted")
	assert.LessOrEqual(t, used, 100000, "the budget was never exceeded")

	keys := token.StaticKeys(v.jwks()...)
	for _, tok := range tokens {
		_, err := token.Verify(tok, keys, token.VerifyOptions{Issuer: "vault:agent", Audience: "secrets-api"})
		require.NoError(t, err)
	}
	// Issuance continues, then the session ends and every credential is revoked.
	last := v.mustJSONAs(agent1, "read", "agent/creds/"+id, "scopes=read:secrets/web/x", "audience=secrets-api").Data["credential_id"].(string)
	v.mustCLI2(agent1, "write", "-f", "agent/sessions/"+id+"/end")

	// The timeline accounts for every step exactly: each has its
	// credential_issued event, or is counted by a steps_unaccounted event
	// (written once per recovery) of the node that read the session back
	// after a crash; nothing was issued beyond the budget.
	final := int(v.sessionState(id)["steps_used"].(float64))
	issued, unaccounted, markers := accountFor(t, v, id)
	t.Logf("steps_used=%d: %d credential_issued events, %d steps unaccounted in %d events", final, issued, unaccounted, markers)
	assert.Equal(t, final, issued+unaccounted, "every step has its event or is accounted for")
	assert.Positive(t, markers, "the crashes lost a batch or forfeited a block, and the timeline says so")
	assert.LessOrEqual(t, markers, 2, "at most once per crash")
	// A clean end wrote every event that followed the recovery.
	found := false
	for _, e := range v.mustJSONAs(v.token, "read", "agent/sessions/"+id+"/events").Data["events"].([]interface{}) {
		if e.(map[string]interface{})["credential"] == last {
			found = true
		}
	}
	assert.True(t, found, "the last credential's event is in the timeline")
	for _, tok := range []string{tokens[0], tokens[len(tokens)/2], tokens[len(tokens)-1]} {
		assert.Equal(t, false, v.introspect(tok)["active"])
	}
	_, revoked := v.revocations()
	assert.Contains(t, revoked, id)
}

// accountFor reads session id's timeline and returns how many
// credential_issued events it holds, how many steps steps_unaccounted
// events count, and how many of those events there are.
func accountFor(t *testing.T, v *vaultServer, id string) (issued, unaccounted, markers int) {
	t.Helper()
	for _, e := range v.mustJSONAs(v.token, "read", "agent/sessions/"+id+"/events").Data["events"].([]interface{}) {
		ev := e.(map[string]interface{})
		switch ev["kind"] {
		case "credential_issued":
			issued++
		case "steps_unaccounted":
			unaccounted += int(ev["steps"].(float64))
			markers++
		}
	}
	return issued, unaccounted, markers
}
