package token

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	jjson "github.com/go-jose/go-jose/v4/json"
)

// setUnusedBit returns seg with one of the unused low bits of its last
// character set: the same bytes to a lenient decoder, a non-canonical
// spelling to a strict one. seg's length must not be a multiple of 4.
func setUnusedBit(tb testing.TB, seg string) string {
	tb.Helper()
	if len(seg)%4 == 0 {
		tb.Fatalf("segment of %d characters has no unused bits", len(seg))
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(alphabet[last^1])
}

// withSig replaces the signature of tok.
func withSig(tok string, sig []byte) string {
	return tok[:strings.LastIndexByte(tok, '.')+1] + base64.RawURLEncoding.EncodeToString(sig)
}

// payloadWithUnusedBits returns the sample claims as JSON, padded with
// whitespace so that its base64url encoding has unused bits.
func payloadWithUnusedBits(tb testing.TB) string {
	tb.Helper()
	b, err := json.Marshal(sampleClaims())
	if err != nil {
		tb.Fatal(err)
	}
	s := string(b)
	for len(s)%3 == 0 {
		s += " "
	}
	return s
}

// verifyCase is one token for TestVerifyStrictCompact. want nil means the
// token must verify, with the sample claims. refDiffers marks the tokens
// that the previous, go-jose based verifier (refVerify) decides
// differently, on purpose.
type verifyCase struct {
	name       string
	tok        string
	want       error
	refDiffers bool
}

func strictCases(t testing.TB) []verifyCase {
	ed, es := fixedKey(t, AlgEdDSA), fixedKey(t, AlgES256)
	good := mustMint(t, ed, sampleClaims())
	goodES := mustMint(t, es, sampleClaims())
	gp, ep := parts(good), parts(goodES)
	payload := payloadWithUnusedBits(t)
	hdr := func(alg, kid, typ string) string {
		return fmt.Sprintf(`{"alg":%q,"kid":%q,"typ":%q}`, alg, kid, typ)
	}
	edHdr := hdr(AlgEdDSA, ed.ID, Type)
	// edWith returns the Ed25519 header with extra members spliced in.
	edWith := func(members string) string {
		return strings.TrimSuffix(edHdr, "}") + "," + members + "}"
	}
	signed := func(header string) string { return signRaw(t, ed, header, payload) }
	edJWK, err := json.Marshal(ed.Public().JWK())
	if err != nil {
		t.Fatal(err)
	}
	escapedKid := `\u00` + fmt.Sprintf("%02x", ed.ID[0]) + ed.ID[1:]

	// An ES256 signature in ASN.1 DER instead of R || S.
	digest := sha256.Sum256([]byte(ep[0] + "." + ep[1]))
	der, err := ecdsa.SignASN1(rand.Reader, es.priv.(*ecdsa.PrivateKey), digest[:])
	if err != nil {
		t.Fatal(err)
	}
	edSig := dec(t, gp[2])
	flipped := []byte(payload)
	flipped[len(flipped)/2] ^= 1

	return []verifyCase{
		// Accepted.
		{name: "minted EdDSA", tok: good},
		{name: "minted ES256", tok: goodES},
		{name: "members reordered", tok: signed(`{"typ":"` + Type + `","kid":"` + ed.ID + `","alg":"EdDSA"}`)},
		{name: "whitespace in header JSON", tok: signed(" {\n\t\"alg\" : \"EdDSA\" ,\"kid\":\"" + ed.ID + "\", \"typ\":\"" + Type + "\" } ")},
		{name: "unknown member ignored", tok: signed(edWith(`"x":{"y":[1,2]}`))},
		{name: "member names are case-sensitive", tok: signed(edWith(`"Crit":["exp"],"JWK":1`))},
		{name: "escaped kid", tok: signed(`{"alg":"EdDSA","kid":"` + escapedKid + `","typ":"` + Type + `"}`)},

		// Shape and encoding.
		{name: "one part", tok: gp[0], want: ErrMalformed},
		{name: "two parts", tok: gp[0] + "." + gp[1], want: ErrMalformed},
		{name: "four parts", tok: good + "." + gp[2], want: ErrMalformed},
		{name: "trailing dot", tok: good + ".", want: ErrMalformed},
		{name: "empty header segment", tok: "." + gp[1] + "." + gp[2], want: ErrMalformed},
		{name: "standard base64 alphabet (+)", tok: gp[0] + "." + gp[1] + ".+" + gp[2][1:], want: ErrMalformed},
		{name: "standard base64 alphabet (/)", tok: gp[0] + "." + gp[1] + "./" + gp[2][1:], want: ErrMalformed},
		{name: "padded header", tok: gp[0] + "==." + gp[1] + "." + gp[2], want: ErrMalformed},
		{name: "padded signature", tok: good + "==", want: ErrMalformed},
		{name: "header length impossible", tok: gp[0] + "A." + gp[1] + "." + gp[2], want: ErrMalformed},
		{name: "payload length impossible", tok: gp[0] + "." + gp[1] + "A." + gp[2], want: ErrMalformed},
		{name: "non-canonical header", tok: setUnusedBit(t, gp[0]) + "." + gp[1] + "." + gp[2], want: ErrMalformed},
		{name: "non-canonical payload", tok: func() string {
			p := parts(signed(edHdr))
			return p[0] + "." + setUnusedBit(t, p[1]) + "." + p[2]
		}(), want: ErrMalformed},
		{name: "non-canonical signature", tok: gp[0] + "." + gp[1] + "." + setUnusedBit(t, gp[2]), want: ErrMalformed},
		{name: "CRLF inside signature", tok: good[:len(good)-8] + "\r\n" + good[len(good)-8:], want: ErrMalformed},
		{name: "trailing space", tok: good + " ", want: ErrMalformed},
		{name: "trailing NUL", tok: good + "\x00", want: ErrMalformed},

		// Header JSON.
		{name: "header null", tok: signed("null"), want: ErrMalformed},
		{name: "header array", tok: signed(`[` + edHdr + `]`), want: ErrMalformed},
		{name: "header string", tok: signed(`"EdDSA"`), want: ErrMalformed},
		{name: "header empty object", tok: signed(`{}`), want: ErrAlgorithm},
		{name: "header not JSON", tok: signed(`{alg:EdDSA}`), want: ErrMalformed},
		{name: "header truncated", tok: signed(edHdr[:len(edHdr)-1]), want: ErrMalformed},
		{name: "data after header object", tok: signed(edHdr + "x"), want: ErrMalformed},
		{name: "two header objects", tok: signed(edHdr + edHdr), want: ErrMalformed},
		{name: "duplicate alg", tok: signed(edWith(`"alg":"EdDSA"`)), want: ErrMalformed},
		{name: "duplicate alg, second none", tok: signed(edWith(`"alg":"none"`)), want: ErrMalformed},
		{name: "duplicate alg, escaped name", tok: signed(edWith(`"\u0061lg":"EdDSA"`)), want: ErrMalformed},
		{name: "duplicate kid", tok: signed(edWith(`"kid":"` + es.ID + `"`)), want: ErrMalformed},
		{name: "duplicate typ", tok: signed(edWith(`"typ":"JWT"`)), want: ErrMalformed},
		{name: "duplicate unknown member", tok: signed(edWith(`"x":1,"x":2`)), want: ErrMalformed},
		{name: "alg not a string", tok: signed(`{"alg":1,"kid":"` + ed.ID + `","typ":"` + Type + `"}`), want: ErrMalformed, refDiffers: true},
		{name: "kid not a string", tok: signed(`{"alg":"EdDSA","kid":["` + ed.ID + `"],"typ":"` + Type + `"}`), want: ErrMalformed},
		{name: "typ not a string", tok: signed(`{"alg":"EdDSA","kid":"` + ed.ID + `","typ":{}}`), want: ErrMalformed, refDiffers: true},

		// Algorithm.
		{name: "alg missing", tok: signed(`{"kid":"` + ed.ID + `","typ":"` + Type + `"}`), want: ErrAlgorithm},
		{name: "alg null", tok: signed(`{"alg":null,"kid":"` + ed.ID + `","typ":"` + Type + `"}`), want: ErrAlgorithm},
		{name: "alg upper-case name", tok: signed(`{"ALG":"EdDSA","kid":"` + ed.ID + `","typ":"` + Type + `"}`), want: ErrAlgorithm},
		{name: "alg none", tok: signed(hdr("none", ed.ID, Type)), want: ErrAlgorithm},
		{name: "alg none, no signature", tok: enc(hdr("none", ed.ID, Type)) + "." + enc(payload) + ".", want: ErrAlgorithm},
		{name: "alg HS256", tok: signed(hdr("HS256", ed.ID, Type)), want: ErrAlgorithm},
		{name: "alg RS256", tok: signed(hdr("RS256", ed.ID, Type)), want: ErrAlgorithm},
		{name: "alg Ed25519", tok: signed(hdr("Ed25519", ed.ID, Type)), want: ErrAlgorithm},
		{name: "alg eddsa", tok: signed(hdr("eddsa", ed.ID, Type)), want: ErrAlgorithm},
		{name: "alg with trailing space", tok: signed(hdr("EdDSA ", ed.ID, Type)), want: ErrAlgorithm},
		{name: "alg ES256 with the Ed25519 key's kid", tok: signRaw(t, es, hdr(AlgES256, ed.ID, Type), payload), want: ErrAlgorithm},
		{name: "alg EdDSA with the P-256 key's kid", tok: signed(hdr(AlgEdDSA, es.ID, Type)), want: ErrAlgorithm},
		{name: "EdDSA header swapped onto ES256 token", tok: gp[0] + "." + ep[1] + "." + ep[2], want: ErrSignature},

		// Refused members.
		{name: "crit", tok: signed(edWith(`"crit":["exp"],"exp":1`)), want: ErrMalformed},
		{name: "crit empty", tok: signed(edWith(`"crit":[]`)), want: ErrMalformed},
		{name: "crit null", tok: signed(edWith(`"crit":null`)), want: ErrMalformed, refDiffers: true},
		{name: "b64 false", tok: signed(edWith(`"b64":false,"crit":["b64"]`)), want: ErrMalformed},
		{name: "b64 true", tok: signed(edWith(`"b64":true`)), want: ErrMalformed},
		{name: "embedded jwk (the signer's own key)", tok: signed(edWith(`"jwk":` + string(edJWK))), want: ErrMalformed, refDiffers: true},
		{name: "jku", tok: signed(edWith(`"jku":"https://evil.example/jwks"`)), want: ErrMalformed, refDiffers: true},
		{name: "x5u", tok: signed(edWith(`"x5u":"https://evil.example/cert.pem"`)), want: ErrMalformed, refDiffers: true},
		{name: "x5c", tok: signed(edWith(`"x5c":[]`)), want: ErrMalformed, refDiffers: true},
		{name: "x5t", tok: signed(edWith(`"x5t":"` + ed.ID[:27] + `"`)), want: ErrMalformed, refDiffers: true},
		{name: "x5t#S256", tok: signed(edWith(`"x5t#S256":"` + ed.ID + `"`)), want: ErrMalformed, refDiffers: true},
		{name: "jwk null", tok: signed(edWith(`"jwk":null`)), want: ErrMalformed, refDiffers: true},

		// Type and key ID.
		{name: "typ JWT", tok: signed(hdr(AlgEdDSA, ed.ID, "JWT")), want: ErrType},
		{name: "typ upper-case", tok: signed(hdr(AlgEdDSA, ed.ID, strings.ToUpper(Type))), want: ErrType},
		{name: "typ null", tok: signed(`{"alg":"EdDSA","kid":"` + ed.ID + `","typ":null}`), want: ErrType},
		{name: "kid empty", tok: signed(hdr(AlgEdDSA, "", Type)), want: ErrMalformed},
		{name: "kid null", tok: signed(`{"alg":"EdDSA","kid":null,"typ":"` + Type + `"}`), want: ErrMalformed},
		{name: "kid unknown", tok: signed(hdr(AlgEdDSA, "unknown-key", Type)), want: ErrUnknownKey},
		{name: "kid differs in case", tok: signed(hdr(AlgEdDSA, strings.ToLower(ed.ID), Type)), want: ErrUnknownKey},

		// Tampering and signatures.
		{name: "tampered payload", tok: gp[0] + "." + enc(string(flipped)) + "." + gp[2], want: ErrSignature},
		{name: "tampered header, same meaning", tok: enc(`{"kid":"`+ed.ID+`","alg":"EdDSA","typ":"`+Type+`"}`) + "." + gp[1] + "." + gp[2], want: ErrSignature},
		{name: "tampered header, extra space", tok: enc(edHdr+" ") + "." + gp[1] + "." + gp[2], want: ErrSignature},
		{name: "signature of another payload", tok: gp[0] + "." + parts(signed(edHdr))[1] + "." + gp[2], want: ErrSignature},
		{name: "signature empty", tok: withSig(good, nil), want: ErrSignature},
		{name: "signature 63 bytes", tok: withSig(good, edSig[:63]), want: ErrSignature},
		{name: "signature 65 bytes", tok: withSig(good, append(append([]byte{}, edSig...), 0)), want: ErrSignature},
		{name: "signature 128 bytes", tok: withSig(good, append(append([]byte{}, edSig...), edSig...)), want: ErrSignature},
		{name: "signature zero", tok: withSig(good, make([]byte, 64)), want: ErrSignature},
		{name: "signature with S >= L", tok: func() string {
			s := append([]byte{}, edSig...)
			s[63] |= 0xf0 // S is little-endian; L < 2^253
			return withSig(good, s)
		}(), want: ErrSignature},
		{name: "ES256 signature on EdDSA token", tok: withSig(good, dec(t, ep[2])), want: ErrSignature},
		{name: "ES256 signature 63 bytes", tok: withSig(goodES, dec(t, ep[2])[:63]), want: ErrSignature},
		{name: "ES256 signature 65 bytes", tok: withSig(goodES, append(dec(t, ep[2]), 0)), want: ErrSignature},
		{name: "ES256 signature zero", tok: withSig(goodES, make([]byte, 64)), want: ErrSignature},
		{name: "ES256 signature in DER", tok: withSig(goodES, der), want: ErrSignature},
		{name: "ES256 signature with R = N", tok: func() string {
			s := dec(t, ep[2])
			es.Public().Key.(*ecdsa.PublicKey).Curve.Params().N.FillBytes(s[:32])
			return withSig(goodES, s)
		}(), want: ErrSignature},
		{name: "Ed25519 signature by another key", tok: signRaw(t, genKey(t, AlgEdDSA), edHdr, payload), want: ErrSignature},
		{name: "ES256 signature by another key", tok: signRaw(t, genKey(t, AlgES256), hdr(AlgES256, es.ID, Type), payload), want: ErrSignature},
	}
}

// TestVerifyStrictCompact runs Verify on hand-made compact tokens, and
// checks each verdict against the previous, go-jose based verifier.
func TestVerifyStrictCompact(t *testing.T) {
	ed, es := fixedKey(t, AlgEdDSA), fixedKey(t, AlgES256)
	lookup := StaticKeys(ed.Public(), es.Public())
	for _, tc := range strictCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Verify(tc.tok, lookup, testOpts())
			if tc.want == nil {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if !reflect.DeepEqual(c, sampleClaims()) {
					t.Fatalf("claims differ: %+v", c)
				}
			} else {
				if err == nil {
					t.Fatalf("accepted: %+v", c)
				}
				if c != nil {
					t.Error("claims returned with an error")
				}
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				assertNoLeak(t, err, tc.tok)
			}
			rc, rerr := refVerify(tc.tok, lookup, testOpts())
			same := (err == nil) == (rerr == nil) && sentinelOf(err) == sentinelOf(rerr) && reflect.DeepEqual(c, rc)
			if same == tc.refDiffers {
				t.Errorf("go-jose based verifier: %v (refDiffers = %v)", rerr, tc.refDiffers)
			}
		})
	}
}

