package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/continuoustrust/vault-plugin-secrets-agent/scope"
	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

// Refusal reasons: what kind of refusal an answer is, in its data's
// "reason", for programs; the message is for people.
const (
	// reasonMalformed: a field is missing or malformed; data names it in
	// "field". Never a violation.
	reasonMalformed = "malformed"
	// reasonViolation: a well-formed request exceeded the session's
	// intent; data holds "violation" (the kind) and "session_state".
	reasonViolation = "violation"
	// reasonSessionClosed: the session is no longer active.
	reasonSessionClosed = "session_closed"
	// reasonForeignCaller: the session belongs to another caller.
	reasonForeignCaller = "foreign_caller"
	// reasonNotFound: no such session (or role, for a session start).
	reasonNotFound = "not_found"
	// reasonLimit: an engine or role limit other than a session's
	// budgets, such as max_sessions.
	reasonLimit = "limit"
	// reasonForbidden: the caller may not do this, whoever it is.
	reasonForbidden = "forbidden"
)

// refusal is the one way the engine refuses a request: an HTTP status, a
// message for people and data for programs. Handlers return it as their
// error; answerRefusals turns it into the answer
//
//	{"errors": ["<message>"], "data": {"reason": ..., ...}}
//
// so that the vault CLI prints the message as it prints Vault's own, and
// a program reads the reason, the field, the violation kind and the
// session's state from data without parsing the message.
type refusal struct {
	status int
	msg    string
	data   map[string]interface{}
}

func (r *refusal) Error() string { return r.msg }

// badField refuses a malformed request naming the field.
func badField(field, format string, args ...interface{}) error {
	return &refusal{
		status: http.StatusBadRequest,
		msg:    field + ": " + fmt.Sprintf(format, args...),
		data:   map[string]interface{}{"reason": reasonMalformed, "field": field},
	}
}

// badRequest refuses a request with a domain error that names its field
// (a trust field error, an intent wider than its role, a request that is
// not concrete); any other error is the engine's own and passes through.
func badRequest(err error) error {
	var fe *trust.FieldError
	var we *trust.WiderError
	var re *scope.RequestError
	switch {
	case errors.As(err, &fe):
		return badField(fe.Field, "%s", fe.Reason)
	case errors.As(err, &we):
		return badField(we.Field, "%s", we.Reason)
	case errors.As(err, &re):
		return badField(re.Field, "%s", re.Reason)
	}
	return err
}

// refuseUnknownFields refuses a write that names a field the path does
// not have. Vault would only warn, and only when the answer has a body:
// for a ceiling such as max_steps or step_max_ttl a misspelt name would
// silently keep the default, so these writes refuse it outright.
func refuseUnknownFields(req *logical.Request, d *framework.FieldData) error {
	var unknown []string
	for k := range req.Data {
		if _, ok := d.Schema[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	known := make([]string, 0, len(d.Schema))
	for k := range d.Schema {
		known = append(known, k)
	}
	sort.Strings(known)
	return badField(unknown[0], "unknown field%s %s (this path takes %s)",
		map[bool]string{true: "s", false: ""}[len(unknown) > 1], strings.Join(unknown, ", "), strings.Join(known, ", "))
}

// refuseViolation refuses a request that was a violation, saying what the
// session's state is now (revoked when this violation closed it).
func refuseViolation(v *trust.Violation, sess *trust.Session, closed bool) error {
	status := http.StatusForbidden
	if v.Kind == trust.RateExceeded {
		status = http.StatusTooManyRequests
	}
	msg := v.Error()
	if closed {
		msg += "; the session is revoked and all its credentials with it"
	}
	return &refusal{status: status, msg: msg, data: map[string]interface{}{
		"reason":        reasonViolation,
		"violation":     string(v.Kind),
		"session_id":    sess.ID,
		"session_state": string(sess.State),
	}}
}

// refuseClosed refuses a request on a session that is no longer active
// (status 403 for a step, 409 for a transition such as an end).
func refuseClosed(status int, sess *trust.Session, state trust.State) error {
	return &refusal{status: status, msg: (&trust.StateError{Session: sess.ID, State: state}).Error(), data: map[string]interface{}{
		"reason":        reasonSessionClosed,
		"session_id":    sess.ID,
		"session_state": string(state),
	}}
}

// refuseForeign refuses a request on a session that belongs to another
// caller. It says nothing of the session's state.
func refuseForeign(id string) error {
	return &refusal{status: http.StatusForbidden, msg: (&trust.ForeignCallerError{Session: id}).Error(), data: map[string]interface{}{
		"reason":     reasonForeignCaller,
		"session_id": id,
	}}
}

// refuseNoSession refuses a request naming a session that does not exist.
func refuseNoSession(id string) error {
	return &refusal{status: http.StatusNotFound, msg: fmt.Sprintf("session_id: no session %q", scope.Clip(id)), data: map[string]interface{}{
		"reason": reasonNotFound, "field": "session_id",
	}}
}

// isNoSession tells refuseNoSession's error, for callers that answer a
// missing session otherwise.
func isNoSession(err error) bool {
	var r *refusal
	return errors.As(err, &r) && r.data["reason"] == reasonNotFound
}

// refuseLimit refuses a request that would pass an engine or role limit.
func refuseLimit(status int, format string, args ...interface{}) error {
	return &refusal{status: status, msg: fmt.Sprintf(format, args...), data: map[string]interface{}{"reason": reasonLimit}}
}

// refuseForbidden refuses a request its caller may not make.
func refuseForbidden(format string, args ...interface{}) error {
	return &refusal{status: http.StatusForbidden, msg: fmt.Sprintf(format, args...), data: map[string]interface{}{"reason": reasonForbidden}}
}

// answerRefusals wraps every operation of paths so that a handler refuses
// a request by returning a *refusal: the client gets its status with the
// message in "errors", as from Vault itself, and its data.
func answerRefusals(paths []*framework.Path) {
	for _, p := range paths {
		for op, h := range p.Operations {
			po, ok := h.(*framework.PathOperation)
			if !ok || po.Callback == nil {
				continue
			}
			next := po.Callback
			po.Callback = func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
				resp, err := next(ctx, req, d)
				var r *refusal
				if errors.As(err, &r) {
					return refusalResponse(r), nil
				}
				return resp, err
			}
			p.Operations[op] = po
		}
	}
}

// refusalResponse is the raw answer of a refusal.
func refusalResponse(r *refusal) *logical.Response {
	body, _ := json.Marshal(map[string]interface{}{"errors": []string{r.msg}, "data": r.data})
	return &logical.Response{Data: map[string]interface{}{
		logical.HTTPStatusCode:  r.status,
		logical.HTTPContentType: "application/json",
		logical.HTTPRawBody:     body,
	}}
}

// maxListLimit bounds the limit of a paged list.
const maxListLimit = 10000

// pageResponse is one page of a paged list: its keys (and their
// key_info, when info is not nil), and the value of after for the next
// page, when there is one.
func pageResponse(keys []string, info map[string]interface{}, next string) *logical.Response {
	var resp *logical.Response
	if info != nil {
		resp = logical.ListResponseWithInfo(keys, info)
	} else {
		resp = logical.ListResponse(keys)
	}
	if next != "" {
		resp.Data["next"] = next
	}
	return resp
}
