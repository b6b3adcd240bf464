package token

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

func TestGenerateKey(t *testing.T) {
	for _, alg := range []string{AlgEdDSA, AlgES256} {
		k := genKey(t, alg)
		if k.Algorithm != alg || !ValidThumbprint(k.ID) || k.Created.IsZero() || k.Created.Location().String() != "UTC" {
			t.Errorf("%s: unexpected key %+v", alg, k)
		}
		jwk, _ := json.Marshal(k.Public().JWK())
		if tp, err := Thumbprint(jwk); err != nil || tp != k.ID {
			t.Errorf("%s: kid %q is not the thumbprint %q (%v)", alg, k.ID, tp, err)
		}
	}
	if _, err := GenerateKey("HS256"); !errors.Is(err, ErrAlgorithm) {
		t.Errorf("GenerateKey(HS256): err = %v", err)
	}
}

func TestMarshalPrivateRoundTrip(t *testing.T) {
	for _, alg := range []string{AlgEdDSA, AlgES256} {
		t.Run(alg, func(t *testing.T) {
			k := genKey(t, alg)
			b, err := k.MarshalPrivate()
			if err != nil {
				t.Fatal(err)
			}
			var rec struct {
				Created string         `json:"created"`
				JWK     map[string]any `json:"jwk"`
			}
			if err := json.Unmarshal(b, &rec); err != nil {
				t.Fatal(err)
			}
			if rec.JWK["kid"] != k.ID || rec.JWK["alg"] != alg || rec.JWK["use"] != "sig" || rec.JWK["d"] == nil || rec.Created == "" {
				t.Fatalf("stored form %s", b)
			}

			k2, err := UnmarshalPrivate(b)
			if err != nil {
				t.Fatal(err)
			}
			if k2.ID != k.ID || k2.Algorithm != k.Algorithm || !k2.Created.Equal(k.Created) {
				t.Fatalf("restored %+v, want %+v", k2, k)
			}
			if !k2.Public().Key.(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public().Key) {
				t.Fatal("restored public key differs")
			}
			// The restored key signs tokens the original public key accepts.
			if _, err := Verify(mustMint(t, k2, sampleClaims()), StaticKeys(k.Public()), testOpts()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestUnmarshalPrivateRejects(t *testing.T) {
	ed, es := genKey(t, AlgEdDSA), genKey(t, AlgES256)
	edRec, _ := ed.MarshalPrivate()
	esRec, _ := es.MarshalPrivate()
	other := genKey(t, AlgES256)
	otherRec, _ := other.MarshalPrivate()

	edit := func(rec []byte, f func(jwk map[string]any)) []byte {
		var m struct {
			Created json.RawMessage `json:"created"`
			JWK     map[string]any  `json:"jwk"`
		}
		if err := json.Unmarshal(rec, &m); err != nil {
			t.Fatal(err)
		}
		f(m.JWK)
		b, _ := json.Marshal(m)
		return b
	}
	var otherJWK map[string]any
	json.Unmarshal(otherRec, &struct {
		JWK *map[string]any `json:"jwk"`
	}{&otherJWK})

	cases := map[string][]byte{
		"empty":               nil,
		"not JSON":            []byte("{"),
		"no jwk":              []byte(`{"created":"2025-01-01T00:00:00Z"}`),
		"public only":         edit(edRec, func(j map[string]any) { delete(j, "d") }),
		"no kid":              edit(edRec, func(j map[string]any) { delete(j, "kid") }),
		"no alg":              edit(edRec, func(j map[string]any) { delete(j, "alg") }),
		"alg HS256":           edit(edRec, func(j map[string]any) { j["alg"] = "HS256" }),
		"EdDSA alg on EC":     edit(esRec, func(j map[string]any) { j["alg"] = AlgEdDSA }),
		"ES256 alg on OKP":    edit(edRec, func(j map[string]any) { j["alg"] = AlgES256 }),
		"Ed25519 x≠d":         edit(edRec, func(j map[string]any) { j["d"] = base64.RawURLEncoding.EncodeToString(make([]byte, 32)) }),
		"EC d from elsewhere": edit(esRec, func(j map[string]any) { j["d"] = otherJWK["d"] }),
	}
	for name, b := range cases {
		_, err := UnmarshalPrivate(b)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		for _, secret := range []string{fmt.Sprint(otherJWK["d"]), string(b)} {
			if len(secret) > 8 && strings.Contains(err.Error(), secret) {
				t.Errorf("%s: error leaks input: %v", name, err)
			}
		}
	}
}

func TestPublicJWKHasNoPrivateMembers(t *testing.T) {
	for _, alg := range []string{AlgEdDSA, AlgES256} {
		k := genKey(t, alg)
		b, err := json.Marshal(JWKS(k.Public()))
		if err != nil {
			t.Fatal(err)
		}
		var set struct {
			Keys []map[string]any `json:"keys"`
		}
		if err := json.Unmarshal(b, &set); err != nil || len(set.Keys) != 1 {
			t.Fatalf("JWKS %s: %v", b, err)
		}
		m := set.Keys[0]
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k", "priv"} {
			if _, ok := m[private]; ok {
				t.Errorf("%s: public JWK has private member %q", alg, private)
			}
		}
		if m["kid"] != k.ID || m["alg"] != alg || m["use"] != "sig" {
			t.Errorf("%s: JWK members %v", alg, m)
		}
	}
}

func TestParseJWKS(t *testing.T) {
	ed, es := genKey(t, AlgEdDSA), genKey(t, AlgES256)
	b, err := json.Marshal(JWKS(ed.Public(), es.Public()))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ParseJWKS(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("got %d keys", len(keys))
	}
	lookup := StaticKeys(keys...)
	for _, k := range []*Key{ed, es} {
		if _, err := Verify(mustMint(t, k, sampleClaims()), lookup, testOpts()); err != nil {
			t.Errorf("%s: verify with parsed JWKS: %v", k.Algorithm, err)
		}
	}
	if keys, err := ParseJWKS([]byte(`{"keys":[]}`)); err != nil || len(keys) != 0 {
		t.Errorf("empty set: %v, %v", keys, err)
	}

	jwkJSON := func(k jose.JSONWebKey) string {
		b, err := json.Marshal(k)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	edPub := ed.Public()
	noKid := edPub.JWK()
	noKid.KeyID = ""
	encUse := edPub.JWK()
	encUse.Use = "enc"
	noAlg := edPub.JWK()
	noAlg.Algorithm = ""
	wrongAlg := edPub.JWK()
	wrongAlg.Algorithm = AlgES256
	bad := map[string]string{
		"not JSON":       `{`,
		"no keys":        `{}`,
		"private OKP":    `{"keys":[` + jwkJSON(jose.JSONWebKey{Key: edPriv, KeyID: "a", Algorithm: AlgEdDSA}) + `]}`,
		"private EC":     `{"keys":[` + jwkJSON(jose.JSONWebKey{Key: mustECPriv(t), KeyID: "a", Algorithm: AlgES256}) + `]}`,
		"symmetric":      `{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"a","alg":"HS256"}]}`,
		"missing kid":    `{"keys":[` + jwkJSON(noKid) + `]}`,
		"use enc":        `{"keys":[` + jwkJSON(encUse) + `]}`,
		"missing alg":    `{"keys":[` + jwkJSON(noAlg) + `]}`,
		"alg/kty clash":  `{"keys":[` + jwkJSON(wrongAlg) + `]}`,
		"RSA":            `{"keys":[` + jwkJSON(jose.JSONWebKey{Key: &rsaKey.PublicKey, KeyID: "r", Algorithm: "RS256"}) + `]}`,
		"P-384 as ES256": `{"keys":[` + strings.Replace(jwkJSON(jose.JSONWebKey{Key: &p384.PublicKey, KeyID: "p", Algorithm: "ES384"}), `"ES384"`, `"ES256"`, 1) + `]}`,
		"X25519":         `{"keys":[{"kty":"OKP","crv":"X25519","x":"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo","kid":"x","alg":"EdDSA"}]}`,
		"bad point":      `{"keys":[{"kty":"EC","crv":"P-256","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","y":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","kid":"e","alg":"ES256"}]}`,
		"duplicate kid":  `{"keys":[` + jwkJSON(edPub.JWK()) + `,` + jwkJSON(edPub.JWK()) + `]}`,
		"one bad of two": `{"keys":[` + jwkJSON(edPub.JWK()) + `,` + jwkJSON(noKid) + `]}`,
	}
	for name, in := range bad {
		if keys, err := ParseJWKS([]byte(in)); err == nil {
			t.Errorf("%s: accepted %v", name, keys)
		}
	}
}

// TestParseJWKSStrict: ParseJWKS reads the set and every key by the
// strict JSON rules, so that the members it checks are the ones go-jose
// builds the key from, and refuses duplicate kids, a use other than sig,
// and a key whose type or curve does not fit its alg.
func TestParseJWKSStrict(t *testing.T) {
	ed, es := genKey(t, AlgEdDSA), genKey(t, AlgES256)
	edJWK, _ := json.Marshal(ed.Public().JWK())
	esJWK, _ := json.Marshal(es.Public().JWK())
	// with returns a JWK's JSON with members spliced in after "{".
	with := func(jwk []byte, members string) string {
		return "{" + members + "," + string(jwk[1:])
	}
	// renamed returns a JWK's JSON with one member renamed.
	renamed := func(jwk []byte, from, to string) string {
		if !strings.Contains(string(jwk), `"`+from+`":`) {
			t.Fatalf("%s not in %s", from, jwk)
		}
		return strings.Replace(string(jwk), `"`+from+`":`, `"`+to+`":`, 1)
	}
	noUse := []byte(strings.Replace(string(edJWK), `"use":"sig",`, "", 1))
	if bytes.Equal(noUse, edJWK) {
		t.Fatalf("no use member in %s", edJWK)
	}
	set := func(keys ...string) []byte { return []byte(`{"keys":[` + strings.Join(keys, ",") + `]}`) }

	good := map[string][]byte{
		"both":               set(string(edJWK), string(esJWK)),
		"use absent":         set(strings.Replace(string(edJWK), `"use":"sig",`, "", 1)),
		"unknown members":    set(with(edJWK, `"x-note":{"a":1},"ext":true`)),
		"whitespace":         []byte(" {\n\"keys\" : [ " + string(edJWK) + " ] } "),
		"escaped kid name":   set(renamed(edJWK, "kid", `\u006bid`)),
		"unknown set member": []byte(`{"keys":[` + string(edJWK) + `],"x":1}`),
	}
	for name, in := range good {
		if _, err := ParseJWKS(in); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}

	otherEd := genKey(t, AlgEdDSA)
	otherEdJWK, _ := json.Marshal(otherEd.Public().JWK())
	sameKid := strings.Replace(string(otherEdJWK), otherEd.ID, ed.ID, 1)
	bad := map[string][]byte{
		// Duplicate kids.
		"duplicate kid, same key":  set(string(edJWK), string(edJWK)),
		"duplicate kid, other key": set(string(edJWK), sameKid),
		"duplicate kid, other alg": set(string(edJWK), strings.Replace(string(esJWK), es.ID, ed.ID, 1)),
		"duplicate kid, escaped":   set(string(edJWK), strings.Replace(sameKid, ed.ID, `\u00`+fmt.Sprintf("%02x", ed.ID[0])+ed.ID[1:], 1)),
		// use.
		"use enc":          set(with(noUse, `"use":"enc"`)),
		"use SIG":          set(with(noUse, `"use":"SIG"`)),
		"use with a space": set(with(noUse, `"use":"sig "`)),
		"use number":       set(with(noUse, `"use":1`)),
		// Type and curve against alg.
		"ES256 on an OKP key":    set(strings.Replace(string(edJWK), `"alg":"EdDSA"`, `"alg":"ES256"`, 1)),
		"EdDSA on an EC key":     set(strings.Replace(string(esJWK), `"alg":"ES256"`, `"alg":"EdDSA"`, 1)),
		"EdDSA with crv P-256":   set(strings.Replace(string(edJWK), `"crv":"Ed25519"`, `"crv":"P-256"`, 1)),
		"ES256 with crv P-384":   set(strings.Replace(string(esJWK), `"crv":"P-256"`, `"crv":"P-384"`, 1)),
		"ES256 with kty OKP":     set(strings.Replace(string(esJWK), `"kty":"EC"`, `"kty":"OKP"`, 1)),
		"EdDSA with crv ed25519": set(strings.Replace(string(edJWK), `"crv":"Ed25519"`, `"crv":"ed25519"`, 1)),
		"alg eddsa":              set(strings.Replace(string(edJWK), `"alg":"EdDSA"`, `"alg":"eddsa"`, 1)),
		// Member names, read by the strict rules.
		"duplicate member kid":               set(with(edJWK, `"kid":"`+otherEd.ID+`"`)),
		"duplicate member x":                 set(with(edJWK, `"x":"`+otherEd.ID+`"`)),
		"KID and kid":                        set(with(edJWK, `"KID":"`+otherEd.ID+`"`)),
		"Kid alone":                          set(renamed(edJWK, "kid", "Kid")),
		"Alg alone":                          set(renamed(edJWK, "alg", "Alg")),
		"USE and use":                        set(with(edJWK, `"USE":"enc"`)),
		"Use alone":                          set(with(noUse, `"Use":"enc"`)),
		"X and x":                            set(with(edJWK, `"X":"`+otherEd.ID+`"`)),
		"Kelvin-sign kty":                    set(with(edJWK, `"\u212aty":"EC"`)),
		"D (private, case variant)":          set(with(edJWK, `"D":"AAAA"`)),
		"d null":                             set(with(edJWK, `"d":null`)),
		"priv":                               set(with(edJWK, `"priv":"AAAA"`)),
		"p":                                  set(with(esJWK, `"p":"AAAA"`)),
		"keys and KEYS":                      []byte(`{"keys":[` + string(edJWK) + `],"KEYS":[]}`),
		"Keys alone":                         []byte(`{"Keys":[` + string(edJWK) + `]}`),
		"duplicate keys":                     []byte(`{"keys":[],"keys":[` + string(edJWK) + `]}`),
		"case variants in an unknown member": set(with(edJWK, `"x-note":{"a":1,"A":2}`)),
		"set null":                           []byte(`null`),
		"set array":                          []byte(`[` + string(edJWK) + `]`),
		"data after the set":                 append(set(string(edJWK)), 'x'),
	}
	for name, in := range bad {
		if keys, err := ParseJWKS(in); err == nil {
			t.Errorf("%s: accepted %v", name, keys)
		} else if strings.Contains(err.Error(), ed.ID) || strings.Contains(err.Error(), otherEd.ID) {
			t.Errorf("%s: error quotes the input: %v", name, err)
		}
	}

	// Thumbprint reads JWKs by the same rules.
	for name, in := range map[string]string{
		"KTY and kty": with(edJWK, `"KTY":"EC"`),
		"X alone":     renamed(edJWK, "x", "X"),
		"duplicate x": with(edJWK, `"x":"`+otherEd.ID+`"`),
	} {
		if tp, err := Thumbprint([]byte(in)); err == nil {
			t.Errorf("Thumbprint, %s: %q", name, tp)
		}
	}
}

func mustECPriv(t *testing.T) *ecdsa.PrivateKey {
	p, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestThumbprint(t *testing.T) {
	// RFC 7638 section 3.1.
	rfc7638 := `{
     "kty": "RSA",
     "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
     "e": "AQAB",
     "alg": "RS256",
     "kid": "2011-04-29"
    }`
	// RFC 8037 appendix A.3.
	rfc8037 := `{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`
	// RFC 7517 appendix A.1 EC key; expected value computed from the
	// RFC 7638 canonical form below, independently of go-jose.
	ecX, ecY := "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4", "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"
	ecJWK := `{"kty":"EC","crv":"P-256","x":"` + ecX + `","y":"` + ecY + `","use":"enc","kid":"1"}`
	sum := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + ecX + `","y":"` + ecY + `"}`))
	ecWant := base64.RawURLEncoding.EncodeToString(sum[:])

	for _, tc := range []struct{ name, jwk, want string }{
		{"RFC 7638 RSA", rfc7638, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"},
		{"RFC 8037 OKP", rfc8037, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"},
		{"RFC 7517 EC", ecJWK, ecWant},
	} {
		got, err := Thumbprint([]byte(tc.jwk))
		if err != nil || got != tc.want {
			t.Errorf("%s: Thumbprint = %q, %v; want %q", tc.name, got, err, tc.want)
		}
		if !ValidThumbprint(got) {
			t.Errorf("%s: ValidThumbprint(%q) = false", tc.name, got)
		}
	}

	edRec, _ := genKey(t, AlgEdDSA).MarshalPrivate()
	var rec struct {
		JWK json.RawMessage `json:"jwk"`
	}
	json.Unmarshal(edRec, &rec)
	for name, in := range map[string]string{
		"private":   string(rec.JWK),
		"symmetric": `{"kty":"oct","k":"c2VjcmV0"}`,
		"not JSON":  `{`,
		"no kty":    `{"x":"abc"}`,
		"bad OKP":   `{"kty":"OKP","crv":"Ed25519","x":"AAAA"}`,
	} {
		if tp, err := Thumbprint([]byte(in)); err == nil {
			t.Errorf("%s: Thumbprint = %q, want error", name, tp)
		} else if strings.Contains(err.Error(), "d\":") {
			t.Errorf("%s: error leaks input: %v", name, err)
		}
	}
}
