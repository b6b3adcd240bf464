package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	uuid "github.com/hashicorp/go-uuid"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/continuoustrust/vault-plugin-secrets-agent/timeline"
	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

// Step-up approval: a step outside the session's intent but inside the
// role, under the role's on_out_of_intent=approval, waits for a person.

func pathApprovals(b *backend) []*framework.Path {
	id := map[string]*framework.FieldSchema{
		"approval_id": {Type: framework.TypeString, Description: "The approval.", Required: true},
	}
	with := func(extra map[string]*framework.FieldSchema) map[string]*framework.FieldSchema {
		out := map[string]*framework.FieldSchema{}
		for k, v := range id {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	write := func(cb framework.OperationFunc, summary string, approve bool) map[logical.Operation]framework.OperationHandler {
		return map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback: cb, Summary: summary, Responses: decisionResponses(approve),
				ForwardPerformanceStandby: true, ForwardPerformanceSecondary: true,
			},
		}
	}
	return []*framework.Path{
		{
			Pattern: "approvals/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix, OperationVerb: "list", OperationSuffix: "approvals",
			},
			Fields: map[string]*framework.FieldSchema{
				"role":    {Type: framework.TypeString, Description: "Only the approvals of sessions of this role.", Query: true},
				"session": {Type: framework.TypeString, Description: "Only the approvals of this session.", Query: true},
				"state": {Type: framework.TypeString, Query: true,
					Description: `Only approvals in this state: "pending" (the default), "approved", "denied", "expired", "canceled" or "all".`},
				"after": {Type: framework.TypeString, Query: true,
					Description: "List the approvals after this one: the next value of the previous page."},
				"limit": {Type: framework.TypeInt, Query: true,
					Description: fmt.Sprintf("At most this many approvals (1 to %d); none or 0 for all of them.", maxListLimit)},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.pathApprovalsList, Summary: "List approvals (pending ones by default).",
					Responses: okResponses(map[string]*framework.FieldSchema{
						"keys":     required(framework.TypeStringSlice, "The approval IDs, oldest first."),
						"key_info": required(framework.TypeMap, "Each approval's session_id, role, state, scopes, audience and expires_at."),
						"next":     {Type: framework.TypeString, Description: "The value of after for the next page; absent on the last page."},
					}),
				},
			},
			HelpSynopsis:    "List approvals of steps that wait for a person.",
			HelpDescription: pathApprovalsHelpDesc,
		},
		{
			Pattern: "approvals/" + framework.GenericNameRegex("approval_id") + "$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix, OperationVerb: "read", OperationSuffix: "approval",
			},
			Fields: id,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathApprovalRead, Summary: "Read an approval: what was asked, by which session, and its timeline so far.",
					Responses: approvalReadResponses(),
				},
			},
			HelpSynopsis:    "Read an approval.",
			HelpDescription: pathApprovalsHelpDesc,
		},
		{
			Pattern: "approvals/" + framework.GenericNameRegex("approval_id") + "/approve$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix, OperationVerb: "approve", OperationSuffix: "step",
			},
			Fields: with(map[string]*framework.FieldSchema{
				"ttl": {Type: framework.TypeDurationSecond,
					Description: "How long the intent stays widened; defaults to the session's remaining life, and is clamped to it."},
				"comment": {Type: framework.TypeString, Description: "Why (at most 512 bytes); recorded in the timeline."},
			}),
			Operations:      write(b.pathApprovalApprove, "Approve a step: widen the session's intent by exactly what it asked.", true),
			HelpSynopsis:    "Approve a step that waits for a person.",
			HelpDescription: pathApprovalsHelpDesc,
		},
		{
			Pattern: "approvals/" + framework.GenericNameRegex("approval_id") + "/deny$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix, OperationVerb: "deny", OperationSuffix: "step",
			},
			Fields: with(map[string]*framework.FieldSchema{
				"reason": {Type: framework.TypeString, Description: "Required: why the step is denied (at most 512 bytes)."},
			}),
			Operations:      write(b.pathApprovalDeny, "Deny a step; under the role's denial_is_violation it is also a violation.", false),
			HelpSynopsis:    "Deny a step that waits for a person.",
			HelpDescription: pathApprovalsHelpDesc,
		},
	}
}

