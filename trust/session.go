package trust

import (
	"fmt"
	"slices"
	"time"
	"unicode/utf8"
)

// State is where a session is in its life. Only active is not final: no
// transition ever leaves ended, revoked or expired.
type State string

// Session states.
const (
	StateActive  State = "active"
	StateEnded   State = "ended"
	StateRevoked State = "revoked"
	StateExpired State = "expired"
)

// MaxViolationDetail bounds the detail a session's record keeps of each
// violation (the timeline keeps it whole): with MaxRecordedViolations, the
// record stays far below any storage backend's entry limit, however long
// the intent's scopes or a report's action and resource.
const MaxViolationDetail = 512

// MaxRecordedViolations bounds the violations a session keeps in full;
// ViolationCount still counts every one.
const MaxRecordedViolations = 100

// Session is one agent task: its declared intent, who started it, and what
// it has used so far.
type Session struct {
	ID     string `json:"id"`
	Role   string `json:"role"`
	State  State  `json:"state"`
	Intent Intent `json:"intent"`
	// Creator is the caller that started the session: its entity ID, or,
	// for a token without an entity, a salted hash of its accessor.
	Creator string `json:"creator"`

	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt is when the session's lease runs out; renewals move it,
	// never past MaxExpiresAt.
	ExpiresAt    time.Time `json:"expires_at"`
	MaxExpiresAt time.Time `json:"max_expires_at"`

	StepsUsed int `json:"steps_used"`
	// StepsReserved is the part of the budget reserved in storage: at
	// least StepsUsed, so the budget is never exceeded even when the
	// engine crashes between two writes (see Reserve).
	StepsReserved  int         `json:"steps_reserved,omitempty"`
	ViolationCount int         `json:"violation_count"`
	Violations     []Violation `json:"violations,omitempty"`

	EndedAt       time.Time `json:"ended_at,omitempty"`
	RevokedReason string    `json:"revoked_reason,omitempty"`

	// ForeignCalls counts the requests of callers other than the creator,
	// all refused; InactiveCalls counts the requests and reports that
	// arrived after the session stopped being active. Neither ever
	// touches the session's state, budgets, violations or timeline.
	ForeignCalls  CallSummary `json:"foreign_calls,omitzero"`
	InactiveCalls CallSummary `json:"inactive_calls,omitzero"`

	// EventSeq is the sequence number of the session's latest timeline
	// event; events EventsDropped+1 .. EventSeq are kept.
	// Pending are the approvals the session waits for; Grants what
	// approvals widened its intent by, until when.
	Pending []PendingApproval `json:"pending_approvals,omitempty"`
	Grants  []IntentGrant     `json:"grants,omitempty"`
	// Decided are the latest decisions (and expiries) of its approvals,
	// newest last, at most MaxDecidedShown: what an agent waiting for one
	// reads.
	Decided []ApprovalDecision `json:"decided_approvals,omitempty"`

	EventSeq      uint64 `json:"event_seq,omitempty"`
	EventsDropped uint64 `json:"events_dropped,omitempty"`
	// EventSeqReserved is the highest event sequence number reserved in
	// storage; a crash leaves a gap, never a reused number.
	EventSeqReserved uint64 `json:"event_seq_reserved,omitempty"`

	// Unaccounted and RecoveredAt are set by Recover and never stored:
	// the steps that were reserved beyond the stored use, and the event
	// sequence number the stored record had reached.
	Unaccounted int    `json:"-"`
	RecoveredAt uint64 `json:"-"`

	// IndexSeq is the session's place in its mount's list of sessions,
	// in the order they started (the Vault side's paged index).
	IndexSeq uint64 `json:"index_seq,omitempty"`
}

// Reservation blocks: how far ahead of use the budget and the event
// sequence are reserved, so that most steps need no write of the session
// record. A crash forfeits at most one block of steps: the budget errs on
// the side of fewer credentials, never more.
const (
	maxStepBlock  = 64
	eventSeqBlock = 64
)

