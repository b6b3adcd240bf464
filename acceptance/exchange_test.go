//go:build acceptance

package acceptance

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/dpop"
	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

// prepareExchange mounts the engine as make dev does (the DPoP header
// passed through), with its issuer at its URL, a doc-editor role and an
// agent token, and starts the docserver example. It returns the agent
// token and the docserver's address.
func prepareExchange(t *testing.T, v *vaultServer) (agent, docs string) {
	t.Helper()
	v.registerAndMount("agent")
	v.mustCLI("secrets", "tune", "-passthrough-request-headers=DPoP", "agent/")
	v.mustCLI("write", "agent/config", "issuer="+v.addr+"/v1/agent")
	v.mustCLI("write", "agent/roles/doc-editor", "scopes=read:docs/*,write:docs/summaries-*",
		"audiences=docs-api,"+v.addr+"/v1/agent", "max_steps=20", "on_violation=revoke")
	require.NoError(t, writeFile(v.dir+"/agent.hcl", agentPolicy))
	v.mustCLI("policy", "write", "agent", v.dir+"/agent.hcl")
	require.NoError(t, writeFile(v.dir+"/rs.hcl", `path "agent/report" { capabilities = ["update"] }`))
	v.mustCLI("policy", "write", "resource-server", v.dir+"/rs.hcl")

	bin := buildExample(t, "docserver")
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin, "-listen", listen, "-vault-addr", v.addr, "-issuer", v.addr+"/v1/agent", "-poll", "1s")
	cmd.Env = append(os.Environ(), "VAULT_TOKEN="+v.newToken("resource-server"))
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitFor(t, "the docserver to listen", func() bool { return strings.Contains(logs.String(), "serving on") })
	return v.newToken("agent"), "http://" + listen
}

// exchangeHTTP posts an RFC 8693 form to agent/token with no Vault token.
func exchangeHTTP(t *testing.T, v *vaultServer, proof string, form url.Values) (int, map[string]interface{}) {
	t.Helper()
	form.Set("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange")
	if form.Get("subject_token_type") == "" {
		form.Set("subject_token_type", "urn:ietf:params:oauth:token-type:jwt")
	}
	req, _ := http.NewRequest(http.MethodPost, v.addr+"/v1/agent/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]interface{}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode, body
}

// TestSubAgentExchangesWithoutAVaultToken: the subagent example, a process
// with no Vault token, exchanges its parent's credential for a narrower
// child bound to its own key and uses it at the docserver; a wider
// exchange is a violation that revokes the session.
func TestSubAgentExchangesWithoutAVaultToken(t *testing.T) {
	sub := buildExample(t, "subagent")
	v := startVault(t, devMode)
	agent, docs := prepareExchange(t, v)
	id := v.mustJSONAs(agent, "write", "agent/session", "role=doc-editor", "purpose=summarise",
		"scopes=read:docs/*,write:docs/summaries-*").Data["session_id"].(string)
	// A delegation credential: for the engine itself.
	parent := v.mustJSONAs(agent, "read", "agent/creds/"+id, "scopes=write:docs/summaries-*",
		"audience="+v.addr+"/v1/agent").Data["token"].(string)
	// A credential for the docserver is not a grant: whoever it was handed
	// to cannot exchange it.
	forRS := v.mustJSONAs(agent, "read", "agent/creds/"+id, "scopes=read:docs/*", "audience=docs-api").Data["token"].(string)
	code, body := exchangeHTTP(t, v, "", url.Values{"subject_token": {forRS}, "scope": {"write:docs/*"}})
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Equal(t, "invalid_grant", body["error"])
	assert.Equal(t, "active", v.sessionState(id)["state"], "an exchange by a resource server harms nothing")

	cmd := exec.Command(sub, "-docs", docs, "-token-endpoint", v.addr+"/v1/agent/token")
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "VAULT_TOKEN=") {
			env = append(env, e)
		}
	}
	cmd.Env = append(env, "PARENT_TOKEN="+parent)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "wrote the summary with a DPoP proof: docserver answered 200")
	assert.Contains(t, string(out), "the same credential without a proof: docserver answered 401")

	// The exchange is a step of the session, derived from the parent.
	events := v.mustJSONAs(v.token, "read", "agent/sessions/"+id+"/events").Data["events"].([]interface{})
	last := events[len(events)-1].(map[string]interface{})
	for len(events) > 0 && last["kind"] != "credential_issued" {
		events = events[:len(events)-1]
		last = events[len(events)-1].(map[string]interface{})
	}
	assert.Equal(t, "token exchange", last["detail"])
	assert.Equal(t, "summariser", last["actor"])
	assert.EqualValues(t, 2, last["depth"])

	// Wider than the parent: invalid_scope, and the session is revoked.
	code, body = exchangeHTTP(t, v, "", url.Values{"subject_token": {parent}, "scope": {"read:docs/*"}})
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Equal(t, "invalid_scope", body["error"])
	assert.Contains(t, body["error_description"], "violation scope_outside_intent")
	assert.Equal(t, "revoked", v.sessionState(id)["state"])
	// And the revoked session's credential gets invalid_grant.
	code, body = exchangeHTTP(t, v, "", url.Values{"subject_token": {parent}})
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Equal(t, "invalid_grant", body["error"])
}