func approvalKey(id string) string { return approvalsPrefix + id }

func getApproval(ctx context.Context, s logical.Storage, id string) (*trust.Approval, error) {
	var a trust.Approval
	ok, err := getJSON(ctx, s, approvalKey(id), &a)
	if err != nil || !ok {
		return nil, err
	}
	return &a, nil
}

// createApproval records that a step waits for a person: the approval
// record, then the session with its timeline event. When the session
// already waits for its max_pending_approvals, the step is the violation
// it would have been: applied, and returned with whether it revoked the
// session.
func (b *backend) createApproval(ctx context.Context, req *logical.Request, cfg *agentConfig, sess *trust.Session, need *trust.ApprovalNeeded, description string, now time.Time) (*trust.Approval, *trust.Violation, bool, error) {
	// Asking again waits for the same approval: nothing is written.
	if p, ok := sess.Waiting(need, now); ok {
		a, err := getApproval(ctx, req.Storage, p.ID)
		if err != nil {
			return nil, nil, false, err
		}
		if a != nil {
			return a, nil, false, nil
		}
	}
	id, err := uuid.GenerateUUID()
	if err != nil {
		return nil, nil, false, err
	}
	a, v := sess.RequestApproval(id, need, now)
	if v != nil {
		v.Source = requestSource(req)
		revoked, err := b.applyViolation(ctx, req.Storage, cfg, sess, v)
		return nil, v, revoked, err
	}
	a.Description = description
	// The record first: a session never names an approval storage lacks.
	if err := putJSON(ctx, req.Storage, approvalKey(id), a); err != nil {
		sess.Pending = slices.DeleteFunc(sess.Pending, func(p trust.PendingApproval) bool { return p.ID == id })
		return nil, nil, false, err
	}
	events := stage(sess, now, timeline.Event{
		Kind: timeline.ApprovalRequested, Approval: id, Scopes: a.Scopes, Audience: a.Audience,
		Description: description, Detail: need.Detail, Expires: a.ExpiresAt.Unix(), Source: requestSource(req),
	})
	if err := b.save(ctx, req.Storage, cfg, sess, events, true); err != nil {
		return nil, nil, false, err
	}
	b.notifier.send(notifyApprovalRequest, "approval_id", id, "session_id", sess.ID, "role", sess.Role,
		logical.EventMetadataPath, "approvals/"+id)
	return a, nil, false, nil
}

// requestApproval answers a creds step that waits for a person: 202 with
// the approval, or the violation it is past max_pending_approvals.
func (b *backend) requestApproval(ctx context.Context, req *logical.Request, cfg *agentConfig, sess *trust.Session, need *trust.ApprovalNeeded, description string, now time.Time) (*logical.Response, error) {
	a, v, revoked, err := b.createApproval(ctx, req, cfg, sess, need, description, now)
	if err != nil {
		return nil, err
	}
	if v != nil {
		return nil, refuseViolation(v, sess, revoked)
	}
	id := a.ID
	body, err := json.Marshal(map[string]interface{}{
		"data": map[string]interface{}{
			"approval_id": id, "session_id": sess.ID, "state": string(trust.ApprovalPending),
			"scopes": a.Scopes, "audience": a.Audience,
			"expires_at": a.ExpiresAt.UTC().Format(time.RFC3339),
			"detail":     need.Detail,
		},
		"warnings": []string{"this step lies outside the session's intent and waits for an administrator's approval " +
			"(approvals/" + id + "); retry it once approved"},
	})
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{
		logical.HTTPStatusCode:  http.StatusAccepted,
		logical.HTTPContentType: "application/json",
		logical.HTTPRawBody:     body,
	}}, nil
}

// expireApprovals stages the expiry of the session's pending approvals
// that ran out before now.
func expireApprovals(sess *trust.Session, now time.Time) []timeline.Event {
	var events []timeline.Event
	for _, id := range sess.ExpireApprovals(now) {
		events = append(events, timeline.Event{Kind: timeline.ApprovalExpired, Approval: id})
	}
	return stage(sess, now, events...)
}

