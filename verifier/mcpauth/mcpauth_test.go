package mcpauth

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

	"github.com/golang-jwt/jwt/v5"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/continuoustrust/vault-plugin-secrets-agent/dpop"
	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
	"github.com/continuoustrust/vault-plugin-secrets-agent/verifier"
)

const issuer = "http://vault.test/v1/agent"

// engine is a fake agent secrets engine: JWKS, revocations, reports.
type engine struct {
	t   *testing.T
	key *token.Key
	srv *httptest.Server

	mu      sync.Mutex
	closed  []string
	version uint64
	reports []map[string]string
}

func newEngine(t *testing.T) *engine {
	k, err := token.GenerateKey(token.AlgEdDSA)
	if err != nil {
		t.Fatal(err)
	}
	e := &engine{t: t, key: k}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/agent/jwks", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(token.JWKS(k.Public()))
	})
	mux.HandleFunc("/v1/agent/revocations", func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		sessions := []map[string]any{}
		for _, id := range e.closed {
			sessions = append(sessions, map[string]any{"id": id, "exp": time.Now().Add(time.Hour).Unix()})
		}
		data := map[string]any{"version": e.version, "sessions": sessions, "complete": true}
		e.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"data": data})
	})
	mux.HandleFunc("/v1/agent/report", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		_ = json.NewDecoder(r.Body).Decode(&body)
		body["vault_token"] = r.Header.Get("X-Vault-Token")
		e.mu.Lock()
		e.reports = append(e.reports, body)
		e.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"recorded": true}})
	})
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

// mint issues a credential of session sess with the given scope, in
// format f, for aud.
func (e *engine) mint(f token.Format, aud, sess, scope string) string {
	now := time.Now().Unix()
	c := &token.Claims{
		Format: f, Issuer: issuer, Subject: "entity-1", Audience: aud, IssuedAt: now, NotBefore: now,
		Expiry: now + 60, ID: fmt.Sprintf("cred-%d", time.Now().UnixNano()), Txn: sess, Scope: scope, Depth: 1,
	}
	if f == token.FormatAccessToken {
		c.ClientID = c.Subject
	}
	raw, err := token.Mint(e.key, c)
	if err != nil {
		e.t.Fatal(err)
	}
	return raw
}

func (e *engine) close(sess string) {
	e.mu.Lock()
	e.closed = append(e.closed, sess)
	e.version++
	e.mu.Unlock()
}

func (e *engine) reported() []map[string]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]map[string]string(nil), e.reports...)
}

// toolServer is an MCP server with three tools behind a Guard.
type toolServer struct {
	url      string // the MCP endpoint
	resource string
	guard    *Guard
}

func newToolServer(t *testing.T, e *engine, report bool) *toolServer {
	return newToolServerWith(t, e, report, true)
}

// ran records the tools that ran.
var (
	ranMu sync.Mutex
	ran   []string
)

func newToolServerWith(t *testing.T, e *engine, report, middleware bool) *toolServer {
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	ts := &toolServer{url: srv.URL + "/mcp", resource: srv.URL + "/mcp"}
	g, err := New(context.Background(), Config{
		Resource: ts.resource,
		Verifier: verifier.Config{
			VaultAddr: e.srv.URL, Issuer: issuer, VaultToken: "reporter-token",
			RevocationWait: -1, RevocationPoll: 50 * time.Millisecond,
		},
		ResourceName: "docs tools",
		Report:       report,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	ts.guard = g
	server := mcp.NewServer(&mcp.Implementation{Name: "docs", Version: "v0.0.1"}, nil)
	for _, name := range []string{"search", "read_doc", "delete_doc"} {
		server.AddTool(&mcp.Tool{Name: name, InputSchema: json.RawMessage(`{"type":"object"}`)},
			func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				ranMu.Lock()
				ran = append(ran, name)
				ranMu.Unlock()
				who := Claims(req.Extra.TokenInfo)
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name + " done for " + who.Txn}}}, nil
			})
	}
	if middleware {
		server.AddReceivingMiddleware(g.Middleware)
	}
	g.Register(mux, mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil))
	return ts
}

