// Package ssf builds and checks the Security Event Tokens (SETs, RFC 8417)
// that the agent secrets engine transmits as an OpenID Shared Signals
// transmitter (SSF 1.0): a CAEP 1.0 session-revoked event for every session
// that stops being active, and SSF's verification event.
//
// A SET is a JWS in compact serialisation with the protected header
// {"alg", "kid", "typ": "secevent+jwt"}, signed with the engine's signing
// key (a token.Key) through the token package, so that SETs and step
// credentials share one signing and one verifying path on go-jose
// (github.com/go-jose/go-jose/v4): the same strict pre-checks, the same
// algorithm allow-list bound to the key named by "kid", the same strict JSON
// rules for the payload (see token.VerifyJWS and token.DecodeStrict). Its
// claims are
//
//	{
//	  "iss": "<the engine's issuer>",
//	  "jti": "<unique per SET>",
//	  "iat": <NumericDate>,
//	  "aud": "<the stream's audience>",
//	  "txn": "<the session ID>",
//	  "sub_id": {"format": "opaque", "id": "<the session ID>"},
//	  "events": {
//	    "https://schemas.openid.net/secevent/caep/event-type/session-revoked": {
//	      "event_timestamp": <NumericDate>,
//	      "initiating_entity": "policy",
//	      "reason_admin": {"en": "violation: scope_outside_intent"}
//	    }
//	  }
//	}
//
// with exactly one event. A verification event's sub_id is the stream
// ({"format": "opaque", "id": "<stream ID>"}) and its event holds the
// receiver's "state", when it gave one.
//
// No maintained Go library for SSF fitted: the ones found bring their own
// JOSE stacks (golang-jwt and lestrrat-go/jwx). This package writes only
// what go-jose does not cover: the claims and events of SSF and CAEP.
//
// The package does not depend on Vault; resource servers use it, through
// the verifier package's RFC 8935 receiver, to check the SETs they are
// pushed.
package ssf

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

// Type is the "typ" header of every SET (RFC 8417 §2.3).
const Type = "secevent+jwt"

// ContentType is the media type of a SET pushed over HTTP (RFC 8935).
const ContentType = "application/secevent+jwt"

// Event types.
const (
	// EventSessionRevoked is CAEP 1.0's session-revoked event: the session
	// is no longer active, and every credential of it is revoked.
	EventSessionRevoked = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
	// EventVerification is SSF 1.0's verification event, sent when a
	// receiver (or an administrator) asks that a stream be verified.
	EventVerification = "https://schemas.openid.net/secevent/ssf/event-type/verification"
)

// EventTypes are the event types this package builds and checks.
var EventTypes = []string{EventSessionRevoked, EventVerification}

// Delivery methods (SSF 1.0 §6.1.1): the URNs of RFC 8935 (push) and RFC
// 8936 (poll).
const (
	DeliveryPush = "urn:ietf:rfc:8935"
	DeliveryPoll = "urn:ietf:rfc:8936"
)

// SpecVersion is the SSF version of the transmitter metadata.
const SpecVersion = "1_0"

// Initiating entities of a CAEP event: who or what caused it.
const (
	InitiatingAdmin  = "admin"
	InitiatingUser   = "user"
	InitiatingPolicy = "policy"
	InitiatingSystem = "system"
)

// Errors besides the token package's (token.ErrMalformed,
// token.ErrUnknownKey, token.ErrAlgorithm, token.ErrSignature, token.ErrType,
// token.ErrTooLarge, token.ErrIssuer, token.ErrAudience, token.ErrClaims,
// token.ErrNotYetValid, token.ErrOptions), all matched with errors.Is.
var (
	// ErrEventType: the SET does not hold exactly one event, or holds an
	// event type that is unknown or was not asked for.
	ErrEventType = errors.New("ssf: event type not accepted")
)

// SubjectID is an SSF subject identifier (RFC 9493). The engine writes the
// "opaque" format only.
type SubjectID struct {
	Format string `json:"format"`
	ID     string `json:"id"`
}

// SessionRevoked is the CAEP session-revoked event.
type SessionRevoked struct {
	// EventTimestamp is when the session stopped being active, in Unix
	// seconds (CAEP 1.0's "event_timestamp").
	EventTimestamp int64 `json:"event_timestamp"`
	// InitiatingEntity is one of the Initiating* constants, or empty.
	InitiatingEntity string `json:"initiating_entity,omitempty"`
	// ReasonAdmin is the reason for administrators, by language tag
	// ({"en": "violation: scope_outside_intent"}).
	ReasonAdmin map[string]string `json:"reason_admin,omitempty"`
}

