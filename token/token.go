// Package token mints and verifies step credentials: short-lived,
// signed JSON Web Tokens in one of two formats ([Format]): shaped after the
// IETF OAuth Transaction Tokens draft and RFC 8693 token exchange
// ([FormatTxnToken], "typ" [Type]), or as RFC 9068 JWT access tokens for
// OAuth resource servers such as MCP servers ([FormatAccessToken], "typ"
// [TypeAccessToken]). Both carry the same claims and follow the same rules;
// an access token also carries "client_id" and requires "sub" and "aud".
//
// A credential is a JWS in compact serialisation, signed with EdDSA
// (Ed25519, the default) or ES256 (ECDSA P-256). Its protected header has
// exactly three members: "alg", "kid" and "typ" (the format's). The
// payload is a [Claims] value.
//
// Tokens are signed, verified and decoded with go-jose
// (github.com/go-jose/go-jose/v4), which also handles the JSON Web Keys.
// Before go-jose sees a token, [Verify] runs strict pre-checks that only
// ever refuse (jws.go lists them): only three segments of canonical
// base64url, only the header members "alg", "kid" and "typ", only the
// algorithms in its allow-list, only when the header algorithm equals the
// algorithm bound to the key named by "kid" (the algorithm is never taken
// from the token alone, and the key never comes from the token), and only
// low-S ES256 signatures. The header, the claims and JWK Sets are all read
// by one set of strict JSON rules (strictjson.go): case-sensitive names, no
// duplicate member and no two members differing only in case. The claims
// are decoded only after the signature has been checked. Verify needs an
// expected issuer, and an expected audience unless the caller explicitly
// accepts any ([VerifyOptions.AnyAudience]). Failures are reported with
// sentinel errors (see [ErrMalformed] and the others) that work with
// errors.Is; error messages never contain the token or key material.
//
// Signing keys are handled by [Key] (private, for the issuer) and
// [PublicKey] (for verifiers), and are exchanged as JSON Web Keys
// (RFC 7517) and JWK Sets. Key IDs are RFC 7638 thumbprints.
//
// The package does not depend on Vault; resource servers can import it to
// verify credentials offline against the engine's JWKS.
package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Type is the "typ" header of a credential in [FormatTxnToken], the
// Transaction-Token shape.
const Type = "txntoken+jwt"

// TypeAccessToken is the "typ" header of a credential in
// [FormatAccessToken], an RFC 9068 JWT access token.
const TypeAccessToken = "at+jwt"

// Format is the shape of a step credential: which "typ" header it carries
// and which profile its claims follow. The zero value means
// FormatTxnToken.
type Format string

// The formats of a step credential.
const (
	// FormatTxnToken is the Transaction-Token shape ("typ" txntoken+jwt),
	// the default: for resource servers that verify with this engine's
	// rules.
	FormatTxnToken Format = "txn_token"
	// FormatAccessToken is an RFC 9068 JWT access token ("typ" at+jwt),
	// for OAuth 2.1 resource servers such as MCP servers. It also carries
	// "client_id" (RFC 9068 section 2.2), and "sub" and "aud" are required.
	FormatAccessToken Format = "access_token"
)

// Formats lists every format, the default first.
var Formats = []Format{FormatTxnToken, FormatAccessToken}

// ParseFormat returns the format named s ("txn_token" or
// "access_token"); the empty string means FormatTxnToken.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case "", FormatTxnToken:
		return FormatTxnToken, nil
	case FormatAccessToken:
		return FormatAccessToken, nil
	}
	return "", fmt.Errorf("token: unknown format (want %q or %q)", FormatTxnToken, FormatAccessToken)
}

// Type returns the "typ" header of credentials in format f: Type for
// FormatTxnToken (and the zero value), TypeAccessToken for
// FormatAccessToken, and "" for an unknown format.
func (f Format) Type() string {
	switch f {
	case "", FormatTxnToken:
		return Type
	case FormatAccessToken:
		return TypeAccessToken
	}
	return ""
}

// formatOfType returns the format whose "typ" header is typ.
func formatOfType(typ string) (Format, bool) {
	switch typ {
	case Type:
		return FormatTxnToken, true
	case TypeAccessToken:
		return FormatAccessToken, true
	}
	return "", false
}

