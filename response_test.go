package agent

import (
	"net/http"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every refusal says what it is in its data, for programs: the reason, and
// the field, the violation kind and the session's state where they apply.
func TestRefusalsCarryTheirReasonAsData(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", map[string]interface{}{"on_violation": "deny", "violation_limit": 1})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})

	_, err := issue(t, b, s, agentA, id, map[string]interface{}{"scopes": "read:secrets//x", "audience": "secrets-api"})
	assert.Equal(t, map[string]interface{}{"reason": "malformed", "field": "scopes"}, refusalData(t, err))

	_, err = issue(t, b, s, agentA, id, map[string]interface{}{"scopes": "write:secrets/web/x", "audience": "secrets-api"})
	assert.Equal(t, http.StatusForbidden, err.(*refused).Code())
	assert.Equal(t, map[string]interface{}{
		"reason": "violation", "violation": "scope_outside_intent", "session_id": id, "session_state": "active",
	}, refusalData(t, err), "deny tolerates one violation")

	_, err = issue(t, b, s, agentB, id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	assert.Equal(t, map[string]interface{}{"reason": "foreign_caller", "session_id": id}, refusalData(t, err))

	_, err = issue(t, b, s, agentA, id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "billing"})
	assert.Equal(t, map[string]interface{}{
		"reason": "violation", "violation": "audience_outside_intent", "session_id": id, "session_state": "revoked",
	}, refusalData(t, err), "the second violation revoked it")

	_, err = issue(t, b, s, agentA, id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	assert.Equal(t, map[string]interface{}{"reason": "session_closed", "session_id": id, "session_state": "revoked"}, refusalData(t, err))
	_, err = do(t, b, s, agentA, logical.UpdateOperation, "sessions/"+id+"/end", nil)
	assert.Equal(t, http.StatusConflict, err.(*refused).Code())
	assert.Equal(t, "session_closed", refusalData(t, err)["reason"])

	_, err = issue(t, b, s, agentA, "no-such-session", map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	assert.Equal(t, http.StatusNotFound, err.(*refused).Code())
	assert.Equal(t, map[string]interface{}{"reason": "not_found", "field": "session_id"}, refusalData(t, err))

	_, err = do(t, b, s, operator, logical.UpdateOperation, "config", map[string]interface{}{"max_events": 0})
	assert.Equal(t, map[string]interface{}{"reason": "malformed", "field": "max_events"}, refusalData(t, err))
}

// A misspelt field on a write that sets ceilings or budgets is refused,
// never ignored: it would silently keep the default.
func TestUnknownFieldsAreRefused(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	for _, tc := range []struct {
		path  string
		data  map[string]interface{}
		field string
	}{
		{"config", map[string]interface{}{"sesion_max_ttl": "5m"}, "sesion_max_ttl"},
		{"roles/web", map[string]interface{}{"scopes": "read:x", "audiences": "a", "max_step": 5}, "max_step"},
		{"session", map[string]interface{}{"role": "web", "purpose": "p", "max_step": 5}, "max_step"},
		{"creds/" + id, map[string]interface{}{"scope": "read:secrets/web/x", "audience": "secrets-api"}, "scope"},
	} {
		_, err := do(t, b, s, agentA, logical.UpdateOperation, tc.path, tc.data)
		require.Error(t, err, tc.path)
		assert.Equal(t, http.StatusBadRequest, err.(*refused).Code(), tc.path)
		assert.Equal(t, tc.field, refusalData(t, err)["field"], tc.path)
		assert.Contains(t, err.Error(), "unknown field", tc.path)
	}
	role := mustDo(t, b, s, operator, logical.ReadOperation, "roles/web", nil)
	assert.Equal(t, 100, role.Data["max_steps"], "the role is unchanged")
	sess := mustDo(t, b, s, agentA, logical.ReadOperation, "session/"+id, nil)
	assert.Equal(t, 0, sess.Data["steps_used"], "no credential was issued")
}
