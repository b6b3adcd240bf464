package verifier

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/continuoustrust/vault-plugin-secrets-agent/ssf"
	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

// A push receiver for the engine's Shared Signals stream (RFC 8935).
//
// The engine, an SSF transmitter, POSTs a CAEP session-revoked Security
// Event Token (SET) for every session that stops being active to each push
// stream's endpoint_url. Serve SETReceiver there: it checks each SET with
// the verifier's keys (the engine's JWKS, refetched at once for an unknown
// key ID, as for credentials), and marks its session closed at once, so the
// verifier refuses the session's credentials without waiting for the next
// revocation sync:
//
//	v, _ := verifier.New(ctx, cfg)
//	http.Handle("/ssf/events", v.SETReceiver(verifier.SETReceiverConfig{
//		Audience:      "https://rs.example.com", // the stream's audience
//		Authorization: "Bearer " + streamSecret, // the stream's authorization_header
//	}))
//
// and subscribe it with
//
//	vault write agent/ssf/streams delivery_method=push \
//	    endpoint_url=https://rs.example.com/ssf/events audience=https://rs.example.com \
//	    authorization_header="Bearer $STREAM_SECRET"

// SETReceiverConfig configures SETReceiver.
type SETReceiverConfig struct {
	// Audience is the stream's audience: a SET for another is refused
	// (invalid_audience). Default: the verifier's Config.Audience.
	Audience string
	// Authorization, when set, is the Authorization header every push
	// must carry (the stream's authorization_header): a push without it
	// is refused (authentication_failed), before its SET is looked at.
	Authorization string
	// OnSET, when set, is called with every SET accepted, once its
	// session (for a session-revoked event) is marked closed.
	OnSET func(*ssf.SET)
}

// RFC 8935 §2.3 error codes.
const (
	setErrInvalidRequest = "invalid_request"
	setErrInvalidKey     = "invalid_key"
	setErrInvalidIssuer  = "invalid_issuer"
	setErrInvalidAud     = "invalid_audience"
	setErrAuthentication = "authentication_failed"
)

// SETReceiver returns an RFC 8935 push endpoint for the engine's SETs. It
// accepts a POST of one SET (Content-Type application/secevent+jwt) that
// ssf.Verify accepts with the verifier's keys, its Config.Issuer and the
// receiver's audience, and answers 202. A session-revoked event marks its
// session closed at once: Verify, Authorize and the middleware refuse the
// session's credentials (ErrSessionClosed) from then on, for
// Config.MaxLifetime (no credential of the session outlives it; the
// revocation list takes over meanwhile). A verification event is only
// accepted. Anything else is answered 400 with RFC 8935's error JSON,
// {"err": ..., "description": ...}: invalid_request (not a SET, wrong
// type, unknown event), invalid_key (unknown key or bad signature),
// invalid_issuer, invalid_audience, or authentication_failed (a missing or
// wrong Authorization header). A SET received twice (delivery is at least
// once) is accepted twice, to the same effect.
func (v *Verifier) SETReceiver(cfg SETReceiverConfig) http.Handler {
	if cfg.Audience == "" {
		cfg.Audience = v.cfg.Audience
	}
	return &setReceiver{v: v, cfg: cfg}
}

type setReceiver struct {
	v   *Verifier
	cfg SETReceiverConfig
}

func (h *setReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		setError(w, http.StatusMethodNotAllowed, setErrInvalidRequest, "SETs are POSTed")
		return
	}
	if h.cfg.Authorization != "" &&
		subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(h.cfg.Authorization)) != 1 {
		setError(w, http.StatusBadRequest, setErrAuthentication, "the Authorization header is missing or wrong")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != ssf.ContentType {
		setError(w, http.StatusBadRequest, setErrInvalidRequest, "the body must be a SET, of type "+ssf.ContentType)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, token.MaxTokenSize+1))
	if err != nil {
		setError(w, http.StatusBadRequest, setErrInvalidRequest, "the body could not be read")
		return
	}
	set, err := h.v.verifySET(r.Context(), strings.TrimSpace(string(body)), h.cfg.Audience)
	if err != nil {
		code, desc := setErrorCode(err)
		setError(w, http.StatusBadRequest, code, desc)
		return
	}
	if set.Events.Type() == ssf.EventSessionRevoked {
		h.v.markClosedBySET(set.SessionID())
	}
	if h.cfg.OnSET != nil {
		h.cfg.OnSET(set)
	}
	w.WriteHeader(http.StatusAccepted)
}

// verifySET checks a SET with the verifier's keys, refetching them once for
// an unknown key ID, as verify does for a credential.
func (v *Verifier) verifySET(ctx context.Context, raw, audience string) (*ssf.SET, error) {
	opts := ssf.VerifyOptions{
		Issuer: v.cfg.Issuer, Audience: audience, Algorithms: v.cfg.Algorithms,
		Now: v.cfg.Now(), Leeway: v.cfg.Leeway,
	}
	set, err := ssf.Verify(raw, v.lookup, opts)
	if errors.Is(err, token.ErrUnknownKey) {
		v.refetchKeys(ctx)
		set, err = ssf.Verify(raw, v.lookup, opts)
	}
	return set, err
}

// setErrorCode maps a verification error to RFC 8935's error code, with a
// description that never quotes the SET.
func setErrorCode(err error) (string, string) {
	switch {
	case errors.Is(err, token.ErrUnknownKey), errors.Is(err, token.ErrSignature), errors.Is(err, token.ErrAlgorithm):
		return setErrInvalidKey, "the SET is not signed by a key of the engine's JWKS"
	case errors.Is(err, token.ErrIssuer):
		return setErrInvalidIssuer, "the SET's issuer is not the engine's"
	case errors.Is(err, token.ErrAudience):
		return setErrInvalidAud, "the SET is not for this receiver's audience"
	case errors.Is(err, token.ErrType):
		return setErrInvalidRequest, "not a SET: its typ must be " + ssf.Type
	case errors.Is(err, ssf.ErrEventType):
		return setErrInvalidRequest, "the SET's event is not one this receiver takes"
	default:
		return setErrInvalidRequest, "the body is not a valid SET"
	}
}

// setError answers an RFC 8935 error.
func setError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"err": code, "description": description})
}

// closedBySET holds the sessions a SET said closed, each until its entry
// may go: the verifier's MaxLifetime after it came (a SET has no
// credential expiry, and no credential of the session lives longer). It is
// apart from the revocation list, which a complete sync replaces.
type closedBySET struct {
	mu    sync.Mutex
	until map[string]time.Time
}

// markClosedBySET marks session id closed now.
func (v *Verifier) markClosedBySET(id string) {
	if id == "" {
		return
	}
	now := v.cfg.Now()
	c := &v.pushed
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.until == nil {
		c.until = map[string]time.Time{}
	}
	// Drop what can no longer matter, so the set stays bounded.
	for s, until := range c.until {
		if now.After(until) {
			delete(c.until, s)
		}
	}
	c.until[id] = now.Add(v.cfg.MaxLifetime)
}

// closedBySETAt reports whether a SET said session id closed, and the
// entry is still kept at now.
func (v *Verifier) closedBySETAt(id string, now time.Time) bool {
	c := &v.pushed
	c.mu.Lock()
	defer c.mu.Unlock()
	until, ok := c.until[id]
	return ok && !now.After(until)
}