// Supported JWS signature algorithms (RFC 7518, RFC 8037).
const (
	// AlgEdDSA is EdDSA over Ed25519, the default.
	AlgEdDSA = "EdDSA"
	// AlgES256 is ECDSA over P-256 with SHA-256.
	AlgES256 = "ES256"
)

// MaxTokenSize is the largest serialised credential, in bytes, that
// [Verify] and [PeekKeyID] will look at and that [Mint] will produce.
const MaxTokenSize = 16 << 10

// DefaultLeeway is the clock skew tolerated by [Verify] when
// [VerifyOptions.Leeway] is zero.
const DefaultLeeway = 30 * time.Second

// Sentinel errors returned (wrapped) by this package. Test for them with
// errors.Is.
var (
	// ErrMalformed: the input is not a well-formed compact JWS with a
	// decodable header and payload.
	ErrMalformed = errors.New("token: malformed")
	// ErrUnknownKey: no verification key is known for the header's "kid".
	// Resource servers may refetch the JWKS and retry once.
	ErrUnknownKey = errors.New("token: unknown signing key")
	// ErrAlgorithm: the algorithm is not allowed, not supported, or does not
	// match the key named by "kid".
	ErrAlgorithm = errors.New("token: algorithm not accepted")
	// ErrSignature: the signature does not verify.
	ErrSignature = errors.New("token: invalid signature")
	// ErrExpired: the credential is past its "exp" time.
	ErrExpired = errors.New("token: expired")
	// ErrNotYetValid: "nbf" or "iat" lies in the future.
	ErrNotYetValid = errors.New("token: not yet valid")
	// ErrIssuer: "iss" does not match the expected issuer.
	ErrIssuer = errors.New("token: issuer mismatch")
	// ErrAudience: "aud" does not match the expected audience.
	ErrAudience = errors.New("token: audience mismatch")
	// ErrType: the "typ" header is not the "typ" of a format accepted
	// (VerifyOptions.Formats).
	ErrType = errors.New("token: wrong type")
	// ErrTooLarge: the input exceeds [MaxTokenSize].
	ErrTooLarge = errors.New("token: too large")
	// ErrClaims: a required claim is missing or invalid.
	ErrClaims = errors.New("token: invalid claims")
	// ErrLifetime: the credential's lifetime (exp - iat, or exp - nbf when
	// nbf is set and earlier) exceeds [VerifyOptions.MaxLifetime].
	ErrLifetime = errors.New("token: lifetime too long")
	// ErrOptions: Verify was called without VerifyOptions.Issuer, or
	// without VerifyOptions.Audience and without AnyAudience, or with both
	// Audience and AnyAudience. It is the caller's mistake, not the
	// token's: Verify checks nothing then.
	ErrOptions = errors.New("token: invalid verify options")
)

