package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

// RFC 8693 token exchange: names on the wire.
const (
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	tokenTypeJWT       = "urn:ietf:params:oauth:token-type:jwt"
	tokenTypeAccess    = "urn:ietf:params:oauth:token-type:access_token"
	// tokenTypeTxn is the Transaction Tokens draft's token type.
	tokenTypeTxn = "urn:ietf:params:oauth:token-type:txn_token"
)

// OAuth error codes (RFC 6749 section 5.2, RFC 8693 section 2.2.2,
// RFC 9449 section 5).
const (
	oauthInvalidRequest   = "invalid_request"
	oauthInvalidGrant     = "invalid_grant"
	oauthInvalidScope     = "invalid_scope"
	oauthInvalidTarget    = "invalid_target"
	oauthInvalidDPoPProof = "invalid_dpop_proof"
	oauthUnsupportedGrant = "unsupported_grant_type"
)

func pathToken(b *backend) *framework.Path {
	str := func(desc string) *framework.FieldSchema {
		return &framework.FieldSchema{Type: framework.TypeString, Description: desc}
	}
	return &framework.Path{
		Pattern: "token$",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix, OperationVerb: "exchange", OperationSuffix: "token",
		},
		Fields: map[string]*framework.FieldSchema{
			"grant_type":           str(`Required: "` + grantTokenExchange + `".`),
			"subject_token":        str("Required: a live credential of this engine, which the new one is derived from."),
			"subject_token_type":   str(`Required: "` + tokenTypeJWT + `", "` + tokenTypeAccess + `" (an access token) or "` + tokenTypeTxn + `" (a transaction token).`),
			"requested_token_type": str(`"` + tokenTypeAccess + `" or "` + tokenTypeTxn + `"; default: the subject token's format ("` + tokenTypeJWT + `" too).`),
			"scope":                str("The scopes asked for, space-separated, each inside the subject token's scope; default: the subject token's."),
			"audience":             str("The resource server the credential is for: one of the session's audiences; default: the subject token's."),
			"resource":             str("The same as audience, as a URI (RFC 8707); if both are given they must name the same resource."),
			"actor":                str("The sub-agent acting with the new credential; appended to its act chain."),
			"actor_token":          str("Not accepted: name the sub-agent with actor."),
			"actor_token_type":     str("Not accepted: name the sub-agent with actor."),
			"description":          str("What the step is for (at most 256 bytes); recorded in the timeline and put in the token."),
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback: b.pathTokenExchange,
				Summary:  "Exchange a credential for a narrower child (RFC 8693; no Vault token needed).",
				// Spends the session's budget: the active node decides.
				ForwardPerformanceStandby: true, ForwardPerformanceSecondary: true,
				Responses: tokenResponses(),
			},
		},
		HelpSynopsis:    pathTokenHelpSyn,
		HelpDescription: pathTokenHelpDesc,
	}
}

// oauthError answers an RFC 6749 section 5.2 error as raw JSON.
func oauthError(status int, code, description string) (*logical.Response, error) {
	resp, err := oauthAnswer(status, map[string]interface{}{"error": code, "error_description": description})
	if err == nil && code == oauthInvalidDPoPProof {
		resp.Headers = map[string][]string{"WWW-Authenticate": {`DPoP error="invalid_dpop_proof", algs="EdDSA ES256"`}}
	}
	return resp, err
}

// oauthAnswer answers body as raw JSON with status.
func oauthAnswer(status int, body map[string]interface{}) (*logical.Response, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{
		logical.HTTPStatusCode:  status,
		logical.HTTPContentType: "application/json",
		logical.HTTPRawBody:     raw,
	}}, nil
}

// errAlreadyApplied is a violation already recorded and applied to the
// session (a step past max_pending_approvals), to be answered only.
type errAlreadyApplied struct {
	v       *trust.Violation
	revoked bool
}

func (e errAlreadyApplied) Error() string { return e.v.Error() }

// exchangeFormat is the format requested_token_type names, given the
// subject token's format.
func exchangeFormat(requested string, subject token.Format) (token.Format, bool) {
	switch requested {
	case "", tokenTypeJWT:
		return subject, true
	case tokenTypeAccess:
		return token.FormatAccessToken, true
	case tokenTypeTxn:
		return token.FormatTxnToken, true
	}
	return "", false
}

// tokenTypeURN is the token type URN of a format.
func tokenTypeURN(f token.Format) string {
	if f == token.FormatAccessToken {
		return tokenTypeAccess
	}
	return tokenTypeTxn
}