// Verification is SSF's verification event.
type Verification struct {
	// State is what the receiver asked to have echoed, if anything.
	State string `json:"state,omitempty"`
}

// Events is the "events" claim. Exactly one member is set.
type Events struct {
	SessionRevoked *SessionRevoked `json:"https://schemas.openid.net/secevent/caep/event-type/session-revoked,omitempty"`
	Verification   *Verification   `json:"https://schemas.openid.net/secevent/ssf/event-type/verification,omitempty"`
}

// Type returns the type of the event that is set, or "" when none (or more
// than one) is.
func (e *Events) Type() string {
	switch {
	case e.SessionRevoked != nil && e.Verification == nil:
		return EventSessionRevoked
	case e.Verification != nil && e.SessionRevoked == nil:
		return EventVerification
	}
	return ""
}

// SET is the payload of a Security Event Token.
type SET struct {
	Issuer   string       `json:"iss"`
	ID       string       `json:"jti"`
	IssuedAt int64        `json:"iat"`
	Audience jwt.Audience `json:"aud"`
	// Txn is the session ID (a session-revoked event); empty otherwise.
	Txn     string     `json:"txn,omitempty"`
	Subject *SubjectID `json:"sub_id,omitempty"`
	Events  Events     `json:"events"`
}

// SessionID returns the session a session-revoked SET is about: its
// sub_id's ID (checked by Verify to equal its txn when both are set).
func (s *SET) SessionID() string {
	if s.Subject != nil {
		return s.Subject.ID
	}
	return s.Txn
}

// Envelope holds what every SET says besides its event.
type Envelope struct {
	// Issuer is the engine's issuer ("iss"). Required.
	Issuer string
	// ID is the SET's unique ID ("jti"). Required.
	ID string
	// Audience is the receiver ("aud"). Required.
	Audience string
	// IssuedAt is when the SET is issued ("iat"); zero means now.
	IssuedAt time.Time
}

// BuildSessionRevoked signs a CAEP session-revoked SET for session with k:
// "txn" and sub_id ({"format": "opaque", "id": session}) name the session,
// and the event holds when it stopped being active (at), who or what
// initiated it (one of the Initiating* constants, or "") and the reason
// for administrators, in English.
func BuildSessionRevoked(k *token.Key, env Envelope, session string, at time.Time, initiating, reason string) (string, error) {
	if session == "" {
		return "", fmt.Errorf("%w: missing session", token.ErrClaims)
	}
	ev := &SessionRevoked{EventTimestamp: at.Unix(), InitiatingEntity: initiating}
	if reason != "" {
		ev.ReasonAdmin = map[string]string{"en": reason}
	}
	return sign(k, env, session, &SubjectID{Format: "opaque", ID: session}, Events{SessionRevoked: ev})
}

// BuildVerification signs an SSF verification SET for stream with k,
// echoing state (may be empty). Its sub_id is the stream.
func BuildVerification(k *token.Key, env Envelope, stream, state string) (string, error) {
	if stream == "" {
		return "", fmt.Errorf("%w: missing stream", token.ErrClaims)
	}
	return sign(k, env, "", &SubjectID{Format: "opaque", ID: stream}, Events{Verification: &Verification{State: state}})
}

func sign(k *token.Key, env Envelope, txn string, sub *SubjectID, events Events) (string, error) {
	iat := env.IssuedAt
	if iat.IsZero() {
		iat = time.Now()
	}
	set := &SET{
		Issuer: env.Issuer, ID: env.ID, IssuedAt: iat.Unix(), Txn: txn, Subject: sub, Events: events,
	}
	if env.Audience != "" {
		set.Audience = jwt.Audience{env.Audience}
	}
	if err := checkClaims(set); err != nil {
		return "", err
	}
	payload, err := json.Marshal(set)
	if err != nil {
		return "", fmt.Errorf("%w: cannot encode the SET", token.ErrClaims)
	}
	return token.SignJWS(k, Type, payload)
}