// Claims is the payload of a step credential. Mint writes it with
// encoding/json; Verify reads it with go-jose's JSON package by the strict
// rules of strictjson.go (exact member names, no duplicates, no case
// variants).
type Claims struct {
	// Format is the credential's format. It is not a claim: Mint writes
	// the "typ" header from it (the zero value means FormatTxnToken), and
	// Verify sets it from the verified "typ" header.
	Format Format `json:"-"`
	// Issuer ("iss") identifies the engine that minted the credential.
	Issuer string `json:"iss"`
	// Subject ("sub") is the session creator's entity ID, or
	// "accessor:<token accessor>".
	Subject string `json:"sub"`
	// Audience ("aud") is the single audience requested; it is serialised
	// as a JSON string, never an array. It may be an absolute URI, such as
	// an MCP server's canonical URI. Required in FormatAccessToken.
	Audience string `json:"aud"`
	// ClientID ("client_id") is the OAuth client the credential was
	// issued to (RFC 9068 section 2.2): the engine sets it to the session's
	// creator, the same value as "sub", since an agent acts for itself.
	// Required in FormatAccessToken, omitted in FormatTxnToken.
	ClientID string `json:"client_id,omitempty"`
	// IssuedAt ("iat") is the issue time in Unix seconds. Required.
	IssuedAt int64 `json:"iat"`
	// NotBefore ("nbf") is the start of validity in Unix seconds.
	NotBefore int64 `json:"nbf"`
	// Expiry ("exp") is the end of validity in Unix seconds. Required.
	Expiry int64 `json:"exp"`
	// ID ("jti") is the credential ID. Required.
	ID string `json:"jti"`
	// Txn ("txn") is the session ID. Required.
	Txn string `json:"txn"`
	// Scope ("scope") holds the granted scopes, space-separated. Required.
	Scope string `json:"scope"`
	// Tctx ("tctx") is the transaction context.
	Tctx *TxnContext `json:"tctx,omitempty"`
	// Rctx ("rctx") is the request context; omitted when empty.
	Rctx *RequestContext `json:"rctx,omitempty"`
	// Parent ("par") is the parent credential's ID for derived credentials.
	Parent string `json:"par,omitempty"`
	// Depth ("dep") is 1 for a credential taken directly from the session
	// and one more than the parent's for a derived one. Required, >= 1.
	Depth int `json:"dep"`
	// Act ("act") is the RFC 8693 actor chain, newest actor outermost.
	Act *Actor `json:"act,omitempty"`
	// Cnf ("cnf") binds the credential to a key (RFC 7800).
	Cnf *Confirmation `json:"cnf,omitempty"`
}

// TxnContext is the "tctx" claim: why the session exists.
type TxnContext struct {
	// Role is the engine role the session was opened under.
	Role string `json:"role"`
	// Purpose is the caller-stated purpose of the session.
	Purpose string `json:"purpose,omitempty"`
}

// RequestContext is the "rctx" claim: what the step is for and where it
// came from.
type RequestContext struct {
	// Description ("description") says what the step is for, as the agent
	// put it.
	Description string `json:"description,omitempty"`
	// ReqIP is the requesting client's IP address.
	ReqIP string `json:"req_ip,omitempty"`
}

// Actor is one link of an RFC 8693 "act" chain. Subject is the current
// actor; Act, if set, is the actor before it.
type Actor struct {
	// Subject ("sub") names the actor.
	Subject string `json:"sub"`
	// Act ("act") is the previous actor, if any.
	Act *Actor `json:"act,omitempty"`
}

// Confirmation is the RFC 7800 "cnf" claim.
type Confirmation struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the bound key (RFC 9449).
	JKT string `json:"jkt"`
}

// Chain returns the actor subjects, newest first. It returns nil for a
// nil chain.
func (a *Actor) Chain() []string {
	var out []string
	for ; a != nil; a = a.Act {
		out = append(out, a.Subject)
	}
	return out
}

// PushActor returns a new chain with name as the newest actor and a copy
// of prev behind it. prev is not modified and shares no memory with the
// result.
func PushActor(prev *Actor, name string) *Actor {
	head := &Actor{Subject: name}
	tail := head
	for p := prev; p != nil; p = p.Act {
		tail.Act = &Actor{Subject: p.Subject}
		tail = tail.Act
	}
	return head
}

// checkRequired reports the first required claim that is missing or
// inconsistent, for c's format. Mint and Verify share it so the engine
// never mints a credential that verifiers reject.
func checkRequired(c *Claims) error {
	if c.Format == FormatAccessToken {
		// RFC 9068 section 2.2: iss, exp, aud, sub, client_id, iat and
		// jti are required in a JWT access token.
		switch {
		case c.Subject == "":
			return fmt.Errorf("%w: missing sub", ErrClaims)
		case c.Audience == "":
			return fmt.Errorf("%w: missing aud", ErrClaims)
		case c.ClientID == "":
			return fmt.Errorf("%w: missing client_id", ErrClaims)
		}
	}
	switch {
	case c.ID == "":
		return fmt.Errorf("%w: missing jti", ErrClaims)
	case c.Txn == "":
		return fmt.Errorf("%w: missing txn", ErrClaims)
	case c.Scope == "":
		return fmt.Errorf("%w: missing scope", ErrClaims)
	case c.IssuedAt <= 0:
		return fmt.Errorf("%w: missing iat", ErrClaims)
	case c.Expiry <= 0:
		return fmt.Errorf("%w: missing exp", ErrClaims)
	case c.Expiry <= c.IssuedAt:
		return fmt.Errorf("%w: exp not after iat", ErrClaims)
	case c.Depth < 1:
		return fmt.Errorf("%w: dep must be at least 1", ErrClaims)
	}
	return nil
}

