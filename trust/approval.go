package trust

import (
	"fmt"
	"slices"
	"time"

	"github.com/continuoustrust/vault-plugin-secrets-agent/scope"
)

// What a step outside the session's intent (but inside the role) does: the
// role field on_out_of_intent.
const (
	// OnOutOfIntentViolation: it is a violation (the default).
	OnOutOfIntentViolation = "violation"
	// OnOutOfIntentApproval: it waits for a person to approve it.
	OnOutOfIntentApproval = "approval"
)

// Defaults and ceilings of the approval settings of a role.
const (
	DefaultMaxPendingApprovals = 3
	MaxPendingApprovalsCeiling = 20
	DefaultApprovalTTL         = 15 * time.Minute
	MaxApprovalTTL             = 24 * time.Hour
	// MaxApprovalComment bounds a decision's comment or reason.
	MaxApprovalComment = 512
)

// ApprovalState is where an approval stands.
type ApprovalState string

// The states of an approval.
const (
	ApprovalPending  ApprovalState = "pending"
	ApprovalApproved ApprovalState = "approved"
	ApprovalDenied   ApprovalState = "denied"
	ApprovalExpired  ApprovalState = "expired"
	// ApprovalCanceled: its session closed while it was pending.
	ApprovalCanceled ApprovalState = "canceled"
)

// Ceiling is the role's scopes and audiences, copied into the intent of a
// session under approval: what an approval may widen the intent to.
type Ceiling struct {
	Scopes    []string `json:"scopes"`
	Audiences []string `json:"audiences"`
}

// IntentGrant is what an approval widened the intent by: exactly the
// scopes asked, for the audience asked, until Until.
type IntentGrant struct {
	Approval string    `json:"approval"`
	Scopes   []string  `json:"scopes"`
	Audience string    `json:"audience"`
	Until    time.Time `json:"until"`
}

// PendingApproval is an approval a session waits for: what it asked, so
// that asking again waits for the same approval.
type PendingApproval struct {
	ID        string    `json:"id"`
	ExpiresAt time.Time `json:"expires_at"`
	Scopes    []string  `json:"scopes,omitempty"`
	Audience  string    `json:"audience,omitempty"`
}

// ApprovalDecision is what became of one of a session's approvals.
type ApprovalDecision struct {
	ID    string        `json:"id"`
	State ApprovalState `json:"state"`
}

// MaxDecidedShown bounds the decisions a session keeps for its agent.
const MaxDecidedShown = 16

// decided records what became of approval id.
func (s *Session) decided(id string, st ApprovalState) {
	s.Decided = append(s.Decided, ApprovalDecision{ID: id, State: st})
	if len(s.Decided) > MaxDecidedShown {
		s.Decided = slices.Clone(s.Decided[len(s.Decided)-MaxDecidedShown:])
	}
}

// without returns the pending approvals but id, in a new slice.
func without(p []PendingApproval, id string) []PendingApproval {
	out := make([]PendingApproval, 0, len(p))
	for _, x := range p {
		if x.ID != id {
			out = append(out, x)
		}
	}
	return out
}

// ApprovalNeeded refuses a step that lies outside the session's intent
// but inside the role's ceiling, under on_out_of_intent=approval: it must
// wait for a person. Scopes and Audience are what was asked; Kind and
// Detail the violation it would have been.
type ApprovalNeeded struct {
	Scopes   []string
	Audience string
	Kind     ViolationKind
	Detail   string
}

func (e *ApprovalNeeded) Error() string {
	return fmt.Sprintf("%s needs approval: %s", e.Kind, e.Detail)
}

// Approval is one request for approval and its decision.
type Approval struct {
	ID          string        `json:"id"`
	Session     string        `json:"session"`
	Role        string        `json:"role"`
	Creator     string        `json:"creator"`
	Purpose     string        `json:"purpose,omitempty"`
	Scopes      []string      `json:"scopes"`
	Audience    string        `json:"audience"`
	Description string        `json:"description,omitempty"`
	RequestedAt time.Time     `json:"requested_at"`
	ExpiresAt   time.Time     `json:"expires_at"`
	State       ApprovalState `json:"state"`
	DecidedBy   string        `json:"decided_by,omitempty"`
	DecidedAt   time.Time     `json:"decided_at,omitzero"`
	Comment     string        `json:"comment,omitempty"`
	GrantUntil  time.Time     `json:"grant_until,omitzero"`
}

