package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/continuoustrust/vault-plugin-secrets-agent/dpop"
	"github.com/continuoustrust/vault-plugin-secrets-agent/scope"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mcpFixture is a fake engine that issues numbered credentials, and a
// fake MCP server that records what it received.
type mcpFixture struct {
	mu      sync.Mutex
	creds   []map[string]interface{} // creds request bodies
	seen    []string                 // "METHOD body -> token" at the MCP server
	refuse  string                   // a scope the engine refuses as a violation
	session *Session
	mcpURL  string
}

func newMCPFixture(t *testing.T) *mcpFixture {
	f := &mcpFixture{}
	vault := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/v1/agent/session" {
			rep := sessionReply()
			rep["data"].(map[string]interface{})["scopes"] = []string{"call:tools/search", "call:tools/read_doc", "read:secrets/*"}
			_ = json.NewEncoder(w).Encode(rep)
			return
		}
		var body map[string]interface{}
		_ = json.NewDecoder(r.Body).Decode(&body)
		if r.Method == http.MethodGet {
			body = queryData(r.URL.Query())
		}
		if s, ok := body["scopes"].(string); ok {
			// As the engine reads a comma-separated value.
			var l []interface{}
			for _, sc := range scope.Rejoin(strings.Split(s, ",")) {
				l = append(l, sc)
			}
			body["scopes"] = l
		}
		f.mu.Lock()
		f.creds = append(f.creds, body)
		n := len(f.creds)
		refuse := f.refuse
		f.mu.Unlock()
		if refuse != "" && fmt.Sprint(body["scopes"]) == "["+refuse+"]" {
			w.WriteHeader(http.StatusForbidden)
			_ = json.NewEncoder(w).Encode(map[string]interface{}{
				"errors": []string{"violation scope_outside_intent: the session is revoked"},
				"data":   map[string]interface{}{"reason": "violation", "violation": "scope_outside_intent", "session_state": "revoked"},
			})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]interface{}{"data": map[string]interface{}{
			"token": fmt.Sprintf("tok-%d", n), "credential_id": fmt.Sprintf("c%d", n), "format": body["format"],
			"expires_at": time.Now().Add(time.Minute).UTC().Format(time.RFC3339), "scopes": body["scopes"],
			"audience": body["audience"], "depth": 1,
		}})
	}))
	t.Cleanup(vault.Close)
	mcp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.seen = append(f.seen, r.Method+" "+string(b)+" -> "+r.Header.Get("Authorization"))
		f.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(mcp.Close)
	f.mcpURL = mcp.URL + "/mcp"

	cfg := api.DefaultConfig()
	cfg.Address = vault.URL
	vc, err := api.NewClient(cfg)
	require.NoError(t, err)
	vc.SetToken(testToken)
	f.session, err = New(vc, "agent").Start(context.Background(), Intent{Role: "mcp"})
	require.NoError(t, err)
	return f
}

func (f *mcpFixture) post(t *testing.T, c *http.Client, body string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPost, f.mcpURL, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	return resp, err
}

func TestMCPTransportCredentialPerCall(t *testing.T) {
	f := newMCPFixture(t)
	tr := &MCPTransport{Session: f.session, Resource: f.mcpURL}
	c := &http.Client{Transport: tr}

	// Session-level requests share one credential with the session's MCP scopes.
	initBody := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`
	_, err := f.post(t, c, initBody)
	require.NoError(t, err)
	_, err = f.post(t, c, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	require.NoError(t, err)
	_, err = f.post(t, c, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	require.NoError(t, err)
	// Each tool call gets its own credential, with that tool only.
	callBody := `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"search","arguments":{"q":"plan"}}}`
	_, err = f.post(t, c, callBody)
	require.NoError(t, err)
	_, err = f.post(t, c, `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"read_doc"}}`)
	require.NoError(t, err)

	f.mu.Lock()
	defer f.mu.Unlock()
	require.Len(t, f.creds, 3, "one shared credential and one per call")
	for _, b := range f.creds {
		assert.Equal(t, "access_token", b["format"])
		assert.Equal(t, f.mcpURL, b["audience"])
		assert.Equal(t, "60", b["ttl"], "as a query parameter")
	}
	assert.Equal(t, []interface{}{"call:tools/search", "call:tools/read_doc"}, f.creds[0]["scopes"])
	assert.Equal(t, "mcp session", f.creds[0]["description"])
	assert.Equal(t, []interface{}{"call:tools/search"}, f.creds[1]["scopes"])
	assert.Equal(t, "mcp tools/call search", f.creds[1]["description"])
	assert.Equal(t, []interface{}{"call:tools/read_doc"}, f.creds[2]["scopes"])

	// The server got each body unchanged, with the right credential.
	assert.Equal(t, []string{
		"POST " + initBody + " -> Bearer tok-1",
		`POST {"jsonrpc":"2.0","method":"notifications/initialized"} -> Bearer tok-1`,
		`POST {"jsonrpc":"2.0","id":2,"method":"tools/list"} -> Bearer tok-1`,
		"POST " + callBody + " -> Bearer tok-2",
		`POST {"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"read_doc"}} -> Bearer tok-3`,
	}, f.seen)
}

