package trust

import (
	"fmt"
	"time"

	"github.com/continuoustrust/vault-plugin-secrets-agent/scope"
)

// ObservedUse is what a resource server reports having seen a credential
// do.
type ObservedUse struct {
	// Scope is the credential's scope claim (space-separated).
	Scope string
	// Expiry is the credential's exp.
	Expiry time.Time
	// Action and Resource are the request the resource server saw.
	Action, Resource string
}

// JudgeUse decides whether a reported use of one of the session's
// credentials is misuse: the use of a credential of a session that is no
// longer active, of an expired credential, or outside the credential's
// scope. It returns the reason, or "" for a use within the intent.
func (s *Session) JudgeUse(u ObservedUse, now time.Time) (string, error) {
	granted, err := scope.ParseSpaceSeparated(u.Scope)
	if err != nil {
		return "", fmt.Errorf("the credential carries an invalid scope: %w", err)
	}
	switch {
	case s.StateAt(now) != StateActive:
		return fmt.Sprintf("use of a credential of a session that is %s", s.StateAt(now)), nil
	case !now.Before(u.Expiry):
		return fmt.Sprintf("use of a credential that expired at %s", u.Expiry.UTC().Format(time.RFC3339)), nil
	case !granted.Match(u.Action, u.Resource):
		return fmt.Sprintf("%s on %s is outside the credential's scope %q", u.Action, u.Resource, u.Scope), nil
	}
	return "", nil
}