func approvalData(a *trust.Approval, state trust.ApprovalState) map[string]interface{} {
	m := map[string]interface{}{
		"approval_id": a.ID, "session_id": a.Session, "role": a.Role, "purpose": a.Purpose,
		"scopes": a.Scopes, "audience": a.Audience, "description": a.Description, "state": string(state),
		"requested_at": a.RequestedAt.UTC().Format(time.RFC3339), "expires_at": a.ExpiresAt.UTC().Format(time.RFC3339),
	}
	if a.DecidedBy != "" {
		m["decided_by"] = a.DecidedBy
		m["decided_at"] = a.DecidedAt.UTC().Format(time.RFC3339)
		m["comment"] = a.Comment
	}
	if !a.GrantUntil.IsZero() {
		m["grant_until"] = a.GrantUntil.UTC().Format(time.RFC3339)
	}
	return m
}

func (b *backend) pathApprovalsList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	role := strings.TrimSpace(d.Get("role").(string))
	session := strings.TrimSpace(d.Get("session").(string))
	want := strings.TrimSpace(d.Get("state").(string))
	if want == "" {
		want = string(trust.ApprovalPending)
	}
	switch trust.ApprovalState(want) {
	case trust.ApprovalPending, trust.ApprovalApproved, trust.ApprovalDenied, trust.ApprovalExpired, trust.ApprovalCanceled, "all":
	default:
		return nil, badField("state", "must be pending, approved, denied, expired, canceled or all")
	}
	after := strings.TrimSpace(d.Get("after").(string))
	limit := d.Get("limit").(int)
	if limit < 0 || limit > maxListLimit {
		return nil, badField("limit", "must be between 1 and %d (or 0 for all), got %d", maxListLimit, limit)
	}
	var from *trust.Approval
	if after != "" {
		a, err := getApproval(ctx, req.Storage, after)
		if err != nil {
			return nil, err
		}
		if a == nil {
			return nil, badField("after", "no approval %q: pass an ID from the previous page (it may have been deleted since; start again without after)", after)
		}
		from = a
	}
	ids, err := req.Storage.List(ctx, approvalsPrefix)
	if err != nil {
		return nil, err
	}
	now := b.now()
	type row struct {
		a     *trust.Approval
		state trust.ApprovalState
	}
	var rows []row
	for _, id := range ids {
		a, err := getApproval(ctx, req.Storage, id)
		if err != nil || a == nil {
			continue
		}
		if (role != "" && a.Role != role) || (session != "" && a.Session != session) {
			continue
		}
		if from != nil && !approvalBefore(from, a) {
			continue
		}
		st, err := b.approvalState(ctx, req.Storage, a, now)
		if err != nil {
			return nil, err
		}
		if want == "all" || st == trust.ApprovalState(want) {
			rows = append(rows, row{a, st})
		}
	}
	sort.Slice(rows, func(i, j int) bool { return approvalBefore(rows[i].a, rows[j].a) })
	next := ""
	if limit > 0 && len(rows) > limit {
		rows = rows[:limit]
		next = rows[limit-1].a.ID
	}
	keys := make([]string, 0, len(rows))
	info := map[string]interface{}{}
	for _, r := range rows {
		keys = append(keys, r.a.ID)
		info[r.a.ID] = map[string]interface{}{
			"session_id": r.a.Session, "role": r.a.Role, "state": string(r.state),
			"scopes": r.a.Scopes, "audience": r.a.Audience, "expires_at": r.a.ExpiresAt.UTC().Format(time.RFC3339),
		}
	}
	return pageResponse(keys, info, next), nil
}

// approvalBefore orders approvals oldest first, by ID among those asked
// for at the same time.
func approvalBefore(a, b *trust.Approval) bool {
	if !a.RequestedAt.Equal(b.RequestedAt) {
		return a.RequestedAt.Before(b.RequestedAt)
	}
	return a.ID < b.ID
}

// approvalState is a's state at now, given its session.
func (b *backend) approvalState(ctx context.Context, s logical.Storage, a *trust.Approval, now time.Time) (trust.ApprovalState, error) {
	if a.State != trust.ApprovalPending {
		return a.State, nil
	}
	sess, err := b.getSession(ctx, s, a.Session)
	if err != nil {
		return "", err
	}
	st := trust.StateExpired
	if sess != nil {
		st = sess.StateAt(now)
	}
	return a.StateAt(now, st), nil
}