// sentinelOf returns the sentinel err wraps, or nil.
func sentinelOf(err error) error {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return s
		}
	}
	return nil
}

// TestPeekKeyIDStrict checks that PeekKeyID parses like Verify.
func TestPeekKeyIDStrict(t *testing.T) {
	ed := fixedKey(t, AlgEdDSA)
	payload := payloadWithUnusedBits(t)
	for _, tc := range []struct {
		header string
		want   error
	}{
		{`{"alg":"EdDSA","kid":"` + ed.ID + `","typ":"` + Type + `"}`, nil},
		{`{"kid":"` + ed.ID + `","alg":"EdDSA"}`, nil},
		{`{"alg":"none","kid":"` + ed.ID + `"}`, ErrAlgorithm},
		{`{"alg":"EdDSA","kid":"` + ed.ID + `","kid":"` + ed.ID + `"}`, ErrMalformed},
		{`{"alg":"EdDSA"}`, ErrMalformed},
		{`null`, ErrMalformed},
	} {
		kid, err := PeekKeyID(signRaw(t, ed, tc.header, payload))
		if !errors.Is(err, tc.want) || (tc.want == nil && (err != nil || kid != ed.ID)) {
			t.Errorf("PeekKeyID(%s) = %q, %v; want %v", tc.header, kid, err, tc.want)
		}
	}
}

