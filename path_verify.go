package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

func pathVerify(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "jwks$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix, OperationVerb: "read", OperationSuffix: "jwks",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:  b.pathJWKSRead,
					Summary:   "The public signing keys as an RFC 7517 JWK Set (no Vault token needed).",
					Responses: jwksResponses(),
				},
			},
			HelpSynopsis:    pathJWKSHelpSyn,
			HelpDescription: pathJWKSHelpDesc,
		},
		{
			Pattern: "revocations$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix, OperationVerb: "read", OperationSuffix: "revocations",
			},
			Fields: map[string]*framework.FieldSchema{
				"after": {
					Type: framework.TypeInt64,
					Description: "Answer only the sessions added after this version of the list (a delta), with " +
						"complete=true when the answer is the whole list instead (a version this list never had).",
					Query: true,
				},
				"epoch": {
					Type: framework.TypeString,
					Description: "With after: the epoch of the list the client holds. Another epoch (the list " +
						"started a new history) gets the whole list, complete=true.",
					Query: true,
				},
				"wait": {
					Type: framework.TypeDurationSecond,
					Description: "With after: hold the answer until the list's version passes after, for at most " +
						"this long (at most 60s). A close reaches a waiting query within milliseconds.",
					Query: true,
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:  b.pathRevocationsRead,
					Summary:   "Sessions no longer active whose credentials may be unexpired (no Vault token needed).",
					Responses: revocationsResponses(),
				},
			},
			HelpSynopsis:    pathRevocationsHelpSyn,
			HelpDescription: pathRevocationsHelpDesc,
		},
		{
			Pattern: "introspect$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix, OperationVerb: "introspect", OperationSuffix: "token",
			},
			Fields: map[string]*framework.FieldSchema{
				"token": {
					Type:        framework.TypeString,
					Description: "Required. The step credential to introspect.",
					Required:    true,
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback:  b.pathIntrospect,
					Summary:   "Say whether a step credential is active now (RFC 7662-shaped).",
					Responses: introspectResponses(),
				},
			},
			HelpSynopsis:    pathIntrospectHelpSyn,
			HelpDescription: pathIntrospectHelpDesc,
		},
	}
}

func (b *backend) pathJWKSRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	_, r, err := b.loadConfigAndKeyring(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(token.JWKS(r.publicKeys(b.now())...))
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{
		logical.HTTPStatusCode:  http.StatusOK,
		logical.HTTPContentType: "application/json",
		logical.HTTPRawBody:     body,
	}}, nil
}

func (b *backend) pathRevocationsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	var after *uint64
	if v, ok := d.GetOk("after"); ok {
		n := v.(int64)
		if n < 0 {
			return nil, badField("after", "must be a version: 0 or more")
		}
		u := uint64(n)
		after = &u
	}
	wait := time.Duration(d.Get("wait").(int)) * time.Second
	switch {
	case wait < 0 || wait > maxRevocationWait:
		return nil, badField("wait", "must be between 0s and %s", maxRevocationWait)
	case wait > 0 && after == nil:
		return nil, badField("wait", "needs after: a query waits for a version after the one its client holds")
	}
	view, err := b.waitRevocations(ctx, req.Storage, after, strings.TrimSpace(d.Get("epoch").(string)), wait)
	if err != nil {
		return nil, err
	}
	sessions := make([]map[string]interface{}, 0, len(view.sessions))
	for _, r := range view.sessions {
		sessions = append(sessions, map[string]interface{}{"id": r.ID, "revoked_at": r.RevokedAt, "exp": r.Exp, "version": r.Version})
	}
	return &logical.Response{Data: map[string]interface{}{
		"version":  view.version,
		"epoch":    view.epoch,
		"sessions": sessions,
		"complete": view.complete,
	}}, nil
}