func (b *backend) pathTokenExchange(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	get := func(name string) string { return strings.TrimSpace(d.Get(name).(string)) }
	switch {
	case get("grant_type") != grantTokenExchange:
		return oauthError(http.StatusBadRequest, oauthUnsupportedGrant, "grant_type must be "+grantTokenExchange)
	case get("subject_token") == "":
		return oauthError(http.StatusBadRequest, oauthInvalidRequest, "subject_token is required")
	case len(get("subject_token")) > token.MaxTokenSize:
		return oauthError(http.StatusBadRequest, oauthInvalidRequest, fmt.Sprintf("subject_token must be at most %d bytes", token.MaxTokenSize))
	case get("actor_token") != "" || get("actor_token_type") != "":
		return oauthError(http.StatusBadRequest, oauthInvalidRequest, "actor_token is not accepted: name the sub-agent with actor")
	}
	subjectType := get("subject_token_type")
	if subjectType != tokenTypeJWT && subjectType != tokenTypeAccess && subjectType != tokenTypeTxn {
		return oauthError(http.StatusBadRequest, oauthInvalidRequest, "subject_token_type must be "+tokenTypeJWT+", "+tokenTypeAccess+" or "+tokenTypeTxn)
	}
	audience, err := exchangeAudience(get("audience"), get("resource"))
	if err != nil {
		return oauthError(http.StatusBadRequest, oauthInvalidTarget, err.Error())
	}

	// The subject token is the authority: checked (size above, then
	// signature and validity) before any storage is touched beyond the
	// cached configuration and keys.
	cfg, ring, err := b.loadConfigAndKeyring(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	issuer := cfg.issuerFor(req.MountPoint)
	now := b.now()
	subject, err := ring.verify(get("subject_token"), issuer, now, false)
	if err != nil {
		if isVerifyError(err) {
			return oauthError(http.StatusBadRequest, oauthInvalidGrant, "subject_token is not a live credential of this engine: it "+whyUnverified(err))
		}
		return nil, err
	}
	if (subjectType == tokenTypeAccess && subject.Format != token.FormatAccessToken) ||
		(subjectType == tokenTypeTxn && subject.Format != token.FormatTxnToken) {
		return oauthError(http.StatusBadRequest, oauthInvalidRequest, "subject_token is not of subject_token_type")
	}
	format, ok := exchangeFormat(get("requested_token_type"), subject.Format)
	if !ok {
		return oauthError(http.StatusBadRequest, oauthInvalidRequest, "requested_token_type must be "+tokenTypeAccess+", "+tokenTypeTxn+" or "+tokenTypeJWT)
	}
	// A bound subject token is only exchanged with a proof by its key;
	// any proof binds the new credential to the proof's key.
	var bound string
	if subject.Cnf != nil {
		bound = subject.Cnf.JKT
	}
	proof, err := b.checkProof(req, cfg, "token", get("subject_token"), bound)
	if err != nil {
		return oauthError(http.StatusBadRequest, oauthInvalidDPoPProof, "the DPoP proof is refused: "+err.Error())
	}
	// Only a delegate can exchange: the holder of a credential issued for
	// this engine itself (aud = issuer), which an agent hands to its
	// sub-agent and no resource server accepts, or of a credential bound
	// to a key, with a proof by it. A credential a resource server was
	// given (for its own audience, as a bearer token) is not a grant here:
	// whoever saw it can neither retarget it nor charge the session.
	if engineAud, ferr := trust.CanonicalAudience(issuer); subject.Cnf == nil && (ferr != nil || subject.Audience != engineAud) {
		return oauthError(http.StatusBadRequest, oauthInvalidGrant, "subject_token is not exchangeable: exchange a credential issued for this engine "+
			"(audience "+issuer+") or one bound to a key, with a DPoP proof by it")
	}
	jkt := ""
	if proof != nil {
		jkt = proof.JKT
	}
	if audience == "" {
		audience = subject.Audience
	}
	scopes := strings.Fields(get("scope"))
	if len(scopes) == 0 {
		scopes = strings.Fields(subject.Scope)
	}

	sess, unlock, err := b.lockSession(ctx, req.Storage, subject.Txn)
	if isNoSession(err) {
		return oauthError(http.StatusBadRequest, oauthInvalidGrant, "the subject token's session no longer exists")
	}
	if err != nil {
		return nil, err
	}
	defer unlock()
	now = b.now()
	if st := sess.StateAt(now); st != trust.StateActive {
		// A closed session's token changes nothing, and is not counted:
		// whoever holds it cannot make the engine write.
		return oauthError(http.StatusBadRequest, oauthInvalidGrant, fmt.Sprintf("the subject token's session is %s", st))
	}
	if err := b.rememberProof(proof); err != nil {
		return oauthError(http.StatusBadRequest, oauthInvalidDPoPProof, "the DPoP proof is refused: "+err.Error())
	}
	sr := trust.StepRequest{
		// The subject token speaks for the session's creator.
		Caller:      sess.Creator,
		Scopes:      scopes,
		Audience:    audience,
		Description: d.Get("description").(string),
		Actor:       get("actor"),
		Parent: &trust.Parent{
			ID: subject.ID, Session: subject.Txn, Scope: subject.Scope,
			Depth: subject.Depth, Expiry: time.Unix(subject.Expiry, 0),
		},
		Rate: b.rates.For(sess.ID, sess.Intent.MaxRate),
	}
	if expired := expireApprovals(sess, now); len(expired) > 0 {
		if err := b.save(ctx, req.Storage, cfg, sess, expired, true); err != nil {
			return nil, err
		}
	}
	grant, err := sess.CheckStep(sr, now)
	var need *trust.ApprovalNeeded
	if errors.As(err, &need) {
		// A step outside the intent, inside the role, under approval: it
		// waits for a person (RFC 8628's authorization_pending, with the
		// approval to wait for).
		a, v, revoked, aerr := b.createApproval(ctx, req, cfg, sess, need, sr.Description, now)
		if aerr != nil {
			return nil, aerr
		}
		if v != nil {
			return b.refuseExchange(ctx, req, cfg, sess, errAlreadyApplied{v, revoked})
		}
		return oauthAnswer(http.StatusBadRequest, map[string]interface{}{
			"error":             "authorization_pending",
			"error_description": "this step lies outside the session's intent and waits for an administrator's approval; retry it once approved",
			"approval_id":       a.ID, "expires_in": int64(a.ExpiresAt.Sub(now).Seconds()),
		})
	}
	if err != nil {
		return b.refuseExchange(ctx, req, cfg, sess, err)
	}
	claims, signed, err := b.issueStep(ctx, req, cfg, ring, sess, sr, grant, issued{
		format: format, jkt: jkt, parent: subject, now: now, issuer: issuer, detail: "token exchange",
	})
	if err != nil {
		return nil, err
	}
	tokenType := "N_A" // a transaction token is not an OAuth access token (RFC 8693 section 2.2.1)
	switch {
	case jkt != "":
		tokenType = "DPoP"
	case format == token.FormatAccessToken:
		tokenType = "Bearer"
	}
	body, err := json.Marshal(map[string]interface{}{
		"access_token":      signed,
		"issued_token_type": tokenTypeURN(format),
		"token_type":        tokenType,
		"expires_in":        claims.Expiry - now.Unix(),
		"scope":             claims.Scope,
	})
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{
		logical.HTTPStatusCode:  http.StatusOK,
		logical.HTTPContentType: "application/json",
		logical.HTTPRawBody:     body,
	}}, nil
}

