package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/continuoustrust/vault-plugin-secrets-agent/dpop"
	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

// RFC 8693 names.
const (
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	tokenTypeJWT       = "urn:ietf:params:oauth:token-type:jwt"
	tokenTypeAccess    = "urn:ietf:params:oauth:token-type:access_token"
	tokenTypeTxn       = "urn:ietf:params:oauth:token-type:txn_token"
)

// Exchanger takes credentials at the engine's token endpoint (RFC 8693
// token exchange) without a Vault token: a sub-agent in another process
// or on another machine presents a credential of the session (the subject
// token, handed to it by its parent) and gets a narrower child for its own
// step. The child counts against the session's budgets, and asking for
// more than the subject token allows is a violation of the session, as
// under creds.
type Exchanger struct {
	// TokenEndpoint is the engine's token endpoint,
	// "<vault address>/v1/<mount>/token" (the token_endpoint of its
	// authorization-server metadata). Required. With a DPoP key it must be
	// the URL the engine's issuer names (<issuer>/token).
	TokenEndpoint string
	// Key, when set, proves possession (RFC 9449): every exchange carries
	// a DPoP proof by it, and every child is bound to it. It is required
	// to exchange a subject token bound to it.
	Key *dpop.Key
	// HTTPClient sends the requests; nil means http.DefaultClient.
	HTTPClient *http.Client
}

// ExchangeRequest is one exchange. The answer's Credential has Token,
// Scopes, Format and ExpiresAt (RFC 8693 answers say no more); Audience is
// the one asked for, if any.
type ExchangeRequest struct {
	// SubjectToken is the credential exchanged. Required.
	SubjectToken string
	// Scopes of the child, each inside the subject token's scope; empty
	// means the subject token's.
	Scopes []string
	// Audience of the child, one of the session's audiences; empty means
	// the subject token's.
	Audience string
	// Actor names the sub-agent; it is appended to the child's act chain.
	Actor string
	// Description says what the step is for.
	Description string
	// Format of the child; empty means the subject token's.
	Format token.Format
}

// ExchangeError is a refusal of the token endpoint (RFC 6749 section 5.2).
type ExchangeError struct {
	StatusCode  int
	Code        string // invalid_grant, invalid_scope, invalid_target, authorization_pending, ...
	Description string
	// ApprovalID and ExpiresIn are set for authorization_pending: the step
	// waits for an administrator's approval; ask again once it is approved
	// (asking again meanwhile waits for the same approval).
	ApprovalID string
	ExpiresIn  int64
}

func (e *ExchangeError) Error() string {
	return fmt.Sprintf("token exchange refused (%d %s): %s", e.StatusCode, e.Code, e.Description)
}

// Is matches ErrViolation (and the violation kinds named in the
// description) and ErrSessionClosed, as *Error does.
func (e *ExchangeError) Is(target error) bool {
	switch target {
	case ErrViolation:
		return strings.HasPrefix(e.Description, "violation ")
	case ErrSessionClosed:
		return strings.Contains(e.Description, "the session is revoked") ||
			(e.Code == "invalid_grant" && strings.Contains(e.Description, "session is "))
	}
	for name, kind := range kinds {
		if target == kind {
			return strings.HasPrefix(e.Description, "violation "+name+":")
		}
	}
	return false
}

