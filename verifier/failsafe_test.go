package verifier

// Regression tests for the "resource servers fail safe" review findings:
// JWKS refetch starvation, revocation list rollback, revocation outage,
// introspection of another audience's credential, the lifetime ceiling,
// and the time a reported use was seen.

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

// waitDeadline is how long a test waits for something that happens in the
// background; it only bounds a failing test.
const waitDeadline = 10 * time.Second

// TestRefetchSurvivesClientHangUp: a client that sends a credential with
// an unknown kid and hangs up while the JWKS is being fetched neither
// aborts the fetch nor uses the refetch floor: the engine's new key is
// known afterwards.
func TestRefetchSurvivesClientHangUp(t *testing.T) {
	oldKey := genKey(t, token.AlgEdDSA)
	newKey := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, oldKey)
	clk := newClock(t0)
	v := newVerifier(t, testConfig(f, clk))

	// The engine rotates; its JWKS answers only once the gate opens.
	f.setKeys(oldKey, newKey)
	gate := make(chan struct{})
	f.mu.Lock()
	f.jwksGate = gate
	f.mu.Unlock()
	clk.Add(time.Minute) // past the floor

	rotated := mint(t, newKey, nil)
	ctx, hangUp := context.WithCancel(context.Background())
	result := make(chan error, 1)
	go func() {
		_, err := v.Verify(ctx, rotated)
		result <- err
	}()
	require.Eventually(t, func() bool { return f.jwksCount() == 2 }, waitDeadline, time.Millisecond, "the unknown kid causes a fetch")
	hangUp() // the client goes away mid-fetch
	select {
	case err := <-result:
		require.Error(t, err, "the caller stops waiting when its context ends")
	case <-time.After(waitDeadline):
		t.Fatal("Verify kept waiting after its context ended")
	}
	close(gate)

	// The fetch was not aborted: the next caller gets the key (waiting for
	// the fetch if it is still under way), with no second fetch.
	c, err := v.Verify(context.Background(), rotated)
	require.NoError(t, err)
	assert.Equal(t, "sess-1", c.Txn)
	assert.Equal(t, 2, f.jwksCount())
}

// TestRefetchAlreadyCancelledContext: an unknown kid with a context that
// has already ended still fetches the JWKS.
func TestRefetchAlreadyCancelledContext(t *testing.T) {
	oldKey := genKey(t, token.AlgEdDSA)
	newKey := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, oldKey)
	clk := newClock(t0)
	v := newVerifier(t, testConfig(f, clk))
	f.setKeys(oldKey, newKey)
	clk.Add(time.Minute)

	rotated := mint(t, newKey, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _ = v.Verify(ctx, rotated) // may or may not see the key in time
	_, err := v.Verify(context.Background(), rotated)
	require.NoError(t, err)
	assert.Equal(t, 2, f.jwksCount())
}

// TestRefetchFloorOnlyAfterSuccess: a failed JWKS fetch does not use the
// floor; a retry a second later (the backoff) fetches again.
func TestRefetchFloorOnlyAfterSuccess(t *testing.T) {
	oldKey := genKey(t, token.AlgEdDSA)
	newKey := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, oldKey)
	clk := newClock(t0)
	v := newVerifier(t, testConfig(f, clk))
	rotated := mint(t, newKey, nil)

	f.setJWKSStatus(http.StatusServiceUnavailable)
	clk.Add(time.Minute)
	_, err := v.Verify(context.Background(), rotated)
	require.ErrorIs(t, err, token.ErrUnknownKey)
	require.Equal(t, 2, f.jwksCount())

	// The engine recovers with the new key; well inside the 10s floor of
	// the failed fetch, but past the backoff, the unknown kid fetches.
	f.setJWKSStatus(0)
	f.setKeys(oldKey, newKey)
	clk.Add(time.Second)
	_, err = v.Verify(context.Background(), rotated)
	require.NoError(t, err)
	assert.Equal(t, 3, f.jwksCount())

	// After that success the floor holds again.
	clk.Add(time.Second)
	_, err = v.Verify(context.Background(), mint(t, genKey(t, token.AlgEdDSA), nil))
	require.ErrorIs(t, err, token.ErrUnknownKey)
	assert.Equal(t, 3, f.jwksCount())
}

// TestJWKSRefreshedInBackground: the JWKS is refetched every JWKSRefresh
// without any unknown kid: a rotated key verifies and a retired one no
// longer does, although the clock never passes the refetch floor.
func TestJWKSRefreshedInBackground(t *testing.T) {
	oldKey := genKey(t, token.AlgEdDSA)
	newKey := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, oldKey)
	cfg := testConfig(f, newClock(t0)) // the clock stands still
	cfg.JWKSRefresh = 5 * time.Millisecond
	v := newVerifier(t, cfg)

	f.setKeys(newKey)
	rotated := mint(t, newKey, nil)
	require.Eventually(t, func() bool {
		_, err := v.Verify(context.Background(), rotated)
		return err == nil
	}, waitDeadline, 5*time.Millisecond, "the new key never became known")
	_, err := v.Verify(context.Background(), mint(t, oldKey, nil))
	require.ErrorIs(t, err, token.ErrUnknownKey)
}

