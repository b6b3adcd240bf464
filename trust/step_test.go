package trust

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/continuoustrust/vault-plugin-secrets-agent/scope"
)

// stepReq is a well-formed request inside testRole's intent.
func stepReq() StepRequest {
	return StepRequest{Caller: creator, Scopes: []string{"read:secrets/web/tls"}, Audience: "vault"}
}

func parentOf(s *Session, scopes string, depth int, expiry time.Time) *Parent {
	return &Parent{ID: "cred-parent", Session: s.ID, Scope: scopes, Depth: depth, Expiry: expiry}
}

func TestCheckStepSuccess(t *testing.T) {
	s := newSession(t, nil, IntentRequest{})
	now := t0.Add(time.Minute)
	lim := &countingLimiter{allow: true}
	req := stepReq()
	req.Scopes = []string{"list,read,read:secrets/web/tls", "deploy:k8s/prod/deployments/web"}
	req.Rate = lim
	req.Description = "read the TLS certificate\nfor the web tier"
	req.Actor = "sub-agent-1"

	g, err := s.CheckStep(req, now)
	require.NoError(t, err)
	assert.Equal(t, []string{"list,read:secrets/web/tls", "deploy:k8s/prod/deployments/web"}, g.Scopes.Strings(), "canonical")
	assert.Equal(t, "vault", g.Audience)
	assert.Equal(t, 1, g.Depth, "a credential taken directly from the session")
	assert.Equal(t, 60*time.Second, g.TTL, "step_ttl by default")
	assert.Empty(t, g.Warnings)
	assert.Equal(t, 1, s.StepsUsed, "the step is counted")
	assert.Equal(t, 1, lim.Calls(), "and spends one rate token")

	g, err = s.CheckStep(StepRequest{Caller: creator, Scopes: []string{"read:secrets/web/a"}, Audience: "k8s", TTL: ptr(2 * time.Minute)}, now)
	require.NoError(t, err)
	assert.Equal(t, 2*time.Minute, g.TTL)
	assert.Equal(t, "k8s", g.Audience)
	assert.Equal(t, 2, s.StepsUsed)
	assert.Equal(t, StateActive, s.State)
	assert.Zero(t, s.ViolationCount)
}

func TestCheckStepDerivedFromParent(t *testing.T) {
	s := newSession(t, nil, IntentRequest{}) // max_depth 3
	now := t0.Add(time.Minute)

	req := stepReq()
	req.Parent = parentOf(s, "read,list:secrets/web/* deploy:k8s/prod/deployments/web", 1, now.Add(5*time.Minute))
	g, err := s.CheckStep(req, now)
	require.NoError(t, err)
	assert.Equal(t, 2, g.Depth, "parent's depth + 1")

	req.Parent = parentOf(s, "read:secrets/web/tls", 2, now.Add(5*time.Minute))
	g, err = s.CheckStep(req, now)
	require.NoError(t, err)
	assert.Equal(t, 3, g.Depth, "max_depth itself is allowed")
	assert.Equal(t, 2, s.StepsUsed)
}

