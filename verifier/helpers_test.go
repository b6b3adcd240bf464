package verifier

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

// Test constants: the issuer and audience the fake engine mints for.
const (
	testIssuer   = "vault:agent"
	testAudience = "docs-api"
	testVaultTok = "rs-token"
)

// t0 is the fixed time every test starts its clock at.
var t0 = time.Unix(1_800_000_000, 0)

// clock is a settable, concurrency-safe clock for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// revoked is one entry of the fake's revocation list, with the version
// that listed it.
type revoked struct {
	ID        string `json:"id"`
	RevokedAt int64  `json:"revoked_at"`
	Exp       int64  `json:"exp"`
	Version   uint64 `json:"version"`
}

// call is one authenticated write the fake received.
type call struct {
	VaultToken string
	Method     string
	Body       map[string]string
}

// fakeEngine serves the engine's unauthenticated jwks and revocations
// paths and its introspect and report paths, mounted at "agent".
type fakeEngine struct {
	t   testing.TB
	srv *httptest.Server

	mu          sync.Mutex
	keys        []token.PublicKey
	jwksStatus  int // 0 means 200
	jwksHits    int
	jwksGate    chan struct{} // when set, jwks answers once it is closed
	revStatus   int           // 0 means 200
	revBody     string        // when set, revocations answers it verbatim
	revHits     int
	revWaiting  int           // blocking queries being held
	revChanged  chan struct{} // closed at each change of the list
	revIgnore   bool          // answer as an engine without blocking queries
	revQueries  []string      // the query strings received
	revVersion  uint64
	revSessions []revoked
	introspects []call
	reports     []call
	active      bool
	introAud    string // the aud and iss of an active introspection
	introIss    string
	writeStatus int // 0 means 200, for introspect and report
}

func newFakeEngine(t testing.TB, keys ...*token.Key) *fakeEngine {
	t.Helper()
	f := &fakeEngine{t: t, active: true, introAud: testAudience, introIss: testIssuer}
	for _, k := range keys {
		f.keys = append(f.keys, k.Public())
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/agent/jwks", f.jwks)
	mux.HandleFunc("GET /v1/agent/revocations", f.revocations)
	mux.HandleFunc("PUT /v1/agent/introspect", f.write(&f.introspects))
	mux.HandleFunc("PUT /v1/agent/report", f.write(&f.reports))
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeEngine) URL() string { return f.srv.URL }

func (f *fakeEngine) jwks(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.jwksHits++
	gate := f.jwksGate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	f.mu.Lock()
	status, keys := f.jwksStatus, append([]token.PublicKey(nil), f.keys...)
	f.mu.Unlock()
	if status != 0 {
		http.Error(w, `{"errors":["boom"]}`, status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(token.JWKS(keys...))
}

func (f *fakeEngine) revocations(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.revHits++
	f.revQueries = append(f.revQueries, r.URL.RawQuery)
	after, hasAfter := uint64(0), false
	if a := r.URL.Query().Get("after"); a != "" && !f.revIgnore {
		after, _ = strconv.ParseUint(a, 10, 64)
		hasAfter = true
	}
	wait, _ := strconv.Atoi(r.URL.Query().Get("wait"))
	if hasAfter && wait > 0 && f.revVersion <= after && f.revStatus == 0 && f.revBody == "" {
		// Hold the query until the list changes, as the engine does.
		if f.revChanged == nil {
			f.revChanged = make(chan struct{})
		}
		changed := f.revChanged
		f.revWaiting++
		f.mu.Unlock()
		select {
		case <-changed:
		case <-time.After(time.Duration(wait) * time.Second):
		case <-r.Context().Done():
		}
		f.mu.Lock()
		f.revWaiting--
	}
	status, body := f.revStatus, f.revBody
	sessions := []revoked{}
	complete := !hasAfter || after > f.revVersion
	for _, e := range f.revSessions {
		if complete || e.Version > after {
			sessions = append(sessions, e)
		}
	}
	data := map[string]interface{}{"version": f.revVersion, "sessions": sessions}
	if hasAfter {
		data["complete"] = complete
	}
	f.mu.Unlock()
	if status != 0 {
		http.Error(w, `{"errors":["boom"]}`, status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if body != "" {
		_, _ = w.Write([]byte(body))
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]interface{}{"data": data})
}

func (f *fakeEngine) write(into *[]call) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, `{"errors":["bad json"]}`, http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		*into = append(*into, call{VaultToken: r.Header.Get("X-Vault-Token"), Method: r.Method, Body: body})
		status, active, aud, iss := f.writeStatus, f.active, f.introAud, f.introIss
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if status != 0 {
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(map[string]interface{}{"errors": []string{"permission denied"}})
			return
		}
		data := map[string]interface{}{"recorded": true}
		if into == &f.introspects {
			data = map[string]interface{}{"active": active}
			if active {
				data["aud"], data["iss"] = aud, iss
			}
		}
		_ = json.NewEncoder(w).Encode(map[string]interface{}{"data": data})
	}
}

// setKeys replaces the keys the fake serves (a rotation).
func (f *fakeEngine) setKeys(keys ...*token.Key) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = nil
	for _, k := range keys {
		f.keys = append(f.keys, k.Public())
	}
}

func (f *fakeEngine) setRevocations(version uint64, ids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revVersion = version
	f.revSessions = nil
	for _, id := range ids {
		f.revSessions = append(f.revSessions, revoked{ID: id, RevokedAt: t0.Unix(), Exp: t0.Add(time.Hour).Unix(), Version: version})
	}
	f.notifyChange()
}

// addRevocation lists one more session at the next version, as a close
// does, and wakes the held queries.
func (f *fakeEngine) addRevocation(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revVersion++
	f.revSessions = append(f.revSessions, revoked{ID: id, RevokedAt: t0.Unix(), Exp: t0.Add(time.Hour).Unix(), Version: f.revVersion})
	f.notifyChange()
}

// notifyChange wakes the held queries; f.mu must be held.
func (f *fakeEngine) notifyChange() {
	if f.revChanged != nil {
		close(f.revChanged)
		f.revChanged = nil
	}
}

// waiting is how many blocking queries the fake is holding.
func (f *fakeEngine) waiting() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.revWaiting
}