// TestRevocationsNeverRollBack: an answer without a valid list, or with an
// older version, is an error and keeps the list held; the same version
// changes nothing; only a newer version replaces the list.
func TestRevocationsNeverRollBack(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	f.setRevocations(5, "sess-1")
	clk := newClock(t0)
	v := newVerifier(t, testConfig(f, clk))
	ctx := context.Background()
	raw := mint(t, k, nil) // session sess-1
	_, err := v.Verify(ctx, raw)
	require.ErrorIs(t, err, ErrSessionClosed)
	require.Equal(t, t0, v.LastRevocationSync())

	clk.Add(time.Second)
	for _, body := range []string{
		`{}`,
		`null`,
		`{"data":null}`,
		`{"data":{}}`,
		`{"data":{"sessions":[]}}`,
		`{"data":{"version":null,"sessions":[]}}`,
		`{"data":{"version":6}}`,
		`{"data":{"version":6,"sessions":null}}`,
		`{"data":{"version":6,"sessions":{}}}`,
		`{"data":{"version":6,"sessions":"sess-1"}}`,
		`{"data":{"version":6,"sessions":[{"exp":1}]}}`,
		`{"data":{"version":6,"sessions":[{"id":"sess-2"},{"id":""}]}}`,
		`{"data":{"version":0,"sessions":[]}}`,
		`{"data":{"version":0,"sessions":[{"id":"sess-2"}]}}`,
		`{"data":{"version":4,"sessions":[]}}`,
		`{"data":{"version":-1,"sessions":[]}}`,
	} {
		f.setRevocationBody(body)
		require.Error(t, v.PollRevocations(ctx), body)
		assert.True(t, v.SessionClosed("sess-1"), body)
		assert.False(t, v.SessionClosed("sess-2"), body)
		_, err := v.Verify(ctx, raw)
		require.ErrorIs(t, err, ErrSessionClosed, body)
		assert.Equal(t, t0, v.LastRevocationSync(), "a refused answer is no sync: %s", body)
	}

	// The same version with other content: nothing changes, but it is a
	// successful sync.
	f.setRevocationBody(`{"data":{"version":5,"sessions":[]}}`)
	require.NoError(t, v.PollRevocations(ctx))
	assert.True(t, v.SessionClosed("sess-1"))
	assert.Equal(t, t0.Add(time.Second), v.LastRevocationSync())

	// A newer version replaces the list.
	f.setRevocationBody(`{"data":{"version":6,"sessions":[{"id":"sess-2","revoked_at":1,"exp":2}]}}`)
	require.NoError(t, v.PollRevocations(ctx))
	assert.False(t, v.SessionClosed("sess-1"))
	assert.True(t, v.SessionClosed("sess-2"))
	_, err = v.Verify(ctx, raw)
	require.NoError(t, err)
}

// TestRevocationsFreshEngine: an engine that never listed a session serves
// version 0 and an empty list; that is a valid list.
func TestRevocationsFreshEngine(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	f.setRevocationBody(`{"data":{"version":0,"sessions":[]}}`)
	v := newVerifier(t, testConfig(f, newClock(t0)))
	_, err := v.Verify(context.Background(), mint(t, k, nil))
	require.NoError(t, err)
	assert.Equal(t, t0, v.LastRevocationSync())
}

// TestStaleRevocationsFailClosed: past MaxStaleness without a successful
// revocation sync, Verify, Authorize and the middleware refuse (503),
// unless FailOpen; a successful sync ends it.
func TestStaleRevocationsFailClosed(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	raw := mint(t, k, nil) // valid until t0+5m
	ctx := context.Background()

	for _, failOpen := range []bool{false, true} {
		clk := newClock(t0)
		f.setRevStatus(0)
		cfg := testConfig(f, clk)
		cfg.RevocationPoll = 30 * time.Second
		cfg.MaxStaleness = time.Minute
		cfg.FailOpen = failOpen
		v := newVerifier(t, cfg)
		p := newProtected(t, v, pathMapper)
		require.Equal(t, t0, v.LastRevocationSync())

		// The engine becomes unreachable; polls fail (in the background
		// too).
		f.setRevStatus(http.StatusServiceUnavailable)
		clk.Add(time.Minute)
		require.Error(t, v.PollRevocations(ctx))
		_, err := v.Verify(ctx, raw)
		require.NoError(t, err, "at MaxStaleness: still accepted")

		clk.Add(time.Second)
		_, err = v.Verify(ctx, raw)
		_, aerr := v.Authorize(ctx, raw, "read", "docs/plan")
		a := p.do(t, http.MethodGet, "/docs/plan", "Bearer "+raw)
		if failOpen {
			require.NoError(t, err)
			require.NoError(t, aerr)
			assert.Equal(t, http.StatusOK, a.code)
		} else {
			require.ErrorIs(t, err, ErrStale)
			require.ErrorIs(t, aerr, ErrStale)
			assert.Equal(t, http.StatusServiceUnavailable, a.code)
			assert.Contains(t, a.err, ErrStale.Error())
		}
		assert.Equal(t, t0, v.LastRevocationSync())

		// The engine is back: one successful sync and credentials verify.
		f.setRevStatus(0)
		require.NoError(t, v.PollRevocations(ctx))
		assert.Equal(t, t0.Add(61*time.Second), v.LastRevocationSync())
		_, err = v.Verify(ctx, raw)
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, p.do(t, http.MethodGet, "/docs/plan", "Bearer "+raw).code)
	}
}

