package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/continuoustrust/vault-plugin-secrets-agent/scope"
	"github.com/continuoustrust/vault-plugin-secrets-agent/timeline"
	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

const maxOutcomeLength = 64

func pathReport(b *backend) *framework.Path {
	return &framework.Path{
		Pattern: "report$",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix, OperationVerb: "report", OperationSuffix: "credential-use",
		},
		Fields: map[string]*framework.FieldSchema{
			"token": {
				Type:        framework.TypeString,
				Description: "Required. The step credential the resource server saw.",
				Required:    true,
			},
			"action": {
				Type:        framework.TypeString,
				Description: `Required. The action the request performed, e.g. "read".`,
				Required:    true,
			},
			"resource": {
				Type:        framework.TypeString,
				Description: `Required. The resource the request touched, e.g. "secrets/web/tls".`,
				Required:    true,
			},
			"outcome": {
				Type:        framework.TypeString,
				Description: `What the resource server did, e.g. "allowed" or "denied" (at most 64 bytes).`,
			},
			"observed_at": {
				Type: framework.TypeTime,
				Description: "When the resource server saw the use (RFC 3339, or unix seconds). The use is judged " +
					"as of then. Omitted: when the report arrives. Refused in the future, before the credential " +
					"was issued, or older than the credential's lifetime.",
			},
			"leeway": {
				Type: framework.TypeDurationSecond,
				Description: "The clock skew the resource server tolerated past the credential's exp, at most " +
					"60s (the time the revocation list keeps a closed session past its last exp).",
				Default: int(token.DefaultLeeway.Seconds()),
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback: b.pathReport,
				// Writes replicated storage: run on the active node of the primary.
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
				Summary:                     "Report an observed use of a step credential; misuse is a violation of its session.",
				Responses:                   reportResponses(),
			},
		},
		HelpSynopsis:    pathReportHelpSyn,
		HelpDescription: pathReportHelpDesc,
	}
}

func (b *backend) pathReport(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	raw := strings.TrimSpace(d.Get("token").(string))
	action := strings.TrimSpace(d.Get("action").(string))
	resource := strings.TrimSpace(d.Get("resource").(string))
	outcome := strings.TrimSpace(d.Get("outcome").(string))
	switch {
	case raw == "":
		return nil, badField("token", "is required")
	case action == "":
		return nil, badField("action", "is required")
	case resource == "":
		return nil, badField("resource", "is required")
	}
	if err := trust.ValidLine("outcome", outcome, maxOutcomeLength); err != nil {
		return nil, badRequest(err)
	}
	if err := scope.ValidRequest(action, resource); err != nil {
		return nil, badRequest(err)
	}
	leeway := time.Duration(d.Get("leeway").(int)) * time.Second
	if leeway < 0 || leeway > trust.RevocationGrace {
		return nil, badField("leeway", "must be between 0s and %s", trust.RevocationGrace)
	}

	cfg, ring, err := b.loadConfigAndKeyring(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	claims, err := ring.verify(raw, cfg.issuerFor(req.MountPoint), b.now(), true)
	if err != nil {
		if isVerifyError(err) {
			return nil, badField("token", "not a step credential of this engine: it %s", whyUnverified(err))
		}
		return nil, err
	}

	sess, unlock, err := b.lockSession(ctx, req.Storage, claims.Txn)
	if isNoSession(err) {
		return nil, badField("token", "its session %s no longer exists", scope.Clip(claims.Txn))
	}
	if err != nil {
		return nil, err
	}
	defer unlock()

	now := b.now()
	use := trust.ObservedUse{
		Scope: claims.Scope, IssuedAt: time.Unix(claims.IssuedAt, 0), Expiry: time.Unix(claims.Expiry, 0),
		ObservedAt: now, Action: action, Resource: resource,
	}
	if v, ok := d.GetOk("observed_at"); ok {
		use.ObservedAt = v.(time.Time)
	}
	if err := trust.CheckObserved(use, leeway, now); err != nil {
		return nil, badRequest(err)
	}
	reporter, err := b.callerID(ctx, req)
	if errors.Is(err, errNoCaller) {
		return nil, refuseForbidden("%v", err)
	} else if err != nil {
		return nil, err
	}
	data := map[string]interface{}{
		"recorded":   true,
		"session_id": sess.ID,
	}
	// A session that is no longer active has a closed history: a report
	// that arrives after its end (whenever the use was seen) is only
	// counted, so that no reporter can push the violation that revoked it
	// out of its record.
	if sess.StateAt(now) != trust.StateActive {
		if err := b.countRefused(ctx, req.Storage, cfg, sess, &sess.InactiveCalls, reporter, now); err != nil {
			return nil, err
		}
		data["recorded"] = false
		data["violation"] = ""
		data["session_state"] = string(sess.StateAt(now))
		resp := &logical.Response{Data: data}
		resp.AddWarning("the session is no longer active: the report is only counted in its inactive_calls summary")
		return resp, nil
	}
	misuse, err := sess.JudgeUse(use, leeway)
	if err != nil {
		return nil, fmt.Errorf("credential %s: %w", claims.ID, err)
	}
	if misuse == "" {
		events := stage(sess, now, timeline.Event{
			Kind: timeline.Report, Credential: claims.ID, Action: action, Resource: resource,
			Outcome: outcome, Source: requestSource(req), Detail: "reported by " + reporter,
		})
		if err := b.save(ctx, req.Storage, cfg, sess, events, false); err != nil {
			return nil, err
		}
		data["violation"] = ""
		data["session_state"] = string(sess.StateAt(now))
		return &logical.Response{Data: data}, nil
	}

	v := &trust.Violation{
		Kind: trust.ReportedMisuse, Time: now, Credential: claims.ID, Source: requestSource(req),
		Detail: fmt.Sprintf("%s (%s on %s, outcome %q, reported by %s)", misuse, action, resource, outcome, reporter),
	}
	// The report itself succeeded: the misuse is the agent's, not the
	// reporter's, so the answer is not an error.
	revoked, err := b.applyViolation(ctx, req.Storage, cfg, sess, v)
	if err != nil {
		return nil, err
	}
	data["session_revoked"] = revoked
	data["violation"] = string(trust.ReportedMisuse)
	data["detail"] = misuse
	data["session_state"] = string(sess.StateAt(now))
	return &logical.Response{Data: data}, nil
}

const pathReportHelpSyn = `Report an observed use of a step credential.`

const pathReportHelpDesc = `
Resource servers report what they saw a step credential do: the token, the
action and the resource, when it was seen (observed_at), and optionally the
outcome. The use is judged as of observed_at, with the clock skew the
resource server tolerated (leeway, default 30s): a use inside the
credential's scope, by a credential live then, of a session active then, is
recorded in the session's timeline. A use outside its scope, or after the
credential's exp plus leeway, or after its session stopped being active, is
a reported_misuse violation against the session: under on_violation=revoke
it revokes the session and every credential it issued.

A report that arrives once the session is no longer active changes nothing
in its history: it is only counted in the session's inactive_calls summary.
A report whose observed_at lies in the future, before the credential was
issued, or further back than the credential's lifetime is refused.

  vault write agent/report token=$TOKEN action=read resource=secrets/web/tls \
      outcome=allowed observed_at=2026-11-30T16:30:00Z

The answer says whether a violation was recorded, whether it revoked the
session (session_revoked), and the session's state.
The token must carry this engine's signature; a forged token is refused,
since it cannot be attributed to a session.
`