func TestMCPTransportRefusedCallSendsNothing(t *testing.T) {
	f := newMCPFixture(t)
	f.refuse = "call:tools/delete_doc"
	c := &http.Client{Transport: &MCPTransport{Session: f.session, Resource: f.mcpURL}}
	_, err := f.post(t, c, `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"delete_doc"}}`)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrViolation)
	assert.Contains(t, err.Error(), "tools/call delete_doc")
	f.mu.Lock()
	defer f.mu.Unlock()
	assert.Empty(t, f.seen, "a refused call never reaches the server")

	// A name no scope can name is refused before asking the engine.
	_, err = f.post(t, c, `{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"../x"}}`)
	require.Error(t, err)
}

func TestMCPTransportNeedsSessionScopesUnderThePrefixes(t *testing.T) {
	f := newMCPFixture(t)
	f.session.Scopes = []string{"read:secrets/*"}
	c := &http.Client{Transport: &MCPTransport{Session: f.session, Resource: f.mcpURL}}
	_, err := f.post(t, c, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`)
	require.ErrorContains(t, err, "set SessionScopes")

	c = &http.Client{Transport: &MCPTransport{Session: f.session, Resource: f.mcpURL, SessionScopes: []string{"list:tools"}}}
	_, err = f.post(t, c, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`)
	require.NoError(t, err)
	f.mu.Lock()
	defer f.mu.Unlock()
	assert.Equal(t, []interface{}{"list:tools"}, f.creds[len(f.creds)-1]["scopes"])
}

// Credentials go to the resource and nowhere else: not to another URL, not
// after a redirect to another host.
func TestMCPTransportSendsCredentialsOnlyToTheResource(t *testing.T) {
	f := newMCPFixture(t)
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a request reached another server, with %q", r.Header.Get("Authorization"))
	}))
	defer elsewhere.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/mcp", http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	c := &http.Client{Transport: &MCPTransport{Session: f.session, Resource: redirect.URL + "/mcp"}}
	_, err := f.post(t, c, `{"jsonrpc":"2.0","id":1,"method":"ping"}`) // f.post goes to f.mcpURL
	require.ErrorContains(t, err, "sends credentials for "+redirect.URL+"/mcp only")
	req, _ := http.NewRequest(http.MethodPost, redirect.URL+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	_, err = c.Do(req)
	require.ErrorContains(t, err, "not to "+elsewhere.URL+"/mcp")
}

// With a session DPoP key, every credential is bound to it and every
// request carries a fresh proof by it.
func TestMCPTransportWithDPoP(t *testing.T) {
	f := newMCPFixture(t)
	key, err := dpop.GenerateKey("ES256")
	require.NoError(t, err)
	f.session.DPoPKey = key
	var proofs []string
	seen := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proofs = append(proofs, r.Header.Get("DPoP"))
		assert.True(t, strings.HasPrefix(r.Header.Get("Authorization"), "DPoP tok-"), r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusAccepted)
	})
	srv := httptest.NewServer(seen)
	defer srv.Close()
	c := &http.Client{Transport: &MCPTransport{Session: f.session, Resource: srv.URL + "/mcp"}}
	for _, body := range []string{`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"search"}}`} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/mcp?session=1", strings.NewReader(body))
		resp, err := c.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
	}
	require.Len(t, proofs, 2)
	for i, p := range proofs {
		pr, err := dpop.Verify(p, dpop.Options{Method: "POST", URL: srv.URL + "/mcp", AccessToken: fmt.Sprintf("tok-%d", i+1), JKT: key.Thumbprint()})
		require.NoError(t, err, "proof %d", i)
		assert.Equal(t, key.Thumbprint(), pr.JKT)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.creds {
		assert.Equal(t, key.Thumbprint(), b["cnf_jkt"], "every credential is bound to the session's key")
	}
}