func (b *backend) pathApprovalRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	a, err := getApproval(ctx, req.Storage, d.Get("approval_id").(string))
	if err != nil || a == nil {
		return nil, err
	}
	now := b.now()
	st, err := b.approvalState(ctx, req.Storage, a, now)
	if err != nil {
		return nil, err
	}
	data := approvalData(a, st)
	// The session's timeline so far: what the agent did before it asked.
	if sess, err := b.getSession(ctx, req.Storage, a.Session); err == nil && sess != nil {
		cfg, err := b.loadConfig(ctx, req.Storage)
		if err != nil {
			return nil, err
		}
		events, err := b.eventsOf(ctx, req.Storage, sess, cfg.MaxEvents, 0, 0)
		if err != nil {
			return nil, err
		}
		list := make([]interface{}, 0, len(events))
		for _, e := range events {
			list = append(list, eventData(e))
		}
		data["timeline"] = list
		data["session_state"] = string(sess.StateAt(now))
	}
	return &logical.Response{Data: data}, nil
}

// decide loads approval id and its session, locked, and applies fn, the
// decision, then persists both.
func (b *backend) decide(ctx context.Context, req *logical.Request, id string, fn func(cfg *agentConfig, sess *trust.Session, a *trust.Approval, decider string, now time.Time) ([]timeline.Event, *trust.Violation, error)) (*logical.Response, error) {
	decider, err := b.callerID(ctx, req)
	if errors.Is(err, errNoCaller) {
		return nil, refuseForbidden("%v", err)
	} else if err != nil {
		return nil, err
	}
	a, err := getApproval(ctx, req.Storage, id)
	if err != nil {
		return nil, err
	}
	if a == nil {
		return nil, &refusal{status: http.StatusNotFound, msg: "no approval " + id, data: map[string]interface{}{"reason": reasonNotFound, "field": "approval_id"}}
	}
	cfg, err := b.loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	sess, unlock, err := b.lockSession(ctx, req.Storage, a.Session)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Read again under the session's lock: decisions are serialised.
	if a, err = getApproval(ctx, req.Storage, id); err != nil || a == nil {
		return nil, err
	}
	now := b.now()
	events, v, err := fn(cfg, sess, a, decider, now)
	var de *trust.DecisionError
	switch {
	case errors.As(err, &de) && de.Forbidden:
		return nil, refuseForbidden("%s", de.Reason)
	case errors.As(err, &de):
		return nil, &refusal{status: http.StatusConflict, msg: de.Reason, data: map[string]interface{}{"reason": "not_pending", "field": "approval_id"}}
	case err != nil:
		return nil, badRequest(err)
	}
	// The session first: it is the authority (decidable checks that it
	// waits for the approval), so a failure between the two writes never
	// leaves a grant the session does not know of.
	if err := b.save(ctx, req.Storage, cfg, sess, events, true); err != nil {
		return nil, err
	}
	if err := putJSON(ctx, req.Storage, approvalKey(id), a); err != nil {
		return nil, err
	}
	b.notifier.send(notifyApprovalDecision, "approval_id", id, "session_id", sess.ID, "role", sess.Role,
		"decision", string(a.State), logical.EventMetadataPath, "approvals/"+id)
	if v != nil {
		// The denial is a violation of the session.
		if _, err := b.applyViolation(ctx, req.Storage, cfg, sess, v); err != nil {
			return nil, err
		}
	}
	data := approvalData(a, a.State)
	data["session_state"] = string(sess.StateAt(b.now()))
	return &logical.Response{Data: data}, nil
}

func (b *backend) pathApprovalApprove(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if err := refuseUnknownFields(req, d); err != nil {
		return nil, err
	}
	ttl := time.Duration(d.Get("ttl").(int)) * time.Second
	if ttl < 0 {
		return nil, badField("ttl", "must not be negative")
	}
	comment := strings.TrimSpace(d.Get("comment").(string))
	return b.decide(ctx, req, d.Get("approval_id").(string), func(cfg *agentConfig, sess *trust.Session, a *trust.Approval, decider string, now time.Time) ([]timeline.Event, *trust.Violation, error) {
		events := expireApprovals(sess, now)
		if err := sess.Approve(a, decider, ttl, comment, now); err != nil {
			return nil, nil, err
		}
		return append(events, stage(sess, now, timeline.Event{
			Kind: timeline.ApprovalApproved, Approval: a.ID, Scopes: a.Scopes, Audience: a.Audience,
			Actor: decider, Detail: comment, Expires: a.GrantUntil.Unix(), Source: requestSource(req),
		})...), nil, nil
	})
}