// The HTTP-layer check reads what the SDK reads: bodies that encoding/json
// and the SDK would read differently are refused, even with no Middleware
// installed, and no tool runs.
func TestProtectReadsWhatTheSDKReads(t *testing.T) {
	e := newEngine(t)
	ts := newToolServerWith(t, e, false, false)
	tok := e.mint(token.FormatAccessToken, ts.resource, "sess-1", "call:tools/search")
	ranMu.Lock()
	ran = nil
	ranMu.Unlock()
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_doc","Name":"search","arguments":{}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","METHOD":"ping","params":{"name":"delete_doc","arguments":{}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_doc"},"Params":{"name":"search"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","paramſ":{"name":"search"},"params":{"name":"delete_doc"}}`,
	} {
		r := post(t, ts.url, tok, body)
		if r.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", body, r.StatusCode)
		}
	}
	// A subscription to a resource outside the scope is refused too.
	r := post(t, ts.url, tok, `{"jsonrpc":"2.0","id":2,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["docs://secret/plan"]}}}`)
	if r.StatusCode != http.StatusForbidden || !strings.Contains(r.Header.Get("WWW-Authenticate"), `scope="read:resources/docs/secret/plan"`) {
		t.Errorf("subscriptions/listen outside the scope: %d %q", r.StatusCode, r.Header.Get("WWW-Authenticate"))
	}
	// And a method the mapping does not know.
	r = post(t, ts.url, tok, `{"jsonrpc":"2.0","id":3,"method":"tools/execute","params":{"name":"delete_doc"}}`)
	if r.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown method: %d", r.StatusCode)
	}
	ranMu.Lock()
	defer ranMu.Unlock()
	if len(ran) != 0 {
		t.Fatalf("tools ran: %v", ran)
	}
}

// A credential bound to a key needs a DPoP proof by it at the MCP server.
func TestBoundCredentialNeedsItsProof(t *testing.T) {
	e := newEngine(t)
	ts := newToolServer(t, e, false)
	key, err := dpop.GenerateKey("EdDSA")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	raw, err := token.Mint(e.key, &token.Claims{
		Format: token.FormatAccessToken, Issuer: issuer, Subject: "entity-1", ClientID: "entity-1", Audience: ts.resource,
		IssuedAt: now, NotBefore: now, Expiry: now + 60, ID: "bound-1", Txn: "sess-1", Scope: "call:tools/search", Depth: 1,
		Cnf: &token.Confirmation{JKT: key.Thumbprint()},
	})
	if err != nil {
		t.Fatal(err)
	}
	// As a bearer token: refused.
	r := post(t, ts.url, raw, `{"jsonrpc":"2.0","id":1,"method":"ping"}`)
	if r.StatusCode != 401 || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), `DPoP error="invalid_dpop_proof"`) {
		t.Fatalf("bound credential as bearer: %d %q", r.StatusCode, r.Header.Get("WWW-Authenticate"))
	}
	// With a proof per request: the SDK's client works through it.
	c := mcp.NewClient(&mcp.Implementation{Name: "dpop-agent", Version: "v0"}, nil)
	cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{
		Endpoint: ts.url, DisableStandaloneSSE: true, MaxRetries: -1,
		HTTPClient: &http.Client{Transport: dpopTransport{key: key, token: raw}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "search", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("search with a proof: %v %+v", err, res)
	}
}

type dpopTransport struct {
	key   *dpop.Key
	token string
}

func (d dpopTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	proof, err := d.key.Proof(r.Method, r.URL.String(), d.token, time.Time{})
	if err != nil {
		return nil, err
	}
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "DPoP "+d.token)
	r.Header.Set("DPoP", proof)
	return http.DefaultTransport.RoundTrip(r)
}

// bearerTransport sends every request with one fixed credential.
type bearerTransport struct{ token string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

func connect(t *testing.T, ts *toolServer, tok string) (*mcp.ClientSession, error) {
	c := mcp.NewClient(&mcp.Implementation{Name: "test-agent", Version: "v0.0.1"}, nil)
	return c.Connect(context.Background(), &mcp.StreamableClientTransport{
		Endpoint: ts.url, HTTPClient: &http.Client{Transport: bearerTransport{tok}}, DisableStandaloneSSE: true, MaxRetries: -1,
	}, nil)
}

func post(t *testing.T, url, tok, body string) *http.Response {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestListAndCallWithinScope(t *testing.T) {
	e := newEngine(t)
	ts := newToolServer(t, e, true)
	tok := e.mint(token.FormatAccessToken, ts.resource, "sess-1", "call:tools/search call:tools/read_doc")
	cs, err := connect(t, ts, tok)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()

	tools, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	if strings.Join(names, ",") != "read_doc,search" && strings.Join(names, ",") != "search,read_doc" {
		t.Fatalf("tools/list shows %v, want only search and read_doc", names)
	}
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "search", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("search: %v %+v", err, res)
	}
	if got := res.Content[0].(*mcp.TextContent).Text; got != "search done for sess-1" {
		t.Fatalf("search answered %q", got)
	}
	// Outside the scope: refused before the tool runs.
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "delete_doc", Arguments: map[string]any{}}); err == nil {
		t.Fatal("delete_doc was called with a credential for search and read_doc")
	}

	// The allowed call and the refused one are reported, with the time
	// they were seen and the reporter's Vault token.
	deadline := time.Now().Add(5 * time.Second)
	for len(e.reported()) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	reps := e.reported()
	if len(reps) != 2 {
		t.Fatalf("reports %v, want the search call and the refused delete_doc", reps)
	}
	for i, want := range []struct{ resource, outcome string }{{"tools/search", "allowed"}, {"tools/delete_doc", "denied"}} {
		r := reps[i]
		if r["action"] != "call" || r["resource"] != want.resource || r["outcome"] != want.outcome || r["token"] != tok ||
			r["observed_at"] == "" || r["vault_token"] != "reporter-token" {
			t.Errorf("report %d: %v", i, r)
		}
	}
}

func TestChallenges(t *testing.T) {
	e := newEngine(t)
	ts := newToolServer(t, e, false)
	meta := ts.guard.ResourceMetadataURL()
	if !strings.HasSuffix(meta, "/.well-known/oauth-protected-resource/mcp") {
		t.Fatalf("metadata URL %q", meta)
	}
	call := func(name string) string {
		return `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"` + name + `","arguments":{}}}`
	}

	// No credential: 401 naming the metadata, no error code.
	r := post(t, ts.url, "", call("search"))
	if r.StatusCode != 401 || r.Header.Get("WWW-Authenticate") != `Bearer resource_metadata="`+meta+`"` {
		t.Errorf("no credential: %d %q", r.StatusCode, r.Header.Get("WWW-Authenticate"))
	}
	for name, tok := range map[string]string{
		"a transaction token":    e.mint(token.FormatTxnToken, ts.resource, "sess-1", "call:tools/*"),
		"another audience":       e.mint(token.FormatAccessToken, "https://other.example/mcp", "sess-1", "call:tools/*"),
		"not a token":            "abc.def.ghi",
		"a closed session's one": e.mint(token.FormatAccessToken, ts.resource, "sess-closed", "call:tools/*"),
	} {
		if name == "a closed session's one" {
			e.close("sess-closed")
			if err := ts.guard.Verifier().PollRevocations(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		r := post(t, ts.url, tok, call("search"))
		h := r.Header.Get("WWW-Authenticate")
		if r.StatusCode != 401 || !strings.HasPrefix(h, `Bearer error="invalid_token", resource_metadata="`+meta+`", error_description="`) {
			t.Errorf("%s: %d %q", name, r.StatusCode, h)
		}
		if strings.Contains(h, tok) {
			t.Errorf("%s: the challenge quotes the token", name)
		}
	}

	// Outside the scope: 403 insufficient_scope naming what was needed.
	tok := e.mint(token.FormatAccessToken, ts.resource, "sess-1", "call:tools/search")
	r = post(t, ts.url, tok, call("delete_doc"))
	want := `Bearer error="insufficient_scope", scope="call:tools/delete_doc", resource_metadata="` + meta + `", error_description="the credential does not allow call on tools/delete_doc"`
	if r.StatusCode != 403 || r.Header.Get("WWW-Authenticate") != want {
		t.Errorf("outside the scope: %d %q", r.StatusCode, r.Header.Get("WWW-Authenticate"))
	}
	// In a batch too.
	r = post(t, ts.url, tok, "["+call("search")+","+call("delete_doc")+"]")
	if r.StatusCode != 403 {
		t.Errorf("batch with a call outside the scope: %d", r.StatusCode)
	}
	// A name no scope can name.
	r = post(t, ts.url, tok, call("../admin"))
	if r.StatusCode != 400 || !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_request"`) {
		t.Errorf("unmappable name: %d %q", r.StatusCode, r.Header.Get("WWW-Authenticate"))
	}
}

