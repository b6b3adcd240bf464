package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

func TestRoleLifecycle(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", map[string]interface{}{"max_steps": 20})

	resp := mustDo(t, b, s, agentA, logical.ReadOperation, "roles/web", nil)
	assert.Equal(t, []string{"list,read:secrets/web/*", "write:secrets/web/tmp/*"}, resp.Data["scopes"])
	assert.Equal(t, 20, resp.Data["max_steps"])
	assert.Equal(t, int64(900), resp.Data["session_ttl"])
	assert.Equal(t, "revoke", resp.Data["on_violation"])

	// An update changes only what it names.
	mustDo(t, b, s, agentA, logical.UpdateOperation, "roles/web", map[string]interface{}{"max_depth": 2})
	resp = mustDo(t, b, s, agentA, logical.ReadOperation, "roles/web", nil)
	assert.Equal(t, 2, resp.Data["max_depth"])
	assert.Equal(t, 20, resp.Data["max_steps"])

	list := mustDo(t, b, s, agentA, logical.ListOperation, "roles/", nil)
	assert.Equal(t, []string{"web"}, list.Data["keys"])

	mustDo(t, b, s, agentA, logical.DeleteOperation, "roles/web", nil)
	resp = mustDo(t, b, s, agentA, logical.ReadOperation, "roles/web", nil)
	assert.Nil(t, resp)
}

func TestRoleRejectsBadFieldsAndStoresNothing(t *testing.T) {
	for _, tc := range []struct {
		data  map[string]interface{}
		field string
	}{
		{map[string]interface{}{"audiences": "a"}, "scopes"},
		{map[string]interface{}{"scopes": "read:x"}, "audiences"},
		{map[string]interface{}{"scopes": "read:x//y", "audiences": "a"}, "scopes"},
		{map[string]interface{}{"scopes": "READ:x", "audiences": "a"}, "scopes"},
		{map[string]interface{}{"scopes": "read:x", "audiences": "a", "session_ttl": "2h"}, "session_ttl"},
		{map[string]interface{}{"scopes": "read:x", "audiences": "a", "step_max_ttl": "2h"}, "step_max_ttl"},
		{map[string]interface{}{"scopes": "read:x", "audiences": "a", "max_steps": 0}, "max_steps"},
		{map[string]interface{}{"scopes": "read:x", "audiences": "a", "on_violation": "explode"}, "on_violation"},
		{map[string]interface{}{"scopes": "read:x", "audiences": "a", "max_depth": "deep"}, "max_depth"},
	} {
		t.Run(tc.field, func(t *testing.T) {
			b, s := testBackend(t)
			_, err := do(t, b, s, agentA, logical.CreateOperation, "roles/r", tc.data)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.field)
			keys, lerr := s.List(context.Background(), "")
			require.NoError(t, lerr)
			assert.Empty(t, keys, "a refused role write stored something")
		})
	}
}

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

func TestCredentialClaimsAndVerification(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web", "purpose": "rotate TLS"})

	jkt := "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
	resp := mustDo(t, b, s, agentA, logical.ReadOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/tls", "audience": "secrets-api", "description": "fetch cert", "cnf_jkt": jkt,
	})
	assert.Equal(t, []string{"read:secrets/web/tls"}, resp.Data["scopes"])
	assert.Equal(t, 1, resp.Data["depth"])

	keys := jwksKeys(t, b, s)
	require.Len(t, keys, 1)
	assert.Equal(t, token.AlgEdDSA, keys[0].Algorithm)
	claims, err := token.Verify(resp.Data["token"].(string), token.StaticKeys(keys...), token.VerifyOptions{
		Issuer: "vault:agent", Audience: "secrets-api",
	})
	require.NoError(t, err)
	assert.Equal(t, "entity-a", claims.Subject)
	assert.Equal(t, id, claims.Txn)
	assert.Equal(t, resp.Data["credential_id"], claims.ID)
	assert.Equal(t, "read:secrets/web/tls", claims.Scope)
	assert.Equal(t, &token.TxnContext{Role: "web", Purpose: "rotate TLS"}, claims.Tctx)
	assert.Equal(t, &token.RequestContext{Description: "fetch cert", ReqIP: "192.0.2.10"}, claims.Rctx)
	assert.Equal(t, &token.Confirmation{JKT: jkt}, claims.Cnf)
	assert.Equal(t, 1, claims.Depth)
	assert.Equal(t, int64(60), claims.Expiry-claims.IssuedAt)

	// Derive: depth 2, par, act chain, scope only narrows.
	child := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/tls", "audience": "docs-api", "parent_token": resp.Data["token"], "actor": "sub-agent-1",
	})
	cc, err := token.Verify(child.Data["token"].(string), token.StaticKeys(keys...), token.VerifyOptions{Issuer: "vault:agent", Audience: "docs-api"})
	require.NoError(t, err)
	assert.Equal(t, 2, cc.Depth)
	assert.Equal(t, claims.ID, cc.Parent)
	assert.Equal(t, []string{"sub-agent-1"}, cc.Act.Chain())

	grand := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/tls", "audience": "docs-api", "parent_token": child.Data["token"], "actor": "sub-agent-2",
	})
	gc, err := token.Verify(grand.Data["token"].(string), token.StaticKeys(keys...), token.VerifyOptions{Issuer: "vault:agent", Audience: "docs-api"})
	require.NoError(t, err)
	assert.Equal(t, 3, gc.Depth)
	assert.Equal(t, []string{"sub-agent-2", "sub-agent-1"}, gc.Act.Chain())

	// ttl is clamped with a warning, not refused.
	long := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "list:secrets/web/a", "audience": "secrets-api", "ttl": "1h",
	})
	require.Len(t, long.Warnings, 1)
	assert.Contains(t, long.Warnings[0], "clamped to 5m0s")
}

