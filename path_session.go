package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/continuoustrust/vault-plugin-secrets-agent/scope"
	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

func pathSession(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "session$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix, OperationVerb: "start", OperationSuffix: "session",
			},
			Fields: map[string]*framework.FieldSchema{
				"role": {
					Type:        framework.TypeString,
					Description: "Required. The role whose ceiling the session lives under.",
					Required:    true,
				},
				"purpose": {
					Type:        framework.TypeString,
					Description: "Why the session exists, in words a reviewer understands (at most 1 KiB). Required when the role says require_purpose.",
				},
				"scopes": {
					Type:        framework.TypeCommaStringSlice,
					Description: "The scopes the session declares, each inside some role scope. Omitted: the role's whole set.",
				},
				"audiences": {
					Type:        framework.TypeCommaStringSlice,
					Description: "The audiences the session declares, a subset of the role's. Omitted: the role's whole set.",
				},
				"ttl": {
					Type:        framework.TypeDurationSecond,
					Description: "The session's lease TTL, at most the role's session_max_ttl. Omitted: the role's session_ttl.",
				},
				"max_steps": {
					Type:        framework.TypeInt,
					Description: "Step credentials the session may obtain, at most the role's. Omitted: the role's.",
				},
				"max_depth": {
					Type:        framework.TypeInt,
					Description: "Derivation depth, at most the role's. Omitted: the role's.",
				},
				"max_rate": {
					Type:        framework.TypeInt,
					Description: "Step credentials per minute, at most the role's. Omitted: the role's.",
				},
				"metadata": {
					Type:        framework.TypeKVPairs,
					Description: "Up to 16 key=value pairs recorded with the session (e.g. ticket=OPS-42).",
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback: b.pathSessionStart,
					// Writes replicated storage: run on the active node of the primary.
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Summary:                     "Start a session with a declared intent; returns a leased secret.",
					Responses:                   sessionStartResponses(),
				},
			},
			HelpSynopsis:    pathSessionHelpSyn,
			HelpDescription: pathSessionHelpDesc,
		},
		{
			Pattern: "sessions/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix, OperationSuffix: "sessions",
			},
			Fields: map[string]*framework.FieldSchema{
				"role": {
					Type:        framework.TypeString,
					Description: "Only sessions of this role.",
					Query:       true,
				},
				"state": {
					Type:          framework.TypeString,
					Description:   `Only sessions in this state: "active", "ended", "revoked" or "expired".`,
					Query:         true,
					AllowedValues: []interface{}{"active", "ended", "revoked", "expired"},
				},
				"after": {
					Type:        framework.TypeString,
					Description: "List the sessions after this one: the next value of the previous page.",
					Query:       true,
				},
				"limit": {
					Type:        framework.TypeInt,
					Description: fmt.Sprintf("At most this many sessions (1 to %d); none or 0 for all of them.", maxListLimit),
					Query:       true,
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.pathSessionsList,
					Summary:  "List session IDs in the order they started, optionally by role and state, a page at a time.",
					Responses: okResponses(map[string]*framework.FieldSchema{
						"keys": required(framework.TypeStringSlice, "The IDs of the sessions, in the order they started."),
						"next": {Type: framework.TypeString, Description: "The value of after for the next page; absent on the last page."},
					}),
				},
			},
			HelpSynopsis:    pathSessionsListHelpSyn,
			HelpDescription: pathSessionsListHelpDesc,
		},
		{
			Pattern: "session/" + framework.GenericNameRegex("session_id") + "$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix, OperationVerb: "read", OperationSuffix: "own-session",
			},
			Fields: sessionIDField(),
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:  b.pathSessionReadOwn,
					Summary:   "Read one of the caller's own sessions: state, intent, budget used, violations.",
					Responses: sessionReadResponses(),
				},
			},
			HelpSynopsis:    pathSessionReadOwnHelpSyn,
			HelpDescription: pathSessionReadOwnHelpDesc,
		},
		{
			Pattern: "sessions/" + framework.GenericNameRegex("session_id") + "$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix, OperationVerb: "read", OperationSuffix: "session",
			},
			Fields: sessionIDField(),
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:  b.pathSessionRead,
					Summary:   "Read any session (administrators): state, intent, budget used, violations.",
					Responses: sessionReadResponses(),
				},
			},
			HelpSynopsis:    pathSessionReadHelpSyn,
			HelpDescription: pathSessionReadHelpDesc,
		},
		{
			Pattern: "sessions/" + framework.GenericNameRegex("session_id") + "/end$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix, OperationVerb: "end", OperationSuffix: "session",
			},
			Fields: sessionIDField(),
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback: b.pathSessionEnd,
					// Writes replicated storage: run on the active node of the primary.
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Summary:                     "End a session normally; all its credentials are revoked.",
					Responses:                   noContentResponses(),
				},
			},
			HelpSynopsis:    pathSessionEndHelpSyn,
			HelpDescription: pathSessionEndHelpDesc,
		},
		{
			Pattern: "sessions/" + framework.GenericNameRegex("session_id") + "/revoke$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix, OperationVerb: "revoke", OperationSuffix: "session",
			},
			Fields: map[string]*framework.FieldSchema{
				"session_id": sessionIDField()["session_id"],
				"reason": {
					Type:        framework.TypeString,
					Description: "Why the session is revoked (at most 256 bytes); recorded and shown.",
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback: b.pathSessionRevoke,
					// Writes replicated storage: run on the active node of the primary.
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Summary:                     "Revoke a session with a reason; all its credentials are revoked.",
					Responses:                   noContentResponses(),
				},
			},
			HelpSynopsis:    pathSessionRevokeHelpSyn,
			HelpDescription: pathSessionRevokeHelpDesc,
		},
	}
}

