package trust

import (
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/continuoustrust/vault-plugin-secrets-agent/scope"
)

// Parent is a verified parent credential a step derives from.
type Parent struct {
	ID      string // jti
	Session string // txn
	Scope   string // space-separated scopes
	Depth   int
	Expiry  time.Time
}

// RateLimiter is a token bucket; *rate.Limiter satisfies it.
type RateLimiter interface {
	AllowN(t time.Time, n int) bool
}

// StepRequest is one request for a step credential (a step is one
// credential issuance), with its fields as sent (after Vault's type
// conversion) and the caller's identity.
type StepRequest struct {
	Caller   string
	Scopes   []string
	Audience string
	TTL      *time.Duration
	Parent   *Parent
	// Description says what the step is for.
	Description string
	Actor       string
	// ParentInvalid says why a parent_token did not verify (bad
	// signature, expired, another issuer...); it makes the request a
	// bad_parent violation once it is known to be well-formed and the
	// creator's own.
	ParentInvalid string
	// Rate is the session's token bucket; nil means no rate limit.
	Rate RateLimiter
}

// Grant is what a step may receive.
type Grant struct {
	Scopes   scope.Set
	Audience string
	Depth    int
	TTL      time.Duration
	Warnings []string
}

// StateError refuses a request on a session that is no longer active.
type StateError struct {
	Session string
	State   State
}

func (e *StateError) Error() string {
	return fmt.Sprintf("session %s is %s: it is closed and issues no more credentials", e.Session, e.State)
}

// CheckStep decides a step credential request against the session's
// intent at now. On success it counts the step against the budget and
// returns the grant; the caller persists the session and mints the token.
// It returns a *FieldError for a malformed request, a *StateError when the
// session is not active, and a *Violation when a well-formed request
// exceeds the intent (the caller records it with RecordViolation).
func (s *Session) CheckStep(req StepRequest, now time.Time) (Grant, error) {
	if err := s.CheckCaller(req.Caller, now); err != nil {
		return Grant{}, err
	}

	// Malformed input is a bad request, never a violation.
	if len(req.Scopes) == 0 {
		return Grant{}, fieldErr("scopes", "at least one scope is required")
	}
	asked, err := parseScopes("scopes", req.Scopes)
	if err != nil {
		return Grant{}, err
	}
	if req.Audience == "" {
		return Grant{}, fieldErr("audience", "is required: one of %v", s.Intent.Audiences)
	}
	audience, ferr := CanonicalAudience(req.Audience)
	if ferr != nil {
		return Grant{}, ferr
	}
	req.Audience = audience
	if err := validText("description", req.Description, MaxDescriptionLength); err != nil {
		return Grant{}, err
	}
	if err := validText("actor", req.Actor, MaxActorLength); err != nil {
		return Grant{}, err
	}
	if req.TTL != nil && *req.TTL <= 0 {
		return Grant{}, fieldErr("ttl", "must be a positive duration")
	}

	// The intent, widened by what approvals granted. Outside it, but
	// inside the role, a step under on_out_of_intent=approval waits for a
	// person (*ApprovalNeeded) instead of being a violation.
	v, err := s.withinIntent(asked, req.Audience, now)
	if err != nil {
		return Grant{}, err
	}
	// A step that would wait for approval must pass every other check
	// first (its parent, its depth, the budget, the rate): a person is
	// never asked for a step that could not be granted.
	var need *ApprovalNeeded
	if v != nil {
		// A derived step may wait too, for what its parent holds: an
		// approval widens the intent, never a parent.
		if need = s.needsApproval(v, asked, req.Audience); need == nil || !withinParent(req.Parent, asked) {
			return Grant{}, v
		}
	}

	if req.ParentInvalid != "" {
		return Grant{}, violation(BadParent, now, "%s", req.ParentInvalid)
	}
	depth := 1
	var parentExpiry time.Time
	if p := req.Parent; p != nil {
		if p.Session != s.ID {
			v := violation(BadParent, now, "parent_token belongs to another session")
			v.Credential = p.ID
			return Grant{}, v
		}
		// A parent that expired (or has less than the shortest TTL left)
		// since it was verified is a bad parent, not a closed session.
		if p.Expiry.Sub(now) < time.Second {
			v := violation(BadParent, now, "parent_token has expired")
			v.Credential = p.ID
			return Grant{}, v
		}
		parentSet, err := scope.ParseSpaceSeparated(p.Scope)
		if err != nil {
			v := violation(BadParent, now, "parent_token carries an invalid scope")
			v.Credential = p.ID
			return Grant{}, v
		}
		if wide, ok := parentSet.Uncovered(asked); ok {
			v := violation(ScopeOutsideIntent, now, "%s is not inside the parent credential's scope%s", wide, witnessText(parentSet, wide))
			v.Credential = p.ID
			return Grant{}, v
		}
		depth = p.Depth + 1
		if depth > s.Intent.MaxDepth {
			v := violation(DepthExceeded, now, "depth %d exceeds the session's max_depth %d", depth, s.Intent.MaxDepth)
			v.Credential = p.ID
			return Grant{}, v
		}
		parentExpiry = p.Expiry
	}

	if s.StepsUsed >= s.Intent.MaxSteps {
		return Grant{}, violation(BudgetExhausted, now, "all %d steps of the session's max_steps are used", s.Intent.MaxSteps)
	}
	// TTL: clamp and warn, never fail.
	g := Grant{Scopes: asked, Audience: req.Audience, Depth: depth, TTL: s.Intent.StepTTL}
	if req.TTL != nil {
		g.TTL = *req.TTL
	}
	if g.TTL > s.Intent.StepMaxTTL {
		g.Warnings = append(g.Warnings, fmt.Sprintf("ttl of %s is more than the role's step_max_ttl; clamped to %s", g.TTL, s.Intent.StepMaxTTL))
		g.TTL = s.Intent.StepMaxTTL
	}
	if left := s.ExpiresAt.Sub(now).Truncate(time.Second); g.TTL > left {
		g.Warnings = append(g.Warnings, fmt.Sprintf("ttl of %s is more than the session's remaining life; clamped to %s", g.TTL, left))
		g.TTL = left
	}
	if !parentExpiry.IsZero() {
		if left := parentExpiry.Sub(now).Truncate(time.Second); g.TTL > left {
			g.Warnings = append(g.Warnings, fmt.Sprintf("ttl of %s is more than the parent credential's remaining life; clamped to %s", g.TTL, left))
			g.TTL = left
		}
	}
	if g.TTL < time.Second {
		return Grant{}, &StateError{Session: s.ID, State: StateExpired}
	}

	// The rate is checked last so that a refused request does not spend
	// a token of the bucket.
	if req.Rate != nil && !req.Rate.AllowN(now, 1) {
		return Grant{}, violation(RateExceeded, now, "more than %d credentials per minute (max_rate)", s.Intent.MaxRate)
	}

	if need != nil {
		return Grant{}, need
	}
	s.StepsUsed++
	return g, nil
}