// supportedAlgorithms are the only JWS algorithms this package signs or
// verifies with; it is also the allow-list Verify uses when
// VerifyOptions.Algorithms is empty.
var supportedAlgorithms = []string{AlgEdDSA, AlgES256}

// algorithmAllowed reports whether alg is a supported algorithm named in
// names, or any supported algorithm when names is empty. Names outside
// supportedAlgorithms never verify.
func algorithmAllowed(alg string, names []string) bool {
	return slices.Contains(supportedAlgorithms, alg) && (len(names) == 0 || slices.Contains(names, alg))
}

// b64 is the strict (canonical) unpadded base64url decoder: it refuses
// padding and non-zero trailing bits, so each byte string has one encoding.
// It skips CR and LF, which split and ValidThumbprint refuse beforehand.
var b64 = base64.RawURLEncoding.Strict()

// Mint signs c with k and returns the compact serialisation. The header is
// exactly {"alg":k.Algorithm,"kid":k.ID,"typ":c.Format.Type()}. An empty
// Rctx is omitted. Mint fails with ErrClaims for an unknown format, if a
// required claim (jti, txn, scope, iat, exp after iat, dep >= 1; and sub,
// aud and client_id in FormatAccessToken) is missing, if an actor has an empty
// subject, or if Cnf.JKT is not a SHA-256 thumbprint; with ErrAlgorithm if
// k's algorithm is unsupported or does not fit its key; and with
// ErrTooLarge if the result would exceed MaxTokenSize. c is not modified.
// Mint is safe for concurrent use.
func Mint(k *Key, c *Claims) (string, error) {
	if k == nil || k.priv == nil {
		return "", errors.New("token: mint: key has no private part")
	}
	if k.ID == "" {
		return "", errors.New("token: mint: key has no ID")
	}
	if !keyFitsAlgorithm(k.Algorithm, k.priv.Public()) {
		return "", fmt.Errorf("%w: key algorithm does not match key type", ErrAlgorithm)
	}
	if c == nil {
		return "", fmt.Errorf("%w: nil claims", ErrClaims)
	}
	typ := c.Format.Type()
	if typ == "" {
		return "", fmt.Errorf("%w: unknown format", ErrClaims)
	}
	if err := checkRequired(c); err != nil {
		return "", err
	}
	for a := c.Act; a != nil; a = a.Act {
		if a.Subject == "" {
			return "", fmt.Errorf("%w: actor with empty sub", ErrClaims)
		}
	}
	if c.Cnf != nil && !ValidThumbprint(c.Cnf.JKT) {
		return "", fmt.Errorf("%w: cnf.jkt is not a SHA-256 JWK thumbprint", ErrClaims)
	}
	cc := *c
	if cc.Rctx != nil && *cc.Rctx == (RequestContext{}) {
		cc.Rctx = nil
	}
	payload, err := json.Marshal(&cc)
	if err != nil {
		return "", fmt.Errorf("%w: cannot encode claims", ErrClaims)
	}
	return signCompact(k, typ, payload)
}

// SignJWS signs payload (the encoding of a JSON object) with k, as a
// compact JWS whose protected header is exactly {"alg": k.Algorithm,
// "kid": k.ID, "typ": typ}: the one signing path of this package, which
// Mint uses for step credentials and package ssf for Security Event Tokens
// ("secevent+jwt"). It fails with ErrAlgorithm if k's algorithm is
// unsupported or does not fit its key, with ErrMalformed for an empty typ,
// and with ErrTooLarge if the result would exceed MaxTokenSize. ES256
// signatures are written low-S, as VerifyJWS requires. SignJWS is safe for
// concurrent use.
func SignJWS(k *Key, typ string, payload []byte) (string, error) {
	if k == nil || k.priv == nil {
		return "", errors.New("token: sign: key has no private part")
	}
	if k.ID == "" {
		return "", errors.New("token: sign: key has no ID")
	}
	if !keyFitsAlgorithm(k.Algorithm, k.priv.Public()) {
		return "", fmt.Errorf("%w: key algorithm does not match key type", ErrAlgorithm)
	}
	if typ == "" {
		return "", fmt.Errorf("%w: empty typ", ErrMalformed)
	}
	return signCompact(k, typ, payload)
}

