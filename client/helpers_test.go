package client

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"
)

const (
	testToken   = "agent-token"
	testSession = "sess-1"
	testLease   = "agent/session/lease-1"
)

// request is one request the fake Vault received.
type request struct {
	Method string
	Path   string
	Token  string
	Body   map[string]interface{}
	Query  url.Values
}

// reply is a canned answer: a status and a JSON body (nil for none).
type reply struct {
	Status int
	Body   interface{}
}

// fakeVault answers Vault HTTP API paths with canned replies and records
// every request.
type fakeVault struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	replies  map[string]reply // "METHOD /v1/path"
	requests []request
	hooks    map[string]func(request)
}

func newFakeVault(t testing.TB) *fakeVault {
	t.Helper()
	f := &fakeVault{t: t, replies: map[string]reply{}, hooks: map[string]func(request){}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeVault) serve(w http.ResponseWriter, r *http.Request) {
	req := request{Method: r.Method, Path: r.URL.Path, Token: r.Header.Get("X-Vault-Token"), Query: r.URL.Query()}
	if r.Body != nil {
		dec := json.NewDecoder(r.Body)
		dec.UseNumber()
		_ = dec.Decode(&req.Body) // empty bodies stay nil
	}
	if q := r.URL.Query(); r.Method == http.MethodGet && len(q) > 0 {
		req.Body = queryData(q)
	}
	key := r.Method + " " + r.URL.Path
	f.mu.Lock()
	f.requests = append(f.requests, req)
	rep, ok := f.replies[key]
	hook := f.hooks[key]
	f.mu.Unlock()
	if hook != nil {
		hook(req)
	}
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"errors":[]}`))
		return
	}
	if rep.Body == nil {
		w.WriteHeader(rep.Status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.Status)
	_ = json.NewEncoder(w).Encode(rep.Body)
}

// queryData is a GET's query parameters as Vault hands them to a plugin
// (http.parseQuery): one value is a string, more are a list.
func queryData(q url.Values) map[string]interface{} {
	data := make(map[string]interface{}, len(q))
	for k, v := range q {
		switch len(v) {
		case 0:
		case 1:
			data[k] = v[0]
		default:
			l := make([]interface{}, len(v))
			for i, x := range v {
				l[i] = x
			}
			data[k] = l
		}
	}
	return data
}

// on sets the reply to method path (path without /v1/).
func (f *fakeVault) on(method, path string, status int, body interface{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replies[method+" /v1/"+path] = reply{Status: status, Body: body}
}

// hook runs fn (outside the fake's lock) for each request to method path.
func (f *fakeVault) hook(method, path string, fn func(request)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hooks[method+" /v1/"+path] = fn
}

// onError answers method path with status and Vault's error body.
func (f *fakeVault) onError(method, path string, status int, msgs ...string) {
	f.on(method, path, status, map[string]interface{}{"errors": msgs})
}

// received returns the requests to method path (path without /v1/).
func (f *fakeVault) received(method, path string) []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []request
	for _, r := range f.requests {
		if r.Method == method && r.Path == "/v1/"+path {
			out = append(out, r)
		}
	}
	return out
}

// vaultClient returns a Vault API client for the fake with the default
// configuration (retries included) and the agent's token.
func (f *fakeVault) vaultClient() *api.Client {
	f.t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = f.srv.URL
	vc, err := api.NewClient(cfg)
	require.NoError(f.t, err)
	vc.SetToken(testToken)
	return vc
}

// sessionReply is the engine's answer to a session start.
func sessionReply() map[string]interface{} {
	return map[string]interface{}{
		"lease_id":       testLease,
		"renewable":      true,
		"lease_duration": 3600,
		"data": map[string]interface{}{
			"session_id": testSession,
			"role":       "deployer",
			"expires_at": "2026-11-26T01:38:06Z",
			"scopes":     []string{"read,list:secrets/web/*"},
			"audiences":  []string{"secrets-api"},
			"max_steps":  20,
			"max_depth":  2,
			"max_rate":   0,
			"purpose":    "rotate the web TLS certificate",
		},
	}
}

// credReply is the engine's answer to a step credential request.
func credReply(tok string, depth int) map[string]interface{} {
	return map[string]interface{}{
		"warnings": []string{"ttl of 1h0m0s clamped to the role's step_max_ttl of 5m0s"},
		"data": map[string]interface{}{
			"token":         tok,
			"credential_id": "cred-" + tok,
			"session_id":    testSession,
			"expires_at":    "2026-11-26T00:43:06Z",
			"scopes":        []string{"read:secrets/web/tls"},
			"audience":      "secrets-api",
			"depth":         depth,
			"steps_used":    1,
			"steps_left":    19,
		},
	}
}