// StateAt is the approval's state at now, given its session's state: a
// pending approval past its expiry is expired, and one whose session
// closed is canceled.
func (a *Approval) StateAt(now time.Time, session State) ApprovalState {
	if a.State != ApprovalPending {
		return a.State
	}
	if !now.Before(a.ExpiresAt) {
		return ApprovalExpired
	}
	if session != StateActive {
		return ApprovalCanceled
	}
	return ApprovalPending
}

// DecisionError refuses a decision: the decider is the session's creator,
// or the approval is no longer pending.
type DecisionError struct {
	Forbidden bool
	Reason    string
}

func (e *DecisionError) Error() string { return e.Reason }

// activeGrants returns the grants live at now, in order.
func (s *Session) activeGrants(now time.Time) []IntentGrant {
	var out []IntentGrant
	for _, g := range s.Grants {
		if now.Before(g.Until) {
			out = append(out, g)
		}
	}
	return out
}

// pruneApprovals drops grants that ended and pending approvals that
// expired before now, and returns the IDs of those expired.
func (s *Session) pruneApprovals(now time.Time) (expired []string) {
	// New slices: a session may share its arrays with a copy (Clone).
	grants := make([]IntentGrant, 0, len(s.Grants))
	for _, g := range s.Grants {
		if now.Before(g.Until) {
			grants = append(grants, g)
		}
	}
	pending := make([]PendingApproval, 0, len(s.Pending))
	for _, p := range s.Pending {
		if now.Before(p.ExpiresAt) {
			pending = append(pending, p)
		} else {
			expired = append(expired, p.ID)
			s.decided(p.ID, ApprovalExpired)
		}
	}
	s.Grants, s.Pending = grants, pending
	return expired
}

// ExpireApprovals drops the pending approvals that expired before now
// (and the grants that ended) and returns the IDs of the approvals
// expired, so that the caller records their expiry.
func (s *Session) ExpireApprovals(now time.Time) []string { return s.pruneApprovals(now) }

// withinIntent decides the intent part of a step: whether audience and
// asked lie inside the intent, or inside it widened by a live grant for
// that audience. It returns the violation the step would be otherwise.
func (s *Session) withinIntent(asked scope.Set, audience string, now time.Time) (*Violation, error) {
	intent, err := scope.ParseSet(s.Intent.Scopes)
	if err != nil {
		return nil, fmt.Errorf("session %s holds an invalid intent: %w", s.ID, err)
	}
	grants := s.activeGrants(now)
	audOK := contains(s.Intent.Audiences, audience)
	var widened scope.Set
	for _, g := range grants {
		if g.Audience == audience {
			audOK = true
			if set, err := scope.ParseSet(g.Scopes); err == nil {
				widened = append(widened, set...)
			}
		}
	}
	if !audOK {
		return violation(AudienceOutsideIntent, now, "audience %q is not among the session's audiences %v", scope.Clip(audience), s.Intent.Audiences), nil
	}
	// A scope an approval granted counts only with the audience it was
	// granted for.
	var widenedOnly scope.Set
	if contains(s.Intent.Audiences, audience) {
		widenedOnly = append(append(scope.Set{}, intent...), widened...)
	} else {
		widenedOnly = widened
	}
	if wide, ok := widenedOnly.Uncovered(asked); ok {
		return violation(ScopeOutsideIntent, now, "%s is not inside the session's intent%s", wide, witnessText(intent, wide)), nil
	}
	return nil, nil
}

// needsApproval reports whether a step that v refuses lies inside the
// role's ceiling, under on_out_of_intent=approval: then it waits for a
// person instead of being a violation.
func (s *Session) needsApproval(v *Violation, asked scope.Set, audience string) *ApprovalNeeded {
	c := s.Intent.Ceiling
	if s.Intent.OnOutOfIntent != OnOutOfIntentApproval || c == nil {
		return nil
	}
	ceiling, err := scope.ParseSet(c.Scopes)
	if err != nil || !contains(c.Audiences, audience) {
		return nil
	}
	if _, wide := ceiling.Uncovered(asked); wide {
		return nil
	}
	return &ApprovalNeeded{Scopes: asked.Strings(), Audience: audience, Kind: v.Kind, Detail: v.Detail}
}