func (b *backend) pathApprovalDeny(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if err := refuseUnknownFields(req, d); err != nil {
		return nil, err
	}
	reason := strings.TrimSpace(d.Get("reason").(string))
	return b.decide(ctx, req, d.Get("approval_id").(string), func(cfg *agentConfig, sess *trust.Session, a *trust.Approval, decider string, now time.Time) ([]timeline.Event, *trust.Violation, error) {
		events := expireApprovals(sess, now)
		v, err := sess.Deny(a, decider, reason, now)
		if err != nil {
			return nil, nil, err
		}
		if v != nil {
			v.Source = requestSource(req)
		}
		return append(events, stage(sess, now, timeline.Event{
			Kind: timeline.ApprovalDenied, Approval: a.ID, Scopes: a.Scopes, Audience: a.Audience,
			Actor: decider, Detail: reason, Source: requestSource(req),
		})...), v, nil
	})
}

// approvalFields are the fields of an approval's answers.
func approvalFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"approval_id":   required(framework.TypeString, "The approval."),
		"session_id":    required(framework.TypeString, "The session whose step waits."),
		"role":          required(framework.TypeString, "The session's role."),
		"purpose":       required(framework.TypeString, "The session's purpose."),
		"scopes":        required(framework.TypeStringSlice, "The scopes the step asked for."),
		"audience":      required(framework.TypeString, "The audience the step asked for."),
		"description":   required(framework.TypeString, "What the step is for, as the agent put it."),
		"state":         required(framework.TypeString, "pending, approved, denied, expired, or canceled (its session closed)."),
		"requested_at":  required(framework.TypeTime, "When the step asked."),
		"expires_at":    required(framework.TypeTime, "When the approval stops waiting."),
		"decided_by":    optional(framework.TypeString, "Who decided (an entity ID, or a salted hash of a token accessor)."),
		"decided_at":    optional(framework.TypeTime, "When it was decided."),
		"comment":       optional(framework.TypeString, "The decision's comment, or the denial's reason."),
		"grant_until":   optional(framework.TypeTime, "For an approval: until when the intent is widened."),
		"session_state": optional(framework.TypeString, "The session's state."),
	}
}

func approvalReadResponses() map[int][]framework.Response {
	f := approvalFields()
	f["timeline"] = optional(framework.TypeSlice, "The session's timeline so far.")
	return okResponses(f)
}

func decisionResponses(approve bool) map[int][]framework.Response {
	f := approvalFields()
	if !approve {
		delete(f, "grant_until")
	}
	f["decided_by"].Required, f["decided_at"].Required, f["comment"].Required = true, true, true
	f["session_state"].Required = true
	return okResponses(f)
}

const pathApprovalsHelpDesc = `
Under a role's on_out_of_intent=approval, a step (creds, or a token exchange)
that asks for scopes or an audience outside the session's intent, but inside
the role, is not a violation: it waits for a person. The request answers 202
with an approval_id, and nothing is issued. An administrator other than the
session's creator decides:

  vault list agent/approvals                       # pending ones; ?role= ?session= ?state= filter
  vault read agent/approvals/<id>                  # what was asked, the step text, the timeline so far
  vault write agent/approvals/<id>/approve ttl=10m comment="for the rotation"
  vault write agent/approvals/<id>/deny reason="not during the freeze"

Approval widens the session's intent by exactly what was asked (those scopes,
for that audience) for ttl (default and at most the session's remaining
life); the agent then retries the step and gets its credential, which counts
against the budgets like any other. Denial refuses it; under the role's
denial_is_violation it is also an approval_denied violation. A session waits
for at most the role's max_pending_approvals; past that a step is the
violation it would have been. Pending approvals expire after the role's
approval_ttl (default 15 minutes), and die with their session (canceled).
Every request, decision and expiry is in the session's timeline.
`