// Exchange exchanges req.SubjectToken for a child credential.
func (x *Exchanger) Exchange(ctx context.Context, req ExchangeRequest) (*Credential, error) {
	if x.TokenEndpoint == "" || req.SubjectToken == "" {
		return nil, errors.New("client: Exchanger.TokenEndpoint and ExchangeRequest.SubjectToken are required")
	}
	form := url.Values{
		"grant_type":         {grantTokenExchange},
		"subject_token":      {req.SubjectToken},
		"subject_token_type": {tokenTypeJWT},
	}
	if len(req.Scopes) > 0 {
		form.Set("scope", strings.Join(req.Scopes, " "))
	}
	for k, v := range map[string]string{"audience": req.Audience, "actor": req.Actor, "description": req.Description} {
		if v != "" {
			form.Set(k, v)
		}
	}
	switch req.Format {
	case "":
	case token.FormatAccessToken:
		form.Set("requested_token_type", tokenTypeAccess)
	case token.FormatTxnToken:
		form.Set("requested_token_type", tokenTypeTxn)
	default:
		return nil, fmt.Errorf("client: unknown format %q", req.Format)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, x.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if x.Key != nil {
		// The proof names the subject token (ath): it is good for this
		// exchange only.
		proof, err := x.Key.Proof(http.MethodPost, x.TokenEndpoint, req.SubjectToken, time.Time{})
		if err != nil {
			return nil, err
		}
		hreq.Header.Set(dpop.HeaderName, proof)
	}
	hc := x.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(hreq)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
			ApprovalID  string `json:"approval_id"`
			ExpiresIn   int64  `json:"expires_in"`
		}
		_ = json.Unmarshal(body, &e)
		return nil, &ExchangeError{StatusCode: resp.StatusCode, Code: e.Error, Description: e.Description, ApprovalID: e.ApprovalID, ExpiresIn: e.ExpiresIn}
	}
	var ok struct {
		AccessToken     string `json:"access_token"`
		IssuedTokenType string `json:"issued_token_type"`
		ExpiresIn       int64  `json:"expires_in"`
		Scope           string `json:"scope"`
	}
	if err := json.Unmarshal(body, &ok); err != nil || ok.AccessToken == "" {
		return nil, errors.New("client: the token endpoint answered no credential")
	}
	cred := &Credential{
		Token: ok.AccessToken, Scopes: strings.Fields(ok.Scope), Audience: req.Audience,
		ExpiresAt: time.Now().Add(time.Duration(ok.ExpiresIn) * time.Second), Format: token.FormatTxnToken,
	}
	if ok.IssuedTokenType == tokenTypeAccess {
		cred.Format = token.FormatAccessToken
	}
	return cred, nil
}

// DPoPTransport is an http.RoundTripper that sends one credential bound to
// Key with a fresh DPoP proof per request ("Authorization: DPoP <token>"
// and a "DPoP" header, RFC 9449), to one origin only.
type DPoPTransport struct {
	// Key is the key the credential is bound to.
	Key *dpop.Key
	// Credential is sent with every request.
	Credential *Credential
	// Origin is the scheme and host (and port) of the resource server the
	// credential is for, such as "https://docs.example.com". Required: a
	// request to any other origin (a redirect, another call through the
	// same client) is refused and carries nothing.
	Origin string
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t *DPoPTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.Credential == nil || t.Key == nil || t.Origin == "" {
		closeBody(req)
		return nil, errors.New("client: DPoPTransport needs a Key, a Credential and an Origin")
	}
	if o, err := url.Parse(t.Origin); err != nil || !strings.EqualFold(o.Scheme, req.URL.Scheme) || !strings.EqualFold(o.Host, req.URL.Host) {
		closeBody(req)
		return nil, fmt.Errorf("client: DPoPTransport sends its credential to %s only, not to %s://%s", t.Origin, req.URL.Scheme, req.URL.Host)
	}
	out := req.Clone(req.Context())
	if err := SignRequest(out, t.Key, t.Credential.Token); err != nil {
		closeBody(req)
		return nil, err
	}
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(out)
}

// SignRequest sets req's Authorization to "DPoP <tok>" and its DPoP
// header to a fresh proof by key for req's method and URL.
func SignRequest(req *http.Request, key *dpop.Key, tok string) error {
	proof, err := key.Proof(req.Method, req.URL.String(), tok, time.Time{})
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", dpop.Scheme+" "+tok)
	req.Header.Set(dpop.HeaderName, proof)
	return nil
}