// signCompact signs payload with k (checked by the caller) under the
// header {"alg", "kid", "typ": typ}.
func signCompact(k *Key, typ string, payload []byte) (string, error) {
	// Cheap early refusal; the exact size is checked on the result.
	if base64.RawURLEncoding.EncodedLen(len(payload)) > MaxTokenSize {
		return "", fmt.Errorf("%w: claims too large", ErrTooLarge)
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.Algorithm), Key: k.priv},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader(jose.HeaderKey("kid"), k.ID),
	)
	if err != nil {
		return "", errors.New("token: mint: cannot create signer")
	}
	jws, err := signer.Sign(payload)
	if err != nil || len(jws.Signatures) != 1 {
		return "", errors.New("token: mint: signing failed")
	}
	if k.Algorithm == AlgES256 {
		// One spelling: of (R, S) and (R, N-S), Verify accepts only the
		// low-S signature.
		normalizeLowS(jws.Signatures[0].Signature)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		return "", errors.New("token: mint: cannot serialise token")
	}
	if len(raw) > MaxTokenSize {
		return "", fmt.Errorf("%w: claims too large", ErrTooLarge)
	}
	return raw, nil
}

// VerifyOptions configures Verify.
type VerifyOptions struct {
	// Issuer must equal the "iss" claim. It is required: Verify fails with
	// ErrOptions, checking nothing, when it is empty.
	Issuer string
	// Audience must equal the "aud" claim. It is required unless
	// AnyAudience is set (and must be empty then): Verify fails with
	// ErrOptions, checking nothing, otherwise.
	Audience string
	// AnyAudience: the caller accepts every audience, and Audience must be
	// empty. Only the engine that minted the token may set it, to verify
	// its own credentials whatever they are for (introspection, parent
	// tokens, reports); a resource server sets Audience instead.
	AnyAudience bool
	// Now is the verification time; the zero value means time.Now().
	Now time.Time
	// Leeway is the clock skew tolerated for "exp", "nbf" and "iat", in
	// whole seconds (fractions are truncated). Zero means DefaultLeeway
	// (30s); a negative value means no leeway at all.
	Leeway time.Duration
	// Algorithms is the allow-list of signature algorithms; empty means
	// {AlgEdDSA, AlgES256}. Names other than those two never verify.
	Algorithms []string
	// IgnoreValidity skips the "exp", "nbf" and "iat" checks: Verify then
	// only says who signed the token and what it claims. It is for
	// attributing a credential seen in use (a report of an expired
	// credential), never for accepting a request.
	IgnoreValidity bool
	// Formats are the credential formats accepted, by their "typ" header;
	// empty means FormatTxnToken only. A resource server that is an OAuth
	// resource server (an MCP server) sets {FormatAccessToken}; the engine
	// accepts both.
	Formats []Format
	// MaxLifetime, when positive, is the longest lifetime accepted, in
	// whole seconds (fractions are truncated): a credential whose exp - iat,
	// or exp - nbf when nbf is set (non-zero) and earlier than iat, is
	// longer fails with ErrLifetime, IgnoreValidity or not.
	MaxLifetime time.Duration
}

// KeyLookup returns the verification key with the given key ID. It must be
// safe for concurrent use if Verify is called concurrently.
type KeyLookup func(kid string) (PublicKey, bool)

// StaticKeys returns a KeyLookup over a fixed set of keys, indexed by ID.
func StaticKeys(keys ...PublicKey) KeyLookup {
	m := make(map[string]PublicKey, len(keys))
	for _, k := range keys {
		m[k.ID] = k
	}
	return func(kid string) (PublicKey, bool) {
		k, ok := m[kid]
		return k, ok
	}
}

