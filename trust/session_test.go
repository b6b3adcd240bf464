package trust

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewSession(t *testing.T) {
	s := newSession(t, nil, IntentRequest{TTL: ptr(20 * time.Minute)})
	assert.Equal(t, "sess-1", s.ID)
	assert.Equal(t, "web", s.Role)
	assert.Equal(t, creator, s.Creator)
	assert.Equal(t, creator, s.Subject())
	assert.Equal(t, StateActive, s.State)
	assert.True(t, s.CreatedAt.Equal(t0))
	assert.True(t, s.ExpiresAt.Equal(t0.Add(20*time.Minute)))
	assert.True(t, s.MaxExpiresAt.Equal(t0.Add(time.Hour)), "session_max_ttl from creation")
	assert.Zero(t, s.StepsUsed)
	assert.Zero(t, s.ViolationCount)
	assert.Empty(t, s.Violations)
	assert.True(t, s.EndedAt.IsZero())
	assert.Empty(t, s.RevokedReason)
}

func TestSessionStateAt(t *testing.T) {
	s := newSession(t, nil, IntentRequest{}) // 15m lease
	exp := t0.Add(15 * time.Minute)
	assert.Equal(t, StateActive, s.StateAt(t0))
	assert.Equal(t, StateActive, s.StateAt(exp.Add(-time.Nanosecond)))
	assert.Equal(t, StateExpired, s.StateAt(exp), "the lease ends at ExpiresAt")
	assert.Equal(t, StateExpired, s.StateAt(exp.Add(time.Hour)))
	assert.Equal(t, StateActive, s.State, "StateAt does not change the session")

	// A final state is reported as it is, whatever the time.
	require.True(t, s.End(t0.Add(time.Minute)))
	assert.Equal(t, StateEnded, s.StateAt(t0))
	assert.Equal(t, StateEnded, s.StateAt(exp.Add(time.Hour)))
}

// transition is one way of moving a session out of active.
type transition struct {
	name  string
	state State
	do    func(s *Session, now time.Time) bool
}

var transitions = []transition{
	{"End", StateEnded, func(s *Session, now time.Time) bool { return s.End(now) }},
	{"Revoke", StateRevoked, func(s *Session, now time.Time) bool { return s.Revoke("operator: test", now) }},
	{"Expire", StateExpired, func(s *Session, now time.Time) bool { return s.Expire(now) }},
}

func TestSessionTransitionsFromActive(t *testing.T) {
	for _, tr := range transitions {
		t.Run(tr.name, func(t *testing.T) {
			s := newSession(t, nil, IntentRequest{})
			now := t0.Add(3 * time.Minute)
			require.True(t, tr.do(s, now))
			assert.Equal(t, tr.state, s.State)
			assert.Equal(t, tr.state, s.StateAt(now))
			assert.True(t, s.EndedAt.Equal(now))
			if tr.state == StateRevoked {
				assert.Equal(t, "operator: test", s.RevokedReason)
			} else {
				assert.Empty(t, s.RevokedReason)
			}
		})
	}
}

func TestSessionNoTransitionLeavesAFinalState(t *testing.T) {
	for _, first := range transitions {
		for _, second := range transitions {
			t.Run(first.name+"_then_"+second.name, func(t *testing.T) {
				s := newSession(t, nil, IntentRequest{})
				require.True(t, first.do(s, t0.Add(time.Minute)))
				before := *s

				for _, at := range []time.Time{t0.Add(2 * time.Minute), t0.Add(2 * time.Hour)} {
					assert.False(t, second.do(s, at))
					assert.Equal(t, before, *s, "a final state is final")
				}
				// Nor does a violation or a renewal.
				assert.False(t, s.RecordViolation(Violation{Kind: ScopeOutsideIntent, Time: t0.Add(3 * time.Minute)}))
				assert.Equal(t, first.state, s.State)
				assert.True(t, s.EndedAt.Equal(before.EndedAt))
				assert.Equal(t, before.RevokedReason, s.RevokedReason)
				_, err := s.Renew(time.Minute, t0.Add(3*time.Minute))
				assert.Error(t, err)
				assert.Equal(t, first.state, s.State)
			})
		}
	}
}

func TestSessionLeaseRunOut(t *testing.T) {
	s := newSession(t, nil, IntentRequest{}) // lease to t0+15m
	exp := t0.Add(15 * time.Minute)

	// The agent cannot end, nor an operator revoke, a session whose lease
	// has run out: it is already expired.
	assert.False(t, s.End(exp))
	assert.False(t, s.Revoke("late", exp.Add(time.Minute)))
	assert.Equal(t, StateActive, s.State)
	assert.Empty(t, s.RevokedReason)
	assert.True(t, s.EndedAt.IsZero())

	// Vault's expiration manager then says so.
	assert.True(t, s.Expire(exp.Add(2*time.Second)))
	assert.Equal(t, StateExpired, s.State)
	assert.True(t, s.EndedAt.Equal(exp.Add(2*time.Second)))
	assert.False(t, s.Expire(exp.Add(3*time.Second)))
}

