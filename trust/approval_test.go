package trust

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func approvalRole(r *Role) {
	r.OnOutOfIntent = OnOutOfIntentApproval
	r.MaxPendingApprovals = 2
	r.ApprovalTTL = 10 * time.Minute
}

func narrowIntent() IntentRequest {
	return IntentRequest{Scopes: []string{"read:secrets/web/tls"}, Audiences: []string{"vault"}}
}

func step(s *Session, sc, aud string, now time.Time) (Grant, error) {
	return s.CheckStep(StepRequest{Caller: creator, Scopes: []string{sc}, Audience: aud}, now)
}

func TestOutOfIntentWaitsForApprovalInsideTheRole(t *testing.T) {
	s := newSession(t, approvalRole, narrowIntent())
	// Outside the intent, inside the role: approval needed, nothing spent.
	_, err := step(s, "read:secrets/web/config", "vault", t0)
	var need *ApprovalNeeded
	require.True(t, errors.As(err, &need), "%v", err)
	assert.Equal(t, []string{"read:secrets/web/config"}, need.Scopes)
	assert.Equal(t, "vault", need.Audience)
	assert.Equal(t, ScopeOutsideIntent, need.Kind)
	assert.Zero(t, s.StepsUsed)
	// An audience of the role the intent did not declare: approval too.
	_, err = step(s, "deploy:k8s/prod/deployments/web", "k8s", t0)
	require.True(t, errors.As(err, &need), "%v", err)
	assert.Equal(t, AudienceOutsideIntent, need.Kind)
	// Outside the role: a violation, whatever the mode.
	_, err = step(s, "write:secrets/web/tls", "vault", t0)
	var v *Violation
	require.True(t, errors.As(err, &v), "%v", err)
	assert.Equal(t, ScopeOutsideIntent, v.Kind)
	_, err = step(s, "read:secrets/web/tls", "billing", t0)
	require.True(t, errors.As(err, &v))
	assert.Equal(t, AudienceOutsideIntent, v.Kind)

	// Under the default mode, the same step is a violation.
	d := newSession(t, nil, narrowIntent())
	_, err = step(d, "read:secrets/web/config", "vault", t0)
	require.True(t, errors.As(err, &v))
}

func TestApprovalWidensByExactlyWhatWasAsked(t *testing.T) {
	s := newSession(t, approvalRole, narrowIntent())
	_, err := step(s, "read:secrets/web/config", "vault", t0)
	var need *ApprovalNeeded
	require.True(t, errors.As(err, &need))
	a, v := s.RequestApproval("appr-1", need, t0)
	require.Nil(t, v)
	assert.Equal(t, t0.Add(10*time.Minute), a.ExpiresAt)
	assert.Len(t, s.Pending, 1)

	// The creator cannot decide it.
	var de *DecisionError
	require.True(t, errors.As(s.Approve(a, creator, time.Hour, "", t0), &de))
	assert.True(t, de.Forbidden)

	require.NoError(t, s.Approve(a, "entity-admin", 5*time.Minute, "ok for the rotation", t0.Add(time.Minute)))
	assert.Equal(t, ApprovalApproved, a.State)
	assert.Equal(t, "entity-admin", a.DecidedBy)
	assert.Empty(t, s.Pending)
	// Exactly what was asked, with its audience, for the time given.
	_, err = step(s, "read:secrets/web/config", "vault", t0.Add(2*time.Minute))
	require.NoError(t, err)
	_, err = step(s, "read:secrets/web/other", "vault", t0.Add(2*time.Minute))
	require.True(t, errors.As(err, &need), "a neighbour is not granted: %v", err)
	_, err = step(s, "read:secrets/web/config", "vault", t0.Add(7*time.Minute))
	require.True(t, errors.As(err, &need), "the grant ended: %v", err)
	// Deciding again is refused.
	require.True(t, errors.As(s.Approve(a, "entity-admin", 0, "", t0.Add(3*time.Minute)), &de))
	assert.False(t, de.Forbidden)
}

