//go:build acceptance

package acceptance

import (
	"encoding/json"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

// TestSessionsSurviveRestartOnRaft: on integrated raft storage, live
// sessions stay active across a restart of Vault, ended ones stay closed, the
// signing keys survive, and issuance continues.
func TestSessionsSurviveRestartOnRaft(t *testing.T) {
	v := startVault(t, raftMode)
	agent1, _ := setupJourney(t, v)

	live := v.startSession(agent1).Data["session_id"].(string)
	liveTok := v.mustJSONAs(agent1, "read", "agent/creds/"+live, "scopes=read:secrets/web/x", "audience=secrets-api").Data["token"].(string)
	ended := v.startSession(agent1).Data["session_id"].(string)
	endedTok := v.mustJSONAs(agent1, "read", "agent/creds/"+ended, "scopes=read:secrets/web/x", "audience=secrets-api").Data["token"].(string)
	v.mustCLI2(agent1, "write", "-f", "agent/sessions/"+ended+"/end")
	keysBefore := v.jwks()
	version, _ := v.revocations()

	v.restart()

	assert.Equal(t, "active", v.sessionState(live)["state"])
	assert.Equal(t, "ended", v.sessionState(ended)["state"])
	assert.Equal(t, true, v.introspect(liveTok)["active"])
	assert.Equal(t, false, v.introspect(endedTok)["active"])
	assert.Equal(t, keysBefore, v.jwks())
	versionAfter, revoked := v.revocations()
	assert.Equal(t, version, versionAfter)
	assert.Contains(t, revoked, ended)

	next := v.mustJSONAs(agent1, "read", "agent/creds/"+live, "scopes=read:secrets/web/x", "audience=secrets-api").Data["token"].(string)
	_, err := token.Verify(next, token.StaticKeys(v.jwks()...), token.VerifyOptions{Issuer: "vault:agent", Audience: "secrets-api"})
	require.NoError(t, err)
	// After a restart the engine counts the reserved block of steps as
	// used: never fewer than were issued, never more than the budget.
	used := v.sessionState(live)["steps_used"].(float64)
	assert.GreaterOrEqual(t, used, 2.0)
	assert.LessOrEqual(t, used, 100.0)
}

// TestBudgetUnderConcurrencyOnRaft: 50 concurrent requests over HTTP
// against a session with max_steps=10 give exactly 10 credentials.
func TestBudgetUnderConcurrencyOnRaft(t *testing.T) {
	v := startVault(t, raftMode)
	agent1, _ := setupJourney(t, v, "on_violation=deny", "violation_limit=1000", "max_rate=1000")
	id := v.startSession(agent1, "max_steps=10").Data["session_id"].(string)

	client, err := v.client.Clone()
	require.NoError(t, err)
	client.SetToken(agent1)

	var wg sync.WaitGroup
	var mu sync.Mutex
	issued, refused := 0, 0
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			secret, err := client.Logical().Write("agent/creds/"+id, map[string]interface{}{
				"scopes": "read:secrets/web/x", "audience": "secrets-api",
			})
			mu.Lock()
			defer mu.Unlock()
			if err == nil && secret != nil && secret.Data["token"] != nil {
				issued++
			} else if assert.Error(t, err) && assert.Contains(t, err.Error(), "budget_exhausted") {
				refused++
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, 10, issued)
	assert.Equal(t, 40, refused)
	st := v.sessionState(id)
	assert.EqualValues(t, 10, st["steps_used"])
	assert.EqualValues(t, 40, st["violation_count"])
	raw, _ := json.Marshal(st["intent"])
	assert.Contains(t, string(raw), `"max_steps":10`)
}