// TestMintedHeader checks the shortcut for Mint's own header against the
// general decoder.
func TestMintedHeader(t *testing.T) {
	ed, es := fixedKey(t, AlgEdDSA), fixedKey(t, AlgES256)
	for _, k := range []*Key{ed, es} {
		hb := dec(t, parts(mustMint(t, k, sampleClaims()))[0])
		h, ok := mintedHeader(hb)
		if !ok {
			t.Fatalf("Mint's header %s not recognised", hb)
		}
		want, err := decodeHeader(hb)
		if err != nil || !reflect.DeepEqual(h, want) {
			t.Fatalf("mintedHeader = %+v, decodeHeader = %+v, %v", h, want, err)
		}
	}
	for _, s := range []string{
		`{"alg":"EdDSA","kid":"","typ":"txntoken+jwt"}`,
		`{"alg":"EdDSA","kid":"a\"b","typ":"txntoken+jwt"}`,
		`{"alg":"EdDSA","kid":"a\\u0041","typ":"txntoken+jwt"}`,
		`{"alg":"EdDSA","kid":"a","typ":"txntoken+jwt"} `,
		`{"alg":"EdDSA","kid":"a","typ":"txntoken+jwt","kid":"b"}`,
		`{"alg":"EdDSA","kid":"a","kid":"b","typ":"txntoken+jwt"}`,
		`{"alg":"EdDSA","kid":"a","typ":"txntoken+jwt","crit":[]}`,
		`{"alg":"EdDSA","kid":"a","crit":[],"typ":"txntoken+jwt"}`,
		`{"alg":"EdDSA","alg":"none","kid":"a","typ":"txntoken+jwt"}`,
		`{"alg":"HS256","kid":"a","typ":"txntoken+jwt"}`,
		`{"alg":"EdDSA","kid":"a","typ":"JWT"}`,
		`{"alg":"EdDSA","kid":"a.b","typ":"txntoken+jwt"}`,
		`{"alg":"EdDSA","kid":"a b","typ":"txntoken+jwt"}`,
	} {
		if h, ok := mintedHeader([]byte(s)); ok {
			t.Errorf("mintedHeader(%s) = %+v, want not recognised", s, h)
		}
	}
}