func TestMetadata(t *testing.T) {
	e := newEngine(t)
	ts := newToolServer(t, e, false)
	base := strings.TrimSuffix(ts.url, "/mcp")
	for _, path := range []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		err = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d %v", path, resp.StatusCode, err)
		}
		if m["resource"] != ts.resource || fmt.Sprint(m["authorization_servers"]) != "["+issuer+"]" ||
			fmt.Sprint(m["bearer_methods_supported"]) != "[header]" || m["resource_name"] != "docs tools" {
			t.Errorf("%s: %v", path, m)
		}
	}
}

func TestConfigRefusals(t *testing.T) {
	e := newEngine(t)
	for name, cfg := range map[string]Config{
		"no resource":        {Verifier: verifier.Config{VaultAddr: e.srv.URL, Issuer: issuer}},
		"relative resource":  {Resource: "/mcp", Verifier: verifier.Config{VaultAddr: e.srv.URL, Issuer: issuer}},
		"fragment":           {Resource: "https://h/mcp#x", Verifier: verifier.Config{VaultAddr: e.srv.URL, Issuer: issuer}},
		"report, no token":   {Resource: "https://h/mcp", Report: true, Verifier: verifier.Config{VaultAddr: e.srv.URL, Issuer: issuer}},
		"another audience":   {Resource: "https://h/mcp", Verifier: verifier.Config{VaultAddr: e.srv.URL, Issuer: issuer, Audience: "x"}},
		"bad mapping prefix": {Resource: "https://h/mcp", Verifier: verifier.Config{VaultAddr: e.srv.URL, Issuer: issuer}},
		"trailing slash":     {Resource: "https://h/mcp/", Verifier: verifier.Config{VaultAddr: e.srv.URL, Issuer: issuer}},
		"query":              {Resource: "https://h/mcp?x=1", Verifier: verifier.Config{VaultAddr: e.srv.URL, Issuer: issuer}},
	} {
		if name == "bad mapping prefix" {
			cfg.Mapping.Tools = "tools/"
		}
		if g, err := New(context.Background(), cfg); err == nil {
			g.Close()
			t.Errorf("%s: accepted", name)
		}
	}
	// The resource is canonicalised as the engine canonicalises audiences.
	g, err := New(context.Background(), Config{Resource: "HTTPS://Tools.Example.com:443/mcp", Verifier: verifier.Config{VaultAddr: e.srv.URL, Issuer: issuer}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if g.Resource() != "https://tools.example.com/mcp" || g.ResourceMetadataURL() != "https://tools.example.com/.well-known/oauth-protected-resource/mcp" {
		t.Fatalf("%q %q", g.Resource(), g.ResourceMetadataURL())
	}
}

// A JWT library that is not the one the engine mints with (golang-jwt, not
// go-jose) verifies an access token with nothing of ours but the JWKS key:
// the RFC 9068 header type, the audience and the issuer.
func TestAccessTokenVerifiesWithAnotherJWTLibrary(t *testing.T) {
	e := newEngine(t)
	resource := "https://tools.example.com/mcp"
	raw := e.mint(token.FormatAccessToken, resource, "sess-1", "call:tools/search")
	pub := e.key.Public().Key

	var claims jwt.MapClaims
	parsed, err := jwt.ParseWithClaims(raw, &claims, func(tk *jwt.Token) (any, error) {
		if tk.Header["typ"] != "at+jwt" {
			return nil, fmt.Errorf("typ %v", tk.Header["typ"])
		}
		return pub, nil
	}, jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithAudience(resource), jwt.WithIssuer(issuer),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err != nil || !parsed.Valid {
		t.Fatalf("golang-jwt refuses the access token: %v", err)
	}
	for _, name := range []string{"sub", "client_id", "jti", "scope", "txn", "iat", "exp"} {
		if _, ok := claims[name]; !ok {
			t.Errorf("claim %s missing", name)
		}
	}
	if claims["client_id"] != "entity-1" || claims["scope"] != "call:tools/search" {
		t.Errorf("claims %v", claims)
	}
	// And it refuses it for another audience.
	if _, err := jwt.Parse(raw, func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithAudience("https://other.example/mcp")); err == nil {
		t.Fatal("golang-jwt accepted another audience")
	}
}

// Reached without Protect (no credential on the request), the middleware
// lists nothing and calls nothing.
func TestMiddlewareFailsClosedWithoutCredential(t *testing.T) {
	e := newEngine(t)
	ts := newToolServer(t, e, false)
	server := mcp.NewServer(&mcp.Implementation{Name: "docs", Version: "v0.0.1"}, nil)
	server.AddTool(&mcp.Tool{Name: "search", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			t.Error("the tool ran without a credential")
			return &mcp.CallToolResult{}, nil
		})
	server.AddReceivingMiddleware(ts.guard.Middleware)
	st, ct := mcp.NewInMemoryTransports()
	ss, err := server.Connect(context.Background(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "v0"}, nil).Connect(context.Background(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	tools, err := cs.ListTools(context.Background(), nil)
	if err != nil || len(tools.Tools) != 0 {
		t.Fatalf("tools/list without a credential: %v, %v", tools, err)
	}
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "search", Arguments: map[string]any{}}); err == nil || !strings.Contains(err.Error(), "insufficient scope") {
		t.Fatalf("call without a credential: %v", err)
	}
}