func TestSessionRenew(t *testing.T) {
	s := newSession(t, nil, IntentRequest{}) // 15m lease, 1h max

	ttl, err := s.Renew(15*time.Minute, t0.Add(10*time.Minute))
	require.NoError(t, err)
	assert.Equal(t, 15*time.Minute, ttl)
	assert.True(t, s.ExpiresAt.Equal(t0.Add(25*time.Minute)))

	ttl, err = s.Renew(30*time.Minute, t0.Add(20*time.Minute))
	require.NoError(t, err)
	assert.Equal(t, 30*time.Minute, ttl)
	assert.True(t, s.ExpiresAt.Equal(t0.Add(50*time.Minute)))

	// Clamped to MaxExpiresAt.
	ttl, err = s.Renew(30*time.Minute, t0.Add(45*time.Minute))
	require.NoError(t, err)
	assert.Equal(t, 15*time.Minute, ttl)
	assert.True(t, s.ExpiresAt.Equal(t0.Add(time.Hour)))
	assert.True(t, s.MaxExpiresAt.Equal(t0.Add(time.Hour)), "the ceiling does not move")

	ttl, err = s.Renew(time.Hour, t0.Add(55*time.Minute))
	require.NoError(t, err)
	assert.Equal(t, 5*time.Minute, ttl)
	assert.True(t, s.ExpiresAt.Equal(t0.Add(time.Hour)))

	// Past the ceiling the session expires, and cannot be renewed.
	_, err = s.Renew(time.Minute, t0.Add(time.Hour))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "sess-1 is expired and cannot be renewed")
	assert.True(t, s.ExpiresAt.Equal(t0.Add(time.Hour)))
}

func TestSessionRenewNeverShortens(t *testing.T) {
	s := newSession(t, nil, IntentRequest{}) // lease to t0+15m
	ttl, err := s.Renew(time.Minute, t0.Add(time.Minute))
	require.NoError(t, err)
	assert.True(t, s.ExpiresAt.Equal(t0.Add(15*time.Minute)))
	assert.Equal(t, 14*time.Minute, ttl, "the TTL returned is what is left of the lease")
}

func TestSessionRenewRefusedWhenNotActive(t *testing.T) {
	for _, tr := range transitions {
		t.Run(tr.name, func(t *testing.T) {
			s := newSession(t, nil, IntentRequest{})
			require.True(t, tr.do(s, t0.Add(time.Minute)))
			exp := s.ExpiresAt
			_, err := s.Renew(10*time.Minute, t0.Add(2*time.Minute))
			require.Error(t, err)
			assert.Contains(t, err.Error(), string(tr.state))
			assert.True(t, s.ExpiresAt.Equal(exp), "a refused renewal changes nothing")
		})
	}
}

func TestSessionTokensValidUntil(t *testing.T) {
	// Active: the lease bounds every credential.
	s := newSession(t, nil, IntentRequest{}) // lease t0+15m, step_max_ttl 5m
	assert.True(t, s.TokensValidUntil().Equal(t0.Add(15*time.Minute)))
	_, err := s.Renew(15*time.Minute, t0.Add(10*time.Minute))
	require.NoError(t, err)
	assert.True(t, s.TokensValidUntil().Equal(t0.Add(25*time.Minute)))

	// Ended early: step_max_ttl after the end bounds them.
	s = newSession(t, nil, IntentRequest{})
	require.True(t, s.End(t0.Add(time.Minute)))
	assert.True(t, s.TokensValidUntil().Equal(t0.Add(6*time.Minute)))

	// Ended late: the lease still bounds them.
	s = newSession(t, nil, IntentRequest{})
	require.True(t, s.Revoke("r", t0.Add(12*time.Minute)))
	assert.True(t, s.TokensValidUntil().Equal(t0.Add(15*time.Minute)))

	// A credential issued just before the end cannot outlive the bound.
	s = newSession(t, nil, IntentRequest{})
	issued := t0.Add(4 * time.Minute)
	g, err := s.CheckStep(StepRequest{Caller: creator, Scopes: []string{"read:secrets/web/a"}, Audience: "vault", TTL: ptr(time.Hour)}, issued)
	require.NoError(t, err)
	require.True(t, s.End(issued))
	assert.False(t, issued.Add(g.TTL).After(s.TokensValidUntil()))

	// Expired: the lease.
	s = newSession(t, nil, IntentRequest{})
	require.True(t, s.Expire(t0.Add(15*time.Minute)))
	assert.True(t, s.TokensValidUntil().Equal(t0.Add(15*time.Minute)))
}

