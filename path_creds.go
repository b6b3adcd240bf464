package agent

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	uuid "github.com/hashicorp/go-uuid"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/continuoustrust/vault-plugin-secrets-agent/scope"
	"github.com/continuoustrust/vault-plugin-secrets-agent/timeline"
	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

func pathCreds(b *backend) *framework.Path {
	// Issuing spends the session's budget and rate, and writes replicated
	// storage: a standby forwards before anything is spent.
	op := func(summary string, read bool) *framework.PathOperation {
		o := &framework.PathOperation{
			Callback: b.pathCredsIssue, Summary: summary,
			ForwardPerformanceStandby: true, ForwardPerformanceSecondary: true,
			Responses: credsResponses(),
		}
		if read {
			// Two operations, two OpenAPI operation IDs.
			o.DisplayAttrs = &framework.DisplayAttributes{OperationSuffix: "step-credential-from-query"}
		}
		return o
	}
	return &framework.Path{
		Pattern: "creds/" + framework.GenericNameRegex("session_id") + "$",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix, OperationVerb: "issue", OperationSuffix: "step-credential",
		},
		Fields: map[string]*framework.FieldSchema{
			"session_id": {
				Type:        framework.TypeString,
				Description: "The session the step belongs to.",
				Required:    true,
			},
			"scopes": {
				Type: framework.TypeCommaStringSlice,
				Description: "Required. The scopes this step needs, each inside the session's intent " +
					"(and inside the parent's scope when parent_token is given).",
				Query: true, // also a read's query parameter
			},
			"audience": {
				Type:        framework.TypeString,
				Description: "Required. The resource server the credential is for: one of the session's audiences.",
				Query:       true, // also a read's query parameter
			},
			"ttl": {
				Type:        framework.TypeDurationSecond,
				Description: "Lifetime of the credential; clamped (with a warning) to step_max_ttl and the session's remaining life. Defaults to the role's step_ttl.",
				Query:       true, // also a read's query parameter
			},
			"parent_token": {
				Type:        framework.TypeString,
				Description: "A live credential of the same session to derive from; the new one's depth is the parent's + 1. Prefer a write: a read carries it in the URL's query (and is answered with a warning).",
				Query:       true, // also a read's query parameter
			},
			"description": {
				Type:        framework.TypeString,
				Description: "What this step is for (at most 256 bytes); recorded in the timeline and put in the token (rctx.description).",
				Query:       true, // also a read's query parameter
			},
			"actor": {
				Type:        framework.TypeString,
				Description: "The sub-agent acting under the parent; appended to the token's act chain.",
				Query:       true, // also a read's query parameter
			},
			"cnf_jkt": {
				Type: framework.TypeString,
				Description: "An RFC 7638 JWK SHA-256 thumbprint (base64url) the credential is bound to (proof of possession). " +
					"A DPoP header (RFC 9449) binds it to the proof's key instead, once the mount passes the header " +
					"(passthrough_request_headers=DPoP) and config's issuer is this mount's URL.",
				Query: true, // also a read's query parameter
			},
			"format": {
				Type: framework.TypeString,
				Description: `The credential's format: "txn_token" (typ txntoken+jwt, the Transaction-Token shape) or ` +
					`"access_token" (an RFC 9068 JWT access token, typ at+jwt, with client_id: for OAuth resource ` +
					`servers such as MCP servers). Same claims and rules otherwise.`,
				Default:       string(token.FormatTxnToken),
				AllowedValues: []interface{}{string(token.FormatTxnToken), string(token.FormatAccessToken)},
				Query:         true, // also a read's query parameter
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation:   op("Issue a step credential (fields as query parameters).", true),
			logical.UpdateOperation: op("Issue a step credential.", false),
		},
		HelpSynopsis:    pathCredsHelpSyn,
		HelpDescription: pathCredsHelpDesc,
	}
}