func TestCheckStepViolations(t *testing.T) {
	live := t0.Add(10 * time.Minute)
	cases := []struct {
		name       string
		mutate     func(*Role)
		intent     IntentRequest
		prepare    func(*Session)
		req        func(*Session) StepRequest
		kind       ViolationKind
		detail     string
		credential string
	}{
		{
			name: "audience outside intent",
			req:  func(*Session) StepRequest { r := stepReq(); r.Audience = "payments"; return r },
			kind: AudienceOutsideIntent, detail: `audience "payments" is not among the session's audiences [vault k8s]`,
		},
		{
			name:   "audience of the role but not of the intent",
			intent: IntentRequest{Audiences: []string{"k8s"}},
			req:    func(*Session) StepRequest { return stepReq() }, // audience vault
			kind:   AudienceOutsideIntent, detail: `"vault"`,
		},
		{
			name: "scope outside intent",
			req: func(*Session) StepRequest {
				r := stepReq()
				r.Scopes = []string{"read:secrets/web/tls", "write:secrets/web/tls"}
				return r
			},
			kind: ScopeOutsideIntent, detail: "write:secrets/web/tls is not inside the session's intent (not inside any of",
		},
		{
			name:   "scope of the role but outside a narrower intent, with a witness",
			intent: IntentRequest{Scopes: []string{"read:secrets/web/tls"}},
			req: func(*Session) StepRequest {
				r := stepReq()
				r.Scopes = []string{"read:secrets/web/*"}
				return r
			},
			kind:   ScopeOutsideIntent,
			detail: "read:secrets/web/* is not inside the session's intent (e.g. read on secrets/web/x/x is allowed by read:secrets/web/* but not by read:secrets/web/tls)",
		},
		{
			name: "scope inside intent but outside the parent",
			req: func(s *Session) StepRequest {
				r := stepReq()
				r.Scopes = []string{"list:secrets/web/tls"}
				r.Parent = parentOf(s, "read:secrets/web/*", 1, live.Add(time.Minute))
				return r
			},
			kind: ScopeOutsideIntent, detail: "list:secrets/web/tls is not inside the parent credential's scope (not inside read:secrets/web/*)",
			credential: "cred-parent",
		},
		{
			name: "parent from another session",
			req: func(s *Session) StepRequest {
				r := stepReq()
				r.Parent = parentOf(s, "read:secrets/web/*", 1, live.Add(time.Minute))
				r.Parent.Session = "sess-2"
				return r
			},
			kind: BadParent, detail: "another session", credential: "cred-parent",
		},
		{
			name: "parent with an invalid scope claim",
			req: func(s *Session) StepRequest {
				r := stepReq()
				r.Parent = parentOf(s, "read:secrets//web", 1, live.Add(time.Minute))
				return r
			},
			kind: BadParent, detail: "invalid scope", credential: "cred-parent",
		},
		{
			name: "parent with an empty scope claim",
			req: func(s *Session) StepRequest {
				r := stepReq()
				r.Parent = parentOf(s, "", 1, live.Add(time.Minute))
				return r
			},
			kind: ScopeOutsideIntent, detail: "parent credential's scope", credential: "cred-parent",
		},
		{
			name: "depth exceeded",
			req: func(s *Session) StepRequest {
				r := stepReq()
				r.Parent = parentOf(s, "read:secrets/web/*", 3, live.Add(time.Minute))
				return r
			},
			kind: DepthExceeded, detail: "depth 4 exceeds the session's max_depth 3", credential: "cred-parent",
		},
		{
			name:   "depth exceeded under a narrower intent",
			intent: IntentRequest{MaxDepth: ptr(1)},
			req: func(s *Session) StepRequest {
				r := stepReq()
				r.Parent = parentOf(s, "read:secrets/web/*", 1, live.Add(time.Minute))
				return r
			},
			kind: DepthExceeded, detail: "depth 2 exceeds the session's max_depth 1", credential: "cred-parent",
		},
		{
			name: "parent already expired",
			req: func(s *Session) StepRequest {
				r := stepReq()
				r.Parent = parentOf(s, "read:secrets/web/*", 1, live.Add(-time.Second))
				return r
			},
			kind: BadParent, detail: "parent_token has expired", credential: "cred-parent",
		},
		{
			name: "parent expiring now",
			req: func(s *Session) StepRequest {
				r := stepReq()
				r.Parent = parentOf(s, "read:secrets/web/*", 1, live)
				return r
			},
			kind: BadParent, detail: "parent_token has expired", credential: "cred-parent",
		},
		{
			name: "parent with less than a second left",
			req: func(s *Session) StepRequest {
				r := stepReq()
				r.Parent = parentOf(s, "read:secrets/web/*", 1, live.Add(999*time.Millisecond))
				return r
			},
			kind: BadParent, detail: "parent_token has expired", credential: "cred-parent",
		},
		{
			name:    "budget exhausted",
			intent:  IntentRequest{MaxSteps: ptr(5)},
			prepare: func(s *Session) { s.StepsUsed = 5 },
			req:     func(*Session) StepRequest { return stepReq() },
			kind:    BudgetExhausted, detail: "all 5 steps of the session's max_steps are used",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSession(t, c.mutate, c.intent)
			if c.prepare != nil {
				c.prepare(s)
			}
			before := *s
			lim := &countingLimiter{allow: true}
			req := c.req(s)
			req.Rate = lim

			g, err := s.CheckStep(req, live)
			v := requireViolation(t, err, c.kind, live)
			assert.Contains(t, v.Detail, c.detail)
			assert.Equal(t, c.credential, v.Credential)
			assert.Zero(t, g, "nothing is granted")
			assert.Equal(t, before, *s, "a refused request changes nothing: no budget spent, nothing recorded")
			assert.Zero(t, lim.Calls(), "a refused request spends no rate token")
		})
	}
}