// StepBlock is how many steps are reserved at a time for a budget of
// maxSteps: a tenth of it, between 1 and 64.
func StepBlock(maxSteps int) int {
	return min(maxStepBlock, max(1, maxSteps/10))
}

// NeedsReservation reports whether the session's use has outgrown what is
// reserved in storage, so the record must be written before the step is
// acknowledged.
func (s *Session) NeedsReservation() bool {
	return s.StepsUsed > s.StepsReserved || s.EventSeq > s.EventSeqReserved
}

// Reserve grows both reservations to cover the current use plus a block,
// so that they run out together and the record is written once per block.
// A session that is no longer active issues nothing more, so its
// reservations are exact: what is stored is what was used.
func (s *Session) Reserve() {
	if s.State != StateActive {
		s.StepsReserved, s.EventSeqReserved = s.StepsUsed, s.EventSeq
		return
	}
	s.StepsReserved = max(s.StepsUsed, min(s.Intent.MaxSteps, s.StepsUsed+StepBlock(s.Intent.MaxSteps)-1))
	s.EventSeqReserved = s.EventSeq + eventSeqBlock - 1
}

// Recover sets the counters of a session loaded from storage with no
// record of its live use (after a restart or a change of active node):
// every reserved step counts as used, and event numbering resumes past
// the reservation.
func (s *Session) Recover() {
	s.Unaccounted = max(0, s.StepsReserved-s.StepsUsed)
	s.RecoveredAt = s.EventSeq
	s.StepsUsed = max(s.StepsUsed, s.StepsReserved)
	s.EventSeq = max(s.EventSeq, s.EventSeqReserved)
}

// Clone returns a deep copy of the session.
func (s *Session) Clone() *Session {
	c := *s
	c.Intent.Scopes = append([]string(nil), s.Intent.Scopes...)
	c.Intent.Audiences = append([]string(nil), s.Intent.Audiences...)
	if s.Intent.Metadata != nil {
		c.Intent.Metadata = make(map[string]string, len(s.Intent.Metadata))
		for k, v := range s.Intent.Metadata {
			c.Intent.Metadata[k] = v
		}
	}
	c.Violations = append([]Violation(nil), s.Violations...)
	c.Pending = slices.Clone(s.Pending)
	c.Grants = slices.Clone(s.Grants)
	c.Decided = slices.Clone(s.Decided)
	if s.Intent.Ceiling != nil {
		ceiling := *s.Intent.Ceiling
		c.Intent.Ceiling = &ceiling
	}
	return &c
}

// NewSession starts a session at now with a lease of ttl.
func NewSession(id, role, creator string, intent Intent, ttl time.Duration, now time.Time) *Session {
	return &Session{
		ID:           id,
		Role:         role,
		State:        StateActive,
		Intent:       intent,
		Creator:      creator,
		CreatedAt:    now,
		ExpiresAt:    now.Add(ttl),
		MaxExpiresAt: now.Add(intent.SessionMaxTTL),
	}
}

// StateAt is the session's state at now: an active session whose lease
// has run out is expired even before Vault's expiration manager says so.
func (s *Session) StateAt(now time.Time) State {
	if s.State == StateActive && !now.Before(s.ExpiresAt) {
		return StateExpired
	}
	return s.State
}

// Subject is the "sub" claim of the session's credentials.
func (s *Session) Subject() string { return s.Creator }

// Renew extends the session's lease to now+ttl, never past MaxExpiresAt,
// and returns the new TTL.
func (s *Session) Renew(ttl time.Duration, now time.Time) (time.Duration, error) {
	if st := s.StateAt(now); st != StateActive {
		return 0, fmt.Errorf("session %s is %s and cannot be renewed", s.ID, st)
	}
	exp := now.Add(ttl)
	if exp.After(s.MaxExpiresAt) {
		exp = s.MaxExpiresAt
	}
	if exp.Before(s.ExpiresAt) {
		exp = s.ExpiresAt
	}
	s.ExpiresAt = exp
	return exp.Sub(now), nil
}

