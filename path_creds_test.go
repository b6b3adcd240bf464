package agent

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

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

// TestEveryViolationKindInDenyMode: each kind is refused with a 4xx naming
// it, counted, and the session is revoked only past violation_limit.
func TestEveryViolationKindInDenyMode(t *testing.T) {
	b, s := testBackend(t)
	now := time.Now()
	b.now = func() time.Time { return now }
	writeRole(t, b, s, "web", map[string]interface{}{
		"on_violation": "deny", "violation_limit": 6, "max_depth": 2, "max_rate": 6,
	})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web", "max_steps": 10})
	step := map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"}
	tok := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, step).Data["token"].(string)
	child := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/x", "audience": "secrets-api", "parent_token": tok,
	}).Data["token"].(string)

	other, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	otherTok := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+other, step).Data["token"].(string)

	expectViolation := func(kind string, code int, c caller, data map[string]interface{}) {
		t.Helper()
		_, err := issue(t, b, s, c, id, data)
		require.Error(t, err, kind)
		assert.Contains(t, err.Error(), "violation "+kind)
		coded, ok := err.(logical.HTTPCodedError)
		require.True(t, ok)
		assert.Equal(t, code, coded.Code(), kind)
	}
	expectViolation("scope_outside_intent", http.StatusForbidden, agentA, map[string]interface{}{"scopes": "write:secrets/web/x", "audience": "secrets-api"})
	expectViolation("audience_outside_intent", http.StatusForbidden, agentA, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "billing"})
	expectViolation("depth_exceeded", http.StatusForbidden, agentA, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api", "parent_token": child})
	expectViolation("bad_parent", http.StatusForbidden, agentA, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api", "parent_token": otherTok})
	// Another caller is refused, and it is no violation of the session.
	_, err := issue(t, b, s, agentB, id, step)
	require.ErrorContains(t, err, "belongs to another caller")

	// Reported misuse: the report succeeds; the session is charged.
	rep := mustDo(t, b, s, agentB, logical.UpdateOperation, "report", map[string]interface{}{
		"token": tok, "action": "delete", "resource": "secrets/web/x",
	})
	assert.Equal(t, "reported_misuse", rep.Data["violation"])
	assert.Equal(t, false, rep.Data["session_revoked"])

	// Rate: 6 per minute, 2 already spent in this minute.
	for i := 0; i < 4; i++ {
		mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, step)
	}
	expectViolation("rate_exceeded", http.StatusTooManyRequests, agentA, step)

	// Budget: 10 steps; a minute later the bucket is full again.
	now = now.Add(time.Minute)
	for i := 0; i < 4; i++ {
		mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, step)
	}
	sess := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id, nil)
	require.Equal(t, 10, sess.Data["steps_used"])
	assert.Equal(t, 6, sess.Data["violation_count"])
	assert.Equal(t, "active", sess.Data["state"], "6 violations are tolerated")
	expectViolation("budget_exhausted", http.StatusForbidden, agentA, step)

	sess = mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id, nil)
	assert.Equal(t, "revoked", sess.Data["state"])
	assert.Equal(t, "violation: budget_exhausted", sess.Data["revoked_reason"])
	kinds := map[string]bool{}
	for _, v := range sess.Data["violations"].([]map[string]interface{}) {
		kinds[v["kind"].(string)] = true
	}
	assert.Len(t, kinds, 7, "every violation kind was recorded: %v", kinds)
}

// TestParentTokenInAQueryIsWarnedAbout: a read derives, as the spec's
// `vault read agent/creds/... parent_token=` does, and its answer warns that
// the credential travelled in a URL's query, without repeating it; a write
// derives without the warning.
func TestParentTokenInAQueryIsWarnedAbout(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	parent, err := do(t, b, s, agentA, logical.ReadOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read,list:secrets/web/*", "audience": "secrets-api",
	})
	require.NoError(t, err)
	assert.Empty(t, parent.Warnings, "no parent, no warning")
	token := parent.Data["token"].(string)
	derive := map[string]interface{}{"scopes": "read:secrets/web/tls", "audience": "secrets-api", "parent_token": token}

	child, err := do(t, b, s, agentA, logical.ReadOperation, "creds/"+id, derive)
	require.NoError(t, err)
	assert.Equal(t, parent.Data["credential_id"], child.Data["parent_id"])
	queryWarnings := func(ws []string) (n int) {
		for _, w := range ws {
			assert.NotContains(t, w, token, "a warning does not repeat the credential")
			if strings.Contains(w, "parent_token") && strings.Contains(w, "query") {
				n++
			}
		}
		return n
	}
	assert.Equal(t, 1, queryWarnings(child.Warnings))

	child, err = do(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, derive)
	require.NoError(t, err)
	assert.Equal(t, parent.Data["credential_id"], child.Data["parent_id"])
	assert.Zero(t, queryWarnings(child.Warnings))
}

// TestReadScopesAreOneValue: in a read, several scopes come as one
// comma-separated value, which Vault's policy parameter checks read
// piece by piece; a repeated query parameter (a list) is refused.
func TestReadScopesAreOneValue(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	_, err := do(t, b, s, agentA, logical.ReadOperation, "creds/"+id, map[string]interface{}{
		"scopes": []string{"read:secrets/web/a", "list:secrets/web/b"}, "audience": "secrets-api",
	})
	require.Error(t, err)
	assert.Equal(t, http.StatusBadRequest, err.(logical.HTTPCodedError).Code())
	assert.Contains(t, err.Error(), "scopes")

	resp, err := do(t, b, s, agentA, logical.ReadOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read,list:secrets/web/a,list:secrets/web/b", "audience": "secrets-api",
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"list,read:secrets/web/a", "list:secrets/web/b"}, resp.Data["scopes"])

	// A write takes a list as ever.
	_, err = do(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": []string{"read:secrets/web/a", "list:secrets/web/b"}, "audience": "secrets-api",
	})
	require.NoError(t, err)

	// The read's OpenAPI operation lists its query parameters, never
	// parent_token.
	help, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.HelpOperation, Path: "creds/" + id, Storage: s})
	require.NoError(t, err)
	doc := help.Data["openapi"].(*framework.OASDocument)
	var params []string
	for _, item := range doc.Paths {
		if item.Get != nil {
			for _, p := range item.Get.Parameters {
				if p.In == "query" {
					params = append(params, p.Name)
				}
			}
		}
	}
	assert.ElementsMatch(t, []string{"scopes", "audience", "ttl", "description", "actor", "cnf_jkt", "format", "parent_token"}, params)
}