func sessionIDField() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"session_id": {
			Type:        framework.TypeString,
			Description: "The session ID.",
			Required:    true,
		},
	}
}

func (b *backend) pathSessionStart(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if err := refuseUnknownFields(req, d); err != nil {
		return nil, err
	}
	roleName := strings.TrimSpace(d.Get("role").(string))
	if roleName == "" {
		return nil, badField("role", "is required")
	}
	creator, err := b.callerID(ctx, req)
	if errors.Is(err, errNoCaller) {
		return nil, refuseForbidden("the session must be bound to its creator, but %v", err)
	} else if err != nil {
		return nil, err
	}

	ir := trust.IntentRequest{Purpose: d.Get("purpose").(string)}
	if v, ok := d.GetOk("scopes"); ok {
		ir.Scopes = scope.Rejoin(v.([]string))
		if ir.Scopes == nil {
			ir.Scopes = []string{}
		}
	}
	if v, ok := d.GetOk("audiences"); ok {
		ir.Audiences = v.([]string)
		if ir.Audiences == nil {
			ir.Audiences = []string{}
		}
	}
	if v, ok := d.GetOk("ttl"); ok {
		ttl := time.Duration(v.(int)) * time.Second
		ir.TTL = &ttl
	}
	for field, dst := range map[string]**int{"max_steps": &ir.MaxSteps, "max_depth": &ir.MaxDepth, "max_rate": &ir.MaxRate} {
		if v, ok := d.GetOk(field); ok {
			n := v.(int)
			*dst = &n
		}
	}
	if v, ok := d.GetOk("metadata"); ok {
		ir.Metadata = v.(map[string]string)
	}

	cfg, err := b.loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	sess, ttl, err := b.startSession(ctx, req.Storage, cfg, roleName, creator, ir, requestSource(req))
	if err != nil {
		return nil, err
	}
	intent := sess.Intent
	resp := b.Secret(secretTypeSession).Response(map[string]interface{}{
		"session_id": sess.ID,
		"role":       roleName,
		"expires_at": sess.ExpiresAt.UTC().Format(time.RFC3339),
		"scopes":     intent.Scopes,
		"audiences":  intent.Audiences,
		"max_steps":  intent.MaxSteps,
		"max_depth":  intent.MaxDepth,
		"max_rate":   intent.MaxRate,
		"purpose":    intent.Purpose,
	}, map[string]interface{}{
		"session_id": sess.ID,
	})
	resp.Secret.TTL = ttl
	resp.Secret.MaxTTL = intent.SessionMaxTTL
	resp.Secret.Renewable = true
	return resp, nil
}