func TestStepViolationsRevokeTheSession(t *testing.T) {
	for _, tc := range []struct {
		name string
		data func(parent string) map[string]interface{}
		kind string
		code int
	}{
		{"scope", func(string) map[string]interface{} {
			return map[string]interface{}{"scopes": "write:secrets/web/tls", "audience": "secrets-api"}
		}, "scope_outside_intent", http.StatusForbidden},
		{"audience", func(string) map[string]interface{} {
			return map[string]interface{}{"scopes": "read:secrets/web/tls", "audience": "billing-api"}
		}, "audience_outside_intent", http.StatusForbidden},
		{"scope wider than parent", func(p string) map[string]interface{} {
			return map[string]interface{}{"scopes": "list:secrets/web/tls", "audience": "secrets-api", "parent_token": p}
		}, "scope_outside_intent", http.StatusForbidden},
		{"forged parent", func(p string) map[string]interface{} {
			return map[string]interface{}{"scopes": "read:secrets/web/tls", "audience": "secrets-api", "parent_token": p[:len(p)-4] + "AAAA"}
		}, "bad_parent", http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, s := testBackend(t)
			writeRole(t, b, s, "web", nil)
			id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
			first := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
				"scopes": "read:secrets/web/tls", "audience": "secrets-api",
			})
			_, err := issue(t, b, s, agentA, id, tc.data(first.Data["token"].(string)))
			require.Error(t, err)
			assert.Contains(t, err.Error(), "violation "+tc.kind)
			coded, ok := err.(logical.HTTPCodedError)
			require.True(t, ok, "%T", err)
			assert.Equal(t, tc.code, coded.Code())

			sess := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id, nil)
			assert.Equal(t, "revoked", sess.Data["state"])
			assert.Equal(t, "violation: "+tc.kind, sess.Data["revoked_reason"])
			vs := sess.Data["violations"].([]map[string]interface{})
			require.Len(t, vs, 1)
			assert.Equal(t, tc.kind, vs[0]["kind"])
			assert.Equal(t, "192.0.2.10", vs[0]["source"])

			// The earlier credential is revoked too.
			in := mustDo(t, b, s, agentA, logical.UpdateOperation, "introspect", map[string]interface{}{"token": first.Data["token"]})
			assert.Equal(t, false, in.Data["active"])
		})
	}
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
	orphan := caller{accessor: "acc-b"}
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