// PeekKeyID returns the "kid" header of raw without verifying anything
// else. Use it only to pick or prefetch keys, never to trust the token.
// It parses exactly as Verify does, so it fails (with ErrAlgorithm) for a
// header algorithm this package never verifies.
func PeekKeyID(raw string) (string, error) {
	jws, err := parseCompact(raw)
	if err != nil {
		return "", err
	}
	if !algorithmAllowed(jws.header.Alg, nil) {
		return "", fmt.Errorf("%w: header alg not supported", ErrAlgorithm)
	}
	if jws.header.Kid == "" {
		return "", fmt.Errorf("%w: missing kid", ErrMalformed)
	}
	return jws.header.Kid, nil
}

// Verify checks raw and returns its claims. In order, it rejects: options
// without Issuer, or without exactly one of Audience and AnyAudience, or
// with an unknown format in Formats
// (ErrOptions, before raw is looked at); inputs over MaxTokenSize
// (ErrTooLarge); anything but a three-part compact JWS in canonical
// base64url (ErrMalformed); a header that is not a JSON object, has a
// duplicate member, two members differing only in case, a case variant of
// "alg", "kid" or "typ", or a non-string "alg", "kid" or "typ"
// (ErrMalformed); a header algorithm outside the allow-list
// (ErrAlgorithm); a header member other than "alg", "kid" and "typ", such
// as "crit", "b64", "jwk", "jku", "x5u", "x5c", "x5t" or "x5t#S256"
// (ErrMalformed); a "typ" that is not the type of a format in
// opts.Formats (ErrType); a missing "kid"
// (ErrMalformed); a "kid" that lookup does not know (ErrUnknownKey); a
// header algorithm different from the key's, or a key whose Go type does
// not fit its algorithm (ErrAlgorithm); a high-S or mis-sized ES256
// signature, or a signature that go-jose does not verify with the key
// (ErrSignature); a payload that is not a claims object by the strict JSON
// rules (ErrMalformed); missing required claims (ErrClaims); a wrong
// issuer or audience (ErrIssuer, ErrAudience); a lifetime over
// MaxLifetime (ErrLifetime); and expiry, "nbf" or "iat" outside the
// leeway (ErrExpired, ErrNotYetValid). Every call checks the signature:
// nothing is cached ([VerifyCache] remembers verified signatures). Verify
// is safe for concurrent use.
func Verify(raw string, lookup KeyLookup, opts VerifyOptions) (*Claims, error) {
	c, _, _, err := verify(raw, lookup, opts)
	return c, err
}

// verify is Verify; it also returns the "kid" header and the key lookup
// gave for it, which checked the signature (set only with the claims).
func verify(raw string, lookup KeyLookup, opts VerifyOptions) (*Claims, string, PublicKey, error) {
	if err := opts.check(); err != nil {
		return nil, "", PublicKey{}, err
	}
	payload, h, pk, err := verifyCompact(raw, lookup, opts.types(), opts.Algorithms)
	if err != nil {
		return nil, "", PublicKey{}, err
	}
	// Only now, with the signature checked, is the payload looked at.
	c, err := decodeClaims(payload)
	if err != nil {
		return nil, "", PublicKey{}, err
	}
	c.Format, _ = formatOfType(h.Typ)
	if err := opts.validate(c); err != nil {
		return nil, "", PublicKey{}, err
	}
	return c, h.Kid, pk, nil
}

// VerifyJWS checks raw as Verify checks a step credential, up to and
// including its signature, for a token whose "typ" header must be typ
// (ErrType otherwise), and returns the verified payload, not yet decoded:
// size, shape and canonical encoding, the strict header with only "alg",
// "kid" and "typ", the algorithm allow-list (algorithms; empty means
// EdDSA and ES256), the key from lookup by "kid" and its bound algorithm,
// low-S ES256 signatures, and the signature checked by go-jose. Package ssf
// verifies Security Event Tokens with it, then decodes the payload with
// DecodeStrict. VerifyJWS is safe for concurrent use.
func VerifyJWS(raw string, lookup KeyLookup, typ string, algorithms []string) ([]byte, error) {
	if typ == "" {
		return nil, fmt.Errorf("%w: an expected typ is required", ErrOptions)
	}
	payload, _, _, err := verifyCompact(raw, lookup, []string{typ}, algorithms)
	return payload, err
}