// FuzzMintedHeader checks that whatever mintedHeader recognises,
// decodeHeader reads the same way.
func FuzzMintedHeader(f *testing.F) {
	f.Add([]byte(`{"alg":"EdDSA","kid":"abc","typ":"txntoken+jwt"}`))
	f.Add([]byte(`{"alg":"ES256","kid":"abc","typ":"txntoken+jwt"}`))
	f.Add([]byte(`{"alg":"EdDSA","kid":"a","typ":"txntoken+jwt","kid":"b"}`))
	f.Add([]byte(`{"alg":"EdDSA","kid":"a\u0041","typ":"txntoken+jwt"}`))
	f.Fuzz(func(t *testing.T, hb []byte) {
		h, ok := mintedHeader(hb)
		if !ok {
			return
		}
		want, err := decodeHeader(hb)
		if err != nil || !reflect.DeepEqual(h, want) {
			t.Fatalf("mintedHeader = %+v, decodeHeader = %+v, %v", h, want, err)
		}
	})
}

// judgedDifferently reports whether the header JSON hb is one that Verify
// judges differently from the go-jose based verifier, on purpose: it has a
// member that Verify refuses and go-jose accepted ("jwk", "jku", "x5u",
// "x5c", "x5t", "x5t#S256", and "crit" with a null value), or an "alg",
// "kid" or "typ" that is neither a string nor null (Verify: ErrMalformed,
// as soon as the header is decoded; go-jose: ErrAlgorithm or ErrType when
// that check comes first).
func judgedDifferently(hb []byte) bool {
	var m map[string]jjson.RawMessage
	if jjson.Unmarshal(hb, &m) != nil {
		return false
	}
	for _, name := range []string{"jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "crit"} {
		if _, ok := m[name]; ok {
			return true
		}
	}
	for _, name := range []string{"alg", "kid", "typ"} {
		if v, ok := m[name]; ok {
			var s *string
			if jjson.Unmarshal(v, &s) != nil {
				return true
			}
		}
	}
	return false
}