// End marks an active session ended by its agent. It reports whether the
// state changed.
func (s *Session) End(now time.Time) bool {
	if s.StateAt(now) != StateActive {
		return false
	}
	s.State = StateEnded
	s.EndedAt = now
	return true
}

// Revoke closes an active session as revoked, with a reason. It reports
// whether the state changed.
func (s *Session) Revoke(reason string, now time.Time) bool {
	if s.StateAt(now) != StateActive {
		return false
	}
	s.State = StateRevoked
	s.EndedAt = now
	s.RevokedReason = reason
	return true
}

// Expire marks an active session whose lease ran out. It reports whether
// the state changed.
func (s *Session) Expire(now time.Time) bool {
	if s.State != StateActive {
		return false
	}
	s.State = StateExpired
	s.EndedAt = now
	return true
}

// TokensValidUntil is the latest expiry any credential of the session can
// have: credentials never outlive the session's lease as it stood when they
// were issued, nor step_max_ttl after they were issued.
func (s *Session) TokensValidUntil() time.Time {
	last := s.ExpiresAt
	if !s.EndedAt.IsZero() {
		if byStep := s.EndedAt.Add(s.Intent.StepMaxTTL); byStep.Before(last) {
			last = byStep
		}
	}
	return last
}

// CallSummary is a bounded, counted record of refused requests: how many,
// the first and the last, and who sent the last one. It holds no detail
// of what was asked, so that no caller can grow a session's record or
// push its history out by sending requests.
type CallSummary struct {
	Count      uint64    `json:"count"`
	First      time.Time `json:"first,omitzero"`
	Last       time.Time `json:"last,omitzero"`
	LastCaller string    `json:"last_caller,omitempty"`
}

// Add counts one request by caller at now.
func (c *CallSummary) Add(caller string, now time.Time) {
	if c.Count == 0 || now.Before(c.First) {
		c.First = now
	}
	if now.After(c.Last) {
		c.Last = now
	}
	c.Count++
	c.LastCaller = caller
}

// Merge adds o's requests to c.
func (c *CallSummary) Merge(o CallSummary) {
	if o.Count == 0 {
		return
	}
	if c.Count == 0 || o.First.Before(c.First) {
		c.First = o.First
	}
	if !o.Last.Before(c.Last) {
		c.Last, c.LastCaller = o.Last, o.LastCaller
	}
	c.Count += o.Count
}

// ActiveAt reports whether the session was active at t (t at or after its
// start): before it ended, was revoked or expired, and before its lease
// ran out.
func (s *Session) ActiveAt(t time.Time) bool {
	if t.Before(s.CreatedAt) || !t.Before(s.ExpiresAt) {
		return false
	}
	return s.EndedAt.IsZero() || t.Before(s.EndedAt)
}

// RecordViolation records v against the active session and applies the
// role's rule: under "revoke" the first violation revokes the session,
// under "deny" the session is revoked once its violations exceed the limit.
// It reports whether this violation revoked the session. A session that is
// no longer active at v.Time records nothing (callers count such requests
// in InactiveCalls): the violation that revoked a session stays the last one
// recorded and is never pushed out of its record.
func (s *Session) RecordViolation(v Violation) bool {
	if s.StateAt(v.Time) != StateActive {
		return false
	}
	s.ViolationCount++
	if len(v.Detail) > MaxViolationDetail {
		v.Detail = clipUTF8(v.Detail, MaxViolationDetail-3) + "..."
	}
	s.Violations = append(s.Violations, v)
	if len(s.Violations) > MaxRecordedViolations {
		s.Violations = append(s.Violations[:0], s.Violations[len(s.Violations)-MaxRecordedViolations:]...)
	}
	if s.Intent.OnViolation == OnViolationDeny && s.ViolationCount <= s.Intent.ViolationLimit {
		return false
	}
	return s.Revoke("violation: "+string(v.Kind), v.Time)
}

// clipUTF8 shortens s to at most n bytes without cutting a character.
func clipUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