// queries returns the query strings of every revocations request.
func (f *fakeEngine) queries() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.revQueries...)
}

// setRevocationBody makes revocations answer body verbatim (with 200);
// "" restores the list.
func (f *fakeEngine) setRevocationBody(body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revBody = body
}

func (f *fakeEngine) setRevStatus(code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revStatus = code
}

func (f *fakeEngine) setJWKSStatus(code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jwksStatus = code
}

func (f *fakeEngine) jwksCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.jwksHits
}

func (f *fakeEngine) revCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.revHits
}

func (f *fakeEngine) reportCalls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.reports...)
}

func (f *fakeEngine) introspectCalls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.introspects...)
}

// genKey generates an EdDSA key or fails the test.
func genKey(t testing.TB, alg string) *token.Key {
	t.Helper()
	k, err := token.GenerateKey(alg)
	require.NoError(t, err)
	return k
}

// claims returns a credential valid from t0-10s to t0+5m for the test
// audience, session sess-1, scope read:docs/*.
func claims() *token.Claims {
	return &token.Claims{
		Issuer:    testIssuer,
		Subject:   "entity-1",
		Audience:  testAudience,
		IssuedAt:  t0.Unix() - 10,
		NotBefore: t0.Unix() - 10,
		Expiry:    t0.Add(5 * time.Minute).Unix(),
		ID:        "cred-1",
		Txn:       "sess-1",
		Scope:     "read,list:docs/* write:docs/drafts/*",
		Tctx:      &token.TxnContext{Role: "writer", Purpose: "edit docs"},
		Depth:     1,
	}
}

// mint signs c with k or fails the test; edit, when given, changes a copy
// of the default claims first.
func mint(t testing.TB, k *token.Key, edit func(*token.Claims)) string {
	t.Helper()
	c := claims()
	if edit != nil {
		edit(c)
	}
	raw, err := token.Mint(k, c)
	require.NoError(t, err)
	return raw
}

// testConfig returns a configuration for f with the clock c; background
// revocation syncing is effectively off (plain polling once an hour;
// tests call PollRevocations).
func testConfig(f *fakeEngine, c *clock) Config {
	return Config{
		VaultAddr:        f.URL(),
		Issuer:           testIssuer,
		Audience:         testAudience,
		VaultToken:       testVaultTok,
		JWKSRefreshFloor: 10 * time.Second,
		RevocationPoll:   time.Hour,
		RevocationWait:   -1,
		Now:              c.Now,
	}
}

// newVerifier builds a verifier with cfg and closes it at the end of the
// test.
func newVerifier(t testing.TB, cfg Config) *Verifier {
	t.Helper()
	v, err := New(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(v.Close)
	return v
}

// httptestServer serves h for the test and returns its URL.
func httptestServer(t testing.TB, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