// Requests on a session that is no longer active, by anyone, add nothing
// to its history: the violation that revoked it stays in its record and in
// its timeline, however many requests follow.
func TestRequestsOnAClosedSessionCannotFloodIt(t *testing.T) {
	b, s := testBackend(t)
	mustDo(t, b, s, agentA, logical.UpdateOperation, "config", map[string]interface{}{"max_events": 5})
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	tok := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scopes": "read:secrets/web/tls", "audience": "secrets-api"}).Data["token"].(string)
	_, err := issue(t, b, s, agentA, id, map[string]interface{}{"scopes": "write:secrets/web/tls", "audience": "secrets-api"})
	require.ErrorContains(t, err, "violation scope_outside_intent")
	before := timelineEvents(t, b, s, id)

	for i := 0; i < 20; i++ {
		_, err := issue(t, b, s, agentA, id, map[string]interface{}{"scopes": "read:secrets/web/tls", "audience": "secrets-api"})
		require.ErrorContains(t, err, "is revoked")
		_, err = issue(t, b, s, agentB, id, map[string]interface{}{"scopes": "read:secrets/web/tls", "audience": "secrets-api"})
		require.ErrorContains(t, err, "belongs to another caller")
		rep := mustDo(t, b, s, agentB, logical.UpdateOperation, "report", map[string]interface{}{
			"token": tok, "action": "delete", "resource": "secrets/web/tls",
		})
		assert.Equal(t, false, rep.Data["recorded"])
	}

	sess := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id, nil)
	assert.Equal(t, 1, sess.Data["violation_count"])
	violations := sess.Data["violations"].([]map[string]interface{})
	require.Len(t, violations, 1)
	assert.Equal(t, "scope_outside_intent", violations[0]["kind"])
	assert.EqualValues(t, 40, sess.Data["inactive_calls"].(map[string]interface{})["count"], "the creator's requests and the reports")
	assert.EqualValues(t, 20, sess.Data["foreign_calls"].(map[string]interface{})["count"])
	assert.Equal(t, before, timelineEvents(t, b, s, id), "the timeline is closed")
}

func TestAccessorBoundSession(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	root := caller{accessor: "root-accessor"}
	id, _ := startSession(t, b, s, root, map[string]interface{}{"role": "web"})
	resp := mustDo(t, b, s, root, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	c, err := token.Verify(resp.Data["token"].(string), token.StaticKeys(jwksKeys(t, b, s)...), token.VerifyOptions{Issuer: "vault:agent", Audience: "secrets-api"})
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(c.Subject, "hmac-sha256:"), "sub is a salted hash: %s", c.Subject)
	assert.NotContains(t, c.Subject, "root-accessor", "never the raw accessor")
	sess := mustDo(t, b, s, root, logical.ReadOperation, "session/"+id, nil)
	assert.Equal(t, "active", sess.Data["state"])

	// The same accessor hashes the same on every request (the salt is
	// stored), and differently on another mount.
	b2, s2 := testBackend(t)
	writeRole(t, b2, s2, "web", nil)
	id2, _ := startSession(t, b2, s2, root, map[string]interface{}{"role": "web"})
	resp2 := mustDo(t, b2, s2, root, logical.UpdateOperation, "creds/"+id2, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	c2, err := token.Verify(resp2.Data["token"].(string), token.StaticKeys(jwksKeys(t, b2, s2)...), token.VerifyOptions{Issuer: "vault:agent", Audience: "secrets-api"})
	require.NoError(t, err)
	assert.NotEqual(t, c.Subject, c2.Subject)
}

func TestMalformedRequestsAreNotViolations(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	for _, data := range []map[string]interface{}{
		{"audience": "secrets-api"},
		{"scopes": "read:secrets//web", "audience": "secrets-api"},
		{"scopes": "read:secrets/web/x"},
		{"scopes": "read:secrets/web/x", "audience": "secrets-api", "cnf_jkt": "short"},
		{"scopes": "read:secrets/web/x", "audience": "secrets-api", "ttl": "-5"},
		{"scopes": "read:secrets/web/x", "audience": "secrets-api", "description": string(make([]byte, 300))},
	} {
		_, err := issue(t, b, s, agentA, id, data)
		require.Error(t, err, "%v", data)
		assert.NotContains(t, err.Error(), "violation")
	}
	sess := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id, nil)
	assert.Equal(t, "active", sess.Data["state"])
	assert.Equal(t, 0, sess.Data["steps_used"])
	assert.Equal(t, 0, sess.Data["violation_count"])

	_, err := issue(t, b, s, agentA, "no-such-session", map[string]interface{}{"scopes": "read:x", "audience": "a"})
	coded, ok := err.(logical.HTTPCodedError)
	require.True(t, ok, "%v", err)
	assert.Equal(t, http.StatusNotFound, coded.Code())
}