// TestStaleWithoutFailOpenByDefault: the default MaxStaleness is a minute
// and applies with the default RevocationPoll.
func TestStaleWithoutFailOpenByDefault(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	clk := newClock(t0)
	cfg := testConfig(f, clk)
	cfg.RevocationPoll = 0 // default 5s: the background poller would run...
	f.setRevStatus(0)
	v := newVerifier(t, cfg)
	f.setRevStatus(http.StatusServiceUnavailable) // ...but fails
	clk.Add(time.Minute + time.Second)
	_, err := v.Verify(context.Background(), mint(t, k, nil))
	require.ErrorIs(t, err, ErrStale)
}

// TestIntrospectChecksAudienceAndIssuer: an active answer for another
// audience's or issuer's credential is not active.
func TestIntrospectChecksAudienceAndIssuer(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	v := newVerifier(t, testConfig(f, newClock(t0)))
	raw := mint(t, k, nil)

	for _, tc := range []struct {
		aud, iss string
		want     error
	}{
		{"other-api", testIssuer, token.ErrAudience},
		{"", testIssuer, token.ErrAudience},
		{testAudience, "vault:other", token.ErrIssuer},
		{testAudience, "", token.ErrIssuer},
	} {
		f.mu.Lock()
		f.introAud, f.introIss = tc.aud, tc.iss
		f.mu.Unlock()
		active, err := v.Introspect(context.Background(), raw)
		assert.False(t, active, "%+v", tc)
		assert.ErrorIs(t, err, tc.want, "%+v", tc)
	}

	f.mu.Lock()
	f.introAud, f.introIss = testAudience, testIssuer
	f.mu.Unlock()
	active, err := v.Introspect(context.Background(), raw)
	require.NoError(t, err)
	assert.True(t, active)
}

// TestMaxLifetime: a credential whose lifetime (exp − iat) exceeds
// Config.MaxLifetime (default 1 hour) is refused.
func TestMaxLifetime(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	lifetime := func(d time.Duration) string {
		return mint(t, k, func(c *token.Claims) { c.Expiry = c.IssuedAt + int64(d/time.Second) })
	}
	ctx := context.Background()

	t.Run("default", func(t *testing.T) {
		v := newVerifier(t, testConfig(f, newClock(t0)))
		_, err := v.Verify(ctx, lifetime(time.Hour))
		require.NoError(t, err)
		_, err = v.Verify(ctx, lifetime(time.Hour+time.Second))
		require.ErrorIs(t, err, token.ErrLifetime)
		_, err = v.Verify(ctx, lifetime(30*24*time.Hour))
		require.ErrorIs(t, err, token.ErrLifetime)
		p := newProtected(t, v, pathMapper)
		a := p.do(t, http.MethodGet, "/docs/plan", "Bearer "+lifetime(2*time.Hour))
		assert.Equal(t, http.StatusUnauthorized, a.code)
	})
	t.Run("configured", func(t *testing.T) {
		cfg := testConfig(f, newClock(t0))
		cfg.MaxLifetime = 10 * time.Minute
		v := newVerifier(t, cfg)
		_, err := v.Verify(ctx, lifetime(10*time.Minute))
		require.NoError(t, err)
		_, err = v.Authorize(ctx, lifetime(11*time.Minute), "read", "docs/plan")
		require.ErrorIs(t, err, token.ErrLifetime)
	})
}

// TestMiddlewareReportsWhenSeen: a background report carries the time the
// request was verified, not the time it is sent.
func TestMiddlewareReportsWhenSeen(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	clk := newClock(t0)
	cfg := testConfig(f, clk)
	cfg.Report = true
	v := newVerifier(t, cfg)
	raw := mint(t, k, nil)

	clk.Add(1500*time.Millisecond + 42*time.Nanosecond)
	seen := clk.Now()
	h := v.Middleware(pathMapper, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		clk.Add(time.Minute) // time passes while the request is served
	}))
	req, err := http.NewRequest(http.MethodGet, "http://rs/docs/plan", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+raw)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code)

	require.Eventually(t, func() bool { return len(f.reportCalls()) == 1 }, waitDeadline, 5*time.Millisecond)
	body := f.reportCalls()[0].Body
	assert.Equal(t, seen.UTC().Format(time.RFC3339Nano), body["observed_at"])
	assert.Equal(t, "2027-01-15T08:00:01.500000042Z", body["observed_at"])
	assert.Equal(t, "allowed", body["outcome"])
}