func (b *backend) pathSessionsList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	role := d.Get("role").(string)
	state := trust.State(d.Get("state").(string))
	switch state {
	case "", trust.StateActive, trust.StateEnded, trust.StateRevoked, trust.StateExpired:
	default:
		return nil, badField("state", `%q is not one of "active", "ended", "revoked", "expired"`, state)
	}
	after := strings.TrimSpace(d.Get("after").(string))
	limit := d.Get("limit").(int)
	if limit < 0 || limit > maxListLimit {
		return nil, badField("limit", "must be between 1 and %d (or 0 for all), got %d", maxListLimit, limit)
	}
	page, err := b.listSessionPage(ctx, req.Storage, role, state, after, limit, b.now())
	if err != nil {
		return nil, err
	}
	return pageResponse(page.IDs, nil, page.Next), nil
}

func (b *backend) pathSessionRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	sess, err := b.getSession(ctx, req.Storage, d.Get("session_id").(string))
	if err != nil || sess == nil {
		return nil, err
	}
	return &logical.Response{Data: sessionData(b.withPendingRefusals(sess), b.now())}, nil
}

// pathSessionReadOwn answers the caller's own session only: as with
// auth/token/lookup-self, a policy can grant it to every agent without
// letting one read another's sessions.
func (b *backend) pathSessionReadOwn(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	id := d.Get("session_id").(string)
	caller, err := b.callerID(ctx, req)
	switch {
	case errors.Is(err, errNoCaller):
		return nil, refuseForbidden("%v", err)
	case errors.Is(err, errNoSalt):
		return nil, refuseForeign(id)
	case err != nil:
		return nil, err
	}
	sess, err := b.getSession(ctx, req.Storage, id)
	if err != nil {
		return nil, err
	}
	if sess == nil {
		return nil, refuseNoSession(id)
	}
	if sess.Creator != caller {
		return nil, refuseForeign(sess.ID)
	}
	return &logical.Response{Data: sessionData(b.withPendingRefusals(sess), b.now())}, nil
}

func sessionData(s *trust.Session, now time.Time) map[string]interface{} {
	violations := make([]map[string]interface{}, 0, len(s.Violations))
	for _, v := range s.Violations {
		violations = append(violations, violationData(v))
	}
	data := map[string]interface{}{
		"session_id":      s.ID,
		"role":            s.Role,
		"state":           string(s.StateAt(now)),
		"intent":          intentData(s.Intent),
		"steps_used":      s.StepsUsed,
		"violations":      violations,
		"violation_count": s.ViolationCount,
		"revoked_reason":  s.RevokedReason,
		"created_at":      s.CreatedAt.UTC().Format(time.RFC3339),
		"expires_at":      s.ExpiresAt.UTC().Format(time.RFC3339),
		"foreign_calls":   callSummaryData(s.ForeignCalls),
		"inactive_calls":  callSummaryData(s.InactiveCalls),
	}
	if !s.EndedAt.IsZero() {
		data["ended_at"] = s.EndedAt.UTC().Format(time.RFC3339)
	}
	if s.Intent.OnOutOfIntent == trust.OnOutOfIntentApproval {
		pending := make([]map[string]interface{}, 0, len(s.Pending))
		for _, p := range s.Pending {
			if now.Before(p.ExpiresAt) {
				pending = append(pending, map[string]interface{}{"approval_id": p.ID, "expires_at": p.ExpiresAt.UTC().Format(time.RFC3339)})
			}
		}
		grants := make([]map[string]interface{}, 0, len(s.Grants))
		for _, g := range s.Grants {
			if now.Before(g.Until) {
				grants = append(grants, map[string]interface{}{
					"approval_id": g.Approval, "scopes": g.Scopes, "audience": g.Audience, "until": g.Until.UTC().Format(time.RFC3339),
				})
			}
		}
		decided := make([]map[string]interface{}, 0, len(s.Decided))
		for _, d := range s.Decided {
			decided = append(decided, map[string]interface{}{"approval_id": d.ID, "state": string(d.State)})
		}
		data["pending_approvals"] = pending
		data["grants"] = grants
		data["decided_approvals"] = decided
	}
	return data
}