// TestBudgetHoldsUnderConcurrency: 50 concurrent requests against
// max_steps=10 give exactly 10 credentials.
func TestBudgetHoldsUnderConcurrency(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", map[string]interface{}{"on_violation": "deny", "violation_limit": 1000, "max_rate": 1000})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web", "max_steps": 10})

	var wg sync.WaitGroup
	var mu sync.Mutex
	issued, exhausted := 0, 0
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := do(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
				"scopes": "read:secrets/web/x", "audience": "secrets-api",
			})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && resp.Data["token"] != nil:
				issued++
			case err != nil && assert.Contains(t, err.Error(), "violation budget_exhausted"):
				exhausted++
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, 10, issued)
	assert.Equal(t, 40, exhausted)
	sess := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id, nil)
	assert.Equal(t, 10, sess.Data["steps_used"])
}

func TestRateLimitIsATokenBucket(t *testing.T) {
	b, s := testBackend(t)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	b.now = func() time.Time { return now }
	writeRole(t, b, s, "web", map[string]interface{}{"max_rate": 3, "on_violation": "deny", "violation_limit": 10})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	step := map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"}
	for i := 0; i < 3; i++ {
		mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, step)
	}
	_, err := issue(t, b, s, agentA, id, step)
	require.ErrorContains(t, err, "violation rate_exceeded")
	assert.Equal(t, http.StatusTooManyRequests, err.(logical.HTTPCodedError).Code())

	now = now.Add(20 * time.Second) // refills max_rate/60 per second: one token
	mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, step)
	_, err = issue(t, b, s, agentA, id, step)
	require.ErrorContains(t, err, "violation rate_exceeded")
}

// TestEndingASessionCostsConstantWrites proves revocation is O(1) in the
// number of credentials: ending or revoking a session after 5 or after 500
// issued credentials costs the same number of storage writes, and every
// credential is revoked afterwards.
func TestEndingASessionCostsConstantWrites(t *testing.T) {
	for _, action := range []string{"end", "revoke"} {
		t.Run(action, func(t *testing.T) {
			few := writesToEndSession(t, 5, action)
			many := writesToEndSession(t, 500, action)
			assert.Equal(t, few, many, "ending a session must cost the same whatever the credential count")
			// The write-ahead log entry; the session; its closing event,
			// the revocation list and the role index entry, at once; and,
			// after the answer, the WAL's removal.
			assert.Equal(t, 6, many)
		})
	}
}

func writesToEndSession(t *testing.T, n int, action string) int {
	t.Helper()
	b, _ := testBackend(t)
	s := &countingStorage{Storage: &logical.InmemStorage{}}
	writeRole(t, b, s, "web", map[string]interface{}{"max_steps": 1000, "max_rate": 100000})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	tokens := make([]string, 0, n)
	for i := 0; i < n; i++ {
		resp := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
			"scopes": "read:secrets/web/x", "audience": "secrets-api",
		})
		tokens = append(tokens, resp.Data["token"].(string))
	}
	s.reset()
	mustDo(t, b, s, agentA, logical.UpdateOperation, "sessions/"+id+"/"+action, nil)
	b.bg.wait()
	w := s.writes()

	for _, tok := range []string{tokens[0], tokens[n/2], tokens[n-1]} {
		in := mustDo(t, b, s, agentA, logical.UpdateOperation, "introspect", map[string]interface{}{"token": tok})
		assert.Equal(t, false, in.Data["active"])
	}
	rev := mustDo(t, b, s, caller{}, logical.ReadOperation, "revocations", nil)
	listed := rev.Data["sessions"].([]map[string]interface{})
	require.Len(t, listed, 1)
	assert.Equal(t, id, listed[0]["id"])
	return w
}

func TestIntrospect(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	resp := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/x", "audience": "secrets-api",
	})
	tok := resp.Data["token"].(string)

	in := mustDo(t, b, s, agentB, logical.UpdateOperation, "introspect", map[string]interface{}{"token": tok})
	assert.Equal(t, true, in.Data["active"])
	assert.Equal(t, "active", in.Data["session_state"])
	assert.Equal(t, id, in.Data["txn"])
	assert.Equal(t, "read:secrets/web/x", in.Data["scope"])
	assert.Equal(t, "secrets-api", in.Data["aud"])

	for _, bad := range []string{"garbage", tok[:len(tok)-2], tok + "x", "a.b.c"} {
		in := mustDo(t, b, s, agentB, logical.UpdateOperation, "introspect", map[string]interface{}{"token": bad})
		assert.Equal(t, map[string]interface{}{"active": false}, in.Data)
	}
	_, err := do(t, b, s, agentB, logical.UpdateOperation, "introspect", nil)
	assert.ErrorContains(t, err, "token: is required")

	// Expired.
	b.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	in = mustDo(t, b, s, agentB, logical.UpdateOperation, "introspect", map[string]interface{}{"token": tok})
	assert.Equal(t, false, in.Data["active"])
}

