package verifier

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/ssf"
	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

const streamAudience = "https://rs.example.com"

// sessionRevoked builds a session-revoked SET for session, as the engine
// does.
func sessionRevoked(t *testing.T, k *token.Key, session string, edit func(*ssf.Envelope)) string {
	t.Helper()
	env := ssf.Envelope{Issuer: testIssuer, ID: "jti-" + session, Audience: streamAudience, IssuedAt: t0}
	if edit != nil {
		edit(&env)
	}
	raw, err := ssf.BuildSessionRevoked(k, env, session, t0, ssf.InitiatingPolicy, "violation: scope_outside_intent")
	require.NoError(t, err)
	return raw
}

// push POSTs body to h as a transmitter does and returns the status and
// the RFC 8935 error code, if any.
func push(t *testing.T, h http.Handler, body string, edit func(*http.Request)) (int, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/ssf/events", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/secevent+jwt")
	req.Header.Set("Authorization", "Bearer stream-secret")
	if edit != nil {
		edit(req)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code == http.StatusAccepted {
		return rec.Code, ""
	}
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var e struct {
		Err         string `json:"err"`
		Description string `json:"description"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), rec.Body.String())
	assert.NotEmpty(t, e.Description)
	assert.NotContains(t, e.Description, body, "the SET is never echoed")
	return rec.Code, e.Err
}

// TestSETReceiverClosesTheSessionAtOnce: a valid session-revoked SET is
// accepted with 202, and the session's credentials are refused from then
// on, with no revocation sync, even after a complete revocation list that
// does not hold the session yet; other sessions are untouched.
func TestSETReceiverClosesTheSessionAtOnce(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	c := newClock(t0)
	v := newVerifier(t, testConfig(f, c))
	var got []*ssf.SET
	var mu sync.Mutex
	h := v.SETReceiver(SETReceiverConfig{Audience: streamAudience, Authorization: "Bearer stream-secret", OnSET: func(s *ssf.SET) {
		mu.Lock()
		got = append(got, s)
		mu.Unlock()
	}})

	cred := mint(t, k, nil) // session sess-1
	other := mint(t, k, func(c *token.Claims) { c.Txn = "sess-2"; c.ID = "cred-2" })
	_, err := v.Verify(context.Background(), cred)
	require.NoError(t, err)

	status, code := push(t, h, sessionRevoked(t, k, "sess-1", nil), nil)
	require.Equal(t, http.StatusAccepted, status, code)
	_, err = v.Verify(context.Background(), cred)
	assert.ErrorIs(t, err, ErrSessionClosed)
	_, err = v.Verify(context.Background(), other)
	assert.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, "sess-1", got[0].SessionID())

	// The middleware refuses it too.
	mw := v.Middleware(func(*http.Request) (string, string, error) { return "read", "docs/a", nil },
		http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	req := httptest.NewRequest(http.MethodGet, "/docs/a", nil)
	req.Header.Set("Authorization", "Bearer "+cred)
	rec := httptest.NewRecorder()
	mw.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusUnauthorized, rec.Code)

	// A complete revocation list without the session does not reopen it.
	f.setRevocations(7, "sess-9")
	require.NoError(t, v.PollRevocations(context.Background()))
	_, err = v.Verify(context.Background(), cred)
	assert.ErrorIs(t, err, ErrSessionClosed)

	// The same SET again (delivery is at least once) is accepted again.
	status, _ = push(t, h, sessionRevoked(t, k, "sess-1", nil), nil)
	assert.Equal(t, http.StatusAccepted, status)

	// The entry is kept for MaxLifetime (1h by default), then dropped:
	// no credential of the session lives longer.
	assert.True(t, v.closedBySETAt("sess-1", t0.Add(59*time.Minute)))
	assert.False(t, v.closedBySETAt("sess-1", t0.Add(61*time.Minute)))
}

// TestSETReceiverRefusesBadSETs: every bad push is a 400 (405 for a
// method other than POST) with RFC 8935's error code, and closes nothing.
func TestSETReceiverRefusesBadSETs(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	stranger := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	v := newVerifier(t, testConfig(f, newClock(t0)))
	h := v.SETReceiver(SETReceiverConfig{Audience: streamAudience, Authorization: "Bearer stream-secret"})

	good := sessionRevoked(t, k, "sess-1", nil)
	parts := strings.Split(good, ".")
	// Another base64url character in the middle of the signature: still
	// canonical, no longer the signature.
	sig := []byte(parts[2])
	if sig[5] == 'A' {
		sig[5] = 'B'
	} else {
		sig[5] = 'A'
	}
	verification, err := ssf.BuildVerification(k, ssf.Envelope{Issuer: testIssuer, ID: "v", Audience: streamAudience, IssuedAt: t0}, "stream-1", "st")
	require.NoError(t, err)
	unknownEvent, err := token.SignJWS(k, ssf.Type, []byte(`{"iss":"`+testIssuer+`","jti":"j","iat":`+
		"1800000000"+`,"aud":"`+streamAudience+`","txn":"sess-1","events":{"https://schemas.openid.net/secevent/caep/event-type/credential-change":{}}}`))
	require.NoError(t, err)

	for _, tc := range []struct {
		name   string
		body   string
		edit   func(*http.Request)
		status int
		code   string
	}{
		{"no Authorization header", good, func(r *http.Request) { r.Header.Del("Authorization") }, 400, "authentication_failed"},
		{"a wrong Authorization header", good, func(r *http.Request) { r.Header.Set("Authorization", "Bearer guess") }, 400, "authentication_failed"},
		{"a GET", good, func(r *http.Request) { r.Method = http.MethodGet }, 405, "invalid_request"},
		{"plain JSON", good, func(r *http.Request) { r.Header.Set("Content-Type", "application/json") }, 400, "invalid_request"},
		{"not a JWS", "not-a-set", nil, 400, "invalid_request"},
		{"a step credential", mint(t, k, nil), nil, 400, "invalid_request"},
		{"an unknown event", unknownEvent, nil, 400, "invalid_request"},
		{"a stranger's key", sessionRevoked(t, stranger, "sess-1", nil), nil, 400, "invalid_key"},
		{"a tampered signature", parts[0] + "." + parts[1] + "." + string(sig), nil, 400, "invalid_key"},
		{"another issuer", sessionRevoked(t, k, "sess-1", func(e *ssf.Envelope) { e.Issuer = "vault:elsewhere" }), nil, 400, "invalid_issuer"},
		{"another audience", sessionRevoked(t, k, "sess-1", func(e *ssf.Envelope) { e.Audience = "someone-else" }), nil, 400, "invalid_audience"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, code := push(t, h, tc.body, tc.edit)
			assert.Equal(t, tc.status, status)
			assert.Equal(t, tc.code, code)
		})
	}
	_, err = v.Verify(context.Background(), mint(t, k, nil))
	assert.NoError(t, err, "no bad push closed the session")

	// A verification event is accepted and closes nothing.
	status, _ := push(t, h, verification, nil)
	assert.Equal(t, http.StatusAccepted, status)
	_, err = v.Verify(context.Background(), mint(t, k, nil))
	assert.NoError(t, err)
}

// TestSETReceiverFollowsKeyRotation: a SET signed with a key the verifier
// has not seen yet makes it refetch the JWKS, as a credential does.
func TestSETReceiverFollowsKeyRotation(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	c := newClock(t0)
	v := newVerifier(t, testConfig(f, c))
	h := v.SETReceiver(SETReceiverConfig{Audience: streamAudience})

	rotated := genKey(t, token.AlgES256)
	f.setKeys(k, rotated)
	c.Add(time.Minute) // past JWKSRefreshFloor
	status, code := push(t, h, sessionRevoked(t, rotated, "sess-1", nil), func(r *http.Request) { r.Header.Del("Authorization") })
	require.Equal(t, http.StatusAccepted, status, code)
	_, err := v.Verify(context.Background(), mint(t, k, nil))
	assert.ErrorIs(t, err, ErrSessionClosed)
}

// TestSETReceiverDefaultsToTheVerifiersAudience: without an audience of
// its own, the receiver takes SETs for the verifier's Config.Audience.
func TestSETReceiverDefaultsToTheVerifiersAudience(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	v := newVerifier(t, testConfig(newFakeEngine(t, k), newClock(t0)))
	h := v.SETReceiver(SETReceiverConfig{})
	status, _ := push(t, h, sessionRevoked(t, k, "sess-1", func(e *ssf.Envelope) { e.Audience = testAudience }), nil)
	assert.Equal(t, http.StatusAccepted, status)
	status, code := push(t, h, sessionRevoked(t, k, "sess-2", nil), nil)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "invalid_audience", code)
}