func callSummaryData(c trust.CallSummary) map[string]interface{} {
	m := map[string]interface{}{"count": c.Count}
	if c.Count > 0 {
		m["first"] = c.First.UTC().Format(time.RFC3339Nano)
		m["last"] = c.Last.UTC().Format(time.RFC3339Nano)
		m["last_caller"] = c.LastCaller
	}
	return m
}

func intentData(in trust.Intent) map[string]interface{} {
	m := map[string]interface{}{
		"scopes":          in.Scopes,
		"audiences":       in.Audiences,
		"max_steps":       in.MaxSteps,
		"max_depth":       in.MaxDepth,
		"max_rate":        in.MaxRate,
		"purpose":         in.Purpose,
		"step_ttl":        int64(in.StepTTL.Seconds()),
		"step_max_ttl":    int64(in.StepMaxTTL.Seconds()),
		"session_max_ttl": int64(in.SessionMaxTTL.Seconds()),
		"on_violation":    in.OnViolation,
		"violation_limit": in.ViolationLimit,
	}
	if len(in.Metadata) > 0 {
		m["metadata"] = in.Metadata
	}
	return m
}

func violationData(v trust.Violation) map[string]interface{} {
	m := map[string]interface{}{
		"kind":   string(v.Kind),
		"time":   v.Time.UTC().Format(time.RFC3339Nano),
		"detail": v.Detail,
	}
	if v.Source != "" {
		m["source"] = v.Source
	}
	if v.Credential != "" {
		m["credential"] = v.Credential
	}
	return m
}

