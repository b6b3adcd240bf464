package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/scope"
)

// started starts a session on a fake that answers the start.
func started(t *testing.T) (*fakeVault, *Session) {
	t.Helper()
	f := newFakeVault(t)
	f.on(http.MethodPut, "agent/session", http.StatusOK, sessionReply())
	s, err := New(f.vaultClient(), "agent").Start(context.Background(), Intent{Role: "deployer"})
	require.NoError(t, err)
	return f, s
}

// num turns a JSON number of a recorded body into an int64.
func num(t *testing.T, v interface{}) int64 {
	t.Helper()
	n, ok := v.(json.Number)
	require.True(t, ok, "%#v is not a JSON number", v)
	i, err := n.Int64()
	require.NoError(t, err)
	return i
}

// strs turns a JSON array of a recorded body into strings.
func strs(t *testing.T, v interface{}) []string {
	t.Helper()
	if s, ok := v.(string); ok {
		// A query parameter: comma-separated, read as the engine does.
		return scope.Rejoin(strings.Split(s, ","))
	}
	l, ok := v.([]interface{})
	require.True(t, ok, "%#v is not a JSON array", v)
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, ok := x.(string)
		require.True(t, ok)
		out = append(out, s)
	}
	return out
}

func TestNew(t *testing.T) {
	f := newFakeVault(t)
	vc := f.vaultClient()
	require.Equal(t, 2, vc.MaxRetries(), "the default config retries")
	c := New(vc, "/agent/")
	assert.Equal(t, "agent", c.mount)
	assert.Equal(t, 0, c.vault.MaxRetries(), "the engine's client never retries")
	assert.Equal(t, testToken, c.vault.Token())
	assert.Equal(t, 2, vc.MaxRetries(), "the caller's client is untouched")
	assert.NotSame(t, vc, c.vault)

	// A token set on the caller's client later does not leak in.
	vc.SetToken("other")
	assert.Equal(t, testToken, c.vault.Token())
}

func TestStart(t *testing.T) {
	f := newFakeVault(t)
	f.on(http.MethodPut, "team/agent/session", http.StatusOK, sessionReply())
	c := New(f.vaultClient(), "team/agent")

	s, err := c.Start(context.Background(), Intent{
		Role:      "deployer",
		Purpose:   "rotate the web TLS certificate",
		Scopes:    []string{"read,list:secrets/web/*", "write:secrets/web/tls"},
		Audiences: []string{"secrets-api", "deploy-api"},
		TTL:       90 * time.Minute,
		MaxSteps:  20,
		MaxDepth:  2,
		MaxRate:   5,
		Metadata:  map[string]string{"ticket": "OPS-1"},
	})
	require.NoError(t, err)

	reqs := f.received(http.MethodPut, "team/agent/session")
	require.Len(t, reqs, 1)
	r := reqs[0]
	assert.Equal(t, testToken, r.Token)
	assert.Equal(t, "deployer", r.Body["role"])
	assert.Equal(t, "rotate the web TLS certificate", r.Body["purpose"])
	assert.Equal(t, []string{"read,list:secrets/web/*", "write:secrets/web/tls"}, strs(t, r.Body["scopes"]))
	assert.Equal(t, []string{"secrets-api", "deploy-api"}, strs(t, r.Body["audiences"]))
	assert.Equal(t, int64(5400), num(t, r.Body["ttl"]))
	assert.Equal(t, int64(20), num(t, r.Body["max_steps"]))
	assert.Equal(t, int64(2), num(t, r.Body["max_depth"]))
	assert.Equal(t, int64(5), num(t, r.Body["max_rate"]))
	assert.Equal(t, map[string]interface{}{"ticket": "OPS-1"}, r.Body["metadata"])

	assert.Equal(t, testSession, s.ID)
	assert.Equal(t, "deployer", s.Role)
	assert.Equal(t, []string{"read,list:secrets/web/*"}, s.Scopes)
	assert.Equal(t, []string{"secrets-api"}, s.Audiences)
	assert.Equal(t, 20, s.MaxSteps)
	assert.Equal(t, time.Date(2026, 11, 26, 1, 38, 6, 0, time.UTC), s.ExpiresAt().UTC())
	assert.Equal(t, testLease, s.LeaseID)
}