// ForeignCallerError refuses a request from a caller other than the
// session's creator. It is never a violation: the session's ID is in every
// credential it issued, so anyone could otherwise revoke or flood it.
type ForeignCallerError struct {
	Session string
}

func (e *ForeignCallerError) Error() string {
	return fmt.Sprintf("session %s belongs to another caller", e.Session)
}

// CheckCaller refuses a request from a caller other than the session's
// creator (a *ForeignCallerError), then a request on a session that is not
// active (a *StateError). The caller is checked first, so that another
// caller learns nothing of the session, not even its state.
func (s *Session) CheckCaller(caller string, now time.Time) error {
	if caller != s.Creator {
		return &ForeignCallerError{Session: s.ID}
	}
	if st := s.StateAt(now); st != StateActive {
		return &StateError{Session: s.ID, State: st}
	}
	return nil
}

// RateLimiters holds one token bucket per session: max_rate credentials
// per minute, starting full. It is safe for concurrent use.
type RateLimiters struct {
	mu sync.Mutex
	m  map[string]*rate.Limiter
}

// For returns the bucket of session id, creating it full with a capacity
// of perMinute and a refill of perMinute/60 per second.
func (r *RateLimiters) For(id string, perMinute int) *rate.Limiter {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = make(map[string]*rate.Limiter)
	}
	l, ok := r.m[id]
	if !ok {
		l = rate.NewLimiter(rate.Limit(float64(perMinute)/60), perMinute)
		r.m[id] = l
	}
	return l
}

// Forget drops the bucket of a session that is no longer active.
func (r *RateLimiters) Forget(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, id)
}

// ForgetIfFull drops the bucket of session id if it is full at now: a
// full bucket is what For would create again, so nothing is lost, and the
// buckets of idle sessions do not pile up. A bucket still refilling is
// kept, so that dropping it cannot hand a session a fresh burst.
func (r *RateLimiters) ForgetIfFull(id string, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l, ok := r.m[id]; ok && l.TokensAt(now) >= float64(l.Burst()) {
		delete(r.m, id)
	}
}

// Len is how many buckets are kept.
func (r *RateLimiters) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m)
}

// withinParent reports whether asked lies inside the parent's scope (or
// there is no parent).
func withinParent(p *Parent, asked scope.Set) bool {
	if p == nil {
		return true
	}
	set, err := scope.ParseSpaceSeparated(p.Scope)
	if err != nil {
		return false
	}
	_, wide := set.Uncovered(asked)
	return !wide
}
