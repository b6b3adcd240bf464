package token

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"math/big"
	"strings"

	jjson "github.com/go-jose/go-jose/v4/json"
)

// Why verification does not go through go-jose's JWS parser
//
// go-jose mints the credentials and handles JWKs, but [Verify] and
// [PeekKeyID] parse the compact JWS themselves and check the signature with
// crypto/ed25519 or crypto/ecdsa directly. go-jose's parser is general: it
// reads the JSON serialisations as well as the compact one, several
// signatures, unprotected headers, embedded keys and certificate chains,
// and it rebuilds the signing input by re-encoding what it decoded. A step
// credential has one fixed shape, and going through all that added about
// 45% to the cost of the signature check itself. The parser below accepts
// strictly less than go-jose did (a test-only copy of the previous go-jose
// based verifier is kept as an oracle: see reference_test.go and
// FuzzVerifyMatchesGoJose):
//
//   - exactly two dots and no CR or LF (the only bytes that the base64
//     decoder would skip); then each of the three segments is decoded with
//     the strict unpadded base64url decoder, which refuses every other byte
//     outside the base64url alphabet (whitespace, padding, the JSON
//     serialisations...) and non-zero trailing bits: a token has exactly one
//     spelling;
//   - the protected header is decoded with go-jose's own JSON package, as
//     go-jose does: member names are case-sensitive, a duplicate member is
//     an error, and nothing but whitespace may follow the object. "alg",
//     "kid" and "typ" must be strings (null counts as absent). "crit" and
//     "b64" (they change what is signed or how it must be processed) and
//     "jwk", "jku", "x5u", "x5c", "x5t" and "x5t#S256" (keys or references
//     to keys) are refused whatever their value; other members are ignored,
//     as RFC 7515 requires of members not listed in "crit". The one header
//     Mint writes is recognised byte for byte without a decoder
//     (mintedHeader), a shortcut that yields exactly what the decoder would;
//   - the key comes only from the caller's KeyLookup for "kid", the header
//     "alg" must equal the algorithm bound to that key, and the signature is
//     checked with that algorithm (never one taken from the token) over the
//     exact bytes received before the second dot;
//   - the payload is decoded only after the signature has verified, with
//     encoding/json as before, or, for claims exactly as Mint writes them,
//     with a shortcut that yields what encoding/json would (mintedClaims,
//     in claims_fast.go).

// compactJWS is a compact JWS split and decoded by parseCompact. Nothing in
// it has been verified.
type compactJWS struct {
	header *joseHeader
	// signingInput is the received "header.payload", byte for byte.
	signingInput string
	payload      []byte
	signature    []byte
}