// exchangeAudience is the one audience that audience and resource name
// (canonical), or "" when neither is given.
func exchangeAudience(audience, resource string) (string, error) {
	var names []string
	for _, a := range []string{audience, resource} {
		if a == "" {
			continue
		}
		if strings.Contains(a, ",") {
			return "", errors.New("a credential has one audience: give one audience or resource")
		}
		c, ferr := trust.CanonicalAudience(a)
		if ferr != nil {
			return "", ferr
		}
		names = append(names, c)
	}
	if len(names) == 2 && names[0] != names[1] {
		return "", errors.New("audience and resource name different resources")
	}
	if len(names) == 0 {
		return "", nil
	}
	return names[0], nil
}

// refuseExchange answers a refused exchange as OAuth does. A violation is
// recorded and applied to the session first, exactly as under creds; a
// malformed request writes nothing.
func (b *backend) refuseExchange(ctx context.Context, req *logical.Request, cfg *agentConfig, sess *trust.Session, err error) (*logical.Response, error) {
	var v *trust.Violation
	var se *trust.StateError
	var fe *trust.FieldError
	var applied errAlreadyApplied
	switch {
	case errors.As(err, &applied) || errors.As(err, &v):
		revoked := applied.revoked
		if applied.v != nil {
			v = applied.v
		} else {
			v.Source = requestSource(req)
			var verr error
			if revoked, verr = b.applyViolation(ctx, req.Storage, cfg, sess, v); verr != nil {
				return nil, verr
			}
		}
		msg := fmt.Sprintf("violation %s: %s", v.Kind, v.Detail)
		if revoked {
			msg += "; the session is revoked and all its credentials with it"
		}
		switch v.Kind {
		case trust.ScopeOutsideIntent:
			return oauthError(http.StatusBadRequest, oauthInvalidScope, msg)
		case trust.AudienceOutsideIntent:
			return oauthError(http.StatusBadRequest, oauthInvalidTarget, msg)
		case trust.RateExceeded:
			return oauthError(http.StatusTooManyRequests, oauthInvalidRequest, msg)
		}
		return oauthError(http.StatusBadRequest, oauthInvalidGrant, msg)
	case errors.As(err, &se):
		return oauthError(http.StatusBadRequest, oauthInvalidGrant, se.Error())
	case errors.As(err, &fe):
		code := oauthInvalidRequest
		switch fe.Field {
		case "scopes":
			code = oauthInvalidScope
		case "audience":
			code = oauthInvalidTarget
		}
		return oauthError(http.StatusBadRequest, code, strings.Replace(fe.Error(), "scopes:", "scope:", 1))
	}
	return nil, err
}

