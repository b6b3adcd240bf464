package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// approvalSetup: a role under on_out_of_intent=approval and a session of
// agentA whose intent is narrower than the role.
func approvalSetup(t *testing.T, roleFields map[string]interface{}) (*backend, logical.Storage, string) {
	b, s := testBackend(t)
	fields := map[string]interface{}{
		"scopes": "read:secrets/*", "audiences": "secrets-api,docs-api",
		"on_out_of_intent": "approval", "approval_ttl": "10m", "max_pending_approvals": 2,
	}
	for k, v := range roleFields {
		fields[k] = v
	}
	writeRole(t, b, s, "appr", fields)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "appr", "scopes": "read:secrets/web/*", "audiences": "secrets-api"})
	return b, s, id
}

// askOutside asks for a step outside the intent and returns the answer's
// status and data.
func askOutside(t *testing.T, b *backend, s logical.Storage, id, sc, aud string) (int, map[string]interface{}) {
	t.Helper()
	resp, err := do(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scopes": sc, "audience": aud, "description": "read the db creds"})
	if err != nil {
		return err.(*refused).code, refusalData(t, err)
	}
	if code, ok := resp.Data[logical.HTTPStatusCode].(int); ok {
		var body struct {
			Data map[string]interface{} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(resp.Data[logical.HTTPRawBody].([]byte), &body))
		return code, body.Data
	}
	return http.StatusOK, resp.Data
}

func TestApprovalFlow(t *testing.T) {
	b, s, id := approvalSetup(t, nil)
	code, data := askOutside(t, b, s, id, "read:secrets/db/creds", "secrets-api")
	require.Equal(t, http.StatusAccepted, code, "%v", data)
	aid := data["approval_id"].(string)
	assert.Equal(t, "pending", data["state"])
	st := mustDo(t, b, s, agentA, logical.ReadOperation, "session/"+id, nil)
	assert.Equal(t, 0, st.Data["steps_used"], "nothing was issued")
	assert.Equal(t, "active", st.Data["state"])
	assert.Len(t, st.Data["pending_approvals"], 1)

	// The administrator sees it, with the step text and the timeline.
	list := mustDo(t, b, s, operator, logical.ListOperation, "approvals/", nil)
	assert.Equal(t, []string{aid}, list.Data["keys"])
	a := mustDo(t, b, s, operator, logical.ReadOperation, "approvals/"+aid, nil)
	assert.Equal(t, "read the db creds", a.Data["description"])
	assert.Equal(t, []string{"read:secrets/db/creds"}, a.Data["scopes"])
	assert.NotEmpty(t, a.Data["timeline"])

	// The creator cannot decide it.
	_, err := do(t, b, s, agentA, logical.UpdateOperation, "approvals/"+aid+"/approve", nil)
	require.Error(t, err)
	assert.Equal(t, http.StatusForbidden, err.(*refused).code)

	// An administrator approves: the agent retries and gets its credential.
	ap := mustDo(t, b, s, operator, logical.UpdateOperation, "approvals/"+aid+"/approve", map[string]interface{}{"ttl": "5m", "comment": "for the migration"})
	assert.Equal(t, "approved", ap.Data["state"])
	assert.Equal(t, "entity-operator", ap.Data["decided_by"])
	cred := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scopes": "read:secrets/db/creds", "audience": "secrets-api"})
	assert.Equal(t, []string{"read:secrets/db/creds"}, cred.Data["scopes"])
	assert.Equal(t, 1, cred.Data["steps_used"], "an approved step counts like any other")
	// Only what was asked: a neighbour waits again.
	code, _ = askOutside(t, b, s, id, "read:secrets/db/other", "secrets-api")
	assert.Equal(t, http.StatusAccepted, code)
	// Deciding twice is refused.
	_, err = do(t, b, s, operator, logical.UpdateOperation, "approvals/"+aid+"/approve", nil)
	require.Error(t, err)
	assert.Equal(t, http.StatusConflict, err.(*refused).code)

	// The timeline says who decided, when, and why.
	var kinds []string
	for _, e := range timelineEvents(t, b, s, id) {
		kinds = append(kinds, e["kind"].(string))
		if e["kind"] == "approval_approved" {
			assert.Equal(t, "entity-operator", e["actor"])
			assert.Equal(t, "for the migration", e["detail"])
			assert.Equal(t, aid, e["approval"])
		}
	}
	assert.Equal(t, []string{"session_start", "approval_requested", "approval_approved", "credential_issued", "approval_requested"}, kinds)
}

func TestApprovalOutsideTheRoleIsAViolation(t *testing.T) {
	b, s, id := approvalSetup(t, nil)
	code, data := askOutside(t, b, s, id, "write:secrets/db/creds", "secrets-api")
	assert.Equal(t, http.StatusForbidden, code)
	assert.Equal(t, "scope_outside_intent", data["violation"])
	st := mustDo(t, b, s, agentA, logical.ReadOperation, "session/"+id, nil)
	assert.Equal(t, "revoked", st.Data["state"])
}

func TestApprovalDenialExpiryAndLimit(t *testing.T) {
	b, s, id := approvalSetup(t, map[string]interface{}{"denial_is_violation": true, "on_violation": "deny", "violation_limit": 5})
	_, d1 := askOutside(t, b, s, id, "read:secrets/db/a", "secrets-api")
	_, d2 := askOutside(t, b, s, id, "read:secrets/db/b", "docs-api")
	// Past max_pending_approvals: the violation it would have been.
	code, data := askOutside(t, b, s, id, "read:secrets/db/c", "secrets-api")
	assert.Equal(t, http.StatusForbidden, code)
	assert.Equal(t, "scope_outside_intent", data["violation"])

	_, err := do(t, b, s, operator, logical.UpdateOperation, "approvals/"+d1["approval_id"].(string)+"/deny", nil)
	require.Error(t, err, "a denial needs a reason")
	den := mustDo(t, b, s, operator, logical.UpdateOperation, "approvals/"+d1["approval_id"].(string)+"/deny", map[string]interface{}{"reason": "not now"})
	assert.Equal(t, "denied", den.Data["state"])
	st := mustDo(t, b, s, agentA, logical.ReadOperation, "session/"+id, nil)
	assert.Equal(t, 2, st.Data["violation_count"], "the denial is a violation under denial_is_violation")

	// The other one expires.
	later := time.Now().Add(11 * time.Minute)
	b.now = func() time.Time { return later }
	a := mustDo(t, b, s, operator, logical.ReadOperation, "approvals/"+d2["approval_id"].(string), nil)
	assert.Equal(t, "expired", a.Data["state"])
	_, err = do(t, b, s, operator, logical.UpdateOperation, "approvals/"+d2["approval_id"].(string)+"/approve", nil)
	require.Error(t, err, "an expired approval is not decided")
	// The next step records the expiry, and may ask again.
	code, _ = askOutside(t, b, s, id, "read:secrets/db/d", "secrets-api")
	assert.Equal(t, http.StatusAccepted, code)
	var expired int
	for _, e := range timelineEvents(t, b, s, id) {
		if e["kind"] == "approval_expired" {
			expired++
		}
	}
	assert.Equal(t, 1, expired)
}

// TestTidyRecordsExpiredApprovals: an approval that expires while its
// session is idle is recorded by the tidy, once.
func TestTidyRecordsExpiredApprovals(t *testing.T) {
	b, s, id := approvalSetup(t, nil)
	_, d := askOutside(t, b, s, id, "read:secrets/db/a", "secrets-api")
	expiredEvents := func() (n int) {
		for _, e := range timelineEvents(t, b, s, id) {
			if e["kind"] == "approval_expired" && e["approval"] == d["approval_id"] {
				n++
			}
		}
		return n
	}
	require.NoError(t, b.periodic(context.Background(), &logical.Request{Storage: s}))
	assert.Zero(t, expiredEvents(), "not expired yet")

	later := time.Now().Add(11 * time.Minute)
	b.now = func() time.Time { return later }
	require.NoError(t, b.periodic(context.Background(), &logical.Request{Storage: s}))
	assert.Equal(t, 1, expiredEvents())
	require.NoError(t, b.periodic(context.Background(), &logical.Request{Storage: s}))
	assert.Equal(t, 1, expiredEvents(), "recorded once")
	st := mustDo(t, b, s, agentA, logical.ReadOperation, "session/"+id, nil)
	assert.Equal(t, "active", st.Data["state"])
}

func TestApprovalsDieWithTheirSession(t *testing.T) {
	b, s, id := approvalSetup(t, nil)
	_, d := askOutside(t, b, s, id, "read:secrets/db/a", "secrets-api")
	mustDo(t, b, s, operator, logical.UpdateOperation, "sessions/"+id+"/revoke", map[string]interface{}{"reason": "drill"})
	a := mustDo(t, b, s, operator, logical.ReadOperation, "approvals/"+d["approval_id"].(string), nil)
	assert.Equal(t, "canceled", a.Data["state"])
	_, err := do(t, b, s, operator, logical.UpdateOperation, "approvals/"+d["approval_id"].(string)+"/approve", nil)
	require.Error(t, err)
	list := mustDo(t, b, s, operator, logical.ListOperation, "approvals/", nil)
	assert.Empty(t, list.Data["keys"], "no pending approval is left")
}

func TestApprovalAtTheTokenEndpoint(t *testing.T) {
	b, s, _ := approvalSetup(t, map[string]interface{}{"audiences": "secrets-api,docs-api,vault:agent"})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "appr", "scopes": "read:secrets/web/*", "audiences": "secrets-api,vault:agent"})
	parent := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/*", "audience": "vault:agent",
	}).Data["token"].(string)
	// A child outside the parent is a violation (approval does not widen a
	// parent); a new audience inside the role waits.
	a := exchange(t, b, s, "", map[string]interface{}{"subject_token": parent, "audience": "docs-api"})
	assert.Equal(t, "authorization_pending", a.body["error"])
	assert.NotEmpty(t, a.body["approval_id"])
}

// The tidy deletes an approval once its session is gone.
func TestTidyDeletesApprovalsOfDeletedSessions(t *testing.T) {
	b, s, id := approvalSetup(t, nil)
	_, d := askOutside(t, b, s, id, "read:secrets/db/a", "secrets-api")
	require.NoError(t, b.tidy(context.Background(), s))
	a, err := getApproval(context.Background(), s, d["approval_id"].(string))
	require.NoError(t, err)
	require.NotNil(t, a, "a live session's approval stays")
	require.NoError(t, s.Delete(context.Background(), sessionsPrefix+id))
	b.forget(id)
	require.NoError(t, b.tidy(context.Background(), s))
	a, err = getApproval(context.Background(), s, d["approval_id"].(string))
	require.NoError(t, err)
	assert.Nil(t, a)
}

// Asking again while an approval is pending waits for the same approval:
// retrying never fills the pending list, nor kills the session.
func TestAskingAgainWaitsForTheSameApproval(t *testing.T) {
	b, s, id := approvalSetup(t, nil)
	var ids []string
	for i := 0; i < 5; i++ {
		code, data := askOutside(t, b, s, id, "read:secrets/db/creds", "secrets-api")
		require.Equal(t, http.StatusAccepted, code, "%v", data)
		ids = append(ids, data["approval_id"].(string))
	}
	for _, x := range ids {
		assert.Equal(t, ids[0], x)
	}
	st := mustDo(t, b, s, agentA, logical.ReadOperation, "session/"+id, nil)
	assert.Equal(t, "active", st.Data["state"])
	assert.Len(t, st.Data["pending_approvals"], 1)
	list := mustDo(t, b, s, operator, logical.ListOperation, "approvals/", nil)
	assert.Len(t, list.Data["keys"], 1)
}

// A step that could not be granted anyway is not put to a person: a bad
// parent is the violation it is.
func TestApprovalNeedsEveryOtherCheckToPass(t *testing.T) {
	b, s, id := approvalSetup(t, map[string]interface{}{"on_violation": "deny", "violation_limit": 10})
	_, err := issue(t, b, s, agentA, id, map[string]interface{}{
		"scopes": "read:secrets/db/creds", "audience": "secrets-api", "parent_token": "not.a.token",
	})
	require.Error(t, err)
	assert.Equal(t, "bad_parent", refusalData(t, err)["violation"])
	list := mustDo(t, b, s, operator, logical.ListOperation, "approvals/", nil)
	assert.Empty(t, list.Data["keys"])
}

// The agent reads what became of its approvals, even once a short grant
// has ended.
func TestSessionShowsDecidedApprovals(t *testing.T) {
	b, s, id := approvalSetup(t, nil)
	_, d := askOutside(t, b, s, id, "read:secrets/db/creds", "secrets-api")
	mustDo(t, b, s, operator, logical.UpdateOperation, "approvals/"+d["approval_id"].(string)+"/approve", map[string]interface{}{"ttl": "1s"})
	later := time.Now().Add(time.Minute)
	b.now = func() time.Time { return later }
	st := mustDo(t, b, s, agentA, logical.ReadOperation, "session/"+id, nil)
	assert.Empty(t, st.Data["grants"])
	assert.Equal(t, []map[string]interface{}{{"approval_id": d["approval_id"], "state": "approved"}}, st.Data["decided_approvals"])
}