func TestCheckStepRateExceeded(t *testing.T) {
	s := newSession(t, nil, IntentRequest{MaxRate: ptr(6)})
	var limiters RateLimiters
	lim := limiters.For(s.ID, s.Intent.MaxRate)
	step := func(now time.Time) error {
		req := stepReq()
		req.Rate = lim
		_, err := s.CheckStep(req, now)
		return err
	}

	// The bucket starts full: a burst of max_rate.
	for i := 0; i < 6; i++ {
		require.NoError(t, step(t0), "burst %d", i)
	}
	err := step(t0)
	v := requireViolation(t, err, RateExceeded, t0)
	assert.Equal(t, "more than 6 credentials per minute (max_rate)", v.Detail)
	assert.Equal(t, 6, s.StepsUsed, "a refused request spends no budget")

	// It refills at max_rate/60 per second: one token every 10s.
	requireViolation(t, step(t0.Add(9*time.Second)), RateExceeded, t0.Add(9*time.Second))
	require.NoError(t, step(t0.Add(10*time.Second)))
	requireViolation(t, step(t0.Add(10*time.Second)), RateExceeded, t0.Add(10*time.Second))
	require.NoError(t, step(t0.Add(20*time.Second)))
	assert.Equal(t, 8, s.StepsUsed)

	// A long pause refills it to max_rate, never more.
	later := t0.Add(10 * time.Minute)
	for i := 0; i < 6; i++ {
		require.NoError(t, step(later), "burst %d after a pause", i)
	}
	requireViolation(t, step(later), RateExceeded, later)
	assert.Equal(t, 14, s.StepsUsed)
}

func TestCheckStepRefusalsSpendNoRateToken(t *testing.T) {
	s := newSession(t, deny(ViolationLimitCeiling), IntentRequest{MaxRate: ptr(2), MaxSteps: ptr(3)})
	lim := rate.NewLimiter(rate.Limit(2.0/60), 2)
	now := t0.Add(time.Minute)
	do := func(r StepRequest) error { r.Rate = lim; _, err := s.CheckStep(r, now); return err }

	require.NoError(t, do(stepReq()))
	// Many refusals of every sort, at the same instant.
	for i := 0; i < 10; i++ {
		r := stepReq()
		r.Scopes = []string{"write:secrets/web/tls"}
		requireViolation(t, do(r), ScopeOutsideIntent, now)
		r = stepReq()
		r.Audience = "other"
		requireViolation(t, do(r), AudienceOutsideIntent, now)
		r = stepReq()
		r.Scopes = []string{"read:a//b"}
		requireFieldError(t, do(r), "scopes")
		r = stepReq()
		r.Caller = "entity-b"
		var fc *ForeignCallerError
		require.ErrorAs(t, do(r), &fc)
		r = stepReq()
		r.Parent = parentOf(s, "read:secrets/web/tls", 3, now.Add(time.Minute))
		requireViolation(t, do(r), DepthExceeded, now)
	}
	// The second token is still there.
	require.NoError(t, do(stepReq()))
	requireViolation(t, do(stepReq()), RateExceeded, now)
	assert.Equal(t, 2, s.StepsUsed)

	// With the budget nearly spent and the bucket empty, the budget is
	// what refuses: the rate is checked last.
	s.StepsUsed = 3
	requireViolation(t, do(stepReq()), BudgetExhausted, now)
	requireViolation(t, do(stepReq()), BudgetExhausted, now)
	// And a budget refusal spent no token: after 30s exactly one is back.
	s.StepsUsed = 2
	later := now.Add(30 * time.Second)
	_, err := s.CheckStep(StepRequest{Caller: creator, Scopes: []string{"read:secrets/web/a"}, Audience: "vault", Rate: lim}, later)
	require.NoError(t, err)
	assert.Equal(t, 3, s.StepsUsed)
}

