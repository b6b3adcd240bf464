package verifier

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

// pathMapper maps GET /docs/plan to ("read", "docs/plan"); a path under
// /bad/ is refused.
func pathMapper(r *http.Request) (string, string, error) {
	if strings.HasPrefix(r.URL.Path, "/bad/") {
		return "", "", errors.New("no resource for this path")
	}
	return MethodAction(r), strings.TrimPrefix(r.URL.Path, "/"), nil
}

// protected serves v's middleware over a handler that echoes the verified
// claims, and counts the requests that reached it.
type protected struct {
	srv *httptest.Server

	mu      sync.Mutex
	reached int
	claims  []*token.Claims
}

func (p *protected) seen() (int, []*token.Claims) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reached, append([]*token.Claims(nil), p.claims...)
}

func newProtected(t *testing.T, v *Verifier, mapper Mapper) *protected {
	t.Helper()
	p := &protected{}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := ClaimsFrom(r.Context())
		p.mu.Lock()
		p.reached++
		p.claims = append(p.claims, c)
		p.mu.Unlock()
		if c == nil {
			http.Error(w, "no claims", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "hello "+c.Txn)
	})
	p.srv = httptest.NewServer(v.Middleware(mapper, next))
	t.Cleanup(p.srv.Close)
	return p
}

type answer struct {
	code  int
	body  string
	err   string
	authn string
	ctype string
}

func (p *protected) do(t *testing.T, method, path, authz string) answer {
	t.Helper()
	req, err := http.NewRequest(method, p.srv.URL+path, nil)
	require.NoError(t, err)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := p.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	a := answer{code: resp.StatusCode, body: string(b), authn: resp.Header.Get("WWW-Authenticate"), ctype: resp.Header.Get("Content-Type")}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		require.NoError(t, json.Unmarshal(b, &e), "refusals are JSON: %s", b)
		a.err = e.Error
	}
	return a
}

func TestMiddleware(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	v := newVerifier(t, testConfig(f, newClock(t0)))
	p := newProtected(t, v, pathMapper)
	raw := mint(t, k, nil) // read,list:docs/* write:docs/drafts/*

	t.Run("no credential", func(t *testing.T) {
		for _, authz := range []string{"", "Basic dXNlcjpwYXNz", "Bearer "} {
			a := p.do(t, http.MethodGet, "/docs/plan", authz)
			assert.Equal(t, http.StatusUnauthorized, a.code, authz)
			assert.NotEmpty(t, a.authn, "401 carries WWW-Authenticate")
			assert.True(t, strings.HasPrefix(a.authn, "Bearer"), a.authn)
			assert.Equal(t, "application/json", a.ctype)
			assert.Equal(t, ErrNoCredential.Error(), a.err)
		}
	})
	t.Run("bad token", func(t *testing.T) {
		for name, bad := range map[string]string{
			"garbage":  "not.a.token",
			"audience": mint(t, k, func(c *token.Claims) { c.Audience = "other" }),
			"expired":  mint(t, k, func(c *token.Claims) { c.IssuedAt, c.NotBefore, c.Expiry = t0.Unix()-600, t0.Unix()-600, t0.Unix()-60 }),
			"forged":   mint(t, genKey(t, token.AlgEdDSA), nil),
		} {
			a := p.do(t, http.MethodGet, "/docs/plan", "Bearer "+bad)
			assert.Equal(t, http.StatusUnauthorized, a.code, name)
			assert.Equal(t, `Bearer error="invalid_token"`, a.authn, name)
			assert.NotEmpty(t, a.err, name)
			assert.NotContains(t, a.body, bad, "the refusal does not echo the token")
		}
	})
	t.Run("out of scope", func(t *testing.T) {
		for _, tc := range []struct{ method, path string }{
			{http.MethodPut, "/docs/plan"},
			{http.MethodDelete, "/docs/drafts/x"},
			{http.MethodGet, "/secrets/web/tls"},
		} {
			a := p.do(t, tc.method, tc.path, "Bearer "+raw)
			assert.Equal(t, http.StatusForbidden, a.code, tc)
			assert.Contains(t, a.err, "scope", tc)
			assert.Equal(t, `Bearer error="insufficient_scope"`, a.authn, "RFC 6750 section 3.1")
		}
	})
	t.Run("mapper error", func(t *testing.T) {
		a := p.do(t, http.MethodGet, "/bad/x", "Bearer "+raw)
		assert.Equal(t, http.StatusBadRequest, a.code)
		assert.Equal(t, "no resource for this path", a.err)
	})
	t.Run("revoked", func(t *testing.T) {
		closed := mint(t, k, func(c *token.Claims) { c.Txn = "sess-closed" })
		f.setRevocations(7, "sess-closed")
		require.NoError(t, v.PollRevocations(context.Background()))
		a := p.do(t, http.MethodGet, "/docs/plan", "Bearer "+closed)
		assert.Equal(t, http.StatusUnauthorized, a.code)
		assert.Equal(t, ErrSessionClosed.Error(), a.err)
	})
	reached, _ := p.seen()
	require.Zero(t, reached, "no refused request reaches the handler")

	t.Run("ok", func(t *testing.T) {
		a := p.do(t, http.MethodGet, "/docs/plan", "Bearer "+raw)
		require.Equal(t, http.StatusOK, a.code, a.body)
		assert.Equal(t, "hello sess-1", a.body)
		a = p.do(t, http.MethodPost, "/docs/drafts/new", "bearer "+raw)
		assert.Equal(t, http.StatusForbidden, a.code, "create is not write")
		a = p.do(t, http.MethodPatch, "/docs/drafts/new", "bearer "+raw)
		require.Equal(t, http.StatusOK, a.code, a.body)
		reached, seen := p.seen()
		require.Equal(t, 2, reached)
		for _, c := range seen {
			require.NotNil(t, c)
			assert.Equal(t, "cred-1", c.ID)
			assert.Equal(t, "read,list:docs/* write:docs/drafts/*", c.Scope)
		}
	})
	assert.Empty(t, f.reportCalls(), "Report is off")
}