// compareWithReference checks Verify against the go-jose based verifier on
// tok, whose protected header is hb: Verify must accept nothing that the
// reference refuses, must agree on the claims, and may refuse what the
// reference accepts only for the reasons of judgedDifferently. When both
// refuse, they must agree on why, but for those headers.
func compareWithReference(t *testing.T, tok string, hb []byte, lookup KeyLookup) *Claims {
	t.Helper()
	c, err := Verify(tok, lookup, testOpts())
	rc, rerr := refVerify(tok, lookup, testOpts())
	switch {
	case err == nil && rerr != nil:
		t.Fatalf("Verify accepts what go-jose refuses (%v)", rerr)
	case err == nil && !reflect.DeepEqual(c, rc):
		t.Fatalf("claims differ: %+v, go-jose %+v", c, rc)
	case err != nil && sentinelOf(err) != sentinelOf(rerr) && !judgedDifferently(hb):
		t.Fatalf("Verify: %v; go-jose based verifier: %v", err, rerr)
	}
	return c
}

// assertRoundTrip checks that claims c, accepted from tok signed by k,
// mint again with k (when Mint accepts them) into a token that verifies to
// the same claims, and
// that an Ed25519 token in Mint's own encoding comes back byte for byte
// (signatures are deterministic and encodings canonical).
func assertRoundTrip(t *testing.T, k *Key, tok string, c *Claims, lookup KeyLookup) {
	t.Helper()
	again, err := Mint(k, c)
	if err != nil {
		// Claims an issuer could sign but Mint refuses to write (an
		// actor without sub, a bad cnf.jkt, too large): nothing to compare.
		return
	}
	want := *c
	if want.Rctx != nil && *want.Rctx == (RequestContext{}) {
		want.Rctx = nil // Mint leaves an empty rctx out
	}
	c2, err := Verify(again, lookup, VerifyOptions{IgnoreValidity: true})
	if err != nil || !reflect.DeepEqual(c2, &want) {
		t.Fatalf("re-minted token: %+v, %v; want %+v", c2, err, c)
	}
	p, q := parts(tok), parts(again)
	if k.Algorithm == AlgEdDSA && p[0] == q[0] && p[1] == q[1] && tok != again {
		t.Fatalf("Ed25519 token in Mint's encoding differs after a round trip")
	}
}