func TestAudienceGrantCarriesOnlyItsScopes(t *testing.T) {
	s := newSession(t, approvalRole, narrowIntent())
	_, err := step(s, "deploy:k8s/prod/deployments/web", "k8s", t0)
	var need *ApprovalNeeded
	require.True(t, errors.As(err, &need))
	a, _ := s.RequestApproval("appr-1", need, t0)
	require.NoError(t, s.Approve(a, "entity-admin", 0, "", t0))
	_, err = step(s, "deploy:k8s/prod/deployments/web", "k8s", t0)
	require.NoError(t, err)
	// The intent's own scopes are not granted for the new audience.
	_, err = step(s, "read:secrets/web/tls", "k8s", t0)
	require.True(t, errors.As(err, &need), "%v", err)
}

func TestPendingApprovalsAreBounded(t *testing.T) {
	s := newSession(t, approvalRole, narrowIntent())
	for i, sc := range []string{"read:secrets/web/a", "read:secrets/web/b"} {
		_, err := step(s, sc, "vault", t0)
		var need *ApprovalNeeded
		require.True(t, errors.As(err, &need))
		_, v := s.RequestApproval(string(rune('1'+i)), need, t0)
		require.Nil(t, v)
	}
	_, err := step(s, "read:secrets/web/c", "vault", t0)
	var need *ApprovalNeeded
	require.True(t, errors.As(err, &need))
	_, v := s.RequestApproval("3", need, t0)
	require.NotNil(t, v, "past max_pending_approvals, it is a violation")
	assert.Equal(t, ScopeOutsideIntent, v.Kind)
	assert.Contains(t, v.Detail, "max_pending_approvals")

	// Expired ones leave room.
	expired := s.ExpireApprovals(t0.Add(11 * time.Minute))
	assert.ElementsMatch(t, []string{"1", "2"}, expired)
	_, v = s.RequestApproval("4", need, t0.Add(11*time.Minute))
	assert.Nil(t, v)
}

func TestDenialAndExpiry(t *testing.T) {
	for _, isViolation := range []bool{false, true} {
		s := newSession(t, func(r *Role) { approvalRole(r); r.DenialIsViolation = isViolation }, narrowIntent())
		_, err := step(s, "read:secrets/web/config", "vault", t0)
		var need *ApprovalNeeded
		require.True(t, errors.As(err, &need))
		a, _ := s.RequestApproval("appr-1", need, t0)
		_, err = s.Deny(a, "entity-admin", "", t0)
		requireFieldError(t, err, "reason")
		v, err := s.Deny(a, "entity-admin", "not during the freeze", t0)
		require.NoError(t, err)
		assert.Equal(t, ApprovalDenied, a.State)
		assert.Equal(t, isViolation, v != nil)
		if v != nil {
			assert.Equal(t, ApprovalDeniedKind, v.Kind)
		}
	}
	s := newSession(t, approvalRole, narrowIntent())
	_, err := step(s, "read:secrets/web/config", "vault", t0)
	var need *ApprovalNeeded
	require.True(t, errors.As(err, &need))
	a, _ := s.RequestApproval("appr-1", need, t0)
	assert.Equal(t, ApprovalExpired, a.StateAt(t0.Add(10*time.Minute), StateActive))
	assert.Equal(t, ApprovalCanceled, a.StateAt(t0.Add(time.Minute), StateRevoked))
	var de *DecisionError
	require.True(t, errors.As(s.Approve(a, "entity-admin", 0, "", t0.Add(10*time.Minute)), &de), "an expired approval is not decided")
}

func TestApprovalRoleFields(t *testing.T) {
	r := testRole()
	r.OnOutOfIntent = "maybe"
	requireFieldError(t, r.Validate(Limits{}), "on_out_of_intent")
	r = testRole()
	r.MaxPendingApprovals = 21
	requireFieldError(t, r.Validate(Limits{}), "max_pending_approvals")
	r = testRole()
	r.ApprovalTTL = 48 * time.Hour
	requireFieldError(t, r.Validate(Limits{}), "approval_ttl")
	// A role stored before the fields existed is valid, under violation.
	r = testRole()
	r.OnOutOfIntent, r.MaxPendingApprovals, r.ApprovalTTL = "", 0, 0
	require.NoError(t, r.Validate(Limits{}))
	in, _, err := Negotiate("web", r, IntentRequest{Purpose: "x"}, 0)
	require.NoError(t, err)
	assert.Nil(t, in.Ceiling)
}