func TestCheckStepMalformedIsNotAViolation(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(*StepRequest)
		field string
		part  string
	}{
		{"scope missing", func(r *StepRequest) { r.Scopes = nil }, "scopes", "at least one scope"},
		{"scope empty list", func(r *StepRequest) { r.Scopes = []string{} }, "scopes", "at least one scope"},
		{"scope bad syntax", func(r *StepRequest) { r.Scopes = []string{"read:secrets/web/tls", "read:a//b"} }, "scopes", "element 1"},
		{"scope empty string", func(r *StepRequest) { r.Scopes = []string{""} }, "scopes", "empty scope"},
		{"scope too long", func(r *StepRequest) { r.Scopes = []string{"read:" + strings.Repeat("a", scope.MaxLength)} }, "scopes", "longer than"},
		{"too many scopes", func(r *StepRequest) { r.Scopes = nScopes(scope.MaxSetSize + 1) }, "scopes", "at most 64"},
		{"audience missing", func(r *StepRequest) { r.Audience = "" }, "audience", "is required: one of [vault k8s]"},
		{"audience with a space", func(r *StepRequest) { r.Audience = "va ult" }, "audience", "spaces"},
		{"audience too long", func(r *StepRequest) { r.Audience = strings.Repeat("a", MaxAudienceLength+1) }, "audience", "at most 256"},
		{"audience not UTF-8", func(r *StepRequest) { r.Audience = "\xff" }, "audience", "UTF-8"},
		{"description too long", func(r *StepRequest) { r.Description = strings.Repeat("s", MaxDescriptionLength+1) }, "description", "at most 256 bytes, got 257"},
		{"description with a control character", func(r *StepRequest) { r.Description = "read\x00" }, "description", "control"},
		{"actor too long", func(r *StepRequest) { r.Actor = strings.Repeat("a", MaxActorLength+1) }, "actor", "at most 256 bytes"},
		{"actor with a control character", func(r *StepRequest) { r.Actor = "bot\x1b" }, "actor", "control"},
		{"ttl zero", func(r *StepRequest) { r.TTL = ptr(time.Duration(0)) }, "ttl", "positive"},
		{"ttl negative", func(r *StepRequest) { r.TTL = ptr(-time.Second) }, "ttl", "positive"},
		// Malformed wins over a violation in the same request.
		{"bad scope and a foreign audience", func(r *StepRequest) { r.Scopes = []string{"write:a//b"}; r.Audience = "other" }, "scopes", "empty path segment"},
		{"bad ttl and a wider scope", func(r *StepRequest) { r.Scopes = []string{"*:*"}; r.TTL = ptr(time.Duration(-1)) }, "ttl", "positive"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSession(t, nil, IntentRequest{})
			s.StepsUsed = 7
			before := *s
			lim := &countingLimiter{allow: true}
			req := stepReq()
			req.Rate = lim
			c.edit(&req)
			g, err := s.CheckStep(req, t0.Add(time.Minute))
			requireFieldError(t, err, c.field)
			assert.Contains(t, err.Error(), c.part)
			assert.Zero(t, g)
			assert.Equal(t, before, *s, "no budget spent, nothing recorded")
			assert.Zero(t, lim.Calls())
		})
	}
}

func TestCheckStepBoundedFieldsAtTheirLimits(t *testing.T) {
	s := newSession(t, nil, IntentRequest{})
	req := stepReq()
	req.Description = strings.Repeat("s", MaxDescriptionLength)
	req.Actor = strings.Repeat("a", MaxActorLength)
	req.Scopes = nScopes(scope.MaxSetSize)
	for i := range req.Scopes {
		req.Scopes[i] = fmt.Sprintf("read:secrets/web/s%d", i)
	}
	_, err := s.CheckStep(req, t0)
	require.NoError(t, err)
}