// joseHeader is the protected header of a compact JWS. It is decoded with
// go-jose's JSON package (case-sensitive names, duplicates rejected).
type joseHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`

	// Members refused whatever their value, null included.
	Crit    present `json:"crit"`
	B64     present `json:"b64"`
	JWK     present `json:"jwk"`
	JKU     present `json:"jku"`
	X5U     present `json:"x5u"`
	X5C     present `json:"x5c"`
	X5T     present `json:"x5t"`
	X5TS256 present `json:"x5t#S256"`
}

// present records that a member occurs, whatever its value (null too).
type present bool

// UnmarshalJSON implements json.Unmarshaler.
func (p *present) UnmarshalJSON([]byte) error {
	*p = true
	return nil
}

// refused names the first header member that this package never accepts,
// or returns "".
func (h *joseHeader) refused() string {
	switch {
	case bool(h.Crit):
		return "crit"
	case bool(h.B64):
		return "b64"
	case bool(h.JWK):
		return "jwk"
	case bool(h.JKU):
		return "jku"
	case bool(h.X5U):
		return "x5u"
	case bool(h.X5C):
		return "x5c"
	case bool(h.X5T):
		return "x5t"
	case bool(h.X5TS256):
		return "x5t#S256"
	}
	return ""
}

// base64URLAlphabet[c] is true for the 64 characters of unpadded base64url
// (RFC 4648 §5): A-Z, a-z, 0-9, '-' and '_'.
var base64URLAlphabet = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") {
		t[c] = true
	}
	return t
}()

// split checks the outer shape of a compact JWS and returns the positions
// of its two dots: exactly two, and no CR or LF anywhere. Every other byte
// outside the base64url alphabet (padding, whitespace, '+', '/', braces
// and quotes of the JSON serialisation, non-ASCII...) makes the strict
// decoder fail on the segment that holds it, while CR and LF are the only
// bytes that the decoder would silently skip.
func split(raw string) (dot1, dot2 int, err error) {
	if len(raw) > MaxTokenSize {
		return 0, 0, ErrTooLarge
	}
	if raw == "" {
		return 0, 0, fmt.Errorf("%w: empty", ErrMalformed)
	}
	if strings.IndexByte(raw, '\r') >= 0 || strings.IndexByte(raw, '\n') >= 0 {
		return 0, 0, fmt.Errorf("%w: not a compact JWS (invalid character)", ErrMalformed)
	}
	switch strings.Count(raw, ".") {
	case 0, 1:
		return 0, 0, fmt.Errorf("%w: not a compact JWS (too few parts)", ErrMalformed)
	case 2:
		dot1 = strings.IndexByte(raw, '.')
		dot2 = strings.LastIndexByte(raw, '.')
		return dot1, dot2, nil
	default:
		return 0, 0, fmt.Errorf("%w: not a compact JWS (too many parts)", ErrMalformed)
	}
}

// parseCompact splits raw into its three segments, decodes each with the
// strict base64url decoder, and decodes the protected header. It checks
// the shape only: not the algorithm, the key or the signature. Errors are
// sentinels and never quote the input.
func parseCompact(raw string) (compactJWS, error) {
	dot1, dot2, err := split(raw)
	if err != nil {
		return compactJWS{}, err
	}
	if dot1 == 0 {
		return compactJWS{}, fmt.Errorf("%w: empty header", ErrMalformed)
	}
	hb, err := b64.DecodeString(raw[:dot1])
	if err != nil {
		return compactJWS{}, fmt.Errorf("%w: header is not canonical base64url", ErrMalformed)
	}
	payload, err := b64.DecodeString(raw[dot1+1 : dot2])
	if err != nil {
		return compactJWS{}, fmt.Errorf("%w: payload is not canonical base64url", ErrMalformed)
	}
	sig, err := b64.DecodeString(raw[dot2+1:])
	if err != nil {
		return compactJWS{}, fmt.Errorf("%w: signature is not canonical base64url", ErrMalformed)
	}
	h, ok := mintedHeader(hb)
	if !ok {
		if h, err = decodeHeader(hb); err != nil {
			return compactJWS{}, err
		}
	}
	return compactJWS{header: h, signingInput: raw[:dot2], payload: payload, signature: sig}, nil
}

// decodeHeader decodes any protected header with go-jose's JSON package.
func decodeHeader(hb []byte) (*joseHeader, error) {
	var h *joseHeader
	if err := jjson.Unmarshal(hb, &h); err != nil || h == nil { // h stays nil for "null"
		return nil, fmt.Errorf("%w: header is not a valid JWS header", ErrMalformed)
	}
	return h, nil
}

// The header Mint writes (go-jose orders the members by name and adds no
// whitespace), around the key ID.
const (
	mintedPrefixEdDSA = `{"alg":"` + AlgEdDSA + `","kid":"`
	mintedPrefixES256 = `{"alg":"` + AlgES256 + `","kid":"`
	mintedSuffix      = `","typ":"` + Type + `"}`
)

// mintedHeader recognises, without a JSON decoder, the header Mint writes
// when the key ID is made of base64url characters (as thumbprints are):
// exactly {"alg":"EdDSA" or "ES256","kid":"<base64url>","typ":"txntoken+jwt"},
// byte for byte. Such a header has three distinct members and no quote,
// backslash or escape inside its values, so decodeHeader would read the
// same (FuzzMintedHeader checks it). Anything else returns false and goes
// to decodeHeader. It is only a shortcut: its result is checked exactly
// like decodeHeader's.
func mintedHeader(hb []byte) (*joseHeader, bool) {
	var alg string
	var rest []byte
	switch {
	case bytes.HasPrefix(hb, []byte(mintedPrefixEdDSA)):
		alg, rest = AlgEdDSA, hb[len(mintedPrefixEdDSA):]
	case bytes.HasPrefix(hb, []byte(mintedPrefixES256)):
		alg, rest = AlgES256, hb[len(mintedPrefixES256):]
	default:
		return nil, false
	}
	kid, ok := bytes.CutSuffix(rest, []byte(mintedSuffix))
	if !ok || len(kid) == 0 {
		return nil, false
	}
	for _, c := range kid {
		if !base64URLAlphabet[c] {
			return nil, false
		}
	}
	return &joseHeader{Alg: alg, Kid: string(kid), Typ: Type}, true
}

// validSignature reports whether sig is a valid alg signature by pub over
// input. alg is the algorithm bound to pub, never one read from a token.
// ES256 signatures are R || S, 32 big-endian bytes each (RFC 7518 §3.4).
func validSignature(alg string, pub crypto.PublicKey, input string, sig []byte) bool {
	switch alg {
	case AlgEdDSA:
		p, ok := pub.(ed25519.PublicKey)
		return ok && len(p) == ed25519.PublicKeySize && len(sig) == ed25519.SignatureSize &&
			ed25519.Verify(p, []byte(input), sig)
	case AlgES256:
		p, ok := pub.(*ecdsa.PublicKey)
		if !ok || p == nil || len(sig) != 64 {
			return false
		}
		digest := sha256.Sum256([]byte(input))
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(p, digest[:], r, s)
	}
	return false
}
