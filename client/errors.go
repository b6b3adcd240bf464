package client

import (
	"errors"
	"strings"

	"github.com/hashicorp/vault/api"
)

// Sentinel errors, matched with errors.Is against an *Error.
var (
	// ErrViolation: the request exceeded the session's intent.
	ErrViolation = errors.New("violation")
	// ErrScopeOutsideIntent and the others name one violation kind each.
	ErrScopeOutsideIntent    = errors.New("scope_outside_intent")
	ErrAudienceOutsideIntent = errors.New("audience_outside_intent")
	ErrDepthExceeded         = errors.New("depth_exceeded")
	ErrBudgetExhausted       = errors.New("budget_exhausted")
	ErrRateExceeded          = errors.New("rate_exceeded")
	ErrBadParent             = errors.New("bad_parent")
	// ErrForeignCaller: the session belongs to another caller. It is a
	// refusal, never a violation: the session is not harmed.
	ErrForeignCaller = errors.New("session belongs to another caller")
	// ErrSessionClosed: the session is closed (this request's violation
	// revoked it, or it was already ended, revoked or expired); start a
	// new one.
	ErrSessionClosed = errors.New("session closed")
	// ErrBadRequest: a malformed request or an intent wider than the role.
	ErrBadRequest = errors.New("bad request")
	// ErrNotFound: no such session.
	ErrNotFound = errors.New("not found")
)

var kinds = map[string]error{
	"scope_outside_intent":    ErrScopeOutsideIntent,
	"audience_outside_intent": ErrAudienceOutsideIntent,
	"depth_exceeded":          ErrDepthExceeded,
	"budget_exhausted":        ErrBudgetExhausted,
	"rate_exceeded":           ErrRateExceeded,
	"bad_parent":              ErrBadParent,
}

// Error is a refusal from the engine.
type Error struct {
	// StatusCode is the HTTP status: 400 bad request, 403 violation or
	// closed session, 404 unknown session, 429 rate_exceeded.
	StatusCode int
	// Kind is the violation kind, or "" when the refusal is not a
	// violation.
	Kind string
	// SessionClosed is true when the session is closed: this request's
	// violation revoked it, or it was closed already.
	SessionClosed bool
	// Foreign is true when the session belongs to another caller.
	Foreign bool
	// Message is the engine's message.
	Message string
}

func (e *Error) Error() string { return e.Message }

// Is matches the sentinel errors.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrViolation:
		return e.Kind != ""
	case ErrSessionClosed:
		return e.SessionClosed
	case ErrBadRequest:
		return e.StatusCode == 400
	case ErrNotFound:
		return e.StatusCode == 404
	case ErrForeignCaller:
		return e.Foreign
	}
	if k, ok := kinds[e.Kind]; ok {
		return k == target
	}
	return false
}

// asError turns a Vault API error into an *Error when it is a refusal.
func asError(err error) error {
	if err == nil {
		return nil
	}
	var re *api.ResponseError
	if !errors.As(err, &re) {
		return err
	}
	msg := strings.Join(re.Errors, "; ")
	e := &Error{StatusCode: re.StatusCode, Message: msg}
	if rest, ok := strings.CutPrefix(msg, "violation "); ok {
		if kind, _, ok := strings.Cut(rest, ":"); ok {
			e.Kind = kind
		}
	}
	e.Foreign = re.StatusCode == 403 && strings.HasSuffix(msg, " belongs to another caller")
	e.SessionClosed = strings.Contains(msg, "the session is revoked") ||
		(strings.HasPrefix(msg, "session ") && (strings.Contains(msg, " is revoked") ||
			strings.Contains(msg, " is ended") || strings.Contains(msg, " is expired")))
	return e
}
