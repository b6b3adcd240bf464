package trust

import (
	"fmt"
	"time"
)

// Kind names a violation: a well-formed request that exceeds the intent.
type Kind string

// The violation kinds.
const (
	ScopeOutsideIntent    Kind = "scope_outside_intent"
	AudienceOutsideIntent Kind = "audience_outside_intent"
	DepthExceeded         Kind = "depth_exceeded"
	BudgetExhausted       Kind = "budget_exhausted"
	RateExceeded          Kind = "rate_exceeded"
	BadParent             Kind = "bad_parent"
	ReportedMisuse        Kind = "reported_misuse"
)

// Kinds lists every violation kind.
var Kinds = []Kind{
	ScopeOutsideIntent, AudienceOutsideIntent, DepthExceeded, BudgetExhausted,
	RateExceeded, BadParent, ReportedMisuse,
}

// Violation is one recorded violation.
type Violation struct {
	Kind   Kind      `json:"kind"`
	Time   time.Time `json:"time"`
	Detail string    `json:"detail"`
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

func violation(kind Kind, now time.Time, format string, args ...interface{}) *Violation {
	return &Violation{Kind: kind, Time: now, Detail: fmt.Sprintf(format, args...)}
}