func TestLeaseRenewAndRevoke(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, start := startSession(t, b, s, agentA, map[string]interface{}{"role": "web", "ttl": "5m"})

	renew := leaseRequest(t, s, logical.RenewOperation, start)
	renew.Secret.Increment = 10 * time.Minute
	resp, err := b.HandleRequest(context.Background(), renew)
	require.NoError(t, err)
	require.False(t, resp.IsError(), "%v", resp.Error())
	assert.InDelta(t, (10 * time.Minute).Seconds(), resp.Secret.TTL.Seconds(), 2)

	// Renewal never passes session_max_ttl.
	renew = leaseRequest(t, s, logical.RenewOperation, start)
	renew.Secret.Increment = 5 * time.Hour
	resp, err = b.HandleRequest(context.Background(), renew)
	require.NoError(t, err)
	assert.LessOrEqual(t, resp.Secret.TTL, time.Hour)

	tok := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/x", "audience": "secrets-api",
	}).Data["token"]

	_, err = b.HandleRequest(context.Background(), leaseRequest(t, s, logical.RevokeOperation, start))
	require.NoError(t, err)
	sess := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id, nil)
	assert.Equal(t, "revoked", sess.Data["state"])
	assert.Equal(t, "lease revoked", sess.Data["revoked_reason"])
	in := mustDo(t, b, s, agentA, logical.UpdateOperation, "introspect", map[string]interface{}{"token": tok})
	assert.Equal(t, false, in.Data["active"])

	// Renewing a closed session fails clearly; revoking it again is a no-op.
	resp, err = b.HandleRequest(context.Background(), leaseRequest(t, s, logical.RenewOperation, start))
	require.NoError(t, err)
	require.True(t, resp.IsError())
	assert.Contains(t, resp.Error().Error(), "is revoked and cannot be renewed")
	_, err = b.HandleRequest(context.Background(), leaseRequest(t, s, logical.RevokeOperation, start))
	require.NoError(t, err)
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

func TestDeletingARoleRevokesItsSessions(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	resp := mustDo(t, b, s, agentA, logical.DeleteOperation, "roles/web", nil)
	require.NotNil(t, resp)
	assert.Contains(t, resp.Warnings[0], "1 live session was revoked")
	sess := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id, nil)
	assert.Equal(t, "revoked", sess.Data["state"])
	assert.Equal(t, "role deleted", sess.Data["revoked_reason"])
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

func TestKeyRotationKeepsOldKeysUntilTheirTokensExpire(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	step := map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"}
	old := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, step).Data["token"].(string)
	oldKid, err := token.PeekKeyID(old)
	require.NoError(t, err)

	rot := mustDo(t, b, s, agentA, logical.UpdateOperation, "keys/rotate", nil)
	assert.NotEqual(t, oldKid, rot.Data["kid"])
	keys := jwksKeys(t, b, s)
	require.Len(t, keys, 2)

	fresh := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, step).Data["token"].(string)
	newKid, _ := token.PeekKeyID(fresh)
	assert.Equal(t, rot.Data["kid"], newKid)
	for _, tok := range []string{old, fresh} {
		in := mustDo(t, b, s, agentA, logical.UpdateOperation, "introspect", map[string]interface{}{"token": tok})
		assert.Equal(t, true, in.Data["active"])
	}

	// After step_max_ttl the old key leaves jwks.
	b.now = func() time.Time { return time.Now().Add(62 * time.Minute) }
	keys = jwksKeys(t, b, s)
	require.Len(t, keys, 1)
	assert.Equal(t, newKid, keys[0].ID)
}

func TestSigningAlgorithmChangeRotatesToES256(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	jwksKeys(t, b, s) // creates the first (EdDSA) key
	resp := mustDo(t, b, s, agentA, logical.UpdateOperation, "config", map[string]interface{}{"signing_algorithm": "ES256"})
	require.NotNil(t, resp)
	assert.Contains(t, resp.Warnings[0], "ES256")
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	tok := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/x", "audience": "secrets-api",
	}).Data["token"].(string)
	c, err := token.Verify(tok, token.StaticKeys(jwksKeys(t, b, s)...), token.VerifyOptions{Issuer: "vault:agent", Audience: "secrets-api", Algorithms: []string{token.AlgES256}})
	require.NoError(t, err)
	assert.Equal(t, id, c.Txn)
}