func TestStartMinimalIntent(t *testing.T) {
	f := newFakeVault(t)
	f.on(http.MethodPut, "agent/session", http.StatusOK, sessionReply())
	_, err := New(f.vaultClient(), "agent").Start(context.Background(), Intent{Role: "deployer"})
	require.NoError(t, err)
	reqs := f.received(http.MethodPut, "agent/session")
	require.Len(t, reqs, 1)
	// Empty fields are left out so the role's values apply.
	assert.Equal(t, map[string]interface{}{"role": "deployer", "purpose": ""}, reqs[0].Body)
}

func TestStartErrors(t *testing.T) {
	t.Run("intent wider than the role", func(t *testing.T) {
		f := newFakeVault(t)
		f.onError(http.MethodPut, "agent/session", http.StatusBadRequest,
			"scopes: write:secrets/web/tls is not inside the role's scopes")
		s, err := New(f.vaultClient(), "agent").Start(context.Background(), Intent{Role: "deployer", Scopes: []string{"write:secrets/web/tls"}})
		require.Error(t, err)
		assert.Nil(t, s)
		assert.ErrorIs(t, err, ErrBadRequest)
		assert.NotErrorIs(t, err, ErrViolation)
		assert.NotErrorIs(t, err, ErrSessionClosed)
		var e *Error
		require.ErrorAs(t, err, &e)
		assert.Equal(t, 400, e.StatusCode)
		assert.Equal(t, "", e.Kind)
		assert.Equal(t, "scopes: write:secrets/web/tls is not inside the role's scopes", e.Message)
		assert.Equal(t, e.Message, err.Error())
	})
	t.Run("unknown role", func(t *testing.T) {
		f := newFakeVault(t)
		f.onError(http.MethodPut, "agent/session", http.StatusBadRequest, `role "nope" does not exist`)
		_, err := New(f.vaultClient(), "agent").Start(context.Background(), Intent{Role: "nope"})
		assert.ErrorIs(t, err, ErrBadRequest)
	})
	t.Run("no data", func(t *testing.T) {
		f := newFakeVault(t)
		f.on(http.MethodPut, "agent/session", http.StatusNoContent, nil)
		_, err := New(f.vaultClient(), "agent").Start(context.Background(), Intent{Role: "deployer"})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "no data")
	})
	t.Run("no session_id", func(t *testing.T) {
		f := newFakeVault(t)
		rep := sessionReply()
		delete(rep["data"].(map[string]interface{}), "session_id")
		f.on(http.MethodPut, "agent/session", http.StatusOK, rep)
		_, err := New(f.vaultClient(), "agent").Start(context.Background(), Intent{Role: "deployer"})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "session_id")
	})
	t.Run("transport", func(t *testing.T) {
		f := newFakeVault(t)
		vc := f.vaultClient()
		f.srv.Close()
		_, err := New(vc, "agent").Start(context.Background(), Intent{Role: "deployer"})
		require.Error(t, err)
		var e *Error
		assert.False(t, errors.As(err, &e), "a transport failure is not a refusal")
	})
}