func (b *backend) pathSessionEnd(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	id := d.Get("session_id").(string)
	caller, err := b.callerID(ctx, req)
	if errors.Is(err, errNoCaller) {
		return nil, refuseForbidden("%v", err)
	} else if err != nil {
		return nil, err
	}
	cfg, err := b.loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	var refusal error
	err = b.withSession(ctx, req.Storage, cfg, id, func(sess *trust.Session, now time.Time) (bool, error) {
		if caller != sess.Creator {
			refusal = refuseForeign(sess.ID)
			return false, b.countRefused(ctx, req.Storage, cfg, sess, &sess.ForeignCalls, caller, now)
		}
		if !sess.End(now) {
			refusal = refuseClosed(http.StatusConflict, sess, sess.StateAt(now))
			return false, b.countRefused(ctx, req.Storage, cfg, sess, &sess.InactiveCalls, caller, now)
		}
		b.Logger().Debug("session ended", "session_id", sess.ID)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return nil, refusal
}

func (b *backend) pathSessionRevoke(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	id := d.Get("session_id").(string)
	reason := strings.TrimSpace(d.Get("reason").(string))
	if err := trust.ValidLine("reason", reason, maxRevokeReasonLength); err != nil {
		return nil, badRequest(err)
	}
	if reason == "" {
		reason = "revoked by an operator"
	} else {
		reason = "operator: " + reason
	}
	cfg, err := b.loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	var refusal error
	err = b.withSession(ctx, req.Storage, cfg, id, func(sess *trust.Session, now time.Time) (bool, error) {
		if !sess.Revoke(reason, now) {
			refusal = refuseClosed(http.StatusConflict, sess, sess.StateAt(now))
			return false, nil
		}
		b.Logger().Info("session revoked by an operator", "session_id", sess.ID, "reason", reason)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return nil, refusal
}

// maxRevokeReasonLength bounds the reason an operator gives for a revocation.
const maxRevokeReasonLength = 256

const pathSessionHelpSyn = `Start a session: an agent's task with a declared intent.`

const pathSessionHelpDesc = `
An agent starts a session for a role, declaring its intent: the scopes it
will touch, the audiences it will call, its budgets and its purpose. The
intent must lie inside the role; anything wider is refused with a message
naming what was wider, and nothing is created.

  vault write agent/session role=deployer purpose="rotate web TLS" \
      scopes="read:secrets/web/*" audiences=secrets-api max_steps=10

The answer is a leased secret (type agent_session) holding session_id,
expires_at and the intent as granted. Renew the lease to keep the session
active (up to the role's session_max_ttl). Revoking the lease, or the token
that created it, revokes the session and every credential it issued.

The session is bound to its creator (its entity, or, for a token without
one, a salted hash of its accessor): only the creator may take step
credentials (creds/<session_id>), read it (session/<session_id>) or end it.
Anyone else is refused (403); the attempt is counted in the session's
foreign_calls summary and is never a violation of the session, so no other
caller can revoke, flood or read it.
`

const pathSessionsListHelpSyn = `List sessions, optionally by role and state.`

const pathSessionsListHelpDesc = `
Lists session IDs in the order the sessions started. Filter with role=<name>
and state=active|ended|revoked|expired, and page with limit=<n> and
after=<the next value of the previous page>. The vault CLI's list command
sends no parameters; its read command does, with list=true:

  vault list agent/sessions
  vault read agent/sessions list=true limit=100
  vault read agent/sessions list=true limit=100 after=<next>
  vault read agent/sessions list=true role=deployer state=active limit=100

A page without filters reads only the index, whatever the number of
sessions. A filtered page reads the sessions it passes, at most 1000 per
request: it may hold fewer than limit IDs and still have a next. The last
page has no next.
`

const pathSessionReadHelpSyn = `Read any session (administrators): its state, intent, budget used and violations.`

const pathSessionReadHelpDesc = `
Shows a session: state (active, or closed as ended, revoked or expired),
the intent as granted, steps_used (every step is one credential issued),
the violations recorded against it, revoked_reason when it was revoked,
and two counted summaries of refused requests: foreign_calls (requests by
callers other than its creator) and inactive_calls (requests and reports
after it closed).

This path answers for every session: grant it to administrators only.
Agents read their own sessions at session/<session_id>, as a token reads
itself at auth/token/lookup-self.
`

const pathSessionReadOwnHelpSyn = `Read one of your own sessions.`

const pathSessionReadOwnHelpDesc = `
Shows a session the caller started, with the same fields as
sessions/<session_id>. A session started by another caller is refused
(403), so a policy may grant this path to every agent:

  path "agent/session/+" { capabilities = ["read"] }
`

const pathSessionEndHelpSyn = `End a session normally; every credential it issued is revoked.`

const pathSessionEndHelpDesc = `
The agent that created the session ends it when its task is done. The
session becomes "ended", every step credential it issued stops being
accepted (introspection answers active=false, and the session is listed in
revocations), in a constant number of storage writes. Only the creator may
end a session; another caller is refused (403), and its attempt is only
counted in the session's foreign_calls summary.

The session's lease stays until it expires or is revoked; renewing it fails.
`

const pathSessionRevokeHelpSyn = `Revoke a session with a reason; every credential it issued is revoked with it.`

const pathSessionRevokeHelpDesc = `
An operator revokes a session, giving a reason that is recorded and shown as
revoked_reason. The session becomes "revoked" and every step credential it
issued stops being accepted, in a constant number of storage writes.
`