func TestUnauthenticatedPaths(t *testing.T) {
	b, _ := testBackend(t)
	assert.ElementsMatch(t, []string{"jwks", "revocations"}, b.PathsSpecial.Unauthenticated)
	assert.Contains(t, b.PathsSpecial.SealWrapStorage, "keys/")
}

// TestInterruptedCloseIsCompletedByRollback: if the plugin dies after
// writing a revoked session but before listing it in revocations, Vault's
// rollback of the write-ahead log entry completes the close.
func TestInterruptedCloseIsCompletedByRollback(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	ctx := context.Background()

	// What a crash half-way through closeSession leaves: the WAL entry
	// and the revoked session, nothing else.
	sess, err := b.getSession(ctx, s, id)
	require.NoError(t, err)
	walID, err := framework.PutWAL(ctx, s, walCloseSession, &closeWAL{Session: id, Time: time.Now()})
	require.NoError(t, err)
	require.True(t, sess.Revoke("operator: crash test", time.Now()))
	require.NoError(t, putSession(ctx, s, sess))
	rev := mustDo(t, b, s, caller{}, logical.ReadOperation, "revocations", nil)
	require.Empty(t, rev.Data["sessions"])

	// After a crash the process starts afresh: nothing is remembered.
	b.forget(id)
	// Vault's rollback manager hands the entry back, decoded from JSON.
	entry, err := framework.GetWAL(ctx, s, walID)
	require.NoError(t, err)
	raw, err := json.Marshal(entry.Data)
	require.NoError(t, err)
	var data interface{}
	require.NoError(t, json.Unmarshal(raw, &data))
	require.NoError(t, b.walRollback(ctx, &logical.Request{Storage: s}, entry.Kind, data))

	rev = mustDo(t, b, s, caller{}, logical.ReadOperation, "revocations", nil)
	listed := rev.Data["sessions"].([]map[string]interface{})
	require.Len(t, listed, 1)
	assert.Equal(t, id, listed[0]["id"])
	idx, err := s.List(ctx, roleSessionsPrefix+"web/")
	require.NoError(t, err)
	assert.Empty(t, idx)

	// A WAL entry for a session whose close never reached storage leaves it
	// active: the request that was closing it failed.
	alive, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	require.NoError(t, b.walRollback(ctx, &logical.Request{Storage: s}, walCloseSession, map[string]interface{}{"session": alive}))
	st := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+alive, nil)
	assert.Equal(t, "active", st.Data["state"])
}

// sessionWrites counts storage puts to session records.
type sessionWrites struct {
	logical.Storage
	mu   sync.Mutex
	puts map[string]int
}

func (s *sessionWrites) Put(ctx context.Context, e *logical.StorageEntry) error {
	s.mu.Lock()
	if strings.HasPrefix(e.Key, sessionsPrefix) {
		s.puts[e.Key]++
	}
	s.mu.Unlock()
	return s.Storage.Put(ctx, e)
}

// TestIssuanceWritesTheSessionOncePerBlock: a step credential costs its
// event; the session record is written once per reserved block of steps.
func TestIssuanceWritesTheSessionOncePerBlock(t *testing.T) {
	b, _ := testBackend(t)
	s := &sessionWrites{Storage: &logical.InmemStorage{}, puts: map[string]int{}}
	writeRole(t, b, s, "web", map[string]interface{}{"max_steps": 1000, "max_rate": 100000})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	for i := 0; i < 200; i++ {
		mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	}
	// One write at start, then one per block of 64 steps (and of 64 events).
	assert.LessOrEqual(t, s.puts[sessionsPrefix+id], 1+4)
	st := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id, nil)
	assert.Equal(t, 200, st.Data["steps_used"], "the node that issues knows the exact count")
	events := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id+"/events", nil).Data["events"].([]map[string]interface{})
	assert.Len(t, events, 201)
}