// DecodeStrict decodes b, a verified payload holding one JSON object, into
// v (a pointer to a struct) by this package's strict JSON rules
// (strictjson.go: go-jose's JSON package, exact member names, no duplicate
// member and no two members differing only in case, at any depth), and
// returns the object's members as read untyped (numbers as
// json.Number-like strings of go-jose's JSON package). It fails with
// ErrMalformed, never quoting the input.
func DecodeStrict(b []byte, v any) (map[string]any, error) {
	members, err := strictDecode(b, v)
	if err != nil {
		return nil, fmt.Errorf("%w: payload is not a JSON object read by the strict rules", ErrMalformed)
	}
	return members, nil
}

// verifyCompact is VerifyJWS for a "typ" among types, without the check
// of its arguments; it also returns the header verified and the key that
// checked the signature.
func verifyCompact(raw string, lookup KeyLookup, types []string, algorithms []string) ([]byte, *joseHeader, PublicKey, error) {
	jws, err := parseCompact(raw)
	if err != nil {
		return nil, nil, PublicKey{}, err
	}
	h := &jws.header
	if !algorithmAllowed(h.Alg, algorithms) {
		return nil, nil, PublicKey{}, fmt.Errorf("%w: header alg not in allow-list", ErrAlgorithm)
	}
	// Only "alg", "kid" and "typ": RFC 7515 allows no critical extension
	// here, "b64" (RFC 7797) would change what is signed, and the key
	// never comes from the token.
	if err := h.check(); err != nil {
		return nil, nil, PublicKey{}, err
	}
	if !slices.Contains(types, h.Typ) {
		return nil, nil, PublicKey{}, fmt.Errorf("%w: typ must be %s", ErrType, quoteList(types))
	}
	if h.Kid == "" {
		return nil, nil, PublicKey{}, fmt.Errorf("%w: missing kid", ErrMalformed)
	}
	if lookup == nil {
		return nil, nil, PublicKey{}, fmt.Errorf("%w: no key lookup", ErrUnknownKey)
	}
	pk, ok := lookup(h.Kid)
	if !ok {
		return nil, nil, PublicKey{}, ErrUnknownKey
	}
	if pk.Algorithm != h.Alg {
		return nil, nil, PublicKey{}, fmt.Errorf("%w: header alg does not match key", ErrAlgorithm)
	}
	if !keyFitsAlgorithm(pk.Algorithm, pk.Key) {
		return nil, nil, PublicKey{}, fmt.Errorf("%w: key does not fit its algorithm", ErrAlgorithm)
	}
	if pk.Algorithm == AlgES256 && !lowS(jws.signature) {
		return nil, nil, PublicKey{}, fmt.Errorf("%w: ES256 signature is not 64 bytes with a low S", ErrSignature)
	}
	// go-jose checks the signature, with the key's algorithm only (equal
	// to the header's, checked above).
	payload, err := verifySigned(raw, h, pk.Key)
	if err != nil {
		return nil, nil, PublicKey{}, err
	}
	return payload, h, pk, nil
}

// quoteList writes {"a"} as "a" and {"a","b"} as "a" or "b".
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, " or ")
}

// Type lists for the common VerifyOptions.Formats, so that Verify does
// not allocate one per call.
var (
	txnTokenTypes    = []string{Type}
	accessTokenTypes = []string{TypeAccessToken}
	allTypes         = []string{Type, TypeAccessToken}
)

// types returns the "typ" headers of the formats opts accepts (check has
// refused unknown formats).
func (opts *VerifyOptions) types() []string {
	switch {
	case len(opts.Formats) == 0 || (len(opts.Formats) == 1 && opts.Formats[0] == FormatTxnToken):
		return txnTokenTypes
	case len(opts.Formats) == 1 && opts.Formats[0] == FormatAccessToken:
		return accessTokenTypes
	}
	types := make([]string, 0, len(opts.Formats))
	for _, f := range opts.Formats {
		if !slices.Contains(types, f.Type()) {
			types = append(types, f.Type())
		}
	}
	if len(types) == 2 {
		return allTypes
	}
	return types
}

