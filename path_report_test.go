package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReport(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	tok := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/*", "audience": "secrets-api",
	}).Data["token"].(string)

	// In scope: recorded, no violation.
	rep := mustDo(t, b, s, agentB, logical.UpdateOperation, "report", map[string]interface{}{
		"token": tok, "action": "read", "resource": "secrets/web/tls", "outcome": "allowed",
	})
	assert.Equal(t, "", rep.Data["violation"])
	assert.Equal(t, "active", rep.Data["session_state"])

	// Malformed reports are 400s naming the field, and record nothing.
	for field, data := range map[string]map[string]interface{}{
		"token":    {"action": "read", "resource": "x"},
		"action":   {"token": tok, "action": "READ", "resource": "x"},
		"resource": {"token": tok, "action": "read", "resource": "a/../b"},
		"outcome":  {"token": tok, "action": "read", "resource": "x", "outcome": strings.Repeat("o", 100)},
	} {
		_, err := do(t, b, s, agentB, logical.UpdateOperation, "report", data)
		require.Error(t, err, field)
		assert.True(t, strings.HasPrefix(err.Error(), field+":"), "%s: %v", field, err)
	}
	_, err := do(t, b, s, agentB, logical.UpdateOperation, "report", map[string]interface{}{
		"token": tok, "action": "read", "resource": "x", "outcome": "allo\u0085wed",
	})
	assert.Equal(t, map[string]interface{}{"reason": "malformed", "field": "outcome"}, refusalData(t, err), "a C1 control character")
	_, err = do(t, b, s, agentB, logical.UpdateOperation, "report", map[string]interface{}{
		"token": tok[:len(tok)-3] + "abc", "action": "read", "resource": "x",
	})
	assert.ErrorContains(t, err, "token: not a step credential of this engine")

	// Outside the scope: reported_misuse revokes the session (revoke mode).
	rep = mustDo(t, b, s, agentB, logical.UpdateOperation, "report", map[string]interface{}{
		"token": tok, "action": "write", "resource": "secrets/web/tls", "outcome": "denied",
	})
	assert.Equal(t, "reported_misuse", rep.Data["violation"])
	assert.Equal(t, true, rep.Data["session_revoked"])
	assert.Equal(t, "revoked", rep.Data["session_state"])

	// Once the session is closed, so is its history: a later report is
	// only counted.
	rep = mustDo(t, b, s, agentB, logical.UpdateOperation, "report", map[string]interface{}{
		"token": tok, "action": "read", "resource": "secrets/web/tls",
	})
	assert.Equal(t, false, rep.Data["recorded"])
	assert.Equal(t, "", rep.Data["violation"])
	sess := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id, nil)
	assert.Equal(t, 1, sess.Data["violation_count"])
	assert.EqualValues(t, 1, sess.Data["inactive_calls"].(map[string]interface{})["count"])
}

// observed_at must be believable: not in the future, not before the
// credential existed, not older than its lifetime.
func TestReportObservedAtIsChecked(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	tok := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/*", "audience": "secrets-api", "ttl": "60s",
	}).Data["token"].(string)
	now := time.Now()
	for name, at := range map[string]time.Time{
		"in the future":           now.Add(2 * time.Minute),
		"before issuance":         now.Add(-2 * time.Minute),
		"older than the lifetime": now.Add(-time.Hour),
	} {
		_, err := do(t, b, s, agentB, logical.UpdateOperation, "report", map[string]interface{}{
			"token": tok, "action": "read", "resource": "secrets/web/tls", "observed_at": at.Format(time.RFC3339),
		})
		require.Error(t, err, name)
		assert.True(t, strings.HasPrefix(err.Error(), "observed_at:"), "%s: %v", name, err)
	}
	_, err := do(t, b, s, agentB, logical.UpdateOperation, "report", map[string]interface{}{
		"token": tok, "action": "read", "resource": "secrets/web/tls", "leeway": "2m",
	})
	require.ErrorContains(t, err, "leeway:")
	sess := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id, nil)
	assert.Equal(t, "active", sess.Data["state"])
	assert.Equal(t, 0, sess.Data["violation_count"])
}

// A use the resource server accepted inside its leeway, or saw before a
// normal end, is judged as of when it was seen: no misuse.
func TestReportJudgesTheUseNotTheArrival(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	start := time.Now()
	clock := start
	b.now = func() time.Time { return clock }
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	tok := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/*", "audience": "secrets-api", "ttl": "10s",
	}).Data["token"].(string)

	// Seen 5s after exp, inside the SDK's 30s leeway, reported at once.
	clock = start.Add(15 * time.Second)
	rep := mustDo(t, b, s, agentB, logical.UpdateOperation, "report", map[string]interface{}{
		"token": tok, "action": "read", "resource": "secrets/web/tls", "observed_at": clock.Format(time.RFC3339Nano),
	})
	assert.Equal(t, "", rep.Data["violation"])
	assert.Equal(t, true, rep.Data["recorded"])

	// The same with a verifier that tolerates no skew: misuse.
	rep = mustDo(t, b, s, agentB, logical.UpdateOperation, "report", map[string]interface{}{
		"token": tok, "action": "read", "resource": "secrets/web/tls", "observed_at": clock.Format(time.RFC3339Nano), "leeway": 0,
	})
	assert.Equal(t, "reported_misuse", rep.Data["violation"])
	assert.Contains(t, rep.Data["detail"], "expired")

	// A use seen before a normal end and reported after it changes
	// nothing: the session ended cleanly.
	clock = start
	id2, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	tok2 := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id2, map[string]interface{}{
		"scopes": "read:secrets/web/*", "audience": "secrets-api",
	}).Data["token"].(string)
	seen := start.Add(time.Second)
	clock = start.Add(2 * time.Second)
	mustDo(t, b, s, agentA, logical.UpdateOperation, "sessions/"+id2+"/end", nil)
	clock = start.Add(3 * time.Second)
	rep = mustDo(t, b, s, agentB, logical.UpdateOperation, "report", map[string]interface{}{
		"token": tok2, "action": "read", "resource": "secrets/web/tls", "observed_at": seen.Format(time.RFC3339Nano),
	})
	assert.Equal(t, "", rep.Data["violation"])
	sess := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id2, nil)
	assert.Equal(t, "ended", sess.Data["state"])
	assert.Equal(t, 0, sess.Data["violation_count"])
}

func TestReportOfAnExpiredCredential(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	tok := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/*", "audience": "secrets-api", "ttl": "10s",
	}).Data["token"].(string)
	// 10s past exp plus the default 30s leeway.
	b.now = func() time.Time { return time.Now().Add(50 * time.Second) }
	rep := mustDo(t, b, s, agentB, logical.UpdateOperation, "report", map[string]interface{}{
		"token": tok, "action": "read", "resource": "secrets/web/tls",
	})
	assert.Equal(t, "reported_misuse", rep.Data["violation"])
	assert.Contains(t, rep.Data["detail"], "expired")
}
