package agent

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/continuoustrust/vault-plugin-secrets-agent/scope"
	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

func pathRoles(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "roles/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix, OperationSuffix: "roles",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback:  b.pathRolesList,
					Summary:   "List the roles.",
					Responses: listResponses("The names of the roles."),
				},
			},
			HelpSynopsis:    pathRolesListHelpSyn,
			HelpDescription: pathRolesListHelpDesc,
		},
		{
			Pattern: "roles/" + framework.GenericNameRegex("name"),
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix, OperationSuffix: "role",
			},
			Fields:         roleFields(),
			ExistenceCheck: b.pathRoleExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:  b.pathRoleRead,
					Summary:   "Read a role.",
					Responses: roleReadResponses(),
				},
				logical.CreateOperation: &framework.PathOperation{
					Callback: b.pathRoleWrite,
					// Writes replicated storage: run on the active node of the primary.
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Summary:                     "Create a role. Omitted fields take their defaults.",
					Responses:                   noContentResponses(),
				},
				logical.UpdateOperation: &framework.PathOperation{
					Callback: b.pathRoleWrite,
					// Writes replicated storage: run on the active node of the primary.
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Summary:                     "Update a role. Omitted fields keep their values; live sessions keep the intent they were granted.",
					Responses:                   noContentResponses(),
				},
				logical.DeleteOperation: &framework.PathOperation{
					Callback: b.pathRoleDelete,
					// Writes replicated storage: run on the active node of the primary.
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Summary:                     "Delete a role and revoke its live sessions.",
					Responses:                   roleDeleteResponses(),
				},
			},
			HelpSynopsis:    pathRoleHelpSyn,
			HelpDescription: pathRoleHelpDesc,
		},
	}
}

func roleFields() map[string]*framework.FieldSchema {
	d := trust.DefaultRole()
	return map[string]*framework.FieldSchema{
		"name": {
			Type:        framework.TypeString,
			Description: "Name of the role.",
			Required:    true,
		},
		"scopes": {
			Type: framework.TypeCommaStringSlice,
			Description: `Required. The scope patterns sessions of this role may ever hold, ` +
				`as ACTIONS:RESOURCE, e.g. "read,list:secrets/web/*" or "deploy:k8s/+/deployments/web". ` +
				`"+" matches one path segment, a trailing "*" any suffix. At most 64.`,
		},
		"audiences": {
			Type:        framework.TypeCommaStringSlice,
			Description: `Required. The audiences (resource servers) step credentials of this role may be issued for.`,
		},
		"session_ttl": {
			Type:        framework.TypeDurationSecond,
			Description: "Lease TTL of a session when it starts and at each renewal. Defaults to 15m.",
			Default:     int(d.SessionTTL.Seconds()),
		},
		"session_max_ttl": {
			Type:        framework.TypeDurationSecond,
			Description: "The most a session may live, renewals included. Defaults to 1h; at most config's session_max_ttl.",
			Default:     int(d.SessionMaxTTL.Seconds()),
		},
		"step_ttl": {
			Type:        framework.TypeDurationSecond,
			Description: "Lifetime of a step credential when the request names none. Defaults to 60s.",
			Default:     int(d.StepTTL.Seconds()),
		},
		"step_max_ttl": {
			Type:        framework.TypeDurationSecond,
			Description: "The longest a step credential may live; longer requests are clamped. Defaults to 5m.",
			Default:     int(d.StepMaxTTL.Seconds()),
		},
		"max_steps": {
			Type:        framework.TypeInt,
			Description: "Step credentials one session may obtain. Defaults to 100.",
			Default:     d.MaxSteps,
		},
		"max_depth": {
			Type:        framework.TypeInt,
			Description: "How deep credentials may be derived from credentials (1: no derivation). Defaults to 3.",
			Default:     d.MaxDepth,
		},
		"max_rate": {
			Type: framework.TypeInt,
			Description: "Step credentials per minute per session, as a token bucket that starts full " +
				"(bursts up to max_rate, refills at max_rate/60 per second). Defaults to 60.",
			Default: d.MaxRate,
		},
		"max_sessions": {
			Type:        framework.TypeInt,
			Description: "Sessions of this role active at once; 0 for no limit. Defaults to 0.",
			Default:     d.MaxSessions,
		},
		"on_violation": {
			Type: framework.TypeString,
			Description: `What a violation does: "revoke" revokes the session at the first one; "deny" refuses ` +
				`the request and revokes the session once its violations exceed violation_limit. Defaults to "revoke".`,
			Default:       d.OnViolation,
			AllowedValues: []interface{}{trust.OnViolationRevoke, trust.OnViolationDeny},
		},
		"violation_limit": {
			Type:        framework.TypeInt,
			Description: `Violations a session tolerates under on_violation="deny". Defaults to 3.`,
			Default:     d.ViolationLimit,
		},
		"require_purpose": {
			Type:        framework.TypeBool,
			Description: "Whether a session must state its purpose. Defaults to true.",
			Default:     d.RequirePurpose,
		},
		"on_out_of_intent": {
			Type: framework.TypeString,
			Description: `What a step outside the session's intent but inside this role does: "violation" (the default) ` +
				`or "approval": it waits (202, an approval_id) for an administrator other than the session's creator to ` +
				`approve or deny it at approvals/<id>. A step outside the role is a violation either way.`,
			Default:       d.OnOutOfIntent,
			AllowedValues: []interface{}{trust.OnOutOfIntentViolation, trust.OnOutOfIntentApproval},
		},
		"max_pending_approvals": {
			Type:        framework.TypeInt,
			Description: "Approvals a session may wait for at once, under approval; past that a step is the violation it would have been. Defaults to 3.",
			Default:     d.MaxPendingApprovals,
		},
		"approval_ttl": {
			Type:        framework.TypeDurationSecond,
			Description: "How long an approval waits for a decision before it expires. Defaults to 15m.",
			Default:     int(d.ApprovalTTL.Seconds()),
		},
		"denial_is_violation": {
			Type:        framework.TypeBool,
			Description: "Whether a denied approval is also an approval_denied violation of the session. Defaults to false.",
			Default:     d.DenialIsViolation,
		},
	}
}