// check refuses options that lack an expected issuer, or an expected
// audience without AnyAudience, that set both Audience and AnyAudience, or
// that name an unknown format.
func (opts *VerifyOptions) check() error {
	switch {
	case opts.Issuer == "":
		return fmt.Errorf("%w: an expected issuer is required", ErrOptions)
	case opts.Audience == "" && !opts.AnyAudience:
		return fmt.Errorf("%w: an expected audience (or AnyAudience) is required", ErrOptions)
	case opts.Audience != "" && opts.AnyAudience:
		return fmt.Errorf("%w: Audience and AnyAudience are exclusive", ErrOptions)
	}
	for _, f := range opts.Formats {
		if f == "" || f.Type() == "" {
			return fmt.Errorf("%w: unknown format in Formats", ErrOptions)
		}
	}
	return nil
}

// validate checks verified claims against opts (already checked): the
// required claims, the issuer, the audience, the lifetime, and, unless
// IgnoreValidity, the validity window.
func (opts *VerifyOptions) validate(c *Claims) error {
	if err := checkRequired(c); err != nil {
		return err
	}
	if c.Issuer != opts.Issuer {
		return ErrIssuer
	}
	if !opts.AnyAudience && c.Audience != opts.Audience {
		return ErrAudience
	}
	if opts.MaxLifetime > 0 && lifetimeOver(c, int64(opts.MaxLifetime/time.Second)) {
		return ErrLifetime
	}
	if opts.IgnoreValidity {
		return nil
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	leeway := opts.Leeway
	switch {
	case leeway == 0:
		leeway = DefaultLeeway
	case leeway < 0:
		leeway = 0
	}
	// Whole seconds: with integer claims, t >= exp iff floor(t) >= exp, and
	// t < nbf iff floor(t) < nbf. Subtracting or adding a small leeway to a
	// current time cannot overflow, whatever the claims hold.
	n, l := now.Unix(), int64(leeway/time.Second)
	if n-l >= c.Expiry {
		return ErrExpired
	}
	if n+l < c.NotBefore {
		return fmt.Errorf("%w: nbf in the future", ErrNotYetValid)
	}
	if n+l < c.IssuedAt {
		return fmt.Errorf("%w: iat in the future", ErrNotYetValid)
	}
	return nil
}

// lifetimeOver reports whether c's lifetime exceeds maxSecs (>= 0)
// seconds: exp - iat, or exp - nbf when nbf is set (non-zero) and earlier
// than iat. checkRequired has made sure that exp > iat > 0.
func lifetimeOver(c *Claims, maxSecs int64) bool {
	start := c.IssuedAt
	if c.NotBefore != 0 && c.NotBefore < start {
		start = c.NotBefore
	}
	// exp - start > maxSecs, without overflow: exp > 0 and maxSecs >= 0,
	// so exp - maxSecs cannot overflow, while exp - start could.
	return start < c.Expiry-maxSecs
}

// keyFitsAlgorithm reports whether pub is a usable public key for alg: a
// 32-byte ed25519.PublicKey for EdDSA, a complete P-256 *ecdsa.PublicKey
// for ES256. Verify uses it to report a misfit as ErrAlgorithm rather than
// as a bad signature, and Mint to refuse a key that cannot sign for its
// algorithm.
func keyFitsAlgorithm(alg string, pub crypto.PublicKey) bool {
	switch alg {
	case AlgEdDSA:
		p, ok := pub.(ed25519.PublicKey)
		return ok && len(p) == ed25519.PublicKeySize
	case AlgES256:
		p, ok := pub.(*ecdsa.PublicKey)
		if !ok || p == nil || p.Curve != elliptic.P256() {
			return false
		}
		_, err := p.Bytes() // fails for an incomplete or off-curve key
		return err == nil
	}
	return false
}

// ValidThumbprint reports whether s looks like an RFC 7638 SHA-256 JWK
// thumbprint: 43 characters of canonical unpadded base64url (32 bytes).
func ValidThumbprint(s string) bool {
	if len(s) != 43 || strings.ContainsAny(s, "\r\n") {
		return false
	}
	b, err := b64.DecodeString(s)
	return err == nil && len(b) == sha256.Size
}