// TestBoundCredentialsNeedTheirProof: a credential bound to a key through
// a DPoP header on creds (passed through by the mount) is refused without
// a valid proof by that key, at the token endpoint and at a resource
// server: no proof, a replayed one, one for another URL, another key's;
// and accepted with a fresh one.
func TestBoundCredentialsNeedTheirProof(t *testing.T) {
	v := startVault(t, devMode)
	agent, docs := prepareExchange(t, v)
	id := v.mustJSONAs(agent, "write", "agent/session", "role=doc-editor", "purpose=summarise").Data["session_id"].(string)
	key, err := dpop.GenerateKey("ES256")
	require.NoError(t, err)
	other, err := dpop.GenerateKey("EdDSA")
	require.NoError(t, err)
	proof := func(k *dpop.Key, method, u, tok string) string {
		p, err := k.Proof(method, u, tok, time.Time{})
		require.NoError(t, err)
		return p
	}

	// creds with a DPoP header: bound to the proof's key.
	credsURL := v.addr + "/v1/agent/creds/" + id
	req, _ := http.NewRequest(http.MethodPut, credsURL, strings.NewReader(`{"scopes":"read:docs/*","audience":"docs-api"}`))
	req.Header.Set("X-Vault-Token", agent)
	req.Header.Set("DPoP", proof(key, http.MethodPut, credsURL, ""))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var secret struct {
		Data struct {
			Token string `json:"token"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&secret))
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	bound := secret.Data.Token
	c, err := token.Verify(bound, token.StaticKeys(v.jwks()...), token.VerifyOptions{Issuer: v.addr + "/v1/agent", Audience: "docs-api"})
	require.NoError(t, err)
	require.NotNil(t, c.Cnf)
	assert.Equal(t, key.Thumbprint(), c.Cnf.JKT)
	assert.Equal(t, map[string]interface{}{"jkt": key.Thumbprint()}, v.introspect(bound)["cnf"], "introspection reports the binding")

	// At the token endpoint.
	tokenURL := v.addr + "/v1/agent/token"
	form := func() url.Values { return url.Values{"subject_token": {bound}, "scope": {"read:docs/q3-plan"}} }
	replayed := proof(key, http.MethodPost, tokenURL, bound)
	for name, p := range map[string]string{
		"no proof":                  "",
		"a proof for creds":         proof(key, http.MethodPost, credsURL, bound),
		"another key's proof":       proof(other, http.MethodPost, tokenURL, bound),
		"a proof for no credential": proof(key, http.MethodPost, tokenURL, ""),
	} {
		code, body := exchangeHTTP(t, v, p, form())
		assert.Equal(t, http.StatusBadRequest, code, name)
		assert.Equal(t, "invalid_dpop_proof", body["error"], name)
	}
	code, body := exchangeHTTP(t, v, replayed, form())
	require.Equal(t, http.StatusOK, code, "%v", body)
	assert.Equal(t, "DPoP", body["token_type"])
	code, body = exchangeHTTP(t, v, replayed, form())
	assert.Equal(t, "invalid_dpop_proof", body["error"], "a replayed proof")
	child := func() string {
		_, body := exchangeHTTP(t, v, proof(key, http.MethodPost, tokenURL, bound), form())
		return body["access_token"].(string)
	}()

	// At the resource server.
	docURL := docs + "/docs/q3-plan"
	get := func(scheme, tok, p string) int {
		req, _ := http.NewRequest(http.MethodGet, docURL, nil)
		req.Header.Set("Authorization", scheme+" "+tok)
		if p != "" {
			req.Header.Set("DPoP", p)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, bufio.NewReader(resp.Body))
		resp.Body.Close()
		return resp.StatusCode
	}
	fresh := proof(key, http.MethodGet, docURL, child)
	for name, code := range map[string]int{
		"as a bearer token":       get("Bearer", child, ""),
		"no proof":                get("DPoP", child, ""),
		"a proof for another URL": get("DPoP", child, proof(key, http.MethodGet, docs+"/docs/other", child)),
		"another key's proof":     get("DPoP", child, proof(other, http.MethodGet, docURL, child)),
	} {
		assert.Equal(t, http.StatusUnauthorized, code, name)
	}
	assert.Equal(t, http.StatusOK, get("DPoP", child, fresh), "a fresh proof by the key")
	assert.Equal(t, http.StatusUnauthorized, get("DPoP", child, fresh), "the same proof again")
	assert.Equal(t, http.StatusOK, get("DPoP", bound, proof(key, http.MethodGet, docURL, bound)), "the parent too")
}