func TestCheckStepTTLClamping(t *testing.T) {
	// testRole: step_ttl 60s, step_max_ttl 5m, lease 15m.
	cases := []struct {
		name     string
		now      time.Duration // after t0
		ttl      *time.Duration
		parent   *time.Duration // parent's remaining life at now
		want     time.Duration
		warnings []string
	}{
		{name: "default", now: time.Minute, want: 60 * time.Second},
		{name: "asked, within limits", now: time.Minute, ttl: ptr(2 * time.Minute), want: 2 * time.Minute},
		{name: "exactly step_max_ttl", now: time.Minute, ttl: ptr(5 * time.Minute), want: 5 * time.Minute},
		{name: "one second", now: time.Minute, ttl: ptr(time.Second), want: time.Second},
		{
			name: "above step_max_ttl", now: time.Minute, ttl: ptr(10 * time.Minute), want: 5 * time.Minute,
			warnings: []string{"ttl of 10m0s is more than the role's step_max_ttl; clamped to 5m0s"},
		},
		{name: "exactly the session's remaining life", now: 14 * time.Minute, want: 60 * time.Second},
		{
			name: "above the session's remaining life", now: 14 * time.Minute, ttl: ptr(2 * time.Minute), want: 60 * time.Second,
			warnings: []string{"ttl of 2m0s is more than the session's remaining life; clamped to 1m0s"},
		},
		{
			name: "remaining life truncated to whole seconds", now: 14*time.Minute + 30*time.Second + 500*time.Millisecond, want: 29 * time.Second,
			warnings: []string{"ttl of 1m0s is more than the session's remaining life; clamped to 29s"},
		},
		{
			name: "above step_max_ttl and the session's remaining life", now: 12 * time.Minute, ttl: ptr(time.Hour), want: 3 * time.Minute,
			warnings: []string{
				"ttl of 1h0m0s is more than the role's step_max_ttl; clamped to 5m0s",
				"ttl of 5m0s is more than the session's remaining life; clamped to 3m0s",
			},
		},
		{
			name: "above the parent's remaining life", now: time.Minute, parent: ptr(20 * time.Second), want: 20 * time.Second,
			warnings: []string{"ttl of 1m0s is more than the parent credential's remaining life; clamped to 20s"},
		},
		{
			name: "parent's remaining life truncated", now: time.Minute, parent: ptr(1500 * time.Millisecond), want: time.Second,
			warnings: []string{"ttl of 1m0s is more than the parent credential's remaining life; clamped to 1s"},
		},
		{name: "parent outlives the step", now: time.Minute, parent: ptr(time.Hour), want: 60 * time.Second},
		{
			name: "every clamp", now: 13 * time.Minute, ttl: ptr(time.Hour), parent: ptr(90 * time.Second), want: 90 * time.Second,
			warnings: []string{
				"ttl of 1h0m0s is more than the role's step_max_ttl; clamped to 5m0s",
				"ttl of 5m0s is more than the session's remaining life; clamped to 2m0s",
				"ttl of 2m0s is more than the parent credential's remaining life; clamped to 1m30s",
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSession(t, nil, IntentRequest{})
			now := t0.Add(c.now)
			req := stepReq()
			req.TTL = c.ttl
			if c.parent != nil {
				req.Parent = parentOf(s, "read:secrets/web/*", 1, now.Add(*c.parent))
			}
			g, err := s.CheckStep(req, now)
			require.NoError(t, err, "clamp and warn, never fail")
			assert.Equal(t, c.want, g.TTL)
			assert.Equal(t, c.warnings, g.Warnings)
			assert.Equal(t, 1, s.StepsUsed)
			assert.False(t, now.Add(g.TTL).After(s.ExpiresAt), "never outlives the session's lease")
		})
	}
}

func TestCheckStepStepTTLFromIntent(t *testing.T) {
	s := newSession(t, func(r *Role) { r.StepTTL, r.StepMaxTTL = 10*time.Second, 20*time.Second }, IntentRequest{})
	g, err := s.CheckStep(stepReq(), t0)
	require.NoError(t, err)
	assert.Equal(t, 10*time.Second, g.TTL)
	req := stepReq()
	req.TTL = ptr(30 * time.Second)
	g, err = s.CheckStep(req, t0)
	require.NoError(t, err)
	assert.Equal(t, 20*time.Second, g.TTL)
	assert.Len(t, g.Warnings, 1)
}

func TestCheckStepSessionWithLessThanASecondLeft(t *testing.T) {
	s := newSession(t, nil, IntentRequest{})
	now := s.ExpiresAt.Add(-500 * time.Millisecond)
	require.Equal(t, StateActive, s.StateAt(now))
	lim := &countingLimiter{allow: true}
	req := stepReq()
	req.Rate = lim
	_, err := s.CheckStep(req, now)
	var se *StateError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, StateExpired, se.State)
	assert.Zero(t, s.StepsUsed)
	assert.Zero(t, lim.Calls(), "a refused request spends no rate token")
}

