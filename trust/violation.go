package trust

import (
	"fmt"
	"time"
)

// ViolationKind names the kind of a violation: a well-formed request that
// exceeds the intent. (A timeline event's kind is a timeline.EventKind.)
type ViolationKind string

// The violation kinds.
const (
	ScopeOutsideIntent    ViolationKind = "scope_outside_intent"
	AudienceOutsideIntent ViolationKind = "audience_outside_intent"
	DepthExceeded         ViolationKind = "depth_exceeded"
	BudgetExhausted       ViolationKind = "budget_exhausted"
	RateExceeded          ViolationKind = "rate_exceeded"
	BadParent             ViolationKind = "bad_parent"
	ReportedMisuse        ViolationKind = "reported_misuse"
	// ApprovalDeniedKind: an approval of the session was denied, under a
	// role whose denial_is_violation is true.
	ApprovalDeniedKind ViolationKind = "approval_denied"
)

// ViolationKinds lists every violation kind.
var ViolationKinds = []ViolationKind{
	ScopeOutsideIntent, AudienceOutsideIntent, DepthExceeded, BudgetExhausted,
	RateExceeded, BadParent, ReportedMisuse, ApprovalDeniedKind,
}

// Violation is one recorded violation.
type Violation struct {
	Kind   ViolationKind `json:"kind"`
	Time   time.Time     `json:"time"`
	Detail string        `json:"detail"`
	// Source is where the request came from (remote address), when known.
	Source string `json:"source,omitempty"`
	// Credential is the credential involved (a parent's or reported
	// token's jti), when there is one.
	Credential string `json:"credential,omitempty"`
}

// Error makes a violation usable as the error refusing the request; the
// message names the kind first.
func (v *Violation) Error() string {
	return fmt.Sprintf("violation %s: %s", v.Kind, v.Detail)
}

func violation(kind ViolationKind, now time.Time, format string, args ...interface{}) *Violation {
	return &Violation{Kind: kind, Time: now, Detail: fmt.Sprintf(format, args...)}
}
