package client

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrApprovalPending: the step lies outside the session's intent but
// inside its role, under on_out_of_intent=approval: it waits for an
// administrator's approval and nothing was issued. errors.As gives the
// *ApprovalPendingError, whose ID WaitForApproval takes.
var ErrApprovalPending = errors.New("step waits for approval")

// ErrApprovalDenied: the approval a step waited for was denied, expired,
// or died with its session: the step will not be granted.
var ErrApprovalDenied = errors.New("approval not granted")

// ApprovalPendingError is a step that waits for approval.
type ApprovalPendingError struct {
	// ID is the approval (approvals/<id> for administrators).
	ID string
	// Scopes and Audience are what the step asked.
	Scopes   []string
	Audience string
	// ExpiresAt is when the approval stops waiting.
	ExpiresAt time.Time
	// Detail is why the step lies outside the intent.
	Detail string
}

func (e *ApprovalPendingError) Error() string {
	return fmt.Sprintf("step waits for approval %s until %s: %s", e.ID, e.ExpiresAt.Format(time.RFC3339), e.Detail)
}

// Is matches ErrApprovalPending.
func (e *ApprovalPendingError) Is(target error) bool { return target == ErrApprovalPending }

// approvalPending reads a 202 answer of creds.
func approvalPending(data map[string]interface{}) *ApprovalPendingError {
	id, _ := data["approval_id"].(string)
	if id == "" {
		return nil
	}
	e := &ApprovalPendingError{ID: id, Scopes: stringList(data["scopes"])}
	e.Audience, _ = data["audience"].(string)
	e.Detail, _ = data["detail"].(string)
	if t, err := time.Parse(time.RFC3339, fmt.Sprint(data["expires_at"])); err == nil {
		e.ExpiresAt = t
	}
	return e
}

// DefaultApprovalPoll is how often WaitForApproval reads the session.
const DefaultApprovalPoll = time.Second

// WaitForApproval waits until approval id of the session is decided: it
// returns nil once approved (then retry the step: it is granted), or an
// error matching ErrApprovalDenied once denied, expired, or gone with the
// session; or ctx's error. It reads the agent's own session every poll
// (zero means DefaultApprovalPoll).
func (s *Session) WaitForApproval(ctx context.Context, id string, poll time.Duration) error {
	if poll <= 0 {
		poll = DefaultApprovalPoll
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		secret, err := s.c.read(ctx, s.c.mount+"/session/"+s.ID)
		if err != nil {
			return err
		}
		if secret == nil || secret.Data == nil {
			return fmt.Errorf("client: reading session %s returned no data", s.ID)
		}
		if state, _ := secret.Data["state"].(string); state != "active" {
			return fmt.Errorf("%w: the session is %s", ErrApprovalDenied, state)
		}
		pending := false
		for _, p := range maps(secret.Data["pending_approvals"]) {
			pending = pending || p["approval_id"] == id
		}
		for _, d := range maps(secret.Data["decided_approvals"]) {
			if d["approval_id"] == id {
				if d["state"] == "approved" {
					return nil
				}
				return fmt.Errorf("%w: approval %s was %v", ErrApprovalDenied, id, d["state"])
			}
		}
		for _, g := range maps(secret.Data["grants"]) {
			if g["approval_id"] == id {
				return nil
			}
		}
		if !pending {
			return fmt.Errorf("%w: approval %s is neither pending nor decided", ErrApprovalDenied, id)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func maps(v interface{}) []map[string]interface{} {
	list, _ := v.([]interface{})
	out := make([]map[string]interface{}, 0, len(list))
	for _, x := range list {
		if m, ok := x.(map[string]interface{}); ok {
			out = append(out, m)
		}
	}
	return out
}
