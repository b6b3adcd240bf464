package trust

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestKindsMatchSpec(t *testing.T) {
	want := []string{
		"scope_outside_intent", "audience_outside_intent", "depth_exceeded", "budget_exhausted",
		"rate_exceeded", "bad_parent", "reported_misuse",
		// Issue 19: a denied approval, under denial_is_violation.
		"approval_denied",
	}
	got := make([]string, len(ViolationKinds))
	for i, k := range ViolationKinds {
		got[i] = string(k)
	}
	assert.ElementsMatch(t, want, got)
}

func TestViolationError(t *testing.T) {
	v := &Violation{Kind: DepthExceeded, Time: t0, Detail: "depth 4 exceeds the session's max_depth 3"}
	assert.Equal(t, "violation depth_exceeded: depth 4 exceeds the session's max_depth 3", v.Error())
	var err error = v
	assert.EqualError(t, err, v.Error())
}

func deny(limit int) func(*Role) {
	return func(r *Role) { r.OnViolation, r.ViolationLimit = OnViolationDeny, limit }
}

func TestRecordViolationRevokeRevokesAtTheFirst(t *testing.T) {
	s := newSession(t, nil, IntentRequest{})
	require.Equal(t, OnViolationRevoke, s.Intent.OnViolation)
	at := t0.Add(2 * time.Minute)
	revoked := s.RecordViolation(Violation{Kind: ScopeOutsideIntent, Time: at, Detail: "d", Source: "10.0.0.1:5555"})
	assert.True(t, revoked)
	assert.Equal(t, StateRevoked, s.State)
	assert.Equal(t, "violation: scope_outside_intent", s.RevokedReason)
	assert.True(t, s.EndedAt.Equal(at))
	assert.Equal(t, 1, s.ViolationCount)
	require.Len(t, s.Violations, 1)
	assert.Equal(t, Violation{Kind: ScopeOutsideIntent, Time: at, Detail: "d", Source: "10.0.0.1:5555"}, s.Violations[0])
}

func TestRecordViolationDenyRevokesOncePastTheLimit(t *testing.T) {
	s := newSession(t, deny(2), IntentRequest{})
	require.Equal(t, OnViolationDeny, s.Intent.OnViolation)
	require.Equal(t, 2, s.Intent.ViolationLimit)

	assert.False(t, s.RecordViolation(Violation{Kind: AudienceOutsideIntent, Time: t0.Add(1 * time.Second)}))
	assert.Equal(t, StateActive, s.State)
	assert.False(t, s.RecordViolation(Violation{Kind: DepthExceeded, Time: t0.Add(2 * time.Second)}))
	assert.Equal(t, StateActive, s.State, "survives violation_limit violations")
	assert.Equal(t, 2, s.ViolationCount)

	third := t0.Add(3 * time.Second)
	assert.True(t, s.RecordViolation(Violation{Kind: RateExceeded, Time: third}))
	assert.Equal(t, StateRevoked, s.State, "revoked at violation_limit+1")
	assert.Equal(t, "violation: rate_exceeded", s.RevokedReason, "named after the violation that revoked it")
	assert.True(t, s.EndedAt.Equal(third))
	assert.Equal(t, 3, s.ViolationCount)

	// Once closed, nothing more is recorded: the state, time, reason and
	// the violation that revoked the session stay as they were.
	assert.False(t, s.RecordViolation(Violation{Kind: ScopeOutsideIntent, Time: t0.Add(4 * time.Second)}))
	assert.Equal(t, StateRevoked, s.State)
	assert.Equal(t, "violation: rate_exceeded", s.RevokedReason)
	assert.True(t, s.EndedAt.Equal(third))
	assert.Equal(t, 3, s.ViolationCount)
	assert.Len(t, s.Violations, 3)
	assert.Equal(t, RateExceeded, s.Violations[2].Kind)
}

func TestRecordViolationDenyWithLimitZero(t *testing.T) {
	s := newSession(t, deny(0), IntentRequest{})
	assert.True(t, s.RecordViolation(Violation{Kind: BudgetExhausted, Time: t0}))
	assert.Equal(t, StateRevoked, s.State)
}

