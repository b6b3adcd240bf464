package agent

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSessionIntentMustLieInsideRole(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)

	for _, tc := range []struct {
		data map[string]interface{}
		want string
	}{
		{map[string]interface{}{"scopes": "write:secrets/web/tls"}, "scopes: write:secrets/web/tls is wider than role"},
		{map[string]interface{}{"audiences": "billing-api"}, `audiences: "billing-api" is not among`},
		{map[string]interface{}{"max_steps": 1000}, "max_steps: 1000 exceeds"},
		{map[string]interface{}{"ttl": "3h"}, "ttl: 3h0m0s exceeds"},
		{map[string]interface{}{"purpose": ""}, "purpose"},
	} {
		data := map[string]interface{}{"role": "web", "purpose": "test"}
		for k, v := range tc.data {
			data[k] = v
		}
		_, err := do(t, b, s, agentA, logical.UpdateOperation, "session", data)
		require.Error(t, err, "%v", tc.data)
		assert.Contains(t, err.Error(), tc.want)
	}
	ids, err := s.List(context.Background(), sessionsPrefix)
	require.NoError(t, err)
	assert.Empty(t, ids, "a refused session was stored")

	_, err = do(t, b, s, agentA, logical.UpdateOperation, "session", map[string]interface{}{"role": "nope", "purpose": "x"})
	assert.ErrorContains(t, err, `role: no role named "nope"`)
}

func TestSessionCopiesIntentSoRoleChangesNeverWidenIt(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, resp := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	assert.Equal(t, []string{"list,read:secrets/web/*", "write:secrets/web/tmp/*"}, resp.Data["scopes"])
	assert.Equal(t, 100, resp.Data["max_steps"])
	assert.Equal(t, 15*time.Minute, resp.Secret.TTL)
	assert.Equal(t, time.Hour, resp.Secret.MaxTTL)
	assert.Equal(t, id, resp.Secret.InternalData["session_id"])

	// Widening the role afterwards does not widen the live session.
	mustDo(t, b, s, agentA, logical.UpdateOperation, "roles/web", map[string]interface{}{"scopes": "*:*"})
	_, err := issue(t, b, s, agentA, id, map[string]interface{}{"scopes": "write:secrets/db/x", "audience": "secrets-api"})
	assert.ErrorContains(t, err, "violation scope_outside_intent")
}

// Another caller (who knows the session ID: it is the txn claim of every
// credential) can neither take credentials of, end, nor read a session:
// each attempt is a 403, counted in the session's foreign_calls summary,
// and never a violation, so the session stays active with its budget, its
// violations and its timeline untouched.
func TestForeignCallerIsRefusedAndHarmless(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil) // on_violation=revoke: one violation would revoke it
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scopes": "read:secrets/web/tls", "audience": "secrets-api"})
	kindsBefore := eventKinds(t, b, s, id)

	// A token without an entity is identified by its hashed accessor: an
	// orphan token with agent A's accessor value but no entity is another
	// caller.
	orphan := caller{accessor: agentA.accessor}
	for _, c := range []caller{agentB, orphan} {
		for _, req := range []struct {
			op   logical.Operation
			path string
			data map[string]interface{}
		}{
			{logical.UpdateOperation, "creds/" + id, map[string]interface{}{"scopes": "read:secrets/web/tls", "audience": "secrets-api"}},
			{logical.UpdateOperation, "creds/" + id, map[string]interface{}{"scopes": "write:*", "audience": "elsewhere"}},
			{logical.ReadOperation, "creds/" + id, map[string]interface{}{"scopes": "read:secrets//x"}},
			{logical.UpdateOperation, "sessions/" + id + "/end", nil},
			{logical.ReadOperation, "session/" + id, nil},
		} {
			_, err := do(t, b, s, c, req.op, req.path, req.data)
			require.Error(t, err, "%s %s", req.op, req.path)
			coded, ok := err.(logical.HTTPCodedError)
			require.True(t, ok, "%s %s: %v", req.op, req.path, err)
			assert.Equal(t, http.StatusForbidden, coded.Code(), "%s %s", req.op, req.path)
			assert.Equal(t, "session "+id+" belongs to another caller", err.Error())
		}
	}

	sess := mustDo(t, b, s, agentA, logical.ReadOperation, "session/"+id, nil)
	assert.Equal(t, "active", sess.Data["state"])
	assert.Equal(t, 0, sess.Data["violation_count"])
	assert.Equal(t, 1, sess.Data["steps_used"])
	foreign := sess.Data["foreign_calls"].(map[string]interface{})
	assert.EqualValues(t, 8, foreign["count"], "creds and end are counted; reads write nothing")
	assert.True(t, strings.HasPrefix(foreign["last_caller"].(string), "hmac-sha256:"), "the orphan's accessor is hashed: %v", foreign["last_caller"])
	assert.Equal(t, kindsBefore, eventKinds(t, b, s, id), "the timeline is untouched")

	// The creator still works.
	mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scopes": "read:secrets/web/tls", "audience": "secrets-api"})
	mustDo(t, b, s, agentA, logical.UpdateOperation, "sessions/"+id+"/end", nil)
}

