package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/dpop"
	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

const exchangeIssuer = "https://vault.example.com:8200/v1/agent"

// exchangeAnswer is an answer of token, as an OAuth client reads it.
type exchangeAnswer struct {
	status int
	body   map[string]interface{}
	resp   *logical.Response
}

// exchange posts fields to token with no Vault token, and the DPoP proof
// when one is given.
func exchange(t testing.TB, b *backend, s logical.Storage, proof string, fields map[string]interface{}) exchangeAnswer {
	t.Helper()
	data := map[string]interface{}{"grant_type": grantTokenExchange, "subject_token_type": tokenTypeJWT}
	for k, v := range fields {
		data[k] = v
	}
	req := &logical.Request{
		Operation: logical.UpdateOperation, Path: "token", Data: data, Storage: s, MountPoint: "agent/",
		Connection: &logical.Connection{RemoteAddr: "198.51.100.7"},
	}
	if proof != "" {
		req.Headers = map[string][]string{"Dpop": {proof}}
	}
	resp, err := b.HandleRequest(context.Background(), req)
	require.NoError(t, err)
	require.NotNil(t, resp)
	a := exchangeAnswer{resp: resp}
	a.status, _ = resp.Data[logical.HTTPStatusCode].(int)
	require.Equal(t, "application/json", resp.Data[logical.HTTPContentType], "an OAuth answer is raw JSON")
	require.NoError(t, json.Unmarshal(resp.Data[logical.HTTPRawBody].([]byte), &a.body))
	return a
}

