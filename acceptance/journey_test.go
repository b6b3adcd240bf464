//go:build acceptance

package acceptance

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

// agentPolicy is the README's agent policy, word for word: written as
// given, it grants nothing over other callers' sessions (the engine
// refuses them on session/+, creds/* and sessions/+/end).
const agentPolicy = `
path "agent/session"        { capabilities = ["update"] }
path "agent/session/+"      { capabilities = ["read"] }
path "agent/creds/*"        { capabilities = ["read", "update"] }
path "agent/sessions/+/end" { capabilities = ["update"] }
`

// setupJourney mounts the engine, writes a role and an agent policy, and
// returns two agent tokens (distinct callers).
func setupJourney(t *testing.T, v *vaultServer, roleArgs ...string) (agent1, agent2 string) {
	t.Helper()
	v.registerAndMount("agent")
	args := append([]string{"write", "agent/roles/deployer",
		"scopes=read,list:secrets/web/*,write:secrets/web/tmp/*",
		"audiences=secrets-api,docs-api"}, roleArgs...)
	v.mustCLI(args...)
	policyFile := v.dir + "/agent-policy.hcl"
	require.NoError(t, writeFile(policyFile, agentPolicy))
	v.mustCLI("policy", "write", "agent", policyFile)
	return v.newToken("agent"), v.newToken("agent")
}

func (v *vaultServer) newToken(policy string) string {
	v.t.Helper()
	out := v.mustCLI("token", "create", "-policy="+policy, "-format=json")
	var secret struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	require.NoError(v.t, json.Unmarshal([]byte(out), &secret), out)
	return secret.Auth.ClientToken
}

type cliSecret struct {
	LeaseID       string                 `json:"lease_id"`
	LeaseDuration int                    `json:"lease_duration"`
	Renewable     bool                   `json:"renewable"`
	Data          map[string]interface{} `json:"data"`
	Warnings      []string               `json:"warnings"`
}

func (v *vaultServer) jsonAs(tok string, args ...string) (cliSecret, string, error) {
	out, err := v.cliAs(tok, append(args[:1:1], append([]string{"-format=json"}, args[1:]...)...)...)
	var s cliSecret
	if err == nil {
		if jerr := json.Unmarshal([]byte(out), &s); jerr != nil {
			v.t.Fatalf("vault %s: not JSON: %v\n%s", strings.Join(args, " "), jerr, out)
		}
	}
	return s, out, err
}

func (v *vaultServer) mustJSONAs(tok string, args ...string) cliSecret {
	v.t.Helper()
	s, out, err := v.jsonAs(tok, args...)
	require.NoError(v.t, err, "vault %s:\n%s", strings.Join(args, " "), out)
	return s
}

func (v *vaultServer) startSession(tok string, args ...string) cliSecret {
	v.t.Helper()
	return v.mustJSONAs(tok, append([]string{"write", "agent/session", "role=deployer", "purpose=acceptance journey"}, args...)...)
}

func (v *vaultServer) sessionState(id string) map[string]interface{} {
	v.t.Helper()
	return v.mustJSONAs(v.token, "read", "agent/sessions/"+id).Data
}

func (v *vaultServer) introspect(tok string) map[string]interface{} {
	v.t.Helper()
	return v.mustJSONAs(v.token, "write", "agent/introspect", "token="+tok).Data
}