func (b *backend) pathCredsIssue(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if err := refuseUnknownFields(req, d); err != nil {
		return nil, err
	}
	id := d.Get("session_id").(string)
	caller, err := b.callerID(ctx, req)
	if errors.Is(err, errNoCaller) {
		return nil, refuseForbidden("%v", err)
	} else if err != nil {
		return nil, err
	}
	sr := trust.StepRequest{
		Caller:      caller,
		Scopes:      scope.Rejoin(d.Get("scopes").([]string)),
		Audience:    strings.TrimSpace(d.Get("audience").(string)),
		Description: d.Get("description").(string),
		Actor:       strings.TrimSpace(d.Get("actor").(string)),
	}
	if v, ok := d.GetOk("ttl"); ok {
		ttl := time.Duration(v.(int)) * time.Second
		sr.TTL = &ttl
	}
	format, err := token.ParseFormat(strings.TrimSpace(d.Get("format").(string)))
	if err != nil {
		return nil, badField("format", "must be %q or %q", token.FormatTxnToken, token.FormatAccessToken)
	}
	jkt := strings.TrimSpace(d.Get("cnf_jkt").(string))
	if jkt != "" && !token.ValidThumbprint(jkt) {
		return nil, badField("cnf_jkt", "must be an RFC 7638 SHA-256 thumbprint: 43 base64url characters")
	}
	parentRaw := strings.TrimSpace(d.Get("parent_token").(string))
	if req.Operation == logical.ReadOperation {
		if _, isString := req.Data["scopes"].(string); !isString && req.Data["scopes"] != nil {
			// A repeated query parameter reaches Vault's policy checks as
			// a list they do not read (denied_parameters would not
			// match): one value, comma-separated, is checked piece by
			// piece.
			return nil, badField("scopes", "in a read, give the scopes as one comma-separated value, not a repeated query parameter")
		}
	}
	if len(parentRaw) > token.MaxTokenSize {
		return nil, badField("parent_token", "must be at most %d bytes", token.MaxTokenSize)
	}

	cfg, ring, err := b.loadConfigAndKeyring(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	issuer := cfg.issuerFor(req.MountPoint)
	// A DPoP proof (RFC 9449) binds the credential to its key.
	proof, err := b.checkProof(req, cfg, "creds/"+id, "", "")
	if err != nil {
		return nil, badField("DPoP", "the DPoP proof is refused: %v", err)
	}
	if proof != nil {
		if jkt != "" && jkt != proof.JKT {
			return nil, badField("cnf_jkt", "is not the thumbprint of the DPoP proof's key")
		}
		jkt = proof.JKT
	}

	// The parent is verified before the session lock: it needs no state.
	var parentClaims *token.Claims
	if parentRaw != "" {
		parentClaims, err = ring.verify(parentRaw, issuer, b.now(), false)
		switch {
		case err == nil:
			sr.Parent = &trust.Parent{
				ID: parentClaims.ID, Session: parentClaims.Txn, Scope: parentClaims.Scope,
				Depth: parentClaims.Depth, Expiry: time.Unix(parentClaims.Expiry, 0),
			}
		case isVerifyError(err):
			sr.ParentInvalid = "parent_token " + whyUnverified(err)
		default:
			return nil, err
		}
	}

	sess, unlock, err := b.lockSession(ctx, req.Storage, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	now := b.now()
	if sess.StateAt(now) == trust.StateActive {
		sr.Rate = b.rates.For(sess.ID, sess.Intent.MaxRate)
	}
	// The proof takes a place in the replay cache only for the session's
	// own caller, while it is active.
	if proof != nil && sess.CheckCaller(sr.Caller, now) == nil {
		if err := b.rememberProof(proof); err != nil {
			return nil, badField("DPoP", "the DPoP proof is refused: %v", err)
		}
	}

	if sess.StateAt(now) == trust.StateActive && sess.CheckCaller(sr.Caller, now) == nil {
		if expired := expireApprovals(sess, now); len(expired) > 0 {
			if err := b.save(ctx, req.Storage, cfg, sess, expired, true); err != nil {
				return nil, err
			}
		}
	}
	grant, err := sess.CheckStep(sr, now)
	var need *trust.ApprovalNeeded
	if errors.As(err, &need) {
		return b.requestApproval(ctx, req, cfg, sess, need, sr.Description, now)
	}
	if err != nil {
		return nil, b.refuseStep(ctx, req, cfg, sess, sr, err, now)
	}

	claims, signed, err := b.issueStep(ctx, req, cfg, ring, sess, sr, grant, issued{
		format: format, jkt: jkt, parent: parentClaims, now: now, issuer: issuer,
	})
	if err != nil {
		return nil, err
	}

	resp := &logical.Response{Data: map[string]interface{}{
		"token":         signed,
		"credential_id": claims.ID,
		"format":        string(format),
		"session_id":    sess.ID,
		"expires_at":    time.Unix(claims.Expiry, 0).UTC().Format(time.RFC3339),
		"scopes":        grant.Scopes.Strings(),
		"audience":      grant.Audience,
		"depth":         grant.Depth,
		"steps_used":    sess.StepsUsed,
		"steps_left":    sess.Intent.MaxSteps - sess.StepsUsed,
	}}
	if claims.Parent != "" {
		resp.Data["parent_id"] = claims.Parent
	}
	for _, w := range grant.Warnings {
		resp.AddWarning(w)
	}
	if parentRaw != "" && req.Operation == logical.ReadOperation {
		// A read's fields are its URL's query, which proxies and access
		// logs may keep.
		resp.AddWarning("parent_token is a credential and came in a URL's query, which proxies and access logs may keep: derive with a write (vault write, PUT), which carries it in the body")
	}
	return resp, nil
}

// issued is what an issuance needs besides the session and its grant.
type issued struct {
	format token.Format
	jkt    string        // the key the credential is bound to, if any
	parent *token.Claims // the parent credential, if derived
	now    time.Time
	issuer string
	// detail, when set, is recorded in the credential_issued event (how
	// the credential was asked for, when not through creds).
	detail string
}

// issueStep records the granted step durably (budget spent, issuance in
// the timeline) and only then mints its credential: the one issuance path
// of creds and of token exchange. The session is locked by the caller.
func (b *backend) issueStep(ctx context.Context, req *logical.Request, cfg *agentConfig, ring *keyring, sess *trust.Session, sr trust.StepRequest, grant trust.Grant, in issued) (*token.Claims, string, error) {
	now, format, jkt, parentClaims, issuer := in.now, in.format, in.jkt, in.parent, in.issuer
	credID, err := uuid.GenerateUUID()
	if err != nil {
		return nil, "", err
	}
	claims := &token.Claims{
		Format:    format,
		Issuer:    issuer,
		Subject:   sess.Subject(),
		Audience:  grant.Audience,
		IssuedAt:  now.Unix(),
		NotBefore: now.Unix(),
		Expiry:    now.Add(grant.TTL).Unix(),
		ID:        credID,
		Txn:       sess.ID,
		Scope:     grant.Scopes.String(),
		Tctx:      &token.TxnContext{Role: sess.Role, Purpose: sess.Intent.Purpose},
		Depth:     grant.Depth,
	}
	if sr.Description != "" || requestSource(req) != "" {
		claims.Rctx = &token.RequestContext{Description: sr.Description, ReqIP: remoteIP(requestSource(req))}
	}
	if parentClaims != nil {
		claims.Parent = parentClaims.ID
		claims.Act = parentClaims.Act
	}
	if sr.Actor != "" {
		claims.Act = token.PushActor(claims.Act, sr.Actor)
	}
	if format == token.FormatAccessToken {
		// RFC 9068: the client the token was issued to. The agent acts
		// for itself, so the client is the session's creator.
		claims.ClientID = claims.Subject
	}
	if jkt != "" {
		claims.Cnf = &token.Confirmation{JKT: jkt}
	}
	// The budget is spent, and the issuance recorded, durably before the
	// credential exists.
	events := stage(sess, now, timeline.Event{
		Kind: timeline.CredentialIssued, Credential: credID, Parent: claims.Parent,
		Scopes: grant.Scopes.Strings(), Audience: grant.Audience, Depth: grant.Depth,
		Description: sr.Description, Actor: sr.Actor, Expires: claims.Expiry, Source: requestSource(req),
		Format: timelineFormat(format), Detail: in.detail,
	})
	if err := b.save(ctx, req.Storage, cfg, sess, events, false); err != nil {
		return nil, "", err
	}
	signed, err := token.Mint(ring.current, claims)
	if err != nil {
		return nil, "", err
	}
	return claims, signed, nil
}

// timelineFormat is the format recorded in a credential_issued event:
// only a format other than the default is named.
func timelineFormat(f token.Format) string {
	if f == token.FormatTxnToken {
		return ""
	}
	return string(f)
}

// refuseStep records a refused step and returns the error that answers
// it: a 403 for another caller's session or a closed session (only counted
// in the session's summaries), a 400 for a malformed field (a
// request_refused event), and for a violation a 403 (429 for the rate)
// after recording it.
func (b *backend) refuseStep(ctx context.Context, req *logical.Request, cfg *agentConfig, sess *trust.Session, sr trust.StepRequest, err error, now time.Time) error {
	var v *trust.Violation
	var fc *trust.ForeignCallerError
	var se *trust.StateError
	var fe *trust.FieldError
	switch {
	case errors.As(err, &fc):
		if cerr := b.countRefused(ctx, req.Storage, cfg, sess, &sess.ForeignCalls, sr.Caller, now); cerr != nil {
			return cerr
		}
		return refuseForeign(sess.ID)
	case errors.As(err, &se):
		if cerr := b.countRefused(ctx, req.Storage, cfg, sess, &sess.InactiveCalls, sr.Caller, now); cerr != nil {
			return cerr
		}
		return refuseClosed(http.StatusForbidden, sess, se.State)
	case errors.As(err, &v):
		if v.Source == "" {
			v.Source = requestSource(req)
		}
		revoked, verr := b.applyViolation(ctx, req.Storage, cfg, sess, v)
		if verr != nil {
			return verr
		}
		return refuseViolation(v, sess, revoked)
	case errors.As(err, &fe):
		refused := stage(sess, now, timeline.Event{Kind: timeline.RequestRefused, Detail: err.Error(), Source: requestSource(req)})
		if serr := b.save(ctx, req.Storage, cfg, sess, refused, false); serr != nil {
			return serr
		}
		return badRequest(fe)
	}
	return err
}

const pathCredsHelpSyn = `Issue a step credential: a short-lived signed token for one step of a session.`

const pathCredsHelpDesc = `
Each step of an agent's task gets its own credential, whose scope only
narrows: every requested scope must lie inside the session's intent, and,
when derived from a parent_token, inside the parent's scope.

  vault read agent/creds/<session_id> scopes="read:secrets/web/tls" audience=secrets-api description="fetch cert"

A step is one credential issuance. The answer holds "token" (a JWS compact
JWT whose "scope" claim lists the granted scopes space-separated),
"credential_id" (its jti), "format", "expires_at", "scopes", "audience",
"depth", "steps_used" and "steps_left".

The format is "txn_token" by default (typ "txntoken+jwt", the
Transaction-Token shape), or, with format=access_token, an RFC 9068 JWT
access token (typ "at+jwt", with client_id) for OAuth resource servers
such as MCP servers, whose audience is their canonical URI:

  vault read agent/creds/<session_id> format=access_token \
      scopes=call:tools/search audience=https://tools.example.com/mcp

Both formats carry the same claims and follow the same rules; a parent_token
may be of either format. A read is the cheaper request (Vault asks the
plugin whether the path exists before every write); in a read, give several
scopes as one comma-separated value. A parent_token is a credential: derive
with a write, which carries it in the body rather than in the URL (a read
that carries one is answered with a warning).

  vault write agent/creds/<session_id> scopes="read:secrets/web/tls" \
      audience=secrets-api parent_token=<token> actor=sub-agent

Credentials are not
Vault leases: they live inside the session's lease and are revoked with it,
all at once, when the session closes.

Every step counts against the session's max_steps and max_rate, and is
checked against the intent as it is made. A request that exceeds the intent
is refused and recorded as a violation (scope_outside_intent,
audience_outside_intent, depth_exceeded, budget_exhausted, rate_exceeded,
bad_parent); under on_violation=revoke the first one revokes the session.
Only the session's creator may take credentials: another caller is refused
(403) and only counted in the session's foreign_calls summary, never held
against the session.
`