func TestCloneIsDeep(t *testing.T) {
	s := newSession(t, nil, IntentRequest{Metadata: map[string]string{"ticket": "OPS-1"}})
	s.RecordViolation(Violation{Kind: ScopeOutsideIntent, Time: t0})
	c := s.Clone()
	c.Intent.Scopes[0] = "changed"
	c.Intent.Audiences[0] = "changed"
	c.Intent.Metadata["ticket"] = "changed"
	c.Violations[0].Detail = "changed"
	c.StepsUsed = 99
	require.NotEqual(t, "changed", s.Intent.Scopes[0])
	require.NotEqual(t, "changed", s.Intent.Audiences[0])
	require.Equal(t, "OPS-1", s.Intent.Metadata["ticket"])
	require.NotEqual(t, "changed", s.Violations[0].Detail)
	require.Equal(t, 0, s.StepsUsed)
}

func TestReserveIsExactOnceClosed(t *testing.T) {
	s := newSession(t, nil, IntentRequest{})
	s.StepsUsed, s.EventSeq = 3, 5
	s.Reserve()
	require.Equal(t, 12, s.StepsReserved, "a block of a tenth of max_steps 100")
	require.Equal(t, uint64(5+63), s.EventSeqReserved)
	s.End(t0)
	s.Reserve()
	require.Equal(t, 3, s.StepsReserved)
	require.Equal(t, uint64(5), s.EventSeqReserved)
}

func TestJudgeUse(t *testing.T) {
	s := newSession(t, nil, IntentRequest{})
	exp := t0.Add(time.Minute)
	leeway := 30 * time.Second
	use := ObservedUse{Scope: "read:secrets/web/*", IssuedAt: t0, Expiry: exp, ObservedAt: t0, Action: "read", Resource: "secrets/web/tls"}
	why, err := s.JudgeUse(use, leeway)
	require.NoError(t, err)
	require.Empty(t, why, "in scope, live, active: not misuse")

	out := use
	out.Action = "write"
	why, _ = s.JudgeUse(out, leeway)
	require.Contains(t, why, "outside the credential's scope")

	// Expiry is judged with the verifier's leeway: a use inside it is the
	// verifier's own tolerance, not the agent's misuse.
	late := use
	late.ObservedAt = exp.Add(leeway - time.Second)
	why, _ = s.JudgeUse(late, leeway)
	require.Empty(t, why, "a use within the leeway after exp is what the verifier accepted")
	late.ObservedAt = exp.Add(leeway)
	why, _ = s.JudgeUse(late, leeway)
	require.Contains(t, why, "expired")

	// A use seen before the session ended is judged as it was then, even
	// when the report arrives after the end.
	s.End(t0.Add(10 * time.Second))
	before := use
	before.ObservedAt = t0.Add(9 * time.Second)
	why, _ = s.JudgeUse(before, leeway)
	require.Empty(t, why, "observed while the session was active")
	after := use
	after.ObservedAt = t0.Add(11 * time.Second)
	why, _ = s.JudgeUse(after, leeway)
	require.Contains(t, why, "no longer active")

	_, err = s.JudgeUse(ObservedUse{Scope: "not a scope", Expiry: exp, ObservedAt: t0}, leeway)
	require.Error(t, err)
}

func TestCheckObserved(t *testing.T) {
	leeway := 30 * time.Second
	use := ObservedUse{IssuedAt: t0, Expiry: t0.Add(time.Minute)}
	for _, tc := range []struct {
		name     string
		observed time.Time
		now      time.Time
		ok       bool
	}{
		{"as it happens", t0.Add(time.Second), t0.Add(time.Second), true},
		{"a little later", t0.Add(time.Second), t0.Add(20 * time.Second), true},
		{"clock ahead within leeway", t0.Add(29 * time.Second), t0, true},
		{"in the future", t0.Add(31 * time.Second), t0, false},
		{"before issuance", t0.Add(-31 * time.Second), t0, false},
		{"older than the lifetime", t0, t0.Add(time.Minute + leeway + time.Second), false},
		{"after exp, reported promptly", t0.Add(2 * time.Minute), t0.Add(2 * time.Minute), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := use
			u.ObservedAt = tc.observed
			err := CheckObserved(u, leeway, tc.now)
			if tc.ok {
				require.NoError(t, err)
				return
			}
			var fe *FieldError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, "observed_at", fe.Field)
		})
	}
}

func TestCallSummary(t *testing.T) {
	var c CallSummary
	c.Add("a", t0.Add(time.Second))
	c.Add("b", t0)
	c.Add("c", t0.Add(2*time.Second))
	require.Equal(t, uint64(3), c.Count)
	require.True(t, c.First.Equal(t0))
	require.True(t, c.Last.Equal(t0.Add(2*time.Second)))
	require.Equal(t, "c", c.LastCaller)
}