func TestCheckStepOnClosedSession(t *testing.T) {
	cases := []struct {
		name  string
		close func(*Session)
		now   time.Time
		state State
	}{
		{"ended", func(s *Session) { s.End(t0.Add(time.Minute)) }, t0.Add(2 * time.Minute), StateEnded},
		{"revoked", func(s *Session) { s.Revoke("operator", t0.Add(time.Minute)) }, t0.Add(2 * time.Minute), StateRevoked},
		{"expired", func(s *Session) { s.Expire(t0.Add(15 * time.Minute)) }, t0.Add(16 * time.Minute), StateExpired},
		{"lease run out", func(*Session) {}, t0.Add(15 * time.Minute), StateExpired},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSession(t, nil, IntentRequest{})
			c.close(s)
			before := *s
			lim := &countingLimiter{allow: true}
			for _, caller := range []string{creator, "entity-b"} {
				req := stepReq()
				req.Caller = caller
				req.Rate = lim
				g, err := s.CheckStep(req, c.now)
				assert.Zero(t, g)
				if caller != creator {
					var fc *ForeignCallerError
					require.ErrorAs(t, err, &fc, "another caller learns nothing of the state")
					continue
				}
				var se *StateError
				require.ErrorAs(t, err, &se, "a closed session refuses everyone, and it is no violation")
				assert.Equal(t, &StateError{Session: "sess-1", State: c.state}, se)
				assert.Equal(t, fmt.Sprintf("session sess-1 is %s: it is closed and issues no more credentials", c.state), err.Error())
				assert.Zero(t, g)
			}
			assert.Equal(t, before, *s)
			assert.Zero(t, lim.Calls())
		})
	}
}

func TestCheckCaller(t *testing.T) {
	s := newSession(t, nil, IntentRequest{})
	assert.NoError(t, s.CheckCaller(creator, t0))
	var fc *ForeignCallerError
	require.ErrorAs(t, s.CheckCaller("hmac-sha256:abc", t0), &fc)
	s.End(t0.Add(time.Minute))
	var se *StateError
	require.ErrorAs(t, s.CheckCaller(creator, t0.Add(2*time.Minute)), &se)
	assert.Equal(t, StateEnded, se.State)
	// Another caller learns nothing of the state of a session not its own.
	require.ErrorAs(t, s.CheckCaller("hmac-sha256:abc", t0.Add(2*time.Minute)), &fc)
}

// A foreign caller is refused before anything else is looked at, and its
// request changes nothing: not the budget, not the violations, not the
// state, whatever the request holds.
func TestCheckStepForeignCallerChangesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  func() StepRequest
	}{
		{"well-formed", func() StepRequest { r := stepReq(); r.Caller = "entity-b"; return r }},
		{"empty identity", func() StepRequest { r := stepReq(); r.Caller = ""; return r }},
		{"malformed input", func() StepRequest { return StepRequest{Caller: "entity-b", Scopes: []string{"read:a//b"}} }},
		{"outside the intent", func() StepRequest {
			r := stepReq()
			r.Caller = "entity-b"
			r.Scopes = []string{"write:*"}
			return r
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession(t, nil, IntentRequest{})
			before := *s.Clone()
			_, err := s.CheckStep(tc.req(), t0)
			var fc *ForeignCallerError
			require.ErrorAs(t, err, &fc)
			var v *Violation
			require.False(t, errors.As(err, &v), "never a violation")
			assert.Equal(t, before, *s)
		})
	}
}

func TestCheckStepBudgetCountsExactly(t *testing.T) {
	s := newSession(t, deny(ViolationLimitCeiling), IntentRequest{MaxSteps: ptr(3)})
	granted := 0
	for i := 0; i < 10; i++ {
		_, err := s.CheckStep(stepReq(), t0.Add(time.Duration(i)*time.Second))
		if err == nil {
			granted++
			continue
		}
		requireViolation(t, err, BudgetExhausted, t0.Add(time.Duration(i)*time.Second))
	}
	assert.Equal(t, 3, granted)
	assert.Equal(t, 3, s.StepsUsed)
}