func tokenResponses() map[int][]framework.Response {
	// The error bodies are described, not declared as fields: Vault's
	// OpenAPI names one response schema per operation, which the answer
	// of 200 holds.
	const errorBody = `, as the raw JSON body {"error", "error_description"} (RFC 6749 section 5.2); error is ` +
		`invalid_request, invalid_grant, invalid_scope, invalid_target, invalid_dpop_proof or unsupported_grant_type.`
	return map[int][]framework.Response{
		http.StatusOK: {{
			Description: `OK: the RFC 8693 answer as the raw response body, not wrapped in Vault's "data".`,
			MediaType:   "application/json",
			Fields: map[string]*framework.FieldSchema{
				"access_token":      required(framework.TypeString, "The new credential (an access token or a transaction token, as issued_token_type says)."),
				"issued_token_type": required(framework.TypeString, "The new credential's token type URN."),
				"token_type":        required(framework.TypeString, `"DPoP" when bound to a key, "Bearer" for an unbound access token, "N_A" for an unbound transaction token.`),
				"expires_in":        required(framework.TypeInt, "Seconds until the new credential expires."),
				"scope":             required(framework.TypeString, "The granted scopes, space-separated."),
			},
		}},
		http.StatusBadRequest: {{
			Description: "Refused" + errorBody,
			MediaType:   "application/json",
		}},
		http.StatusTooManyRequests: {{
			Description: "Refused: faster than the session's max_rate (a rate_exceeded violation)" + errorBody,
			MediaType:   "application/json",
		}},
	}
}

const pathTokenHelpSyn = `Exchange a credential for a narrower child (RFC 8693 token exchange).`

const pathTokenHelpDesc = `
A sub-agent that holds a credential of a session, but no Vault token, takes
a narrower credential for its own step here. The subject token is the
authority: the path needs no Vault token, answers raw OAuth JSON, and takes
the form-encoded body of RFC 8693 or JSON.

  curl -s $VAULT_ADDR/v1/agent/token \
    -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange \
    -d subject_token=$TOKEN \
    -d subject_token_type=urn:ietf:params:oauth:token-type:jwt \
    -d scope=read:secrets/web/tls -d audience=secrets-api -d actor=cert-checker

The new credential is a child of the subject token (its depth + 1, "par" its
jti, the actor appended to "act"), lives no longer than it, and is a step of
its session: it counts against max_steps and max_rate, and a request beyond
the subject token's scope or the session's audiences is the same violation
as under creds, applied under the session's on_violation (invalid_scope,
invalid_target). An expired or forged subject token, or one of a closed
session, gets invalid_grant and changes nothing.

A subject token bound to a key (cnf.jkt) is only exchanged with a DPoP proof
(RFC 9449) by that key; a DPoP proof binds the new credential to its key
(token_type DPoP). The mount must pass the header
(passthrough_request_headers=DPoP), and config's issuer must be this
mount's URL, which the proof names (htu <issuer>/token).

The path is open to anyone who can reach Vault: put a rate-limit quota on it,
e.g. vault write sys/quotas/rate-limit/agent-token path=agent/token rate=100.
`
