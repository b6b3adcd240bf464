package token

import (
	"bytes"
	"crypto/elliptic"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// How verification goes through go-jose
//
// [Verify] checks the signature and reads the claims with go-jose
// (github.com/go-jose/go-jose/v4): jose.ParseSignedCompact, allowed only
// the algorithm bound to the key that "kid" names, then
// JSONWebSignature.Verify with that key, then the verified payload decoded
// with go-jose's JSON package. Before go-jose sees a token, pre-checks
// refuse what go-jose would accept but a step credential never is; they
// only ever refuse, never accept, so whatever Verify accepts, go-jose alone
// accepts with the same claims (a test-only oracle, plain jwt.ParseSigned
// and Claims, checks it: see reference_test.go and
// FuzzVerifyMatchesGoJose):
//
//   - at most MaxTokenSize bytes, exactly two dots, and no CR or LF (the
//     only bytes that the base64 decoder would skip);
//   - each of the three segments in canonical unpadded base64url: no
//     padding, no byte outside the base64url alphabet, no non-zero
//     trailing bits, so a token has exactly one spelling (go-jose decodes
//     leniently and verifies a re-encoding of what it decoded);
//   - the protected header read by the strict rules of strictDecode
//     (strictjson.go), the same rules as the claims: one JSON object, no
//     duplicate member, no two members differing only in case, no case
//     variant of "alg", "kid" or "typ"; those three must be strings (null
//     counts as absent) and are the only members allowed. "crit" and
//     "b64" (they change what is signed or how it must be processed) and
//     "jwk", "jku", "x5u", "x5c", "x5t" and "x5t#S256" (keys or references
//     to keys) are named in the error; every other member is refused too;
//   - the key comes only from the caller's KeyLookup for "kid", and the
//     header "alg" must equal the algorithm bound to that key: the
//     algorithm is never taken from the token alone;
//   - an ES256 signature must be 64 bytes with S at most N/2 (low S):
//     (R, S) and (R, N-S) are both valid ECDSA signatures of the same
//     message, and only the low one is accepted, so that an ES256 token
//     has one spelling too ([Mint] writes only low-S signatures).
//
// Once go-jose has parsed the token, and before it checks the signature,
// its view of the header ("alg", "kid", "typ") must equal the pre-check's.
// The payload is decoded only once the signature has verified, by the same
// strict rules as the header.

// compactJWS is a compact JWS split and pre-checked by parseCompact.
// Nothing in it has been verified.
type compactJWS struct {
	header    joseHeader
	signature []byte
}

// joseHeader is the protected header of a compact JWS, as strictDecode
// reads it.
type joseHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`

	// extra names the first member other than "alg", "kid" and "typ", or
	// is "".
	extra string
}

// refusedHeaders are the header members that are named in the error that
// refuses them: they would change what is signed, or bring a key.
var refusedHeaders = []string{"crit", "b64", "jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256"}

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

// canonical reports whether seg is the canonical unpadded base64url
// encoding of some bytes: only base64url characters, a possible length,
// and zero trailing bits.
func canonical(seg string) bool {
	for i := 0; i < len(seg); i++ {
		if !base64URLAlphabet[seg[i]] {
			return false
		}
	}
	// Only the final, partial quantum can be impossible (one character
	// left over) or non-canonical (non-zero unused bits).
	tail := seg[len(seg)&^3:]
	if tail == "" {
		return true
	}
	var buf [3]byte
	_, err := b64.Decode(buf[:], []byte(tail))
	return err == nil
}

// base64URLAlphabet[c] is true for the 64 characters of unpadded base64url
// (RFC 4648 §5): A-Z, a-z, 0-9, '-' and '_'.
var base64URLAlphabet = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") {
		t[c] = true
	}
	return t
}()

// parseCompact pre-checks raw: its shape, the encoding of its three
// segments, and its protected header, read by the strict rules. It checks
// neither the algorithm, nor the key, nor the signature. Errors are
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
	if !canonical(raw[dot1+1 : dot2]) {
		return compactJWS{}, fmt.Errorf("%w: payload is not canonical base64url", ErrMalformed)
	}
	sig, err := b64.DecodeString(raw[dot2+1:])
	if err != nil {
		return compactJWS{}, fmt.Errorf("%w: signature is not canonical base64url", ErrMalformed)
	}
	h, err := decodeHeader(hb)
	if err != nil {
		return compactJWS{}, err
	}
	return compactJWS{header: h, signature: sig}, nil
}

// decodeHeader reads a protected header by the strict rules, and records
// the first member other than "alg", "kid" and "typ" (a refused one first).
func decodeHeader(hb []byte) (joseHeader, error) {
	var h joseHeader
	members, err := strictDecode(hb, &h)
	if err != nil {
		return joseHeader{}, fmt.Errorf("%w: header is not a valid JWS header", ErrMalformed)
	}
	for _, name := range refusedHeaders {
		if _, ok := members[name]; ok {
			h.extra = name
			return h, nil
		}
	}
	for name := range members {
		if name != "alg" && name != "kid" && name != "typ" {
			h.extra = name
			break
		}
	}
	return h, nil
}

// check refuses a header with a member other than "alg", "kid" and "typ",
// naming it only when it is one of refusedHeaders (never quoting input).
func (h *joseHeader) check() error {
	switch {
	case h.extra == "":
		return nil
	case slices.Contains(refusedHeaders, h.extra):
		return fmt.Errorf("%w: %s header not supported", ErrMalformed, h.extra)
	default:
		return fmt.Errorf("%w: header member not allowed (only alg, kid and typ are)", ErrMalformed)
	}
}

// p256HalfOrder is N/2 (rounded down) for P-256, as 32 big-endian bytes:
// the largest S of a low-S ES256 signature.
var p256HalfOrder = func() []byte {
	half := new(big.Int).Rsh(elliptic.P256().Params().N, 1)
	return half.FillBytes(make([]byte, 32))
}()

// lowS reports whether sig is a 64-byte ES256 signature R || S with
// S <= N/2.
func lowS(sig []byte) bool {
	return len(sig) == 64 && bytes.Compare(sig[32:], p256HalfOrder) <= 0
}

// normalizeLowS rewrites, in place, a 64-byte ES256 signature R || S with
// S > N/2 to R || N-S, the other valid signature of the same message.
func normalizeLowS(sig []byte) {
	if len(sig) != 64 || lowS(sig) {
		return
	}
	n := elliptic.P256().Params().N
	s := new(big.Int).SetBytes(sig[32:])
	s.Sub(n, s).FillBytes(sig[32:])
}

// verifySigned has go-jose parse raw, allowing only alg (the algorithm of
// key, already equal to the pre-checked header's), check that it reads the
// header as the pre-check did, and verify the signature with key. It
// returns the verified payload.
func verifySigned(raw string, h *joseHeader, key any) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(h.Alg)})
	if err != nil {
		// go-jose messages can quote header content: never pass them on.
		if _, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return nil, fmt.Errorf("%w: header alg not accepted by go-jose", ErrAlgorithm)
		}
		return nil, fmt.Errorf("%w: not a compact JWS for go-jose", ErrMalformed)
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%w: not exactly one signature", ErrMalformed)
	}
	p := jws.Signatures[0].Protected
	if typ, _ := p.ExtraHeaders[jose.HeaderType].(string); p.Algorithm != h.Alg || p.KeyID != h.Kid || typ != h.Typ {
		return nil, fmt.Errorf("%w: header read differently by go-jose", ErrMalformed)
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return nil, ErrSignature
	}
	return payload, nil
}

// decodeClaims reads a verified payload by the strict rules.
func decodeClaims(payload []byte) (*Claims, error) {
	c := new(Claims)
	if _, err := strictDecode(payload, c); err != nil {
		return nil, fmt.Errorf("%w: payload is not a valid claims object", ErrMalformed)
	}
	return c, nil
}