func TestRateLimitersFor(t *testing.T) {
	var r RateLimiters // the zero value is ready to use
	a := r.For("a", 60)
	assert.Equal(t, rate.Limit(1), a.Limit(), "max_rate/60 per second")
	assert.Equal(t, 60, a.Burst())
	assert.Same(t, a, r.For("a", 60), "one bucket per session")
	assert.Same(t, a, r.For("a", 120), "an existing bucket is kept as it is")
	b := r.For("b", 120)
	assert.NotSame(t, a, b)
	assert.Equal(t, rate.Limit(2), b.Limit())
	assert.Equal(t, 120, b.Burst())

	// Starts full, then refuses, then refills at one per second.
	for i := 0; i < 60; i++ {
		require.True(t, a.AllowN(t0, 1), "token %d", i)
	}
	assert.False(t, a.AllowN(t0, 1))
	assert.False(t, a.AllowN(t0.Add(999*time.Millisecond), 1))
	assert.True(t, a.AllowN(t0.Add(time.Second), 1))
	assert.False(t, a.AllowN(t0.Add(time.Second), 1))
	assert.True(t, a.AllowN(t0.Add(31*time.Second), 30), "30 tokens in 30s")
	assert.False(t, a.AllowN(t0.Add(31*time.Second), 1))

	// Forget drops the bucket: the next one starts full.
	r.Forget("a")
	r.Forget("never-created")
	a2 := r.For("a", 60)
	assert.NotSame(t, a, a2)
	assert.True(t, a2.AllowN(t0.Add(31*time.Second), 60))

	var empty RateLimiters
	empty.Forget("x") // Forget on the zero value does not panic
}

func TestRateLimitersConcurrent(t *testing.T) {
	var r RateLimiters
	const goroutines = 64
	const perG = 50

	// Every goroutine asks for the same session's bucket at once: they all
	// get the same one, and it hands out exactly max_rate tokens.
	got := make([]*rate.Limiter, goroutines)
	allowed := make([]int, goroutines)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			<-start
			for i := 0; i < perG; i++ {
				l := r.For("shared", 60)
				if i == 0 {
					got[g] = l
				} else if l != got[g] {
					t.Errorf("goroutine %d got a different bucket", g)
				}
				if l.AllowN(t0, 1) {
					allowed[g]++
				}
			}
		}(g)
	}
	close(start)
	wg.Wait()
	total := 0
	for g := range got {
		assert.Same(t, got[0], got[g])
		total += allowed[g]
	}
	assert.Equal(t, 60, total, "the bucket holds exactly under concurrent use")

	// Creating and forgetting many sessions' buckets at once.
	start = make(chan struct{})
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			<-start
			for i := 0; i < perG; i++ {
				id := fmt.Sprintf("s-%d", (g+i)%16)
				l := r.For(id, 10+i%5)
				l.AllowN(t0, 1)
				if i%7 == 0 {
					r.Forget(id)
				}
			}
		}(g)
	}
	close(start)
	wg.Wait()
	assert.Same(t, got[0], r.For("shared", 60), "untouched by other sessions")
}

func TestCheckStepCorruptIntentIsAnInternalError(t *testing.T) {
	s := newSession(t, nil, IntentRequest{})
	s.Intent.Scopes = []string{"read:a//b"}
	_, err := s.CheckStep(stepReq(), t0)
	require.Error(t, err)
	var fe *FieldError
	var v *Violation
	var se *StateError
	assert.False(t, asFieldError(err, &fe), "not the caller's fault")
	assert.False(t, errors.As(err, &v))
	assert.False(t, errors.As(err, &se))
	assert.Contains(t, err.Error(), "session sess-1 holds an invalid intent")
	assert.Zero(t, s.StepsUsed)
}

// TestCheckStepInvalidParentIsBadParent: a parent_token that did not
// verify is a bad_parent violation, but only for the creator's own
// well-formed request; a malformed one stays a bad request.
func TestCheckStepInvalidParentIsBadParent(t *testing.T) {
	s := newSession(t, nil, IntentRequest{})
	req := StepRequest{Caller: creator, Scopes: []string{"read:secrets/web/tls"}, Audience: "vault", ParentInvalid: "parent_token has expired"}
	_, err := s.CheckStep(req, t0)
	v := requireViolation(t, err, BadParent, t0)
	require.Equal(t, "parent_token has expired", v.Detail)
	require.Equal(t, 0, s.StepsUsed)

	req.Scopes = []string{"read:secrets//x"}
	_, err = s.CheckStep(req, t0)
	requireFieldError(t, err, "scopes")

	req.Scopes = []string{"read:secrets/web/tls"}
	req.Caller = "someone-else"
	_, err = s.CheckStep(req, t0)
	var fc *ForeignCallerError
	require.ErrorAs(t, err, &fc)
}