// FuzzVerifyMatchesGoJose signs arbitrary header and payload bytes with
// the test keys (as an issuer would, whatever it put in the header) and
// compares Verify with the previous go-jose based verifier.
func FuzzVerifyMatchesGoJose(f *testing.F) {
	ed, es := fixedKey(f, AlgEdDSA), fixedKey(f, AlgES256)
	lookup := StaticKeys(ed.Public(), es.Public())
	claims, _ := json.Marshal(sampleClaims())
	for _, h := range []string{
		`{"alg":"EdDSA","kid":"` + ed.ID + `","typ":"` + Type + `"}`,
		`{"alg":"ES256","kid":"` + es.ID + `","typ":"` + Type + `"}`,
		`{"typ":"` + Type + `","kid":"` + ed.ID + `","alg":"EdDSA"}`,
		`{"alg":"EdDSA","kid":"` + ed.ID + `","typ":"` + Type + `","alg":"EdDSA"}`,
		`{"alg":"EdDSA","kid":"` + ed.ID + `","typ":"` + Type + `","crit":["x"],"x":1}`,
		`{"alg":"EdDSA","kid":"` + ed.ID + `","typ":"` + Type + `","jwk":{"kty":"OKP"}}`,
		`{"ALG":"EdDSA","kid":"` + ed.ID + `","typ":"` + Type + `"}`,
		`{"alg":"EdDSA","\u006bid":"` + ed.ID + `","typ":"` + Type + `"}`,
		`{"alg":"none","kid":"` + ed.ID + `","typ":"` + Type + `"}`,
		`null`, `[]`, `{}`, `{"alg":"EdDSA"} x`,
	} {
		f.Add([]byte(h), claims, false)
		f.Add([]byte(h), claims, true)
	}
	f.Fuzz(func(t *testing.T, hb, payload []byte, useES bool) {
		k := ed
		if useES {
			k = es
		}
		tok := signRaw(t, k, string(hb), string(payload))
		if len(tok) > MaxTokenSize {
			return
		}
		if c := compareWithReference(t, tok, hb, lookup); c != nil {
			assertRoundTrip(t, k, tok, c, lookup)
		}
	})
}
