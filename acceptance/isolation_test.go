//go:build acceptance

package acceptance

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAgentsCannotHarmEachOther: two agent tokens under the README's agent
// policy, word for word. Agent B knows agent A's session ID (it is the txn
// claim of every credential A uses) and tries everything the policy lets it
// send: it can neither take credentials of A's session, end it, nor read
// it, and A's session stays active with no violation, its budget and
// timeline untouched. An administrator still reads everything, including
// the counted summary of B's attempts.
func TestAgentsCannotHarmEachOther(t *testing.T) {
	v := startVault(t, devMode)
	agentA, agentB := setupJourney(t, v)

	id := v.startSession(agentA, "scopes=read:secrets/web/*", "audiences=secrets-api").Data["session_id"].(string)
	tokA := v.mustJSONAs(agentA, "read", "agent/creds/"+id, "scopes=read:secrets/web/tls", "audience=secrets-api").Data["token"].(string)
	eventsBefore := v.mustJSONAs(v.token, "read", "agent/sessions/"+id+"/events").Data["events"]

	for _, attempt := range [][]string{
		{"read", "agent/creds/" + id, "scopes=read:secrets/web/tls", "audience=secrets-api"},
		{"write", "agent/creds/" + id, "scopes=write:secrets/*", "audience=elsewhere"},
		{"write", "agent/creds/" + id, "scopes=read:secrets/web/tls", "audience=secrets-api", "parent_token=" + tokA},
		{"write", "-f", "agent/sessions/" + id + "/end"},
		{"read", "agent/session/" + id},
	} {
		out, err := v.cliAs(agentB, attempt...)
		require.Error(t, err, "vault %s:\n%s", strings.Join(attempt, " "), out)
		assert.Contains(t, out, "Code: 403", out)
		assert.Contains(t, out, "belongs to another caller", out)
		assert.NotContains(t, out, "purpose", "nothing of the session leaks")
	}
	// The administrators' paths are not in the agent policy at all.
	for _, path := range []string{"agent/sessions/" + id, "agent/sessions/" + id + "/events", "agent/sessions/" + id + "/graph"} {
		out, err := v.cliAs(agentB, "read", path)
		require.Error(t, err, out)
		assert.Contains(t, out, "permission denied", out)
	}
	out, err := v.cliAs(agentB, "list", "agent/sessions")
	require.Error(t, err, out)
	assert.Contains(t, out, "permission denied", out)

	// A's session is untouched; A reads it on its own path.
	own := v.mustJSONAs(agentA, "read", "agent/session/"+id).Data
	assert.Equal(t, "active", own["state"])
	assert.EqualValues(t, 0, own["violation_count"])
	assert.EqualValues(t, 1, own["steps_used"])
	assert.Empty(t, own["violations"])
	foreign := own["foreign_calls"].(map[string]interface{})
	assert.EqualValues(t, 4, foreign["count"], "each refused creds or end is counted; reads write nothing")
	assert.Equal(t, true, v.introspect(tokA)["active"])
	assert.Equal(t, eventsBefore, v.mustJSONAs(v.token, "read", "agent/sessions/"+id+"/events").Data["events"])
	_, revoked := v.revocations()
	assert.NotContains(t, revoked, id)

	// A carries on and ends its own session.
	v.mustJSONAs(agentA, "read", "agent/creds/"+id, "scopes=read:secrets/web/x", "audience=secrets-api")
	v.mustCLI2(agentA, "write", "-f", "agent/sessions/"+id+"/end")
	assert.Equal(t, "ended", v.sessionState(id)["state"])

	// B's requests on the closed session still change nothing but counts.
	_, err = v.cliAs(agentB, "read", "agent/creds/"+id, "scopes=read:secrets/web/tls", "audience=secrets-api")
	require.Error(t, err)
	_, err = v.cliAs(agentA, "read", "agent/creds/"+id, "scopes=read:secrets/web/tls", "audience=secrets-api")
	require.Error(t, err)
	st := v.sessionState(id)
	assert.Equal(t, "ended", st["state"])
	assert.EqualValues(t, 0, st["violation_count"])
	assert.EqualValues(t, 5, st["foreign_calls"].(map[string]interface{})["count"])
	assert.EqualValues(t, 1, st["inactive_calls"].(map[string]interface{})["count"])
}