// Waiting returns the pending approval of a step that asks exactly what
// need asks, if the session waits for one already: asking again waits for
// the same approval.
func (s *Session) Waiting(need *ApprovalNeeded, now time.Time) (PendingApproval, bool) {
	for _, p := range s.Pending {
		if now.Before(p.ExpiresAt) && p.Audience == need.Audience && slices.Equal(p.Scopes, need.Scopes) {
			return p, true
		}
	}
	return PendingApproval{}, false
}

// RequestApproval records that the session waits for approval id of a
// step asked at now, or, when the session already waits for
// MaxPendingApprovals, returns the violation the step is then. (A step
// that asks what a pending approval asks waits for it: see Waiting.)
func (s *Session) RequestApproval(id string, need *ApprovalNeeded, now time.Time) (*Approval, *Violation) {
	s.pruneApprovals(now)
	if len(s.Pending) >= s.Intent.MaxPendingApprovals {
		return nil, violation(need.Kind, now, "%s (the session already waits for %d approvals, its max_pending_approvals)", need.Detail, len(s.Pending))
	}
	a := &Approval{
		ID: id, Session: s.ID, Role: s.Role, Creator: s.Creator, Purpose: s.Intent.Purpose,
		Scopes: need.Scopes, Audience: need.Audience, RequestedAt: now,
		ExpiresAt: now.Add(s.Intent.ApprovalTTL), State: ApprovalPending,
	}
	if a.ExpiresAt.After(s.ExpiresAt) {
		a.ExpiresAt = s.ExpiresAt
	}
	s.Pending = append(slices.Clone(s.Pending), PendingApproval{ID: id, ExpiresAt: a.ExpiresAt, Scopes: a.Scopes, Audience: a.Audience})
	return a, nil
}

// decidable checks that decider may decide a, pending at now.
func (s *Session) decidable(a *Approval, decider string, now time.Time) error {
	if decider == s.Creator || decider == a.Creator {
		return &DecisionError{Forbidden: true, Reason: "the session's creator cannot decide its own approvals: another identity must"}
	}
	if st := a.StateAt(now, s.StateAt(now)); st != ApprovalPending {
		return &DecisionError{Reason: fmt.Sprintf("approval %s is %s: only a pending approval is decided", a.ID, st)}
	}
	// The session is the authority: an approval it does not wait for (a
	// record whose session was never saved) is not decided.
	if !slices.ContainsFunc(s.Pending, func(p PendingApproval) bool { return p.ID == a.ID }) {
		return &DecisionError{Reason: fmt.Sprintf("approval %s is not one its session waits for", a.ID)}
	}
	return nil
}

// Approve decides a for the session: the intent is widened by exactly
// what a asked, for ttl (at most the session's remaining life; zero means
// all of it).
func (s *Session) Approve(a *Approval, decider string, ttl time.Duration, comment string, now time.Time) error {
	if err := s.decidable(a, decider, now); err != nil {
		return err
	}
	if err := validText("comment", comment, MaxApprovalComment); err != nil {
		return err
	}
	until := s.ExpiresAt
	if ttl > 0 && now.Add(ttl).Before(until) {
		until = now.Add(ttl)
	}
	a.State, a.DecidedBy, a.DecidedAt, a.Comment, a.GrantUntil = ApprovalApproved, decider, now, comment, until
	s.Pending = without(s.Pending, a.ID)
	s.Grants = append(slices.Clone(s.Grants), IntentGrant{Approval: a.ID, Scopes: a.Scopes, Audience: a.Audience, Until: until})
	s.decided(a.ID, ApprovalApproved)
	return nil
}

// Deny decides a against the session, with a reason. Under the role's
// denial_is_violation, the denial is also a violation of the session,
// which it returns for the caller to apply.
func (s *Session) Deny(a *Approval, decider, reason string, now time.Time) (*Violation, error) {
	if err := s.decidable(a, decider, now); err != nil {
		return nil, err
	}
	if reason == "" {
		return nil, fieldErr("reason", "is required: say why the step is denied")
	}
	if err := validText("reason", reason, MaxApprovalComment); err != nil {
		return nil, err
	}
	a.State, a.DecidedBy, a.DecidedAt, a.Comment = ApprovalDenied, decider, now, reason
	s.Pending = without(s.Pending, a.ID)
	s.decided(a.ID, ApprovalDenied)
	if !s.Intent.DenialIsViolation {
		return nil, nil
	}
	return violation(ApprovalDeniedKind, now, "approval %s denied: %s", a.ID, reason), nil
}