func TestRecordViolationAfterDeath(t *testing.T) {
	for _, tr := range transitions {
		t.Run(tr.name, func(t *testing.T) {
			s := newSession(t, deny(0), IntentRequest{})
			require.True(t, tr.do(s, t0.Add(time.Minute)))
			before := *s
			assert.False(t, s.RecordViolation(Violation{Kind: ScopeOutsideIntent, Time: t0.Add(2 * time.Minute)}))
			assert.Equal(t, before.State, s.State)
			assert.True(t, s.EndedAt.Equal(before.EndedAt))
			assert.Equal(t, before.RevokedReason, s.RevokedReason)
			assert.Equal(t, before.ViolationCount, s.ViolationCount, "not counted: the session's record is closed")
			assert.Equal(t, before.Violations, s.Violations)
		})
	}

	// A session whose lease ran out is not revoked by a late violation.
	s := newSession(t, nil, IntentRequest{})
	assert.False(t, s.RecordViolation(Violation{Kind: ScopeOutsideIntent, Time: t0.Add(15 * time.Minute)}))
	assert.Equal(t, StateActive, s.State)
	assert.Equal(t, StateExpired, s.StateAt(t0.Add(15*time.Minute)))
	assert.Empty(t, s.RevokedReason)
}

func TestRecordViolationListIsBounded(t *testing.T) {
	const n = 2*MaxRecordedViolations + 50
	s := newSession(t, deny(ViolationLimitCeiling), IntentRequest{})
	for i := 0; i < n; i++ {
		revoked := s.RecordViolation(Violation{Kind: ScopeOutsideIntent, Time: t0.Add(time.Duration(i) * time.Millisecond), Detail: fmt.Sprint(i)})
		require.False(t, revoked)
		require.LessOrEqual(t, len(s.Violations), MaxRecordedViolations)
	}
	assert.Equal(t, StateActive, s.State)
	assert.Equal(t, n, s.ViolationCount, "every violation is counted")
	require.Len(t, s.Violations, MaxRecordedViolations)
	for i, v := range s.Violations {
		assert.Equal(t, fmt.Sprint(n-MaxRecordedViolations+i), v.Detail, "the most recent are kept, in order")
	}

	// Once closed, nothing is added: the violation that revoked the session
	// is never pushed out, however many follow.
	s = newSession(t, nil, IntentRequest{})
	for i := 0; i < n; i++ {
		s.RecordViolation(Violation{Kind: ScopeOutsideIntent, Time: t0, Detail: fmt.Sprint(i)})
	}
	assert.Equal(t, StateRevoked, s.State)
	assert.Equal(t, 1, s.ViolationCount)
	require.Len(t, s.Violations, 1)
	assert.Equal(t, "0", s.Violations[0].Detail, "the revoking violation stays")
}

func TestViolationFromCheckStepRevokesTheSession(t *testing.T) {
	s := newSession(t, nil, IntentRequest{})
	now := t0.Add(time.Minute)
	_, err := s.CheckStep(StepRequest{Caller: creator, Scopes: []string{"write:secrets/web/tls"}, Audience: "vault"}, now)
	v := requireViolation(t, err, ScopeOutsideIntent, now)
	assert.True(t, s.RecordViolation(*v))
	assert.Equal(t, "violation: scope_outside_intent", s.RevokedReason)

	_, err = s.CheckStep(StepRequest{Caller: creator, Scopes: []string{"read:secrets/web/tls"}, Audience: "vault"}, now.Add(time.Second))
	var se *StateError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, StateRevoked, se.State)
}

// A session's record keeps at most MaxViolationDetail bytes of each
// violation's detail, so no intent, scope or report can grow it past a
// storage entry's limit.
func TestRecordedViolationDetailIsBounded(t *testing.T) {
	s := newSession(t, deny(ViolationLimitCeiling), IntentRequest{})
	long := strings.Repeat("é", 4000) // 8000 bytes, 2-byte characters
	s.RecordViolation(Violation{Kind: ScopeOutsideIntent, Time: t0, Detail: long})
	require.Len(t, s.Violations, 1)
	d := s.Violations[0].Detail
	assert.LessOrEqual(t, len(d), MaxViolationDetail)
	assert.True(t, strings.HasSuffix(d, "..."))
	assert.True(t, utf8.ValidString(d), "never cuts a character")
}