// checkClaims reports the first required claim that is missing or
// inconsistent; Build* and Verify share it, so the engine never builds a
// SET that receivers refuse.
func checkClaims(s *SET) error {
	switch {
	case s.Issuer == "":
		return fmt.Errorf("%w: missing iss", token.ErrClaims)
	case s.ID == "":
		return fmt.Errorf("%w: missing jti", token.ErrClaims)
	case s.IssuedAt <= 0:
		return fmt.Errorf("%w: missing iat", token.ErrClaims)
	case len(s.Audience) == 0 || slices.Contains(s.Audience, ""):
		return fmt.Errorf("%w: missing aud", token.ErrClaims)
	case s.Subject != nil && (s.Subject.Format == "" || s.Subject.ID == ""):
		return fmt.Errorf("%w: sub_id needs a format and an id", token.ErrClaims)
	}
	switch s.Events.Type() {
	case EventSessionRevoked:
		if s.SessionID() == "" {
			return fmt.Errorf("%w: a session-revoked event needs its session in sub_id or txn", token.ErrClaims)
		}
		if s.Subject != nil && s.Txn != "" && s.Subject.ID != s.Txn {
			return fmt.Errorf("%w: sub_id and txn name different sessions", token.ErrClaims)
		}
		if s.Events.SessionRevoked.EventTimestamp <= 0 {
			return fmt.Errorf("%w: missing event_timestamp", token.ErrClaims)
		}
	case EventVerification:
		if s.Subject == nil {
			return fmt.Errorf("%w: a verification event needs its stream in sub_id", token.ErrClaims)
		}
	default:
		return fmt.Errorf("%w: not exactly one event", ErrEventType)
	}
	return nil
}

// VerifyOptions configures Verify.
type VerifyOptions struct {
	// Issuer must equal "iss". Required.
	Issuer string
	// Audience must be in "aud". Required.
	Audience string
	// Algorithms is the allow-list; empty means EdDSA and ES256.
	Algorithms []string
	// EventTypes are the event types accepted; empty means EventTypes
	// (session-revoked and verification).
	EventTypes []string
	// Now is the verification time; zero means time.Now().
	Now time.Time
	// Leeway is the clock skew tolerated for an "iat" in the future; zero
	// means token.DefaultLeeway, negative none. A SET has no expiry: it
	// tells of something that happened.
	Leeway time.Duration
}

// Verify checks a SET and returns its claims: the JWS exactly as
// token.VerifyJWS checks it, with "typ" secevent+jwt (token.ErrType
// otherwise) and the key from lookup; then the payload, decoded by the
// strict JSON rules (token.ErrMalformed), with every required claim
// (token.ErrClaims), the issuer (token.ErrIssuer), the audience
// (token.ErrAudience), an "iat" not in the future beyond the leeway
// (token.ErrNotYetValid), and exactly one event, of an accepted type
// (ErrEventType). Errors never quote the input. Verify is safe for
// concurrent use.
func Verify(raw string, lookup token.KeyLookup, opts VerifyOptions) (*SET, error) {
	if opts.Issuer == "" || opts.Audience == "" {
		return nil, fmt.Errorf("%w: an expected issuer and audience are required", token.ErrOptions)
	}
	payload, err := token.VerifyJWS(raw, lookup, Type, opts.Algorithms)
	if err != nil {
		return nil, err
	}
	set := new(SET)
	members, err := token.DecodeStrict(payload, set)
	if err != nil {
		return nil, err
	}
	// Every member of "events" must be an event this package knows: an
	// unknown one would otherwise be dropped by the typed reading.
	events, ok := members["events"].(map[string]any)
	if !ok || len(events) != 1 {
		return nil, fmt.Errorf("%w: not exactly one event", ErrEventType)
	}
	accepted := opts.EventTypes
	if len(accepted) == 0 {
		accepted = EventTypes
	}
	for name := range events {
		if !slices.Contains(EventTypes, name) || !slices.Contains(accepted, name) {
			return nil, fmt.Errorf("%w: an event type not accepted", ErrEventType)
		}
	}
	if err := checkClaims(set); err != nil {
		return nil, err
	}
	if set.Issuer != opts.Issuer {
		return nil, token.ErrIssuer
	}
	if !slices.Contains(set.Audience, opts.Audience) {
		return nil, token.ErrAudience
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	leeway := opts.Leeway
	switch {
	case leeway == 0:
		leeway = token.DefaultLeeway
	case leeway < 0:
		leeway = 0
	}
	if now.Unix()+int64(leeway/time.Second) < set.IssuedAt {
		return nil, fmt.Errorf("%w: iat in the future", token.ErrNotYetValid)
	}
	return set, nil
}