func (b *backend) pathRoleExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	r, err := getRole(ctx, req.Storage, d.Get("name").(string))
	return r != nil, err
}

func (b *backend) pathRolesList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	names, err := listRoles(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return logical.ListResponse(names), nil
}

func (b *backend) pathRoleRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	r, err := getRole(ctx, req.Storage, d.Get("name").(string))
	if err != nil || r == nil {
		return nil, err
	}
	return &logical.Response{Data: roleData(r)}, nil
}

func roleData(r *trust.Role) map[string]interface{} {
	return map[string]interface{}{
		"scopes":                r.Scopes,
		"audiences":             r.Audiences,
		"session_ttl":           int64(r.SessionTTL.Seconds()),
		"session_max_ttl":       int64(r.SessionMaxTTL.Seconds()),
		"step_ttl":              int64(r.StepTTL.Seconds()),
		"step_max_ttl":          int64(r.StepMaxTTL.Seconds()),
		"max_steps":             r.MaxSteps,
		"max_depth":             r.MaxDepth,
		"max_rate":              r.MaxRate,
		"max_sessions":          r.MaxSessions,
		"on_violation":          r.OnViolation,
		"violation_limit":       r.ViolationLimit,
		"require_purpose":       r.RequirePurpose,
		"on_out_of_intent":      cmp.Or(r.OnOutOfIntent, trust.OnOutOfIntentViolation),
		"max_pending_approvals": cmp.Or(r.MaxPendingApprovals, trust.DefaultMaxPendingApprovals),
		"approval_ttl":          int64(cmp.Or(r.ApprovalTTL, trust.DefaultApprovalTTL).Seconds()),
		"denial_is_violation":   r.DenialIsViolation,
	}
}