// unauthenticated GETs a path with no Vault token, as a resource server does.
func (v *vaultServer) unauthenticated(path string) (int, string, []byte) {
	v.t.Helper()
	resp, err := http.Get(v.addr + "/v1/" + path)
	require.NoError(v.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(v.t, err)
	return resp.StatusCode, resp.Header.Get("Content-Type"), body
}

func (v *vaultServer) jwks() []token.PublicKey {
	v.t.Helper()
	code, ctype, body := v.unauthenticated("agent/jwks")
	require.Equal(v.t, http.StatusOK, code, string(body))
	require.Equal(v.t, "application/json", ctype)
	keys, err := token.ParseJWKS(body)
	require.NoError(v.t, err, string(body))
	return keys
}

func (v *vaultServer) revocations() (uint64, []string) {
	v.t.Helper()
	code, _, body := v.unauthenticated("agent/revocations")
	require.Equal(v.t, http.StatusOK, code, string(body))
	var out struct {
		Data struct {
			Version  uint64 `json:"version"`
			Sessions []struct {
				ID        string `json:"id"`
				RevokedAt int64  `json:"revoked_at"`
				Exp       int64  `json:"exp"`
			} `json:"sessions"`
		} `json:"data"`
	}
	require.NoError(v.t, json.Unmarshal(body, &out), string(body))
	var ids []string
	for _, s := range out.Data.Sessions {
		ids = append(ids, s.ID)
	}
	return out.Data.Version, ids
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitForWithin(t, 20*time.Second, what, cond)
}

func waitForWithin(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestJourney walks a newcomer's whole journey with the vault CLI against a
// real Vault: role, session, creds, derive, introspect, offline
// verification, end, revoke by lease, revoke by creator token, rotate, and
// the refusals on the way.
func TestJourney(t *testing.T) {
	v := startVault(t, devMode)
	agent1, agent2 := setupJourney(t, v, "max_steps=5")

	// A session whose intent lies inside the role.
	start := v.startSession(agent1, "scopes=read,list:secrets/web/*", "audiences=secrets-api,docs-api", "ttl=10m")
	id := start.Data["session_id"].(string)
	assert.True(t, strings.HasPrefix(start.LeaseID, "agent/session/"), start.LeaseID)
	assert.Equal(t, 600, start.LeaseDuration)
	assert.True(t, start.Renewable)
	assert.Equal(t, []interface{}{"list,read:secrets/web/*"}, start.Data["scopes"])

	// An intent wider than the role is refused, naming what was wider.
	_, out, err := v.jsonAs(agent1, "write", "agent/session", "role=deployer", "purpose=x", "scopes=delete:secrets/web/tls")
	require.Error(t, err)
	assert.Contains(t, out, "Code: 400")
	assert.Contains(t, out, "scopes: delete:secrets/web/tls is wider than role")

	// A step credential, verified offline against the unauthenticated JWKS.
	cred := v.mustJSONAs(agent1, "read", "agent/creds/"+id, "scopes=read:secrets/web/tls", "audience=secrets-api", "description=fetch the cert")
	tok := cred.Data["token"].(string)
	keys := v.jwks()
	claims, err := token.Verify(tok, token.StaticKeys(keys...), token.VerifyOptions{Issuer: "vault:agent", Audience: "secrets-api"})
	require.NoError(t, err)
	assert.Equal(t, id, claims.Txn)
	assert.Equal(t, "read:secrets/web/tls", claims.Scope)
	// The agent's token has no entity: sub is a salted hash of its
	// accessor, never the accessor itself.
	assert.True(t, strings.HasPrefix(claims.Subject, "hmac-sha256:"), claims.Subject)
	out, err = v.cliAs(agent1, "token", "lookup", "-format=json")
	require.NoError(t, err, out)
	var lookup cliSecret
	require.NoError(t, json.Unmarshal([]byte(out), &lookup))
	require.NotEmpty(t, lookup.Data["accessor"])
	assert.NotContains(t, claims.Subject, lookup.Data["accessor"].(string))
	assert.Equal(t, "fetch the cert", claims.Rctx.Description)
	assert.Equal(t, "127.0.0.1", claims.Rctx.ReqIP)

	// Derive for a sub-agent: depth 2, act chain.
	child := v.mustJSONAs(agent1, "write", "agent/creds/"+id, "scopes=read:secrets/web/tls", "audience=docs-api",
		"parent_token="+tok, "actor=summariser")
	cc, err := token.Verify(child.Data["token"].(string), token.StaticKeys(keys...), token.VerifyOptions{Issuer: "vault:agent", Audience: "docs-api"})
	require.NoError(t, err)
	assert.Equal(t, 2, cc.Depth)
	assert.Equal(t, claims.ID, cc.Parent)
	assert.Equal(t, []string{"summariser"}, cc.Act.Chain())

	// ttl is clamped with a warning.
	long := v.mustJSONAs(agent1, "write", "agent/creds/"+id, "scopes=list:secrets/web/a", "audience=secrets-api", "ttl=2h")
	require.NotEmpty(t, long.Warnings)
	assert.Contains(t, long.Warnings[0], "clamped")

	in := v.introspect(tok)
	assert.Equal(t, true, in["active"])
	assert.Equal(t, "active", in["session_state"])

	// Renewal works while the session lives.
	v.mustCLI("lease", "renew", start.LeaseID)

	// The agent ends its session: every credential is revoked at once.
	v.mustCLI2(agent1, "write", "-f", "agent/sessions/"+id+"/end")
	assert.Equal(t, false, v.introspect(tok)["active"])
	assert.Equal(t, false, v.introspect(child.Data["token"].(string))["active"])
	_, revoked := v.revocations()
	assert.Contains(t, revoked, id)
	st := v.sessionState(id)
	assert.Equal(t, "ended", st["state"])
	assert.EqualValues(t, 3, st["steps_used"])

	// Renewing an ended session's lease fails clearly.
	out, err = v.cli("lease", "renew", start.LeaseID)
	require.Error(t, err, out)
	assert.Contains(t, out, "is ended and cannot be renewed")

	// Another caller cannot use someone else's session, nor harm it.
	s2 := v.startSession(agent1)
	id2 := s2.Data["session_id"].(string)
	_, out, err = v.jsonAs(agent2, "read", "agent/creds/"+id2, "scopes=read:secrets/web/tls", "audience=secrets-api")
	require.Error(t, err)
	assert.Contains(t, out, "Code: 403")
	assert.Contains(t, out, "belongs to another caller")
	assert.Equal(t, "active", v.sessionState(id2)["state"])

	// A scope outside the intent: refused, recorded, session revoked.
	s3 := v.startSession(agent1, "scopes=read:secrets/web/tls")
	id3 := s3.Data["session_id"].(string)
	early := v.mustJSONAs(agent1, "read", "agent/creds/"+id3, "scopes=read:secrets/web/tls", "audience=secrets-api").Data["token"].(string)
	_, out, err = v.jsonAs(agent1, "read", "agent/creds/"+id3, "scopes=list:secrets/web/tls", "audience=secrets-api")
	require.Error(t, err)
	assert.Contains(t, out, "violation scope_outside_intent")
	st = v.sessionState(id3)
	assert.Equal(t, "revoked", st["state"])
	assert.Equal(t, "violation: scope_outside_intent", st["revoked_reason"])
	assert.Equal(t, false, v.introspect(early)["active"])

	// The budget: max_steps=5 on the role, so the sixth credential is refused.
	s4 := v.startSession(agent1)
	id4 := s4.Data["session_id"].(string)
	for i := 0; i < 5; i++ {
		v.mustJSONAs(agent1, "read", "agent/creds/"+id4, "scopes=read:secrets/web/x", "audience=secrets-api")
	}
	_, out, err = v.jsonAs(agent1, "read", "agent/creds/"+id4, "scopes=read:secrets/web/x", "audience=secrets-api")
	require.Error(t, err)
	assert.Contains(t, out, "violation budget_exhausted")

	// Revoking the lease revokes the session.
	s5 := v.startSession(agent1)
	id5 := s5.Data["session_id"].(string)
	t5 := v.mustJSONAs(agent1, "read", "agent/creds/"+id5, "scopes=read:secrets/web/x", "audience=secrets-api").Data["token"].(string)
	v.mustCLI("lease", "revoke", s5.LeaseID)
	st = v.sessionState(id5)
	assert.Equal(t, "revoked", st["state"])
	assert.Equal(t, "lease revoked", st["revoked_reason"])
	assert.Equal(t, false, v.introspect(t5)["active"])

	// So does revoke-prefix.
	s6 := v.startSession(agent1)
	id6 := s6.Data["session_id"].(string)
	v.mustCLI("lease", "revoke", "-prefix", "agent/session")
	assert.Equal(t, "revoked", v.sessionState(id6)["state"])

	// Revoking the creator's token revokes its sessions.
	agent3 := v.newToken("agent")
	s7 := v.startSession(agent3)
	id7 := s7.Data["session_id"].(string)
	t7 := v.mustJSONAs(agent3, "read", "agent/creds/"+id7, "scopes=read:secrets/web/x", "audience=secrets-api").Data["token"].(string)
	v.mustCLI("token", "revoke", agent3)
	waitFor(t, "the creator's token revocation to revoke the session", func() bool {
		return v.sessionState(id7)["state"] == "revoked"
	})
	assert.Equal(t, false, v.introspect(t7)["active"])

	// An operator revokes a session with a reason.
	s8 := v.startSession(agent1)
	id8 := s8.Data["session_id"].(string)
	v.mustCLI("write", "agent/sessions/"+id8+"/revoke", "reason=incident 42")
	assert.Equal(t, "operator: incident 42", v.sessionState(id8)["revoked_reason"])

	// Rotation: the old key stays in jwks, its tokens stay valid.
	s9 := v.startSession(agent1)
	id9 := s9.Data["session_id"].(string)
	before := v.mustJSONAs(agent1, "read", "agent/creds/"+id9, "scopes=read:secrets/web/x", "audience=secrets-api").Data["token"].(string)
	rot := v.mustJSONAs(v.token, "write", "-f", "agent/keys/rotate")
	assert.NotEmpty(t, rot.Data["kid"])
	assert.Len(t, v.jwks(), 2)
	after := v.mustJSONAs(agent1, "read", "agent/creds/"+id9, "scopes=read:secrets/web/x", "audience=secrets-api").Data["token"].(string)
	kid, err := token.PeekKeyID(after)
	require.NoError(t, err)
	assert.Equal(t, rot.Data["kid"], kid)
	assert.Equal(t, true, v.introspect(before)["active"])
	assert.Equal(t, true, v.introspect(after)["active"])

	// The session list, whole and filtered by state (query parameters of
	// the LIST request).
	out = v.mustCLI("list", "-format=json", "agent/sessions")
	assert.Contains(t, out, id9)
	assert.Contains(t, out, id)
	active := v.listWithQuery("agent/sessions", "state", "active")
	assert.Equal(t, []string{id9}, active)
	ended := v.listWithQuery("agent/sessions", "state", "ended")
	assert.Equal(t, []string{id}, ended)

	// Secrets hygiene: after the whole journey, neither Vault's log nor the
	// plugin's (which Vault's includes, at debug level) holds a token, a
	// credential or key material.
	assertNoSecretsInLogs(t, v, agent1, agent2, agent3, tok, child.Data["token"].(string), t5, t7, before, after, early)
}

// assertNoSecretsInLogs fails if any secret, any JWS-looking string, or a
// private JWK member appears in the Vault and plugin logs.
func assertNoSecretsInLogs(t *testing.T, v *vaultServer, secrets ...string) {
	t.Helper()
	logs := v.logs()
	require.NotEmpty(t, logs)
	require.Contains(t, logs, "vault-plugin-secrets-agent", "the plugin's log lines are in Vault's log")
	for _, s := range secrets {
		require.NotEmpty(t, s)
		assert.NotContains(t, logs, s, "a secret appears in the logs")
		// A credential's signature alone would leak it too.
		if i := strings.LastIndexByte(s, '.'); i > 0 {
			assert.NotContains(t, logs, s[i+1:], "a credential's signature appears in the logs")
		}
	}
	assert.NotContains(t, logs, "eyJ", "something JWS-looking appears in the logs")
	assert.NotContains(t, logs, `"d":"`, "private key material appears in the logs")
}

func (v *vaultServer) listWithQuery(path string, kv ...string) []string {
	v.t.Helper()
	r := v.client.NewRequest("LIST", "/v1/"+path)
	for i := 0; i+1 < len(kv); i += 2 {
		r.Params.Set(kv[i], kv[i+1])
	}
	resp, err := v.client.RawRequest(r)
	require.NoError(v.t, err)
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Keys []string `json:"keys"`
		} `json:"data"`
	}
	require.NoError(v.t, resp.DecodeJSON(&out))
	return out.Data.Keys
}

func (v *vaultServer) mustCLI2(tok string, args ...string) string {
	v.t.Helper()
	out, err := v.cliAs(tok, args...)
	require.NoError(v.t, err, "vault %s:\n%s", strings.Join(args, " "), out)
	return out
}