// TestBudgetNeverExceededAcrossRestarts: a new backend on the same storage
// (a restart, or another node becoming active) counts every reserved step
// as used, so the budget errs towards fewer credentials, never more.
func TestBudgetNeverExceededAcrossRestarts(t *testing.T) {
	s := &logical.InmemStorage{}
	newB := func() *backend {
		conf := logical.TestBackendConfig()
		conf.StorageView = s
		conf.Logger = hclog.NewNullLogger()
		raw, err := Factory(context.Background(), conf)
		require.NoError(t, err)
		return raw.(*backend)
	}
	b := newB()
	writeRole(t, b, s, "web", map[string]interface{}{"max_steps": 50, "max_rate": 100000, "on_violation": "deny", "violation_limit": 1000})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web", "max_steps": 50})
	issued := 0
	for restart := 0; restart < 20; restart++ {
		for i := 0; i < 3; i++ {
			if _, err := issue(t, b, s, agentA, id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"}); err == nil {
				issued++
			}
		}
		b = newB() // the live counters are gone
	}
	assert.LessOrEqual(t, issued, 50)
	st := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id, nil)
	assert.GreaterOrEqual(t, st.Data["steps_used"], issued)
	assert.LessOrEqual(t, st.Data["steps_used"], 50)
	// Event numbers are never reused across restarts.
	events := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id+"/events", nil).Data["events"].([]map[string]interface{})
	seen := map[interface{}]bool{}
	for _, e := range events {
		require.False(t, seen[e["seq"]], "event seq %v reused", e["seq"])
		seen[e["seq"]] = true
	}
}

// failingStorage fails every Put whose key has the prefix, while armed.
type failingStorage struct {
	logical.Storage
	mu     sync.Mutex
	prefix string
	armed  bool
}

func (f *failingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	f.mu.Lock()
	fail := f.armed && strings.HasPrefix(e.Key, f.prefix)
	f.mu.Unlock()
	if fail {
		return errors.New("injected storage failure")
	}
	return f.Storage.Put(ctx, e)
}

func (f *failingStorage) arm(on bool) {
	f.mu.Lock()
	f.armed = on
	f.mu.Unlock()
}

// TestFailedCloseNeverLeavesTheSessionActive: if storage fails half-way
// through a close, the node must not go on serving the session from a stale
// copy in memory: what storage says (revoked) wins, and the write-ahead log
// completes the rest.
func TestFailedCloseNeverLeavesTheSessionActive(t *testing.T) {
	b, _ := testBackend(t)
	s := &failingStorage{Storage: &logical.InmemStorage{}, prefix: eventsPrefix}
	writeRole(t, b, s, "web", map[string]interface{}{"max_rate": 100000})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	step := map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"}
	tok := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, step).Data["token"].(string)

	s.arm(true)
	_, err := do(t, b, s, agentA, logical.UpdateOperation, "sessions/"+id+"/revoke", nil)
	require.Error(t, err, "the close failed half-way")
	s.arm(false)

	_, err = issue(t, b, s, agentA, id, step)
	require.ErrorContains(t, err, "is revoked")
	in := mustDo(t, b, s, agentB, logical.UpdateOperation, "introspect", map[string]interface{}{"token": tok})
	assert.Equal(t, false, in.Data["active"])

	// Vault's rollback of the WAL entry lists it in revocations.
	rollback := onlyWALRollback(t, b, s)
	rollback()
	rev := mustDo(t, b, s, caller{}, logical.ReadOperation, "revocations", nil)
	require.Len(t, rev.Data["sessions"], 1)
	// The closing event, lost with its failed write, comes back from the
	// WAL entry.
	assert.Equal(t, []string{"session_start", "credential_issued", "session_revoke"}, eventKinds(t, b, s, id))
}

// onlyWALRollback checks that storage holds exactly one WAL entry and
// returns a function that rolls it back as Vault's rollback manager does
// (its data decoded from JSON).
func onlyWALRollback(t *testing.T, b *backend, s logical.Storage) func() {
	t.Helper()
	ctx := context.Background()
	wals, err := framework.ListWAL(ctx, s)
	require.NoError(t, err)
	require.Len(t, wals, 1)
	entry, err := framework.GetWAL(ctx, s, wals[0])
	require.NoError(t, err)
	raw, _ := json.Marshal(entry.Data)
	var data interface{}
	require.NoError(t, json.Unmarshal(raw, &data))
	return func() {
		t.Helper()
		require.NoError(t, b.walRollback(ctx, &logical.Request{Storage: s}, entry.Kind, data))
	}
}

