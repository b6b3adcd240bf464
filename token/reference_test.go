package token

// This file keeps, for tests only, the verifier as it was before Verify
// stopped using go-jose's JWS parser: go-jose's ParseSignedCompact and
// JSONWebSignature.Verify behind the same shape, encoding and header checks.
// It is the oracle of FuzzVerifyMatchesGoJose and TestVerifyMatchesGoJose.

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// refAllowedAlgorithms is the old allowedAlgorithms.
func refAllowedAlgorithms(names []string) []jose.SignatureAlgorithm {
	supported := []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256}
	if len(names) == 0 {
		return supported
	}
	out := make([]jose.SignatureAlgorithm, 0, len(supported))
	for _, a := range supported {
		if slices.Contains(names, string(a)) {
			out = append(out, a)
		}
	}
	return out
}

// refSplit checks the outer shape of a compact JWS before go-jose sees it and
// returns the positions of its two dots. Only the base64url alphabet and
// exactly two dots are allowed, which also rules out the JSON
// serialisation and whitespace (which go-jose's lenient decoder would
// skip).
func refSplit(raw string) (dot1, dot2 int, err error) {
	if len(raw) > MaxTokenSize {
		return 0, 0, ErrTooLarge
	}
	if raw == "" {
		return 0, 0, fmt.Errorf("%w: empty", ErrMalformed)
	}
	dot1, dot2 = -1, -1
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		case c == '.':
			switch {
			case dot1 < 0:
				dot1 = i
			case dot2 < 0:
				dot2 = i
			default:
				return 0, 0, fmt.Errorf("%w: not a compact JWS (too many parts)", ErrMalformed)
			}
		default:
			return 0, 0, fmt.Errorf("%w: not a compact JWS (invalid character)", ErrMalformed)
		}
	}
	if dot2 < 0 {
		return 0, 0, fmt.Errorf("%w: not a compact JWS (too few parts)", ErrMalformed)
	}
	return dot1, dot2, nil
}

// refCanonical reports whether seg, which split has confirmed holds only
// base64url characters, is the canonical unpadded encoding of its bytes.
// go-jose decodes leniently and verifies a re-encoding of what it decoded,
// so without this check one signed token would have several accepted
// spellings. Only the final, partial quantum can be non-canonical (or
// impossible, with one character left over), so only it is decoded.
func refCanonical(seg string) bool {
	tail := seg[len(seg)&^3:]
	if tail == "" {
		return true
	}
	var buf [3]byte
	_, err := b64.Decode(buf[:], []byte(tail))
	return err == nil
}

// refParseCompact parses raw as a compact JWS with go-jose, accepting only the
// algorithms in algs, and returns it with its protected header. It enforces
// the size limit and strict encoding first, and maps every go-jose error to
// a sentinel without quoting it (go-jose messages can contain header
// content).
func refParseCompact(raw string, algs []jose.SignatureAlgorithm) (*jose.JSONWebSignature, *jose.Header, error) {
	dot1, dot2, err := refSplit(raw)
	if err != nil {
		return nil, nil, err
	}
	if dot1 == 0 {
		return nil, nil, fmt.Errorf("%w: empty header", ErrMalformed)
	}
	if !refCanonical(raw[:dot1]) {
		return nil, nil, fmt.Errorf("%w: header is not canonical base64url", ErrMalformed)
	}
	if !refCanonical(raw[dot1+1 : dot2]) {
		return nil, nil, fmt.Errorf("%w: payload is not canonical base64url", ErrMalformed)
	}
	if !refCanonical(raw[dot2+1:]) {
		return nil, nil, fmt.Errorf("%w: signature is not canonical base64url", ErrMalformed)
	}
	if len(algs) == 0 {
		return nil, nil, fmt.Errorf("%w: no supported algorithm allowed", ErrAlgorithm)
	}
	jws, err := jose.ParseSignedCompact(raw, algs)
	if err != nil {
		if _, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return nil, nil, fmt.Errorf("%w: header alg not in allow-list", ErrAlgorithm)
		}
		return nil, nil, fmt.Errorf("%w: header is not a valid JWS header", ErrMalformed)
	}
	if len(jws.Signatures) != 1 {
		return nil, nil, fmt.Errorf("%w: not exactly one signature", ErrMalformed)
	}
	return jws, &jws.Signatures[0].Protected, nil
}

// refVerify is the old Verify.
func refVerify(raw string, lookup KeyLookup, opts VerifyOptions) (*Claims, error) {
	jws, h, err := refParseCompact(raw, refAllowedAlgorithms(opts.Algorithms))
	if err != nil {
		return nil, err
	}
	// RFC 7515 allows no other critical extension here; "b64" (RFC 7797)
	// would change what is signed, so it is refused even outside "crit".
	if _, ok := h.ExtraHeaders["crit"]; ok {
		return nil, fmt.Errorf("%w: crit header not supported", ErrMalformed)
	}
	if _, ok := h.ExtraHeaders["b64"]; ok {
		return nil, fmt.Errorf("%w: b64 header not supported", ErrMalformed)
	}
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != Type {
		return nil, fmt.Errorf("%w: typ must be %q", ErrType, Type)
	}
	if h.KeyID == "" {
		return nil, fmt.Errorf("%w: missing kid", ErrMalformed)
	}
	if lookup == nil {
		return nil, fmt.Errorf("%w: no key lookup", ErrUnknownKey)
	}
	pk, ok := lookup(h.KeyID)
	if !ok {
		return nil, ErrUnknownKey
	}
	if pk.Algorithm != h.Algorithm {
		return nil, fmt.Errorf("%w: header alg does not match key", ErrAlgorithm)
	}
	if !keyFitsAlgorithm(pk.Algorithm, pk.Key) {
		return nil, fmt.Errorf("%w: key does not fit its algorithm", ErrAlgorithm)
	}
	payload, err := jws.Verify(pk.Key)
	if err != nil {
		return nil, ErrSignature
	}
	c := new(Claims)
	if err := json.Unmarshal(payload, c); err != nil {
		return nil, fmt.Errorf("%w: payload is not a valid claims object", ErrMalformed)
	}
	if err := checkRequired(c); err != nil {
		return nil, err
	}
	if opts.Issuer != "" && c.Issuer != opts.Issuer {
		return nil, ErrIssuer
	}
	if opts.Audience != "" && c.Audience != opts.Audience {
		return nil, ErrAudience
	}
	if opts.IgnoreValidity {
		return c, nil
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
		return nil, ErrExpired
	}
	if n+l < c.NotBefore {
		return nil, fmt.Errorf("%w: nbf in the future", ErrNotYetValid)
	}
	if n+l < c.IssuedAt {
		return nil, fmt.Errorf("%w: iat in the future", ErrNotYetValid)
	}
	return c, nil
}
