package verifier

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/continuoustrust/vault-plugin-secrets-agent/dpop"
	"github.com/continuoustrust/vault-plugin-secrets-agent/scope"
	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

// Credential reads the credential of an HTTP request: "Authorization:
// Bearer <token>" or "Authorization: DPoP <token>" (RFC 9449), and says
// which scheme it came with. It returns "" when there is none.
func Credential(r *http.Request) (raw, scheme string) {
	f := strings.Fields(r.Header.Get("Authorization"))
	if len(f) != 2 {
		return "", ""
	}
	switch {
	case strings.EqualFold(f[0], "bearer"):
		return f[1], "Bearer"
	case strings.EqualFold(f[0], dpop.Scheme):
		return f[1], dpop.Scheme
	}
	return "", ""
}

// VerifyRequest verifies the credential an HTTP request carries, as Verify
// does, and its proof of possession: a credential bound to a key
// (cnf.jkt) must come as "Authorization: DPoP <token>" with one DPoP
// header, a proof (RFC 9449) by that key, for this request's method and
// URL (Config.PublicURL and the path), issued within Config.DPoPWindow,
// for this credential (ath), and never seen before. An unbound credential
// must come as Bearer. It returns the raw credential with its claims;
// refusals are ErrNoCredential, ErrProof (wrapping the dpop error), or
// Verify's.
func (v *Verifier) VerifyRequest(ctx context.Context, r *http.Request) (string, *token.Claims, error) {
	return v.verifyRequest(ctx, r, v.cfg.Now())
}

func (v *Verifier) verifyRequest(ctx context.Context, r *http.Request, now time.Time) (string, *token.Claims, error) {
	raw, scheme := Credential(r)
	if raw == "" {
		return "", nil, ErrNoCredential
	}
	claims, err := v.verify(ctx, raw, now)
	if err != nil {
		return raw, nil, err
	}
	if err := v.checkPossession(r, raw, scheme, claims, now); err != nil {
		return raw, nil, err
	}
	return raw, claims, nil
}

// checkPossession checks a verified credential's binding.
func (v *Verifier) checkPossession(r *http.Request, raw, scheme string, claims *token.Claims, now time.Time) error {
	if claims.Cnf == nil {
		if scheme == dpop.Scheme {
			return fmt.Errorf("%w: the credential is not bound to a key: send it as Bearer", ErrProof)
		}
		return nil
	}
	if scheme != dpop.Scheme {
		return fmt.Errorf("%w: the credential is bound to a key: send it as DPoP, with a proof", ErrProof)
	}
	proofs := r.Header.Values(dpop.HeaderName)
	switch len(proofs) {
	case 0:
		return fmt.Errorf("%w: %w", ErrProof, dpop.ErrMissing)
	case 1:
	default:
		return fmt.Errorf("%w: exactly one DPoP header is needed", ErrProof)
	}
	_, err := dpop.Verify(proofs[0], dpop.Options{
		Method: r.Method, URL: v.requestURL(r), AccessToken: raw, JKT: claims.Cnf.JKT,
		Now: now, Window: v.cfg.DPoPWindow, Replay: v.proofs,
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrProof, err)
	}
	return nil
}

// requestURL is the URL the client used for r, as a proof names it.
func (v *Verifier) requestURL(r *http.Request) string {
	if v.cfg.PublicURL != "" {
		return strings.TrimRight(v.cfg.PublicURL, "/") + r.URL.EscapedPath()
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + r.URL.EscapedPath()
}

// AuthorizeRequest is VerifyRequest followed by the scope check of
// Authorize.
func (v *Verifier) AuthorizeRequest(ctx context.Context, r *http.Request, action, resource string) (string, *token.Claims, error) {
	return v.authorizeRequest(ctx, r, action, resource, v.cfg.Now())
}

func (v *Verifier) authorizeRequest(ctx context.Context, r *http.Request, action, resource string, now time.Time) (string, *token.Claims, error) {
	raw, claims, err := v.verifyRequest(ctx, r, now)
	if err != nil {
		return raw, nil, err
	}
	set, err := scope.ParseSpaceSeparated(claims.Scope)
	if err != nil {
		return raw, nil, fmt.Errorf("%w: %v", token.ErrClaims, err)
	}
	if !set.Match(action, resource) {
		return raw, claims, fmt.Errorf("%w: %s on %s", ErrScope, action, resource)
	}
	return raw, claims, nil
}

// challenge is the WWW-Authenticate header for a refusal of err: a DPoP
// challenge for proof errors, Bearer otherwise (RFC 6750, RFC 9449
// section 7.1).
func challenge(err error, status int) string {
	switch {
	case errors.Is(err, ErrProof):
		return `DPoP error="invalid_dpop_proof", algs="EdDSA ES256"`
	case errors.Is(err, ErrNoCredential):
		return `Bearer, DPoP algs="EdDSA ES256"`
	case status == http.StatusForbidden:
		return `Bearer error="insufficient_scope"`
	}
	return `Bearer error="invalid_token"`
}