func TestStep(t *testing.T) {
	f, s := started(t)
	f.on(http.MethodGet, "agent/creds/"+testSession, http.StatusOK, credReply("tok-1", 1))

	cred, err := s.Step(context.Background(), StepRequest{
		Scopes:      []string{"read:secrets/web/tls", "list:secrets/web"},
		Audience:    "secrets-api",
		TTL:         2 * time.Minute,
		Description: "fetch the cert",
		Actor:       "fetcher",
		CnfJKT:      "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
	})
	require.NoError(t, err)

	// A step is a read, its fields query parameters: Vault then sends the
	// plugin only the request (a write is preceded by an existence check).
	reqs := f.received(http.MethodGet, "agent/creds/"+testSession)
	require.Len(t, reqs, 1)
	assert.Empty(t, f.received(http.MethodPut, "agent/creds/"+testSession))
	b := reqs[0].Body
	assert.Equal(t, testToken, reqs[0].Token)
	assert.Equal(t, []string{"read:secrets/web/tls", "list:secrets/web"}, strs(t, b["scopes"]))
	assert.Equal(t, "secrets-api", b["audience"])
	assert.Equal(t, "120", b["ttl"])
	assert.Equal(t, "fetch the cert", b["description"])
	assert.Equal(t, "fetcher", b["actor"])
	assert.Equal(t, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs", b["cnf_jkt"])
	assert.NotContains(t, b, "parent_token", "a step has no parent")

	assert.Equal(t, "tok-1", cred.Token)
	assert.Equal(t, "cred-tok-1", cred.ID)
	assert.Equal(t, []string{"read:secrets/web/tls"}, cred.Scopes)
	assert.Equal(t, "secrets-api", cred.Audience)
	assert.Equal(t, 1, cred.Depth)
	assert.Equal(t, time.Date(2026, 11, 26, 0, 43, 6, 0, time.UTC), cred.ExpiresAt.UTC())
	assert.Equal(t, []string{"ttl of 1h0m0s clamped to the role's step_max_ttl of 5m0s"}, cred.Warnings)
}

func TestStepMinimalRequest(t *testing.T) {
	f, s := started(t)
	f.on(http.MethodGet, "agent/creds/"+testSession, http.StatusOK, credReply("tok-1", 1))
	_, err := s.Step(context.Background(), StepRequest{Scopes: []string{"read:secrets/web/tls"}, Audience: "secrets-api"})
	require.NoError(t, err)
	reqs := f.received(http.MethodGet, "agent/creds/"+testSession)
	require.Len(t, reqs, 1)
	assert.Equal(t, map[string]interface{}{
		"scopes":   "read:secrets/web/tls",
		"audience": "secrets-api",
	}, reqs[0].Body)
}

func TestStepNoToken(t *testing.T) {
	f, s := started(t)
	rep := credReply("", 1)
	f.on(http.MethodGet, "agent/creds/"+testSession, http.StatusOK, rep)
	_, err := s.Step(context.Background(), StepRequest{Scopes: []string{"read:x"}, Audience: "a"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no token")

	f.on(http.MethodGet, "agent/creds/"+testSession, http.StatusNoContent, nil)
	_, err = s.Step(context.Background(), StepRequest{Scopes: []string{"read:x"}, Audience: "a"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no data")
}

func TestDerive(t *testing.T) {
	f, s := started(t)
	f.on(http.MethodGet, "agent/creds/"+testSession, http.StatusOK, credReply("tok-1", 1))
	parent, err := s.Step(context.Background(), StepRequest{Scopes: []string{"read,list:secrets/web/*"}, Audience: "secrets-api"})
	require.NoError(t, err)

	f.on(http.MethodPut, "agent/creds/"+testSession, http.StatusOK, credReply("tok-2", 2))
	child, err := s.Derive(context.Background(), parent, StepRequest{
		Scopes: []string{"read:secrets/web/tls"}, Audience: "secrets-api", Actor: "sub-agent", Description: "read only",
	})
	require.NoError(t, err)
	assert.Equal(t, "tok-2", child.Token)
	assert.Equal(t, 2, child.Depth)

	// A parent_token is a credential: it goes in a PUT's body, never
	// into a URL.
	reqs := f.received(http.MethodPut, "agent/creds/"+testSession)
	require.Len(t, reqs, 1)
	b := reqs[0].Body
	assert.Equal(t, "tok-1", b["parent_token"])
	assert.Equal(t, "sub-agent", b["actor"])
	assert.Equal(t, "read only", b["description"])
	assert.Equal(t, []string{"read:secrets/web/tls"}, strs(t, b["scopes"]))
	assert.Equal(t, "secrets-api", b["audience"])

	_, err = s.Derive(context.Background(), nil, StepRequest{Scopes: []string{"read:x"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "parent")
	assert.Len(t, f.received(http.MethodPut, "agent/creds/"+testSession), 1, "no request without a parent")
}

// TestStepErrorMapping: the client reads what a refusal is (its reason,
// violation kind, field and the session's state) from the answer's data,
// never from its message: every message here is gibberish.
func TestStepErrorMapping(t *testing.T) {
	all := []error{
		ErrViolation, ErrScopeOutsideIntent, ErrAudienceOutsideIntent, ErrDepthExceeded,
		ErrBudgetExhausted, ErrRateExceeded, ErrForeignCaller, ErrBadParent,
		ErrSessionClosed, ErrBadRequest, ErrNotFound,
	}
	violation := func(kind, state string) map[string]interface{} {
		return map[string]interface{}{"reason": "violation", "violation": kind, "session_id": testSession, "session_state": state}
	}
	cases := []struct {
		name   string
		status int
		data   map[string]interface{}
		is     []error
		kind   string
		field  string
		closed bool
	}{
		{"bad request", 400, map[string]interface{}{"reason": "malformed", "field": "scopes"}, []error{ErrBadRequest}, "", "scopes", false},
		{"scope violation, revoked", 403, violation("scope_outside_intent", "revoked"),
			[]error{ErrViolation, ErrScopeOutsideIntent, ErrSessionClosed}, "scope_outside_intent", "", true},
		{"audience violation, denied", 403, violation("audience_outside_intent", "active"),
			[]error{ErrViolation, ErrAudienceOutsideIntent}, "audience_outside_intent", "", false},
		{"depth", 403, violation("depth_exceeded", "revoked"),
			[]error{ErrViolation, ErrDepthExceeded, ErrSessionClosed}, "depth_exceeded", "", true},
		{"budget", 403, violation("budget_exhausted", "active"),
			[]error{ErrViolation, ErrBudgetExhausted}, "budget_exhausted", "", false},
		{"foreign caller", 403, map[string]interface{}{"reason": "foreign_caller", "session_id": testSession},
			[]error{ErrForeignCaller}, "", "", false},
		{"bad parent", 403, violation("bad_parent", "active"),
			[]error{ErrViolation, ErrBadParent}, "bad_parent", "", false},
		{"rate", 429, violation("rate_exceeded", "active"),
			[]error{ErrViolation, ErrRateExceeded}, "rate_exceeded", "", false},
		{"rate, revoked", 429, violation("rate_exceeded", "revoked"),
			[]error{ErrViolation, ErrRateExceeded, ErrSessionClosed}, "rate_exceeded", "", true},
		{"unknown kind", 403, violation("reported_misuse", "active"),
			[]error{ErrViolation}, "reported_misuse", "", false},
		{"session revoked", 403, map[string]interface{}{"reason": "session_closed", "session_state": "revoked"},
			[]error{ErrSessionClosed}, "", "", true},
		{"session ended", 403, map[string]interface{}{"reason": "session_closed", "session_state": "ended"},
			[]error{ErrSessionClosed}, "", "", true},
		{"session expired", 403, map[string]interface{}{"reason": "session_closed", "session_state": "expired"},
			[]error{ErrSessionClosed}, "", "", true},
		{"permission denied (Vault's own)", 403, nil, nil, "", "", false},
		{"not found", 404, map[string]interface{}{"reason": "not_found", "field": "session_id"}, []error{ErrNotFound}, "", "session_id", false},
		{"server error", 500, nil, nil, "", "", false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, s := started(t)
			gibberish := fmt.Sprintf("zqx %d violation session is revoked belongs to another caller", i)
			body := map[string]interface{}{"errors": []string{gibberish}}
			if tc.data != nil {
				body["data"] = tc.data
			}
			f.on(http.MethodGet, "agent/creds/"+testSession, tc.status, body)
			f.on(http.MethodPut, "agent/creds/"+testSession, tc.status, body)
			cred, err := s.Step(context.Background(), StepRequest{Scopes: []string{"write:secrets/web/tls"}, Audience: "secrets-api"})
			require.Error(t, err)
			assert.Nil(t, cred)

			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, tc.status, e.StatusCode)
			assert.Equal(t, tc.kind, e.Kind)
			assert.Equal(t, tc.field, e.Field)
			assert.Equal(t, tc.closed, e.SessionClosed)
			assert.Equal(t, gibberish, e.Message, "the message is passed on for people")
			for _, sentinel := range all {
				want := false
				for _, w := range tc.is {
					want = want || w == sentinel
				}
				assert.Equal(t, want, errors.Is(err, sentinel), "errors.Is(%q)", sentinel)
			}
			// Never retried: every retry of a refusal would be another
			// request against the session (another rate_exceeded). Only
			// Vault's own "permission denied" to the read is asked again
			// as a write (TestStepByWriteWhenThePolicyGrantsOnlyUpdate).
			assert.Len(t, f.received(http.MethodGet, "agent/creds/"+testSession), 1)
			assert.Empty(t, f.received(http.MethodPut, "agent/creds/"+testSession))
		})
	}
}

func TestErrorIsThroughWrapping(t *testing.T) {
	var err error = &Error{StatusCode: 403, Kind: "budget_exhausted", SessionClosed: true, Message: "violation budget_exhausted: x"}
	wrapped := errors.Join(errors.New("step 3"), err)
	assert.ErrorIs(t, wrapped, ErrBudgetExhausted)
	assert.ErrorIs(t, wrapped, ErrSessionClosed)
	assert.ErrorIs(t, wrapped, ErrViolation)
	assert.NotErrorIs(t, wrapped, ErrRateExceeded)
	assert.NoError(t, asError(nil, nil))
	plain := errors.New("dial tcp: refused")
	assert.Same(t, plain, asError(nil, plain))
	multi := asError(nil, &api.ResponseError{StatusCode: 400, Errors: []string{"a", "b"}})
	assert.Equal(t, "a; b", multi.Error())
}

func TestStatus(t *testing.T) {
	f, s := started(t)
	f.on(http.MethodGet, "agent/session/"+testSession, http.StatusOK, map[string]interface{}{
		"data": map[string]interface{}{
			"session_id":      testSession,
			"state":           "revoked",
			"steps_used":      3,
			"violation_count": 1,
			"revoked_reason":  "violation: scope_outside_intent",
		},
	})
	st, err := s.Status(context.Background())
	require.NoError(t, err)
	assert.Equal(t, &Status{State: "revoked", StepsUsed: 3, ViolationCount: 1, RevokedReason: "violation: scope_outside_intent"}, st)
	reqs := f.received(http.MethodGet, "agent/session/"+testSession)
	require.Len(t, reqs, 1)
	assert.Equal(t, testToken, reqs[0].Token)

	f.on(http.MethodGet, "agent/session/"+testSession, http.StatusOK, map[string]interface{}{
		"data": map[string]interface{}{"state": "active", "steps_used": 0, "revoked_reason": ""},
	})
	st, err = s.Status(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "active", st.State)
	assert.Equal(t, "", st.RevokedReason)
}

func TestStatusErrors(t *testing.T) {
	f, s := started(t)
	// Vault answers a read of a missing session with 404 and no errors.
	f.onError(http.MethodGet, "agent/session/"+testSession, http.StatusNotFound)
	_, err := s.Status(context.Background())
	require.ErrorIs(t, err, ErrNotFound)
	assert.NotErrorIs(t, err, ErrSessionClosed)
	assert.Contains(t, err.Error(), testSession)

	f.onError(http.MethodGet, "agent/session/"+testSession, http.StatusForbidden, "permission denied")
	_, err = s.Status(context.Background())
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 403, e.StatusCode)
}

func TestEnd(t *testing.T) {
	f, s := started(t)
	f.on(http.MethodPut, "agent/sessions/"+testSession+"/end", http.StatusNoContent, nil)
	require.NoError(t, s.End(context.Background()))
	reqs := f.received(http.MethodPut, "agent/sessions/"+testSession+"/end")
	require.Len(t, reqs, 1)
	assert.Equal(t, testToken, reqs[0].Token)

	f.on(http.MethodPut, "agent/sessions/"+testSession+"/end", http.StatusConflict, map[string]interface{}{
		"errors": []string{"session sess-1 is ended: it is closed and issues no more credentials"},
		"data":   map[string]interface{}{"reason": "session_closed", "session_id": testSession, "session_state": "ended"},
	})
	err := s.End(context.Background())
	assert.ErrorIs(t, err, ErrSessionClosed)
	assert.NotErrorIs(t, err, ErrViolation)

	f.onError(http.MethodPut, "agent/sessions/"+testSession+"/end", http.StatusNotFound, "session sess-1 not found")
	assert.ErrorIs(t, s.End(context.Background()), ErrNotFound)
}

func TestContextCancelled(t *testing.T) {
	f, s := started(t)
	f.on(http.MethodGet, "agent/creds/"+testSession, http.StatusOK, credReply("tok-1", 1))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Step(ctx, StepRequest{Scopes: []string{"read:x"}, Audience: "a"})
	require.ErrorIs(t, err, context.Canceled)
}

func TestDecodeHelpers(t *testing.T) {
	assert.Equal(t, []string{"a", "b"}, stringList([]string{"a", "b"}))
	assert.Equal(t, []string{"a", "1"}, stringList([]interface{}{"a", json.Number("1")}))
	assert.Nil(t, stringList("a"))
	assert.Nil(t, stringList(nil))

	assert.Equal(t, 7, intOf(json.Number("7")))
	assert.Equal(t, 0, intOf(json.Number("x")))
	assert.Equal(t, 7, intOf(float64(7)))
	assert.Equal(t, 7, intOf(7))
	assert.Equal(t, 0, intOf("7"))
	assert.Equal(t, 0, intOf(nil))
}

// TestStepByWriteWhenThePolicyGrantsOnlyUpdate: a token whose policy
// grants update but not read on the creds path gets Vault's own 403 to
// the read; the step is asked again as a write, and every later step of
// that Client is a write straight away.
func TestStepByWriteWhenThePolicyGrantsOnlyUpdate(t *testing.T) {
	f, s := started(t)
	f.onError(http.MethodGet, "agent/creds/"+testSession, http.StatusForbidden, "1 error occurred:\n\t* permission denied\n\n")
	f.on(http.MethodPut, "agent/creds/"+testSession, http.StatusOK, credReply("tok-1", 1))
	for range 2 {
		cred, err := s.Step(context.Background(), StepRequest{Scopes: []string{"read:secrets/web/tls"}, Audience: "secrets-api"})
		require.NoError(t, err)
		assert.Equal(t, "tok-1", cred.Token)
	}
	assert.Len(t, f.received(http.MethodGet, "agent/creds/"+testSession), 1, "asked by read once")
	puts := f.received(http.MethodPut, "agent/creds/"+testSession)
	require.Len(t, puts, 2)
	assert.Equal(t, []string{"read:secrets/web/tls"}, strs(t, puts[0].Body["scopes"]))
}

// TestStepStaysAReadWhenTheWriteIsDeniedToo: a token denied both
// operations keeps asking by read (the policy may be fixed to grant it).
func TestStepStaysAReadWhenTheWriteIsDeniedToo(t *testing.T) {
	f, s := started(t)
	for _, m := range []string{http.MethodGet, http.MethodPut} {
		f.onError(m, "agent/creds/"+testSession, http.StatusForbidden, "1 error occurred:\n\t* permission denied\n\n")
	}
	for range 2 {
		_, err := s.Step(context.Background(), StepRequest{Scopes: []string{"read:secrets/web/tls"}, Audience: "secrets-api"})
		var e *Error
		require.ErrorAs(t, err, &e)
		assert.Equal(t, http.StatusForbidden, e.StatusCode)
	}
	assert.Len(t, f.received(http.MethodGet, "agent/creds/"+testSession), 2)
	assert.Len(t, f.received(http.MethodPut, "agent/creds/"+testSession), 2)
}

// TestStepScopesAreOneQueryValue: several scopes go into one
// comma-separated value, which Vault's policy parameter checks read piece
// by piece (a repeated parameter arrives as a list they do not check).
func TestStepScopesAreOneQueryValue(t *testing.T) {
	f, s := started(t)
	var query url.Values
	f.hook(http.MethodGet, "agent/creds/"+testSession, func(r request) { query = r.Query })
	f.on(http.MethodGet, "agent/creds/"+testSession, http.StatusOK, credReply("tok-1", 1))
	_, err := s.Step(context.Background(), StepRequest{Scopes: []string{"read,list:secrets/web/*", "write:secrets/web/tmp/*"}, Audience: "secrets-api"})
	require.NoError(t, err)
	assert.Equal(t, []string{"read,list:secrets/web/*,write:secrets/web/tmp/*"}, query["scopes"])
}

// TestLongStepIsAWrite: a step whose query would be longer than proxies
// accept is a write.
func TestLongStepIsAWrite(t *testing.T) {
	f, s := started(t)
	f.on(http.MethodPut, "agent/creds/"+testSession, http.StatusOK, credReply("tok-1", 1))
	many := make([]string, 64)
	for i := range many {
		many[i] = fmt.Sprintf("read:secrets/web/%s/%d", strings.Repeat("x", 40), i)
	}
	_, err := s.Step(context.Background(), StepRequest{Scopes: many, Audience: "secrets-api"})
	require.NoError(t, err)
	assert.Empty(t, f.received(http.MethodGet, "agent/creds/"+testSession))
	require.Len(t, f.received(http.MethodPut, "agent/creds/"+testSession), 1)
	assert.Len(t, strs(t, f.received(http.MethodPut, "agent/creds/"+testSession)[0].Body["scopes"]), 64)

	_, err = s.Derive(context.Background(), &Credential{}, StepRequest{Scopes: []string{"read:x"}, Audience: "secrets-api"})
	require.Error(t, err, "a parent without its token is refused, never taken as a step")
	assert.Len(t, f.received(http.MethodPut, "agent/creds/"+testSession), 1)
}

// TestStepNeverAskedAgainAfterTheEnginesRefusal: a 403 of the engine (a
// foreign caller, a violation) is an answer, not a policy's refusal: the
// step is not asked again.
func TestStepNeverAskedAgainAfterTheEnginesRefusal(t *testing.T) {
	f, s := started(t)
	f.on(http.MethodGet, "agent/creds/"+testSession, http.StatusForbidden, map[string]interface{}{
		"errors": []string{"session sess-1 belongs to another caller"},
		"data":   map[string]interface{}{"reason": "foreign_caller"},
	})
	f.on(http.MethodPut, "agent/creds/"+testSession, http.StatusOK, credReply("tok-1", 1))
	_, err := s.Step(context.Background(), StepRequest{Scopes: []string{"read:secrets/web/tls"}, Audience: "secrets-api"})
	require.ErrorIs(t, err, ErrForeignCaller)
	assert.Empty(t, f.received(http.MethodPut, "agent/creds/"+testSession))
	_, err = s.Step(context.Background(), StepRequest{Scopes: []string{"read:secrets/web/tls"}, Audience: "secrets-api"})
	require.ErrorIs(t, err, ErrForeignCaller, "still asked by read")
}
