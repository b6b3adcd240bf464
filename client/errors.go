package client

import (
	"encoding/json"
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

// Refusal reasons, as the engine sends them in a refusal's data.
const (
	ReasonMalformed     = "malformed"
	ReasonViolation     = "violation"
	ReasonSessionClosed = "session_closed"
	ReasonForeignCaller = "foreign_caller"
	ReasonNotFound      = "not_found"
	ReasonLimit         = "limit"
	ReasonForbidden     = "forbidden"
)

// Error is a refusal from the engine. Everything but Message is read from
// the refusal's data, never from its message, which is for people.
type Error struct {
	// StatusCode is the HTTP status: 400 bad request, 403 violation or
	// closed session, 404 unknown session, 429 rate_exceeded.
	StatusCode int
	// Reason is what kind of refusal this is (Reason* constants), or ""
	// when the refusal did not come from the engine (e.g. Vault's own
	// "permission denied").
	Reason string
	// Field names the malformed field of a bad request.
	Field string
	// Kind is the violation kind, or "" when the refusal is not a
	// violation.
	Kind string
	// SessionState is the session's state after the request ("active",
	// "ended", "revoked", "expired"), when the engine said.
	SessionState string
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

// refusalBody is a refusal as the engine answers it.
type refusalBody struct {
	Errors []string `json:"errors"`
	Data   struct {
		Reason       string `json:"reason"`
		Field        string `json:"field"`
		Violation    string `json:"violation"`
		SessionState string `json:"session_state"`
	} `json:"data"`
}

// asError turns a failed request into an *Error when it is a refusal,
// reading what it says from the answer's data (resp may be nil, as for a
// renewal's error).
func asError(resp *api.Response, err error) error {
	if err == nil {
		return nil
	}
	var re *api.ResponseError
	if !errors.As(err, &re) {
		return err
	}
	e := &Error{StatusCode: re.StatusCode, Message: strings.Join(re.Errors, "; ")}
	if e.Message == "" {
		e.Message = re.Error() // says the method, the URL and the status
	}
	if resp != nil && resp.Body != nil {
		var body refusalBody
		if json.NewDecoder(resp.Body).Decode(&body) == nil {
			e.Reason = body.Data.Reason
			e.Field = body.Data.Field
			e.Kind = body.Data.Violation
			e.SessionState = body.Data.SessionState
		}
	}
	e.Foreign = e.Reason == ReasonForeignCaller
	e.SessionClosed = e.SessionState != "" && e.SessionState != "active"
	return e
}