func (b *backend) pathIntrospect(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	raw := strings.TrimSpace(d.Get("token").(string))
	if raw == "" {
		return nil, badField("token", "is required")
	}
	inactive := &logical.Response{Data: map[string]interface{}{"active": false}}

	cfg, ring, err := b.loadConfigAndKeyring(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	claims, err := ring.verify(raw, cfg.issuerFor(req.MountPoint), b.now(), false)
	if err != nil {
		if isVerifyError(err) {
			return inactive, nil
		}
		return nil, err
	}
	sess, err := b.getSession(ctx, req.Storage, claims.Txn)
	if err != nil {
		return nil, err
	}
	if sess == nil {
		return inactive, nil
	}
	state := sess.StateAt(b.now())
	if state != trust.StateActive {
		return inactive, nil
	}
	data := claimsData(claims)
	data["active"] = true
	data["session_state"] = string(state)
	data["token_type"] = claims.Format.Type()
	data["format"] = string(claims.Format)
	return &logical.Response{Data: data}, nil
}

// claimsData lays out a credential's claims as response data.
func claimsData(c *token.Claims) map[string]interface{} {
	m := map[string]interface{}{
		"iss":   c.Issuer,
		"sub":   c.Subject,
		"aud":   c.Audience,
		"iat":   c.IssuedAt,
		"nbf":   c.NotBefore,
		"exp":   c.Expiry,
		"jti":   c.ID,
		"txn":   c.Txn,
		"scope": c.Scope,
		"dep":   c.Depth,
	}
	if c.ClientID != "" {
		m["client_id"] = c.ClientID
	}
	if c.Tctx != nil {
		m["tctx"] = map[string]interface{}{"role": c.Tctx.Role, "purpose": c.Tctx.Purpose}
	}
	if c.Rctx != nil {
		rctx := map[string]interface{}{}
		if c.Rctx.Description != "" {
			rctx["description"] = c.Rctx.Description
		}
		if c.Rctx.ReqIP != "" {
			rctx["req_ip"] = c.Rctx.ReqIP
		}
		m["rctx"] = rctx
	}
	if c.Parent != "" {
		m["par"] = c.Parent
	}
	if c.Act != nil {
		m["act"] = actorData(c.Act)
	}
	if c.Cnf != nil {
		m["cnf"] = map[string]interface{}{"jkt": c.Cnf.JKT}
	}
	return m
}

func actorData(a *token.Actor) map[string]interface{} {
	m := map[string]interface{}{"sub": a.Subject}
	if a.Act != nil {
		m["act"] = actorData(a.Act)
	}
	return m
}

const pathJWKSHelpSyn = `The public keys that verify step credentials, as a JWK Set.`

const pathJWKSHelpDesc = `
Returns an RFC 7517 JWK Set, unwrapped (the raw body is {"keys": [...]},
Content-Type application/json), so standard JWKS clients can point at
/v1/<mount>/jwks directly. No Vault token is needed.

It holds the current signing key and every older key that may still have
signed an unexpired credential. Each key has "kid", "alg" (EdDSA or ES256)
and "use": "sig".
`

const pathRevocationsHelpSyn = `The sessions whose credentials must no longer be accepted.`

const pathRevocationsHelpDesc = `
Lists every closed session (ended or revoked: its credentials are revoked
with it) while some of its credentials could still be unexpired, as {id,
revoked_at, exp, version}. An entry stays for a minute past exp (verifiers
tolerate some clock skew), then leaves the list. "version" grows with every
change, and each entry carries the version that added it. A resource server
rejects any credential whose "txn" claim is listed. No Vault token is
needed.

A resource server keeps up with a blocking query: it asks for what was
added after the version it holds, and the engine holds the answer until
something is, for at most wait (60s at most):

  curl "$VAULT_ADDR/v1/agent/revocations?after=41&wait=30"

The answer holds only the sessions added after version 41 (complete=false),
or the whole list with complete=true when 41 is a version this list never
had. Every answer names the list's epoch, one history of it: a list whose
storage was wiped or restored starts another. A client that sends the
epoch it holds (&epoch=...) gets the whole list, complete=true, when the
epoch changed, and replaces its list even at a lower version. A session's close
answers every held query on the active node within milliseconds; a
performance standby answers once the change reaches it, and a standby of an
HA cluster forwards the query to the active node. A node holds at most 4096
queries at once; past that it answers at once. Holding a query costs no
storage read.
`

const pathIntrospectHelpSyn = `Say whether a step credential is active right now.`

const pathIntrospectHelpDesc = `
An RFC 7662-shaped answer for a step credential. "active" is true only when
the signature verifies against this mount's keys, the issuer is this
mount's, the credential is within its validity window, and its session is
active. An active answer carries the credential's claims (iss, sub, aud,
exp, jti, txn, scope, dep, ...) and session_state; as in RFC 7662, "scope"
is the granted scopes space-separated. Any other answer is just
{"active": false}, whatever the reason.

Use it for high-value calls; for the rest, verify offline with jwks and
poll revocations.
`