func (b *backend) pathRoleWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if err := refuseUnknownFields(req, d); err != nil {
		return nil, err
	}
	cfg, err := b.loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return nil, b.updateRole(ctx, req.Storage, d.Get("name").(string), func(role *trust.Role) error {
		applyRoleFields(d, role)
		return badRequest(role.Validate(trust.Limits{SessionMaxTTL: cfg.SessionMaxTTL, StepMaxTTL: cfg.StepMaxTTL}))
	})
}

// applyRoleFields applies the fields a role write names to role.
func applyRoleFields(d *framework.FieldData, role *trust.Role) {
	if v, ok := d.GetOk("scopes"); ok {
		role.Scopes = scope.Rejoin(v.([]string))
	}
	if v, ok := d.GetOk("audiences"); ok {
		role.Audiences = v.([]string)
	}
	durations := map[string]*time.Duration{
		"session_ttl": &role.SessionTTL, "session_max_ttl": &role.SessionMaxTTL,
		"step_ttl": &role.StepTTL, "step_max_ttl": &role.StepMaxTTL,
		"approval_ttl": &role.ApprovalTTL,
	}
	for field, dst := range durations {
		if v, ok := d.GetOk(field); ok {
			*dst = time.Duration(v.(int)) * time.Second
		}
	}
	ints := map[string]*int{
		"max_steps": &role.MaxSteps, "max_depth": &role.MaxDepth, "max_rate": &role.MaxRate,
		"max_sessions": &role.MaxSessions, "violation_limit": &role.ViolationLimit,
		"max_pending_approvals": &role.MaxPendingApprovals,
	}
	for field, dst := range ints {
		if v, ok := d.GetOk(field); ok {
			*dst = v.(int)
		}
	}
	if v, ok := d.GetOk("on_violation"); ok {
		role.OnViolation = v.(string)
	}
	if v, ok := d.GetOk("require_purpose"); ok {
		role.RequirePurpose = v.(bool)
	}
	if v, ok := d.GetOk("on_out_of_intent"); ok {
		role.OnOutOfIntent = v.(string)
	}
	if v, ok := d.GetOk("denial_is_violation"); ok {
		role.DenialIsViolation = v.(bool)
	}
}

func (b *backend) pathRoleDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	cfg, err := b.loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	n, err := b.deleteRole(ctx, req.Storage, cfg, d.Get("name").(string))
	if err != nil || n == 0 {
		return nil, err
	}
	resp := &logical.Response{}
	resp.AddWarning(pluralise(n, "live session was", "live sessions were") + " revoked with the role")
	return resp, nil
}

func pluralise(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

const pathRolesListHelpSyn = `List the roles of this engine.`

const pathRolesListHelpDesc = `
Lists the names of every role. A role is the hard ceiling for the sessions
started under it; read roles/<name> for its settings.
`

const pathRoleHelpSyn = `Manage a role: the hard ceiling for every session started under it.`

const pathRoleHelpDesc = `
A role bounds what any session of it may ever do. An agent's declared
intent must lie inside the role: its scopes each contained in some role
scope, its audiences among the role's, its budgets at most the role's.

  scopes            required; patterns ACTIONS:RESOURCE ("read,list:secrets/web/*")
  audiences         required; who step credentials may be issued for
  session_ttl       lease TTL of a session (default 15m)
  session_max_ttl   most a session may live, renewals included (default 1h)
  step_ttl          default lifetime of a step credential (default 60s)
  step_max_ttl      longest a step credential may live (default 5m)
  max_steps         steps (credentials issued) per session (default 100)
  max_depth         derivation depth of credentials (default 3)
  max_rate          credentials per minute per session (default 60)
  max_sessions      sessions active at once, 0 for no limit (default 0)
  on_violation      "revoke" (default) or "deny"
  violation_limit   violations tolerated under "deny" (default 3)
  require_purpose   whether a session must state a purpose (default true)

A write validates every field and names the first bad one; nothing is
stored when it fails. Writing an existing role changes only the fields
given. A session copies its role's rules when it starts, so changing a role
never widens a live session. Deleting a role revokes its live sessions.
`