func TestEndedSessionStaysEnded(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, start := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	mustDo(t, b, s, agentA, logical.UpdateOperation, "sessions/"+id+"/end", nil)

	_, err := do(t, b, s, agentA, logical.UpdateOperation, "sessions/"+id+"/revoke", map[string]interface{}{"reason": "too late"})
	assert.Equal(t, http.StatusConflict, err.(logical.HTTPCodedError).Code())
	_, err = issue(t, b, s, agentA, id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	assert.ErrorContains(t, err, "is ended")

	// The lease's revoke callback is a no-op for a closed session.
	_, err = b.HandleRequest(context.Background(), leaseRequest(t, s, logical.RevokeOperation, start))
	require.NoError(t, err)
	sess := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id, nil)
	assert.Equal(t, "ended", sess.Data["state"])
}

func TestMaxSessions(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", map[string]interface{}{"max_sessions": 1})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	_, err := do(t, b, s, agentA, logical.UpdateOperation, "session", map[string]interface{}{"role": "web", "purpose": "x"})
	assert.ErrorContains(t, err, "max_sessions")
	mustDo(t, b, s, agentA, logical.UpdateOperation, "sessions/"+id+"/end", nil)
	startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
}

func TestSessionsList(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	writeRole(t, b, s, "ops", nil)
	a, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	c, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "ops"})
	mustDo(t, b, s, agentA, logical.UpdateOperation, "sessions/"+c+"/end", nil)

	all := mustDo(t, b, s, agentA, logical.ListOperation, "sessions/", nil)
	assert.ElementsMatch(t, []string{a, c}, all.Data["keys"])
	web := mustDo(t, b, s, agentA, logical.ListOperation, "sessions/", map[string]interface{}{"role": "web"})
	assert.Equal(t, []string{a}, web.Data["keys"])
	ended := mustDo(t, b, s, agentA, logical.ListOperation, "sessions/", map[string]interface{}{"state": "ended"})
	assert.Equal(t, []string{c}, ended.Data["keys"])
	_, err := do(t, b, s, agentA, logical.ListOperation, "sessions/", map[string]interface{}{"state": "zombie"})
	assert.ErrorContains(t, err, "state")
}

// A revocation reason is one line of text: a control character, C1 ones
// included, is refused naming the field, and the session stays active.
func TestRevokeReasonRefusesControlCharacters(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	for _, reason := range []string{"stop\u0085now", "stop\u009bnow", "stop\x07now", "stop\nnow", strings.Repeat("r", 257)} {
		_, err := do(t, b, s, operator, logical.UpdateOperation, "sessions/"+id+"/revoke", map[string]interface{}{"reason": reason})
		require.Error(t, err, "%q", reason)
		assert.Equal(t, http.StatusBadRequest, err.(*refused).Code(), "%q", reason)
		assert.Equal(t, map[string]interface{}{"reason": "malformed", "field": "reason"}, refusalData(t, err), "%q", reason)
	}
	sess := mustDo(t, b, s, operator, logical.ReadOperation, "sessions/"+id, nil)
	assert.Equal(t, "active", sess.Data["state"])

	mustDo(t, b, s, operator, logical.UpdateOperation, "sessions/"+id+"/revoke", map[string]interface{}{"reason": "compromised host ✓"})
	sess = mustDo(t, b, s, operator, logical.ReadOperation, "sessions/"+id, nil)
	assert.Equal(t, "operator: compromised host ✓", sess.Data["revoked_reason"])
}