// exchangeSetup: a role that allows delegation (the engine's issuer,
// vault:agent, among its audiences), a session of agentA, and a parent
// credential for the engine: what an agent hands its sub-agent.
func exchangeSetup(t *testing.T, roleFields map[string]interface{}) (*backend, logical.Storage, string, string) {
	b, s := testBackend(t)
	fields := map[string]interface{}{"audiences": "secrets-api,docs-api,vault:agent"}
	for k, v := range roleFields {
		fields[k] = v
	}
	writeRole(t, b, s, "web", fields)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web", "scopes": "read,list:secrets/web/*"})
	parent := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read,list:secrets/web/*", "audience": "vault:agent",
	}).Data["token"].(string)
	return b, s, id, parent
}

func TestTokenExchangeIssuesANarrowerChild(t *testing.T) {
	b, s, id, parent := exchangeSetup(t, nil)
	a := exchange(t, b, s, "", map[string]interface{}{
		"subject_token": parent, "scope": "read:secrets/web/tls", "audience": "docs-api", "actor": "cert-checker",
	})
	require.Equal(t, http.StatusOK, a.status, "%v", a.body)
	assert.Equal(t, tokenTypeTxn, a.body["issued_token_type"])
	assert.Equal(t, "N_A", a.body["token_type"])
	assert.Equal(t, "read:secrets/web/tls", a.body["scope"])
	assert.InDelta(t, 60, a.body["expires_in"], 1)

	keys := token.StaticKeys(jwksKeys(t, b, s)...)
	pc, err := token.Verify(parent, keys, token.VerifyOptions{Issuer: "vault:agent", Audience: "vault:agent"})
	require.NoError(t, err)
	c, err := token.Verify(a.body["access_token"].(string), keys, token.VerifyOptions{Issuer: "vault:agent", Audience: "docs-api"})
	require.NoError(t, err)
	assert.Equal(t, 2, c.Depth)
	assert.Equal(t, pc.ID, c.Parent)
	assert.Equal(t, []string{"cert-checker"}, c.Act.Chain())
	assert.Equal(t, id, c.Txn)
	assert.Equal(t, pc.Subject, c.Subject, "the child speaks for the session's creator")
	assert.LessOrEqual(t, c.Expiry, pc.Expiry, "a child never outlives its parent")

	// It is a step: counted, and in the timeline as an exchange.
	st := mustDo(t, b, s, agentA, logical.ReadOperation, "session/"+id, nil)
	assert.Equal(t, 2, st.Data["steps_used"])
	events := timelineEvents(t, b, s, id)
	last := events[len(events)-1]
	assert.Equal(t, "credential_issued", last["kind"])
	assert.Equal(t, "token exchange", last["detail"])
	assert.Equal(t, "cert-checker", last["actor"])
	assert.Equal(t, "198.51.100.7", last["source"])

	// A credential for a resource server is not a grant: whoever it was
	// handed to can neither retarget it nor charge the session.
	child := a.body["access_token"]
	a = exchange(t, b, s, "", map[string]interface{}{"subject_token": child, "scope": "write:secrets/web/tls"})
	assert.Equal(t, oauthInvalidGrant, a.body["error"])
	assert.Contains(t, a.body["error_description"], "not exchangeable")
	st = mustDo(t, b, s, agentA, logical.ReadOperation, "session/"+id, nil)
	assert.Equal(t, "active", st.Data["state"])
	assert.Equal(t, 2, st.Data["steps_used"])

	// Access tokens on request; the default scope and audience are the
	// subject token's.
	a = exchange(t, b, s, "", map[string]interface{}{
		"subject_token": parent, "requested_token_type": tokenTypeAccess, "audience": "docs-api", "scope": "read:secrets/web/tls",
	})
	require.Equal(t, http.StatusOK, a.status, "%v", a.body)
	assert.Equal(t, tokenTypeAccess, a.body["issued_token_type"])
	assert.Equal(t, "Bearer", a.body["token_type"])
	gc, err := token.Verify(a.body["access_token"].(string), keys, token.VerifyOptions{
		Issuer: "vault:agent", Audience: "docs-api", Formats: []token.Format{token.FormatAccessToken},
	})
	require.NoError(t, err)
	assert.Equal(t, 2, gc.Depth)
	assert.Equal(t, "read:secrets/web/tls", gc.Scope)
	a = exchange(t, b, s, "", map[string]interface{}{"subject_token": parent})
	require.Equal(t, http.StatusOK, a.status, "%v", a.body)
	assert.Equal(t, "list,read:secrets/web/*", a.body["scope"])
}

// A wider exchange is the same violation as under creds, applied to the
// session: under on_violation=revoke it dies.
func TestTokenExchangeViolations(t *testing.T) {
	for _, c := range []struct {
		name, field, value, code, kind string
	}{
		{"wider scope", "scope", "write:secrets/web/tls", oauthInvalidScope, "scope_outside_intent"},
		{"another audience", "audience", "billing-api", oauthInvalidTarget, "audience_outside_intent"},
		{"another resource", "resource", "https://elsewhere.example/mcp", oauthInvalidTarget, "audience_outside_intent"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, s, id, parent := exchangeSetup(t, nil)
			a := exchange(t, b, s, "", map[string]interface{}{"subject_token": parent, c.field: c.value})
			assert.Equal(t, http.StatusBadRequest, a.status)
			assert.Equal(t, c.code, a.body["error"])
			assert.Contains(t, a.body["error_description"], "violation "+c.kind)
			assert.Contains(t, a.body["error_description"], "the session is revoked")
			st := mustDo(t, b, s, agentA, logical.ReadOperation, "session/"+id, nil)
			assert.Equal(t, "revoked", st.Data["state"])
			assert.Equal(t, "violation: "+c.kind, st.Data["revoked_reason"])
		})
	}
	t.Run("depth", func(t *testing.T) {
		b, s, _, parent := exchangeSetup(t, map[string]interface{}{"max_depth": 1, "on_violation": "deny"})
		a := exchange(t, b, s, "", map[string]interface{}{"subject_token": parent})
		assert.Equal(t, oauthInvalidGrant, a.body["error"])
		assert.Contains(t, a.body["error_description"], "violation depth_exceeded")
	})
	t.Run("budget", func(t *testing.T) {
		b, s, _, parent := exchangeSetup(t, map[string]interface{}{"max_steps": 2, "on_violation": "deny"})
		require.Equal(t, http.StatusOK, exchange(t, b, s, "", map[string]interface{}{"subject_token": parent}).status)
		a := exchange(t, b, s, "", map[string]interface{}{"subject_token": parent})
		assert.Equal(t, oauthInvalidGrant, a.body["error"])
		assert.Contains(t, a.body["error_description"], "violation budget_exhausted")
	})
}

// A sub-agent exchanges the same delegation credential for each step: its
// signature is checked once and remembered, but everything else is checked
// on every exchange (expiry, the key, the session), and a new keyring
// starts with nothing remembered.
func TestTokenExchangeRechecksARememberedSubject(t *testing.T) {
	b, s, id, parent := exchangeSetup(t, nil)
	remembered := func() int {
		b.keyringLock.RLock()
		defer b.keyringLock.RUnlock()
		if b.keyring == nil {
			return 0
		}
		return b.keyring.verified.Len()
	}
	for range 3 {
		a := exchange(t, b, s, "", map[string]interface{}{"subject_token": parent, "scope": "read:secrets/web/tls"})
		require.Equal(t, http.StatusOK, a.status, "%v", a.body)
	}
	assert.Equal(t, 1, remembered(), "the delegation credential is remembered once")
	b.keyringLock.RLock()
	hits, _ := b.keyring.verified.Stats()
	b.keyringLock.RUnlock()
	assert.Equal(t, uint64(2), hits, "the second and third exchanges found it remembered")

	// Past its expiry the remembered credential is refused as any other.
	pc, err := token.Verify(parent, token.StaticKeys(jwksKeys(t, b, s)...), token.VerifyOptions{Issuer: "vault:agent", Audience: "vault:agent"})
	require.NoError(t, err)
	b.now = func() time.Time { return time.Unix(pc.Expiry, 0) }
	a := exchange(t, b, s, "", map[string]interface{}{"subject_token": parent})
	assert.Equal(t, oauthInvalidGrant, a.body["error"])
	assert.Contains(t, a.body["error_description"], "has expired")
	b.now = time.Now

	// A rotation is a new keyring: nothing remembered, and the credential,
	// signed by the retired key still in jwks, verifies afresh.
	mustDo(t, b, s, agentA, logical.UpdateOperation, "keys/rotate", nil)
	assert.Equal(t, 0, remembered())
	a = exchange(t, b, s, "", map[string]interface{}{"subject_token": parent})
	require.Equal(t, http.StatusOK, a.status, "%v", a.body)
	assert.Equal(t, 1, remembered())

	// The session ends: its remembered credential exchanges nothing more
	// (the session is checked on every exchange, remembered or not).
	mustDo(t, b, s, agentA, logical.UpdateOperation, "sessions/"+id+"/end", nil)
	a = exchange(t, b, s, "", map[string]interface{}{"subject_token": parent})
	assert.Equal(t, oauthInvalidGrant, a.body["error"])
	st := mustDo(t, b, s, agentA, logical.ReadOperation, "session/"+id, nil)
	assert.Equal(t, 5, st.Data["steps_used"], "the parent and four exchanges")
}

// Budgets hold exactly under concurrent exchanges.
func TestTokenExchangeBudgetUnderConcurrency(t *testing.T) {
	b, s, id, parent := exchangeSetup(t, map[string]interface{}{"max_steps": 10, "on_violation": "deny", "violation_limit": 1000, "max_rate": 1000})
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if exchange(t, b, s, "", map[string]interface{}{"subject_token": parent}).status == http.StatusOK {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, 9, ok, "ten steps: the parent and nine children")
	st := mustDo(t, b, s, agentA, logical.ReadOperation, "session/"+id, nil)
	assert.Equal(t, 10, st.Data["steps_used"])
}

// What no live session stands behind writes nothing.
func TestTokenExchangeRefusalsWriteNothing(t *testing.T) {
	b, inner, id, parent := exchangeSetup(t, nil)
	s := &countingStorage{Storage: inner}
	otherKey, err := token.GenerateKey(token.AlgEdDSA)
	require.NoError(t, err)
	forged, err := token.Mint(otherKey, &token.Claims{
		Issuer: "vault:agent", Subject: "entity-a", Audience: "secrets-api", IssuedAt: time.Now().Unix(),
		Expiry: time.Now().Add(time.Minute).Unix(), ID: "x", Txn: id, Scope: "read:secrets/web/tls", Depth: 1,
	})
	require.NoError(t, err)
	for _, c := range []struct {
		name   string
		fields map[string]interface{}
		code   string
	}{
		{"forged", map[string]interface{}{"subject_token": forged}, oauthInvalidGrant},
		{"garbage", map[string]interface{}{"subject_token": "not.a.token"}, oauthInvalidGrant},
		{"no subject token", map[string]interface{}{}, oauthInvalidRequest},
		{"oversize", map[string]interface{}{"subject_token": strings.Repeat("a", token.MaxTokenSize+1)}, oauthInvalidRequest},
		{"another grant", map[string]interface{}{"subject_token": parent, "grant_type": "client_credentials"}, oauthUnsupportedGrant},
		{"actor_token", map[string]interface{}{"subject_token": parent, "actor_token": parent}, oauthInvalidRequest},
		{"unknown token type", map[string]interface{}{"subject_token": parent, "subject_token_type": "urn:x"}, oauthInvalidRequest},
		{"declared access token", map[string]interface{}{"subject_token": parent, "subject_token_type": tokenTypeAccess}, oauthInvalidRequest},
		{"unknown requested type", map[string]interface{}{"subject_token": parent, "requested_token_type": "urn:x"}, oauthInvalidRequest},
		{"two audiences", map[string]interface{}{"subject_token": parent, "audience": "secrets-api,docs-api"}, oauthInvalidTarget},
		{"audience and resource differ", map[string]interface{}{"subject_token": parent, "audience": "https://a.example/mcp", "resource": "https://b.example/mcp"}, oauthInvalidTarget},
		{"malformed scope", map[string]interface{}{"subject_token": parent, "scope": "READ:x"}, oauthInvalidScope},
		{"DPoP without the issuer URL", map[string]interface{}{"subject_token": parent, "proof": true}, oauthInvalidDPoPProof},
	} {
		s.reset()
		proof := ""
		if c.fields["proof"] == true {
			delete(c.fields, "proof")
			k, _ := dpop.GenerateKey("EdDSA")
			proof, _ = k.Proof("POST", exchangeIssuer+"/token", "", time.Now())
		}
		a := exchange(t, b, s, proof, c.fields)
		assert.Equal(t, http.StatusBadRequest, a.status, c.name)
		assert.Equal(t, c.code, a.body["error"], "%s: %v", c.name, a.body)
		assert.Zero(t, s.writes(), "%s wrote to storage", c.name)
		assert.NotContains(t, a.body["error_description"], parent, c.name)
	}

	// A closed session's credential: invalid_grant, nothing written, not
	// even counted.
	mustDo(t, b, inner, agentA, logical.UpdateOperation, "sessions/"+id+"/end", nil)
	s.reset()
	a := exchange(t, b, s, "", map[string]interface{}{"subject_token": parent})
	assert.Equal(t, oauthInvalidGrant, a.body["error"])
	assert.Contains(t, a.body["error_description"], "is ended")
	assert.Zero(t, s.writes())
}

// DPoP (RFC 9449) at the token endpoint and at creds.
func TestTokenExchangeAndCredsWithDPoP(t *testing.T) {
	b, s := testBackend(t)
	mustDo(t, b, s, operator, logical.UpdateOperation, "config", map[string]interface{}{"issuer": exchangeIssuer})
	writeRole(t, b, s, "web", map[string]interface{}{"audiences": "secrets-api,docs-api," + exchangeIssuer})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	key, err := dpop.GenerateKey("ES256")
	require.NoError(t, err)
	other, err := dpop.GenerateKey("EdDSA")
	require.NoError(t, err)
	keys := func() token.KeyLookup { return token.StaticKeys(jwksKeys(t, b, s)...) }

	// creds with a DPoP header: the credential is bound to the proof's key.
	credsURL := exchangeIssuer + "/creds/" + id
	proof, err := key.Proof("POST", credsURL, "", time.Now())
	require.NoError(t, err)
	req := &logical.Request{
		Operation: logical.UpdateOperation, Path: "creds/" + id, Storage: s, MountPoint: "agent/",
		EntityID: agentA.entity, ClientTokenAccessor: agentA.accessor,
		Data:    map[string]interface{}{"scopes": "read:secrets/web/*", "audience": "secrets-api"},
		Headers: map[string][]string{"Dpop": {proof}},
	}
	resp, err := b.HandleRequest(context.Background(), req)
	require.NoError(t, err)
	require.False(t, resp.IsError(), "%v", resp.Data)
	bound := resp.Data["token"].(string)
	c, err := token.Verify(bound, keys(), token.VerifyOptions{Issuer: exchangeIssuer, Audience: "secrets-api"})
	require.NoError(t, err)
	require.NotNil(t, c.Cnf)
	assert.Equal(t, key.Thumbprint(), c.Cnf.JKT)
	// The same proof again is a replay.
	resp, err = b.HandleRequest(context.Background(), req)
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadRequest, resp.Data[logical.HTTPStatusCode])
	assert.Contains(t, string(resp.Data[logical.HTTPRawBody].([]byte)), "DPoP: the DPoP proof is refused: dpop: the proof was replayed")

	// Exchanging the bound credential needs a proof by its key.
	tokenURL := exchangeIssuer + "/token"
	fields := map[string]interface{}{"subject_token": bound, "scope": "read:secrets/web/tls"}
	a := exchange(t, b, s, "", fields)
	assert.Equal(t, oauthInvalidDPoPProof, a.body["error"], "no proof")
	assert.Equal(t, []string{`DPoP error="invalid_dpop_proof", algs="EdDSA ES256"`}, a.resp.Headers["WWW-Authenticate"])
	p, _ := other.Proof("POST", tokenURL, bound, time.Now())
	assert.Equal(t, oauthInvalidDPoPProof, exchange(t, b, s, p, fields).body["error"], "another key's proof")
	p, _ = key.Proof("POST", exchangeIssuer+"/creds/"+id, bound, time.Now())
	assert.Equal(t, oauthInvalidDPoPProof, exchange(t, b, s, p, fields).body["error"], "a proof for another URL")
	p, _ = key.Proof("POST", tokenURL, bound, time.Now().Add(-5*time.Minute))
	assert.Equal(t, oauthInvalidDPoPProof, exchange(t, b, s, p, fields).body["error"], "an old proof")
	p, _ = key.Proof("POST", tokenURL, "", time.Now())
	assert.Equal(t, oauthInvalidDPoPProof, exchange(t, b, s, p, fields).body["error"], "a proof without the subject token's hash")
	p, _ = key.Proof("POST", tokenURL, bound, time.Now())
	a = exchange(t, b, s, p, fields)
	require.Equal(t, http.StatusOK, a.status, "%v", a.body)
	assert.Equal(t, "DPoP", a.body["token_type"])
	cc, err := token.Verify(a.body["access_token"].(string), keys(), token.VerifyOptions{Issuer: exchangeIssuer, Audience: "secrets-api"})
	require.NoError(t, err)
	assert.Equal(t, key.Thumbprint(), cc.Cnf.JKT, "the child is bound to the proof's key")
	assert.Equal(t, oauthInvalidDPoPProof, exchange(t, b, s, p, fields).body["error"], "a replayed proof")

	// An unbound credential for the engine exchanged with a proof: the
	// child is bound to the proof's key.
	unbound := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/*", "audience": exchangeIssuer,
	}).Data["token"].(string)
	p, _ = other.Proof("POST", tokenURL, unbound, time.Now())
	a = exchange(t, b, s, p, map[string]interface{}{"subject_token": unbound, "audience": "secrets-api"})
	require.Equal(t, http.StatusOK, a.status, "%v", a.body)
	cc, err = token.Verify(a.body["access_token"].(string), keys(), token.VerifyOptions{Issuer: exchangeIssuer, Audience: "secrets-api"})
	require.NoError(t, err)
	assert.Equal(t, other.Thumbprint(), cc.Cnf.JKT)

	// A bound credential for a resource server can be exchanged (with its
	// key), even for another of the session's audiences: its holder proved
	// the key.
	p, _ = other.Proof("POST", tokenURL, a.body["access_token"].(string), time.Now())
	a = exchange(t, b, s, p, map[string]interface{}{"subject_token": a.body["access_token"], "audience": "docs-api", "scope": "read:secrets/web/tls"})
	require.Equal(t, http.StatusOK, a.status, "%v", a.body)
}

// Proofs take a place in the replay cache only for a live session's
// rightful caller: a closed session's credential, or another caller's
// request, cannot fill it.
func TestProofsOfRefusedRequestsAreNotRemembered(t *testing.T) {
	b, s := testBackend(t)
	b.proofs = dpop.NewReplayCache(2)
	mustDo(t, b, s, operator, logical.UpdateOperation, "config", map[string]interface{}{"issuer": exchangeIssuer})
	writeRole(t, b, s, "web", map[string]interface{}{"audiences": "secrets-api," + exchangeIssuer})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	key, _ := dpop.GenerateKey("EdDSA")
	dead := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/*", "audience": exchangeIssuer,
	}).Data["token"].(string)
	mustDo(t, b, s, agentA, logical.UpdateOperation, "sessions/"+id+"/end", nil)
	for i := 0; i < 5; i++ {
		p, _ := key.Proof("POST", exchangeIssuer+"/token", dead, time.Now())
		assert.Equal(t, oauthInvalidGrant, exchange(t, b, s, p, map[string]interface{}{"subject_token": dead}).body["error"])
	}
	live, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	for i := 0; i < 5; i++ {
		p, _ := key.Proof("POST", exchangeIssuer+"/creds/"+live, "", time.Now())
		req := &logical.Request{
			Operation: logical.UpdateOperation, Path: "creds/" + live, Storage: s, MountPoint: "agent/",
			EntityID: agentB.entity, ClientTokenAccessor: agentB.accessor,
			Data:    map[string]interface{}{"scopes": "read:secrets/web/*", "audience": "secrets-api"},
			Headers: map[string][]string{"Dpop": {p}},
		}
		resp, err := b.HandleRequest(context.Background(), req)
		require.NoError(t, err)
		assert.Equal(t, http.StatusForbidden, resp.Data[logical.HTTPStatusCode], "another caller")
	}
	assert.Zero(t, b.proofs.Len(), "no refused request took a place in the replay cache")
}