func TestMiddlewareReports(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	cfg := testConfig(f, newClock(t0))
	cfg.Report = true
	v := newVerifier(t, cfg)
	p := newProtected(t, v, pathMapper)
	raw := mint(t, k, nil)

	require.Equal(t, http.StatusOK, p.do(t, http.MethodGet, "/docs/plan", "Bearer "+raw).code)
	require.Equal(t, http.StatusForbidden, p.do(t, http.MethodDelete, "/docs/plan", "Bearer "+raw).code)
	// Not reported: no credential, a bad one, a mapper error.
	require.Equal(t, http.StatusUnauthorized, p.do(t, http.MethodGet, "/docs/plan", "").code)
	require.Equal(t, http.StatusUnauthorized, p.do(t, http.MethodGet, "/docs/plan", "Bearer x.y.z").code)
	require.Equal(t, http.StatusBadRequest, p.do(t, http.MethodGet, "/bad/x", "Bearer "+raw).code)
	// A closed session's credential is reported as denied.
	closed := mint(t, k, func(c *token.Claims) { c.Txn = "sess-closed" })
	f.setRevocations(1, "sess-closed")
	require.NoError(t, v.PollRevocations(context.Background()))
	require.Equal(t, http.StatusUnauthorized, p.do(t, http.MethodGet, "/docs/plan", "Bearer "+closed).code)

	require.Eventually(t, func() bool { return len(f.reportCalls()) >= 3 }, 10*time.Second, 5*time.Millisecond)
	calls := f.reportCalls()
	require.Len(t, calls, 3)
	at := t0.UTC().Format(time.RFC3339Nano)
	want := []map[string]string{
		{"token": raw, "action": "read", "resource": "docs/plan", "outcome": "allowed", "observed_at": at, "leeway": "30"},
		{"token": raw, "action": "delete", "resource": "docs/plan", "outcome": "denied", "observed_at": at, "leeway": "30"},
		{"token": closed, "action": "read", "resource": "docs/plan", "outcome": "denied", "observed_at": at, "leeway": "30"},
	}
	for i, c := range calls {
		assert.Equal(t, testVaultTok, c.VaultToken)
		assert.Equal(t, http.MethodPut, c.Method)
		assert.Equal(t, want[i], c.Body, "report %d", i)
	}
}

func TestMiddlewareReportFailureDoesNotAffectRequests(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	f.writeStatus = http.StatusForbidden
	cfg := testConfig(f, newClock(t0))
	cfg.Report = true
	v := newVerifier(t, cfg)
	p := newProtected(t, v, pathMapper)
	raw := mint(t, k, nil)
	for range 3 {
		require.Equal(t, http.StatusOK, p.do(t, http.MethodGet, "/docs/plan", "Bearer "+raw).code)
	}
	require.Eventually(t, func() bool { return len(f.reportCalls()) == 3 }, 10*time.Second, 5*time.Millisecond)
}
