package verifier

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

// Mapper says which (action, resource) an HTTP request performs, e.g.
// ("read", "docs/plan"). An error refuses the request with 400.
type Mapper func(r *http.Request) (action, resource string, err error)

// MethodAction maps an HTTP method to an action: GET and HEAD "read",
// POST "create", PUT and PATCH "write", DELETE "delete", anything else its
// lower-cased name.
func MethodAction(r *http.Request) string {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return "read"
	case http.MethodPost:
		return "create"
	case http.MethodPut, http.MethodPatch:
		return "write"
	case http.MethodDelete:
		return "delete"
	}
	return strings.ToLower(r.Method)
}

type ctxKey struct{}

// ClaimsFrom returns the verified claims the middleware put in the
// request's context.
func ClaimsFrom(ctx context.Context) *token.Claims {
	c, _ := ctx.Value(ctxKey{}).(*token.Claims)
	return c
}

// BearerToken returns the credential of an "Authorization: Bearer" header.
func BearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// Middleware protects next: each request must carry a step credential
// ("Authorization: Bearer <token>", or "Authorization: DPoP <token>" with
// a DPoP proof for a credential bound to a key) that verifies, whose proof
// of possession holds (VerifyRequest), and that allows the (action,
// resource) mapper says the request performs. Refusals are 401 (no or bad
// credential, closed session, missing or bad proof), 403 (outside the
// scope) or 503 (ErrStale: the revocation list is past
// Config.MaxStaleness), with a JSON body {"error": "..."} and an RFC 6750
// or RFC 9449 challenge. With Config.Report, every served request is
// reported to the engine in the background, with the time it arrived; a
// refused out-of-scope use, or a use of a closed session's credential, is
// reported too, so the engine can charge the session with it.
func (v *Verifier) Middleware(mapper Mapper, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen := v.cfg.Now() // when the use was seen: verified and reported at this time
		if raw, _ := Credential(r); raw == "" {
			refuse(w, http.StatusUnauthorized, ErrNoCredential)
			return
		}
		action, resource, err := mapper(r)
		if err != nil {
			refuse(w, http.StatusBadRequest, err)
			return
		}
		raw, claims, err := v.authorizeRequest(r.Context(), r, action, resource, seen)
		switch {
		case errors.Is(err, ErrScope):
			if v.cfg.Report {
				v.ReportLater(raw, action, resource, "denied", seen)
			}
			refuse(w, http.StatusForbidden, err)
			return
		case errors.Is(err, ErrStale):
			refuse(w, http.StatusServiceUnavailable, err)
			return
		case err != nil:
			if v.cfg.Report && errors.Is(err, ErrSessionClosed) {
				v.ReportLater(raw, action, resource, "denied", seen)
			}
			refuse(w, http.StatusUnauthorized, err)
			return
		}
		if v.cfg.Report {
			v.ReportLater(raw, action, resource, "allowed", seen)
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, claims)))
	})
}

func refuse(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	if code == http.StatusUnauthorized || code == http.StatusForbidden {
		w.Header().Set("WWW-Authenticate", challenge(err, code))
	}
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}
