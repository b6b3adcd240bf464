package trust

import (
	"fmt"
	"time"

	"github.com/continuoustrust/vault-plugin-secrets-agent/scope"
)

// ObservedUse is what a resource server reports having seen a credential
// do, and when.
type ObservedUse struct {
	// Scope is the credential's scope claim (space-separated).
	Scope string
	// IssuedAt and Expiry are the credential's iat and exp.
	IssuedAt, Expiry time.Time
	// ObservedAt is when the resource server saw the use.
	ObservedAt time.Time
	// Action and Resource are the request the resource server saw.
	Action, Resource string
}

// CheckObserved refuses a report whose observed time cannot be right: in
// the future (beyond leeway, the clock skew tolerated), before the
// credential was issued, or older than the credential's lifetime (plus
// leeway) when the report arrives at now. It returns a *FieldError naming
// observed_at.
func CheckObserved(u ObservedUse, leeway time.Duration, now time.Time) error {
	switch {
	case u.ObservedAt.After(now.Add(leeway)):
		return fieldErr("observed_at", "is in the future (%s, now %s)", u.ObservedAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case u.ObservedAt.Before(u.IssuedAt.Add(-leeway)):
		return fieldErr("observed_at", "is before the credential was issued")
	case now.Sub(u.ObservedAt) > u.Expiry.Sub(u.IssuedAt)+leeway:
		return fieldErr("observed_at", "is older than the credential's lifetime of %s: report uses as they happen", u.Expiry.Sub(u.IssuedAt))
	}
	return nil
}

// JudgeUse decides whether a reported use of one of the session's
// credentials was misuse at the time it was observed: the use of a
// credential of a session that was no longer active then, of a credential
// that had expired then (beyond leeway, the clock skew a verifier
// tolerates), or outside the credential's scope. It returns the reason,
// or "" for a use within the intent. The caller checks the report with
// CheckObserved first.
func (s *Session) JudgeUse(u ObservedUse, leeway time.Duration) (string, error) {
	granted, err := scope.ParseSpaceSeparated(u.Scope)
	if err != nil {
		return "", fmt.Errorf("the credential carries an invalid scope: %w", err)
	}
	at := u.ObservedAt
	switch {
	case !s.ActiveAt(at):
		return fmt.Sprintf("use at %s of a credential of a session that was no longer active", at.UTC().Format(time.RFC3339)), nil
	case !at.Before(u.Expiry.Add(leeway)):
		return fmt.Sprintf("use at %s of a credential that expired at %s", at.UTC().Format(time.RFC3339), u.Expiry.UTC().Format(time.RFC3339)), nil
	case !granted.Match(u.Action, u.Resource):
		return fmt.Sprintf("%s on %s is outside the credential's scope %q", u.Action, u.Resource, u.Scope), nil
	}
	return "", nil
}