// TestCloseWhoseRecordFailsLeavesNoTrace: when the session record cannot
// be written, the close did not happen: the session stays active, and its
// timeline does not claim it ended.
func TestCloseWhoseRecordFailsLeavesNoTrace(t *testing.T) {
	b, _ := testBackend(t)
	s := &failingStorage{Storage: &logical.InmemStorage{}, prefix: sessionsPrefix}
	writeRole(t, b, s, "web", map[string]interface{}{"max_rate": 100000})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	step := map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"}
	mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, step)

	s.arm(true)
	_, err := do(t, b, s, agentA, logical.UpdateOperation, "sessions/"+id+"/end", nil)
	require.Error(t, err)
	s.arm(false)
	// The session goes on, and takes a credential whose event takes the
	// number the failed close had staged for its closing event.
	mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, step)

	// The WAL entry stays (the record might have landed all the same);
	// its rollback finds the session active and writes nothing.
	rollback := onlyWALRollback(t, b, s)
	rollback()
	assert.Equal(t, []string{"session_start", "credential_issued", "credential_issued"}, eventKinds(t, b, s, id))
	rev := mustDo(t, b, s, caller{}, logical.ReadOperation, "revocations", nil)
	assert.Empty(t, rev.Data["sessions"])

	// Revoked later by an operator, the session's rollback of the earlier
	// close still tells nothing of it.
	mustDo(t, b, s, caller{}, logical.UpdateOperation, "sessions/"+id+"/revoke", nil)
	rollback()
	assert.Equal(t, []string{"session_start", "credential_issued", "credential_issued", "session_revoke"}, eventKinds(t, b, s, id))
}

// TestTidyListsACloseThatLostItsWAL: a session whose record says revoked
// but whose close went no further (the plugin died as the record landed,
// before its WAL entry) is listed in revocations by the tidy.
func TestTidyListsACloseThatLostItsWAL(t *testing.T) {
	ctx := context.Background()
	b, s := testBackend(t)
	writeRole(t, b, s, "web", map[string]interface{}{"max_rate": 100000})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	sess, err := b.getSession(ctx, s, id)
	require.NoError(t, err)
	require.True(t, sess.Revoke("operator", time.Now()))
	sess.Reserve()
	require.NoError(t, putSession(ctx, s, sess))
	b.forget(id)

	require.NoError(t, b.tidy(ctx, s))
	rev := mustDo(t, b, s, caller{}, logical.ReadOperation, "revocations", nil)
	listed := rev.Data["sessions"].([]map[string]interface{})
	require.Len(t, listed, 1)
	assert.Equal(t, id, listed[0]["id"])
	idx, err := s.List(ctx, roleSessionsPrefix+"web/")
	require.NoError(t, err)
	assert.Empty(t, idx)
}

// TestRevocationsOutlastClockSkew: an entry stays listed for a minute past
// its last credential's expiry, longer than verifiers' 30s leeway.
func TestRevocationsOutlastClockSkew(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", map[string]interface{}{"step_ttl": "60s", "step_max_ttl": "60s"})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	mustDo(t, b, s, agentA, logical.UpdateOperation, "sessions/"+id+"/revoke", nil)
	start := time.Now()
	b.now = func() time.Time { return start.Add(60*time.Second + 45*time.Second) }
	rev := mustDo(t, b, s, caller{}, logical.ReadOperation, "revocations", nil)
	assert.Len(t, rev.Data["sessions"], 1, "still listed 45s past the last credential's expiry")
	b.now = func() time.Time { return start.Add(3 * time.Minute) }
	rev = mustDo(t, b, s, caller{}, logical.ReadOperation, "revocations", nil)
	assert.Empty(t, rev.Data["sessions"])
}

// TestLoweredEngineStepTTLBindsExistingRoles: lowering config's
// step_max_ttl lowers what sessions of existing roles may be issued, and a
// rotated key stays in jwks as long as any credential it signed may live.
func TestLoweredEngineStepTTLBindsExistingRoles(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil) // step_max_ttl 5m
	mustDo(t, b, s, agentA, logical.UpdateOperation, "config", map[string]interface{}{"step_max_ttl": 60})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	resp := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/x", "audience": "secrets-api", "ttl": 300,
	})
	c, err := token.Verify(resp.Data["token"].(string), token.StaticKeys(jwksKeys(t, b, s)...), token.VerifyOptions{Issuer: "vault:agent", Audience: "secrets-api"})
	require.NoError(t, err)
	assert.Equal(t, int64(60), c.Expiry-c.IssuedAt)

	mustDo(t, b, s, agentA, logical.UpdateOperation, "keys/rotate", nil)
	start := time.Now()
	b.now = func() time.Time { return start.Add(55 * time.Minute) }
	assert.Len(t, jwksKeys(t, b, s), 2, "the default step_max_ttl of 1h was in force before: the old key stays")
}
