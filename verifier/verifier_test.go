package verifier

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

func TestVerifyValid(t *testing.T) {
	for _, alg := range []string{token.AlgEdDSA, token.AlgES256} {
		t.Run(alg, func(t *testing.T) {
			k := genKey(t, alg)
			f := newFakeEngine(t, k)
			v := newVerifier(t, testConfig(f, newClock(t0)))

			c, err := v.Verify(context.Background(), mint(t, k, nil))
			require.NoError(t, err)
			assert.Equal(t, "cred-1", c.ID)
			assert.Equal(t, "sess-1", c.Txn)
			assert.Equal(t, testAudience, c.Audience)
			assert.Equal(t, "writer", c.Tctx.Role)
			assert.Equal(t, 1, f.jwksCount(), "a known key needs no refetch")
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	other := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	v := newVerifier(t, testConfig(f, newClock(t0)))

	// forged: signed by another key but naming k's kid.
	forger := *other
	forger.ID = k.ID
	forged := mint(t, &forger, nil)

	// tampered: k's token with a changed payload, old signature.
	good := mint(t, k, nil)
	parts := strings.Split(good, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	widened := strings.Replace(string(payload), `"read,list:docs/*`, `"*:docs/*      `, 1)
	require.NotEqual(t, string(payload), widened)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(widened)) + "." + parts[2]

	// alg none: an unsigned token naming k's kid.
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	none := enc(`{"alg":"none","kid":"`+k.ID+`","typ":"txntoken+jwt"}`) + "." + parts[1] + "."
	noneSig := enc(`{"alg":"none","kid":"`+k.ID+`","typ":"txntoken+jwt"}`) + "." + parts[1] + "." + parts[2]

	// HS256 keyed with the public key (algorithm confusion).
	hs := enc(`{"alg":"HS256","kid":"`+k.ID+`","typ":"txntoken+jwt"}`) + "." + parts[1] + "." + parts[2]

	cases := []struct {
		name string
		raw  string
		want error
	}{
		{"wrong audience", mint(t, k, func(c *token.Claims) { c.Audience = "other-api" }), token.ErrAudience},
		{"wrong issuer", mint(t, k, func(c *token.Claims) { c.Issuer = "vault:other" }), token.ErrIssuer},
		{"expired beyond leeway", mint(t, k, func(c *token.Claims) { c.IssuedAt, c.NotBefore, c.Expiry = t0.Unix()-600, t0.Unix()-600, t0.Unix()-31 }), token.ErrExpired},
		{"not yet valid", mint(t, k, func(c *token.Claims) { c.NotBefore = t0.Unix() + 120 }), token.ErrNotYetValid},
		{"forged signature", forged, token.ErrSignature},
		{"tampered payload", tampered, token.ErrSignature},
		{"alg none", none, token.ErrAlgorithm},
		{"alg none with signature", noneSig, token.ErrAlgorithm},
		{"alg HS256", hs, token.ErrAlgorithm},
		{"garbage", "not-a-token", token.ErrMalformed},
		{"empty", "", token.ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(context.Background(), tc.raw)
			require.Error(t, err)
			assert.Nil(t, c)
			assert.ErrorIs(t, err, tc.want)
			if tc.raw != "" {
				assert.NotContains(t, err.Error(), tc.raw, "errors never quote the token")
			}
		})
	}
	// None of these named an unknown kid: no refetch.
	assert.Equal(t, 1, f.jwksCount())

	// Authorize refuses with the same error.
	_, err = v.Authorize(context.Background(), forged, "read", "docs/plan")
	assert.ErrorIs(t, err, token.ErrSignature)
}

func TestVerifyExpiryLeeway(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	// Expired 10s ago: inside the default 30s leeway.
	recent := mint(t, k, func(c *token.Claims) { c.IssuedAt, c.NotBefore, c.Expiry = t0.Unix()-300, t0.Unix()-300, t0.Unix()-10 })
	// Expired 31s ago: outside it.
	old := mint(t, k, func(c *token.Claims) { c.IssuedAt, c.NotBefore, c.Expiry = t0.Unix()-300, t0.Unix()-300, t0.Unix()-31 })

	t.Run("default leeway", func(t *testing.T) {
		v := newVerifier(t, testConfig(f, newClock(t0)))
		_, err := v.Verify(context.Background(), recent)
		require.NoError(t, err)
		_, err = v.Verify(context.Background(), old)
		require.ErrorIs(t, err, token.ErrExpired)
	})
	t.Run("wide leeway", func(t *testing.T) {
		cfg := testConfig(f, newClock(t0))
		cfg.Leeway = time.Minute
		v := newVerifier(t, cfg)
		_, err := v.Verify(context.Background(), old)
		require.NoError(t, err)
	})
	t.Run("no leeway", func(t *testing.T) {
		cfg := testConfig(f, newClock(t0))
		cfg.Leeway = -1 // negative: none at all
		v := newVerifier(t, cfg)
		_, err := v.Verify(context.Background(), recent)
		require.ErrorIs(t, err, token.ErrExpired)
		exact := mint(t, k, func(c *token.Claims) { c.Expiry = t0.Unix() })
		_, err = v.Verify(context.Background(), exact)
		require.ErrorIs(t, err, token.ErrExpired, "exp is exclusive")
		live := mint(t, k, func(c *token.Claims) { c.Expiry = t0.Unix() + 1 })
		_, err = v.Verify(context.Background(), live)
		require.NoError(t, err)
	})
	t.Run("clock moves", func(t *testing.T) {
		clk := newClock(t0)
		v := newVerifier(t, testConfig(f, clk))
		tok := mint(t, k, nil) // exp t0+5m
		_, err := v.Verify(context.Background(), tok)
		require.NoError(t, err)
		clk.Add(5*time.Minute + 29*time.Second)
		_, err = v.Verify(context.Background(), tok)
		require.NoError(t, err)
		clk.Add(time.Second)
		_, err = v.Verify(context.Background(), tok)
		require.ErrorIs(t, err, token.ErrExpired)
	})
}

func TestVerifyAlgorithmsAllowList(t *testing.T) {
	ed := genKey(t, token.AlgEdDSA)
	es := genKey(t, token.AlgES256)
	f := newFakeEngine(t, ed, es)
	cfg := testConfig(f, newClock(t0))
	cfg.Algorithms = []string{token.AlgES256}
	v := newVerifier(t, cfg)

	_, err := v.Verify(context.Background(), mint(t, es, nil))
	require.NoError(t, err)
	_, err = v.Verify(context.Background(), mint(t, ed, nil))
	require.ErrorIs(t, err, token.ErrAlgorithm)
}

func TestVerifyUnknownKidRefetchesOnceThenRotatedKeyVerifies(t *testing.T) {
	oldKey := genKey(t, token.AlgEdDSA)
	newKey := genKey(t, token.AlgES256)
	f := newFakeEngine(t, oldKey)
	clk := newClock(t0)
	v := newVerifier(t, testConfig(f, clk))
	require.Equal(t, 1, f.jwksCount(), "New fetches the JWKS")

	rotated := mint(t, newKey, nil)

	// Inside the floor after New's fetch: no refetch, unknown key.
	_, err := v.Verify(context.Background(), rotated)
	require.ErrorIs(t, err, token.ErrUnknownKey)
	require.Equal(t, 1, f.jwksCount())

	// The engine rotates; once the floor has passed, the unknown kid
	// causes exactly one fetch and the token verifies.
	f.setKeys(oldKey, newKey)
	clk.Add(10 * time.Second)
	c, err := v.Verify(context.Background(), rotated)
	require.NoError(t, err)
	assert.Equal(t, "sess-1", c.Txn)
	assert.Equal(t, 2, f.jwksCount())

	// Both keys verify now, with no further fetch.
	for range 5 {
		_, err = v.Verify(context.Background(), rotated)
		require.NoError(t, err)
		_, err = v.Verify(context.Background(), mint(t, oldKey, nil))
		require.NoError(t, err)
	}
	assert.Equal(t, 2, f.jwksCount())

	// The old key is retired: a later refetch drops it.
	f.setKeys(newKey)
	clk.Add(10 * time.Second)
	_, err = v.Verify(context.Background(), mint(t, genKey(t, token.AlgEdDSA), nil))
	require.ErrorIs(t, err, token.ErrUnknownKey)
	assert.Equal(t, 3, f.jwksCount())
	_, err = v.Verify(context.Background(), mint(t, oldKey, nil))
	require.ErrorIs(t, err, token.ErrUnknownKey)
	assert.Equal(t, 3, f.jwksCount(), "still inside the floor")
}

func TestVerifyRefetchFloorHolds(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	clk := newClock(t0)
	v := newVerifier(t, testConfig(f, clk))

	unknown := func() string { return mint(t, genKey(t, token.AlgEdDSA), nil) }
	flood := make([]string, 50)
	for i := range flood {
		flood[i] = unknown()
	}

	// Within the floor after New's fetch: none.
	for _, raw := range flood {
		_, err := v.Verify(context.Background(), raw)
		require.ErrorIs(t, err, token.ErrUnknownKey)
	}
	require.Equal(t, 1, f.jwksCount())

	// Each time the floor passes: exactly one fetch for the whole flood.
	for round := 1; round <= 3; round++ {
		clk.Add(10 * time.Second)
		for _, raw := range flood {
			_, err := v.Verify(context.Background(), raw)
			require.ErrorIs(t, err, token.ErrUnknownKey)
		}
		require.Equal(t, 1+round, f.jwksCount(), "round %d", round)
	}

	// Just short of the floor: none.
	clk.Add(9*time.Second + 999*time.Millisecond)
	for _, raw := range flood {
		_, _ = v.Verify(context.Background(), raw)
	}
	require.Equal(t, 4, f.jwksCount())

	// A known key keeps verifying through it all.
	_, err := v.Verify(context.Background(), mint(t, k, nil))
	require.NoError(t, err)
}

func TestVerifyRefetchFloorHoldsConcurrently(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	clk := newClock(t0)
	v := newVerifier(t, testConfig(f, clk))
	clk.Add(time.Minute)

	flood := make([]string, 64)
	for i := range flood {
		flood[i] = mint(t, genKey(t, token.AlgEdDSA), nil)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, raw := range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := v.Verify(context.Background(), raw)
			assert.ErrorIs(t, err, token.ErrUnknownKey)
		}()
	}
	close(start)
	wg.Wait()
	assert.Equal(t, 2, f.jwksCount(), "one fetch by New, one for the whole concurrent flood")
}

func TestVerifyRefetchFloorHoldsWhenJWKSFails(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	clk := newClock(t0)
	v := newVerifier(t, testConfig(f, clk))

	// The engine's JWKS breaks: a flood of unknown kids must not turn
	// into a flood of failing fetches.
	f.setJWKSStatus(http.StatusInternalServerError)
	clk.Add(time.Minute)
	raw := mint(t, genKey(t, token.AlgEdDSA), nil)
	for range 20 {
		_, err := v.Verify(context.Background(), raw)
		require.ErrorIs(t, err, token.ErrUnknownKey)
	}
	assert.Equal(t, 2, f.jwksCount())

	// Known keys are kept after a failed fetch.
	_, err := v.Verify(context.Background(), mint(t, k, nil))
	require.NoError(t, err)
}

func TestRevocations(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	f.setRevocations(1, "sess-other")
	v := newVerifier(t, testConfig(f, newClock(t0)))
	ctx := context.Background()
	require.Equal(t, 1, f.revCount(), "New polls once")
	assert.True(t, v.SessionClosed("sess-other"))
	assert.False(t, v.SessionClosed("sess-1"))

	raw := mint(t, k, nil)
	_, err := v.Verify(ctx, raw)
	require.NoError(t, err)

	// The session closes; until the next poll the credential still verifies.
	f.setRevocations(2, "sess-other", "sess-1")
	_, err = v.Verify(ctx, raw)
	require.NoError(t, err)

	require.NoError(t, v.PollRevocations(ctx))
	assert.True(t, v.SessionClosed("sess-1"))
	_, err = v.Verify(ctx, raw)
	require.ErrorIs(t, err, ErrSessionClosed)
	_, err = v.Authorize(ctx, raw, "read", "docs/plan")
	require.ErrorIs(t, err, ErrSessionClosed)

	// Other sessions' credentials are unaffected.
	_, err = v.Verify(ctx, mint(t, k, func(c *token.Claims) { c.Txn = "sess-2" }))
	require.NoError(t, err)

	// Same version, different content: the list is not replaced.
	f.setRevocations(2, "sess-2")
	require.NoError(t, v.PollRevocations(ctx))
	assert.True(t, v.SessionClosed("sess-1"))
	assert.False(t, v.SessionClosed("sess-2"))

	// A new version replaces it (entries pruned by the engine disappear).
	f.setRevocations(3, "sess-2")
	require.NoError(t, v.PollRevocations(ctx))
	assert.False(t, v.SessionClosed("sess-1"))
	assert.True(t, v.SessionClosed("sess-2"))
	_, err = v.Verify(ctx, raw)
	require.NoError(t, err)

	// A failed poll keeps the last list.
	f.mu.Lock()
	f.revStatus = http.StatusServiceUnavailable
	f.mu.Unlock()
	err = v.PollRevocations(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "revocations")
	assert.True(t, v.SessionClosed("sess-2"))
}

func TestRevocationsBadJSON(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	mux := http.NewServeMux()
	f := newFakeEngine(t, k)
	mux.HandleFunc("GET /v1/agent/jwks", f.jwks)
	mux.HandleFunc("GET /v1/agent/revocations", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"data": {"version": "x"`))
	})
	srv := httptestServer(t, mux)
	cfg := testConfig(f, newClock(t0))
	cfg.VaultAddr = srv
	_, err := New(context.Background(), cfg)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "decoding revocations")
}

func TestAuthorize(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	v := newVerifier(t, testConfig(f, newClock(t0)))
	raw := mint(t, k, nil) // read,list:docs/* write:docs/drafts/*
	ctx := context.Background()

	for _, ok := range [][2]string{
		{"read", "docs/plan"},
		{"list", "docs/plan/sub"},
		{"write", "docs/drafts/x"},
	} {
		c, err := v.Authorize(ctx, raw, ok[0], ok[1])
		require.NoError(t, err, "%v", ok)
		require.NotNil(t, c)
		assert.Equal(t, "cred-1", c.ID)
	}
	for _, bad := range [][2]string{
		{"write", "docs/plan"},
		{"delete", "docs/drafts/x"},
		{"read", "secrets/web/tls"},
		{"read", "docs"},
	} {
		c, err := v.Authorize(ctx, raw, bad[0], bad[1])
		require.ErrorIs(t, err, ErrScope, "%v", bad)
		assert.Contains(t, err.Error(), bad[0]+" on "+bad[1])
		require.NotNil(t, c, "claims come back with ErrScope so the caller can report")
	}
	_, err := v.Authorize(ctx, mint(t, k, func(c *token.Claims) { c.Audience = "x" }), "read", "docs/plan")
	require.ErrorIs(t, err, token.ErrAudience)
	require.NotErrorIs(t, err, ErrScope)
}

func TestAuthorizeInvalidScopeClaim(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	v := newVerifier(t, testConfig(f, newClock(t0)))
	raw := mint(t, k, func(c *token.Claims) { c.Scope = "read:docs//x" })
	_, err := v.Authorize(context.Background(), raw, "read", "docs/x")
	require.ErrorIs(t, err, token.ErrClaims)
}

func TestIntrospect(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	v := newVerifier(t, testConfig(f, newClock(t0)))
	raw := mint(t, k, nil)

	active, err := v.Introspect(context.Background(), raw)
	require.NoError(t, err)
	assert.True(t, active)

	f.mu.Lock()
	f.active = false
	f.mu.Unlock()
	active, err = v.Introspect(context.Background(), raw)
	require.NoError(t, err)
	assert.False(t, active)

	calls := f.introspectCalls()
	require.Len(t, calls, 2)
	for _, c := range calls {
		assert.Equal(t, http.MethodPut, c.Method)
		assert.Equal(t, testVaultTok, c.VaultToken)
		assert.Equal(t, map[string]string{"token": raw}, c.Body)
	}

	f.mu.Lock()
	f.writeStatus = http.StatusForbidden
	f.mu.Unlock()
	active, err = v.Introspect(context.Background(), raw)
	require.Error(t, err)
	assert.False(t, active)
	assert.Contains(t, err.Error(), "403")
	assert.Contains(t, err.Error(), "permission denied")
}

func TestReport(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	v := newVerifier(t, testConfig(f, newClock(t0)))
	raw := mint(t, k, nil)

	// The time the use was seen, in any zone, goes out in UTC with
	// nanoseconds.
	seen := t0.Add(-3*time.Second + 123456789*time.Nanosecond).In(time.FixedZone("CEST", 2*60*60))
	require.NoError(t, v.Report(context.Background(), raw, "write", "docs/plan", "denied", seen))
	calls := f.reportCalls()
	require.Len(t, calls, 1)
	assert.Equal(t, http.MethodPut, calls[0].Method)
	assert.Equal(t, testVaultTok, calls[0].VaultToken)
	assert.Equal(t, map[string]string{
		"token": raw, "action": "write", "resource": "docs/plan", "outcome": "denied",
		"observed_at": "2027-01-15T07:59:57.123456789Z", "leeway": "30",
	}, calls[0].Body)
	observed, err := time.Parse(time.RFC3339Nano, calls[0].Body["observed_at"])
	require.NoError(t, err)
	assert.True(t, observed.Equal(seen))

	// The zero time means now, by Config.Now.
	require.NoError(t, v.Report(context.Background(), raw, "read", "docs/plan", "allowed", time.Time{}))
	calls = f.reportCalls()
	require.Len(t, calls, 2)
	assert.Equal(t, t0.UTC().Format(time.RFC3339Nano), calls[1].Body["observed_at"])

	f.mu.Lock()
	f.writeStatus = http.StatusBadRequest
	f.mu.Unlock()
	err = v.Report(context.Background(), raw, "read", "docs/plan", "allowed", t0)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "report")
}

func TestIntrospectAndReportNeedVaultToken(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	cfg := testConfig(f, newClock(t0))
	cfg.VaultToken = ""
	v := newVerifier(t, cfg)
	raw := mint(t, k, nil)

	_, err := v.Introspect(context.Background(), raw)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "VaultToken")
	assert.Contains(t, err.Error(), "introspect")

	err = v.Report(context.Background(), raw, "read", "docs/plan", "allowed", t0)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "VaultToken")
	assert.Contains(t, err.Error(), "report")

	assert.Empty(t, f.introspectCalls())
	assert.Empty(t, f.reportCalls())

	// Offline verification needs no token.
	_, err = v.Verify(context.Background(), raw)
	require.NoError(t, err)
}

func TestNewConfigErrors(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	base := testConfig(f, newClock(t0))

	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no VaultAddr", func(c *Config) { c.VaultAddr = "" }, "VaultAddr"},
		{"no Issuer", func(c *Config) { c.Issuer = "" }, "Issuer"},
		{"no Audience", func(c *Config) { c.Audience = "" }, "Audience"},
		{"Leeway beyond the revocation grace", func(c *Config) { c.Leeway = trust.RevocationGrace + time.Second }, "Leeway"},
		{"MaxStaleness below RevocationPoll", func(c *Config) { c.RevocationPoll, c.MaxStaleness = time.Minute, time.Minute-time.Second }, "MaxStaleness"},
		{"negative MaxStaleness", func(c *Config) { c.MaxStaleness = -1 }, "MaxStaleness"},
		{"negative MaxLifetime", func(c *Config) { c.MaxLifetime = -1 }, "MaxLifetime"},
		{"negative JWKSRefresh", func(c *Config) { c.JWKSRefresh = -1 }, "JWKSRefresh"},
		{"negative RevocationPoll", func(c *Config) { c.RevocationPoll = -1 }, "RevocationPoll"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.edit(&cfg)
			v, err := New(context.Background(), cfg)
			require.Error(t, err)
			assert.Nil(t, v)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	assert.Equal(t, 0, f.jwksCount(), "a bad config fetches nothing")
}

func TestNewJWKSUnreachable(t *testing.T) {
	t.Run("error status", func(t *testing.T) {
		f := newFakeEngine(t, genKey(t, token.AlgEdDSA))
		f.setJWKSStatus(http.StatusInternalServerError)
		v, err := New(context.Background(), testConfig(f, newClock(t0)))
		require.Error(t, err)
		assert.Nil(t, v)
		assert.Contains(t, err.Error(), "jwks")
		assert.Contains(t, err.Error(), "500")
	})
	t.Run("connection refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := "http://" + l.Addr().String()
		require.NoError(t, l.Close())
		f := newFakeEngine(t)
		cfg := testConfig(f, newClock(t0))
		cfg.VaultAddr = addr
		v, err := New(context.Background(), cfg)
		require.Error(t, err)
		assert.Nil(t, v)
		assert.Contains(t, err.Error(), "jwks")
	})
	t.Run("not a JWKS", func(t *testing.T) {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /v1/agent/jwks", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(`{"data":{"keys":[]}}`)) // wrapped: not what the engine serves
		})
		srv := httptestServer(t, mux)
		f := newFakeEngine(t)
		cfg := testConfig(f, newClock(t0))
		cfg.VaultAddr = srv
		_, err := New(context.Background(), cfg)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "JWKS")
	})
	t.Run("cancelled context", func(t *testing.T) {
		f := newFakeEngine(t, genKey(t, token.AlgEdDSA))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := New(ctx, testConfig(f, newClock(t0)))
		require.ErrorIs(t, err, context.Canceled)
	})
}

func TestNewMountAndDefaults(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	mux := http.NewServeMux()
	f := newFakeEngine(t, k)
	mux.HandleFunc("GET /v1/team/agents/jwks", f.jwks)
	mux.HandleFunc("GET /v1/team/agents/revocations", f.revocations)
	srv := httptestServer(t, mux)

	v, err := New(context.Background(), Config{
		VaultAddr: srv + "/", Mount: "/team/agents/", Issuer: testIssuer, Audience: testAudience,
	})
	require.NoError(t, err)
	defer v.Close()
	assert.Equal(t, srv+"/v1/team/agents", v.base)
	assert.Equal(t, token.DefaultLeeway, v.cfg.Leeway)
	assert.Equal(t, 10*time.Second, v.cfg.JWKSRefreshFloor)
	assert.Equal(t, 5*time.Second, v.cfg.RevocationPoll)
	assert.Equal(t, time.Minute, v.cfg.MaxStaleness)
	assert.Equal(t, 5*time.Minute, v.cfg.JWKSRefresh)
	assert.Equal(t, time.Hour, v.cfg.MaxLifetime)
	assert.False(t, v.cfg.FailOpen)
	assert.NotNil(t, v.cfg.HTTPClient)
	assert.NotNil(t, v.cfg.Now)

	// Real clock: a token valid now verifies.
	_, err = v.Verify(context.Background(), mint(t, k, func(c *token.Claims) {
		now := time.Now().Unix()
		c.IssuedAt, c.NotBefore, c.Expiry = now, now, now+60
	}))
	require.NoError(t, err)
}

func TestCloseIdempotentAndStopsPolling(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	cfg := testConfig(f, newClock(t0))
	cfg.RevocationPoll = time.Millisecond
	v, err := New(context.Background(), cfg)
	require.NoError(t, err)

	// The background poller runs.
	require.Eventually(t, func() bool { return f.revCount() >= 3 }, 10*time.Second, time.Millisecond)

	v.Close()
	select {
	case <-v.done:
	default:
		t.Fatal("Close returned before the poller stopped")
	}
	n := f.revCount()
	v.Close() // idempotent
	v.Close()
	assert.Equal(t, n, f.revCount(), "no poll after Close")

	// Still usable offline after Close.
	_, err = v.Verify(context.Background(), mint(t, k, nil))
	require.NoError(t, err)
	// And an explicit poll still works (Close only stops the background).
	require.NoError(t, v.PollRevocations(context.Background()))
	assert.Equal(t, n+1, f.revCount())
}

func TestCloseConcurrent(t *testing.T) {
	f := newFakeEngine(t, genKey(t, token.AlgEdDSA))
	v, err := New(context.Background(), testConfig(f, newClock(t0)))
	require.NoError(t, err)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v.Close()
		}()
	}
	wg.Wait()
	select {
	case <-v.done:
	default:
		t.Fatal("poller still running")
	}
}

func TestConcurrentUse(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	clk := newClock(t0)
	cfg := testConfig(f, clk)
	cfg.Report = true
	v := newVerifier(t, cfg)
	good := mint(t, k, nil)

	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 20 {
				switch (i + j) % 4 {
				case 0:
					_, err := v.Authorize(context.Background(), good, "read", "docs/x")
					if err != nil {
						assert.ErrorIs(t, err, ErrSessionClosed)
					}
				case 1:
					_ = v.PollRevocations(context.Background())
				case 2:
					_, _ = v.Verify(context.Background(), mint(t, genKey(t, token.AlgEdDSA), nil))
				case 3:
					clk.Add(time.Second)
					v.SessionClosed("sess-1")
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 10 {
			f.setRevocations(uint64(i+1), "sess-x")
		}
	}()
	wg.Wait()
}

func TestMethodActionAndBearerToken(t *testing.T) {
	for method, want := range map[string]string{
		http.MethodGet: "read", http.MethodHead: "read", http.MethodPost: "create",
		http.MethodPut: "write", http.MethodPatch: "write", http.MethodDelete: "delete",
		http.MethodOptions: "options", "PURGE": "purge",
	} {
		r, err := http.NewRequest(method, "http://x/docs", nil)
		require.NoError(t, err)
		assert.Equal(t, want, MethodAction(r), method)
	}
	for header, want := range map[string]string{
		"":                  "",
		"Bearer abc":        "abc",
		"bearer  abc ":      "abc",
		"BEARER abc.def.gh": "abc.def.gh",
		"Bearer ":           "",
		"Basic abc":         "",
		"Bearerabc":         "",
	} {
		r, err := http.NewRequest(http.MethodGet, "http://x/docs", nil)
		require.NoError(t, err)
		if header != "" {
			r.Header.Set("Authorization", header)
		}
		assert.Equal(t, want, BearerToken(r), "%q", header)
	}
	assert.Nil(t, ClaimsFrom(context.Background()))
}

// TestVerifyNeverTakesKeysFromTheToken: a credential signed by an attacker
// who embeds his key ("jwk") or points at it ("jku", "x5u") is refused
// before any key lookup: the URLs are never fetched and the JWKS is not
// refetched for it.
func TestVerifyNeverTakesKeysFromTheToken(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	v := newVerifier(t, testConfig(f, newClock(t0)))

	var hits sync.Mutex
	fetched := 0
	evil := httptestServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Lock()
		fetched++
		hits.Unlock()
		http.NotFound(w, nil)
	}))

	attacker := genKey(t, token.AlgEdDSA)
	pub, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	jwk := `{"kty":"OKP","crv":"Ed25519","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	payload := strings.Split(mint(t, attacker, nil), ".")[1]
	sign := func(header string) string {
		input := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + payload
		return input + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(priv, []byte(input)))
	}
	for _, kid := range []string{k.ID, "attacker"} {
		for _, extra := range []string{`"jwk":` + jwk, `"jku":"` + evil + `/jwks"`, `"x5u":"` + evil + `/cert"`} {
			raw := sign(`{"alg":"EdDSA","kid":"` + kid + `","typ":"txntoken+jwt",` + extra + `}`)
			c, err := v.Verify(context.Background(), raw)
			assert.Nil(t, c)
			assert.ErrorIs(t, err, token.ErrMalformed, "kid %s, %s", kid, extra[:6])
		}
	}
	hits.Lock()
	assert.Zero(t, fetched, "a URL from a token was fetched")
	hits.Unlock()
	assert.Equal(t, 1, f.jwksCount(), "a refused token caused a JWKS refetch")
}
