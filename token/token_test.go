package token

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

func TestRoundTrip(t *testing.T) {
	for _, alg := range []string{AlgEdDSA, AlgES256} {
		t.Run(alg, func(t *testing.T) {
			for _, k := range []*Key{fixedKey(t, alg), genKey(t, alg)} {
				want := sampleClaims()
				tok := mustMint(t, k, want)
				got, err := Verify(tok, StaticKeys(k.Public()), testOpts())
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("claims differ:\n got %+v\nwant %+v", got, want)
				}

				var hdr map[string]json.RawMessage
				if err := json.Unmarshal(dec(t, parts(tok)[0]), &hdr); err != nil {
					t.Fatal(err)
				}
				keys := slices.Sorted(func(yield func(string) bool) {
					for k := range hdr {
						if !yield(k) {
							return
						}
					}
				})
				if !slices.Equal(keys, []string{"alg", "kid", "typ"}) {
					t.Fatalf("header members = %v, want exactly alg, kid, typ", keys)
				}
				wantHdr := fmt.Sprintf(`{"alg":%q,"kid":%q,"typ":%q}`, alg, k.ID, Type)
				if h := string(dec(t, parts(tok)[0])); h != wantHdr {
					t.Fatalf("header = %s, want %s", h, wantHdr)
				}
				if kid, err := PeekKeyID(tok); err != nil || kid != k.ID {
					t.Fatalf("PeekKeyID = %q, %v; want %q", kid, err, k.ID)
				}
			}
		})
	}
}

func TestEd25519Deterministic(t *testing.T) {
	k := fixedKey(t, AlgEdDSA)
	if a, b := mustMint(t, k, sampleClaims()), mustMint(t, k, sampleClaims()); a != b {
		t.Fatal("Ed25519 minting with the same key and claims should be deterministic")
	}
}

func TestClaimsJSONShape(t *testing.T) {
	k := fixedKey(t, AlgEdDSA)
	payloadOf := func(c *Claims) map[string]json.RawMessage {
		t.Helper()
		var m map[string]json.RawMessage
		if err := json.Unmarshal(dec(t, parts(mustMint(t, k, c))[1]), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}

	full := payloadOf(sampleClaims())
	if got := string(full["aud"]); got != `"https://api.example"` {
		t.Errorf("aud = %s, want a JSON string", got)
	}
	for _, name := range []string{"iat", "nbf", "exp", "dep"} {
		var n int64
		if err := json.Unmarshal(full[name], &n); err != nil {
			t.Errorf("%s = %s is not an integer", name, full[name])
		}
	}
	if got := string(full["tctx"]); got != `{"role":"triage","purpose":"label new issues"}` {
		t.Errorf("tctx = %s", got)
	}
	if got := string(full["rctx"]); got != `{"description":"fetch-issue-42","req_ip":"10.0.0.7"}` {
		t.Errorf("rctx = %s", got)
	}
	if got := string(full["cnf"]); got != `{"jkt":"NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"}` {
		t.Errorf("cnf = %s", got)
	}

	minimal := sampleClaims()
	minimal.Tctx, minimal.Parent, minimal.Act, minimal.Cnf = nil, "", nil, nil
	minimal.Rctx = &RequestContext{} // both members empty: whole object omitted
	m := payloadOf(minimal)
	for _, name := range []string{"tctx", "rctx", "par", "act", "cnf"} {
		if v, ok := m[name]; ok {
			t.Errorf("optional claim %s present: %s", name, v)
		}
	}
	for _, name := range []string{"iss", "sub", "aud", "iat", "nbf", "exp", "jti", "txn", "scope", "dep"} {
		if _, ok := m[name]; !ok {
			t.Errorf("claim %s missing", name)
		}
	}
	if minimal.Rctx == nil {
		t.Error("Mint modified the caller's claims")
	}

	partial := sampleClaims()
	partial.Rctx = &RequestContext{Description: "s1"}
	partial.Tctx = &TxnContext{Role: "r"}
	p := payloadOf(partial)
	if got := string(p["rctx"]); got != `{"description":"s1"}` {
		t.Errorf("rctx = %s, want empty members omitted", got)
	}
	if got := string(p["tctx"]); got != `{"role":"r"}` {
		t.Errorf("tctx = %s, want empty purpose omitted", got)
	}

	// Three-actor chain: a, then b, then c (newest).
	a := PushActor(nil, "agent-a")
	b := PushActor(a, "agent-b")
	c := PushActor(b, "agent-c")
	chained := sampleClaims()
	chained.Act = c
	if got := string(payloadOf(chained)["act"]); got != `{"sub":"agent-c","act":{"sub":"agent-b","act":{"sub":"agent-a"}}}` {
		t.Errorf("act = %s", got)
	}
	if got := c.Chain(); !slices.Equal(got, []string{"agent-c", "agent-b", "agent-a"}) {
		t.Errorf("Chain = %v", got)
	}
	if a.Act != nil || b.Act == a || !slices.Equal(b.Chain(), []string{"agent-b", "agent-a"}) {
		t.Error("PushActor must copy prev and leave it unchanged")
	}
	var none *Actor
	if none.Chain() != nil {
		t.Error("nil chain should be empty")
	}
}

func TestVerifyRejects(t *testing.T) {
	ed, es := fixedKey(t, AlgEdDSA), fixedKey(t, AlgES256)
	lookup := StaticKeys(ed.Public(), es.Public())
	good := mustMint(t, ed, sampleClaims())
	goodES := mustMint(t, es, sampleClaims())
	gp := parts(good)
	payload := string(dec(t, gp[1]))
	hdr := func(alg, kid, typ string) string {
		return fmt.Sprintf(`{"alg":%q,"kid":%q,"typ":%q}`, alg, kid, typ)
	}
	hmacToken := func(kid string, secret []byte) string {
		input := enc(hdr("HS256", kid, Type)) + "." + gp[1]
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(input))
		return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	}
	withClaims := func(k *Key, edit func(*Claims)) string {
		c := sampleClaims()
		edit(c)
		return mustMint(t, k, c)
	}

	edPub := []byte(ed.Public().Key.(ed25519.PublicKey))
	esPub := es.Public().Key.(*ecdsa.PublicKey)
	esPoint, err := esPub.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	esDER, err := x509.MarshalPKIXPublicKey(esPub)
	if err != nil {
		t.Fatal(err)
	}
	edJWK, _ := json.Marshal(ed.Public().JWK())

	altered := strings.Replace(payload, `"repo:read issues:write"`, `"repo:admin"`, 1)
	otherEd := genKey(t, AlgEdDSA)
	otherEd.ID = ed.ID
	otherES := genKey(t, AlgES256)
	otherES.ID = es.ID
	// A 64-byte signature leaves 4 unused bits in its last character;
	// setting one gives a different string that decodes to the same bytes
	// under a lenient decoder.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	nonCanonical := string(alphabet[strings.IndexByte(alphabet, good[len(good)-1])^1])
	jsonGeneral, _ := json.Marshal(map[string]any{
		"payload": gp[1],
		"signatures": []map[string]string{
			{"protected": gp[0], "signature": gp[2]},
			{"protected": parts(goodES)[0], "signature": parts(goodES)[2]},
		},
	})
	jsonFlat, _ := json.Marshal(map[string]string{"protected": gp[0], "payload": gp[1], "signature": gp[2]})

	cases := []struct {
		name   string
		tok    string
		opts   func(*VerifyOptions)
		lookup KeyLookup
		want   error
	}{
		{name: "alg none", tok: enc(hdr("none", ed.ID, Type)) + "." + gp[1] + ".", want: ErrAlgorithm},
		{name: "alg none bare", tok: enc(`{"alg":"none"}`) + "." + gp[1] + ".", want: ErrAlgorithm},
		{name: "alg None", tok: enc(hdr("None", ed.ID, Type)) + "." + gp[1] + "." + gp[2], want: ErrAlgorithm},
		{name: "HS256 with Ed25519 public key bytes", tok: hmacToken(ed.ID, edPub), want: ErrAlgorithm},
		{name: "HS256 with Ed25519 JWK bytes", tok: hmacToken(ed.ID, edJWK), want: ErrAlgorithm},
		{name: "HS256 with P-256 public point", tok: hmacToken(es.ID, esPoint), want: ErrAlgorithm},
		{name: "HS256 with P-256 PKIX DER", tok: hmacToken(es.ID, esDER), want: ErrAlgorithm},
		{name: "HS256 even when allow-listed", tok: hmacToken(ed.ID, edPub), want: ErrAlgorithm,
			opts: func(o *VerifyOptions) { o.Algorithms = []string{"HS256", AlgEdDSA} }},
		{name: "unknown kid", tok: mustMint(t, genKey(t, AlgEdDSA), sampleClaims()), want: ErrUnknownKey},
		{name: "lookup finds nothing", tok: good, lookup: func(string) (PublicKey, bool) { return PublicKey{}, false }, want: ErrUnknownKey},
		{name: "altered payload", tok: gp[0] + "." + enc(altered) + "." + gp[2], want: ErrSignature},
		{name: "altered header", tok: enc(`{"alg":"EdDSA","kid":"`+ed.ID+`","typ":"txntoken+jwt"}`+"\t") + "." + gp[1] + "." + gp[2], want: ErrSignature},
		{name: "altered header, extra member", tok: enc(`{"alg":"EdDSA","kid":"`+ed.ID+`","typ":"txntoken+jwt","x":1}`) + "." + gp[1] + "." + gp[2], want: ErrMalformed},
		{name: "other Ed25519 key same kid", tok: mustMint(t, otherEd, sampleClaims()), want: ErrSignature},
		{name: "other P-256 key same kid", tok: mustMint(t, otherES, sampleClaims()), want: ErrSignature},
		{name: "ES256 signature swapped onto EdDSA token", tok: gp[0] + "." + gp[1] + "." + parts(goodES)[2], want: ErrSignature},
		{name: "expired", tok: withClaims(ed, func(c *Claims) {
			c.IssuedAt, c.NotBefore, c.Expiry = c.IssuedAt-600, c.NotBefore-600, testNow.Unix()-31
		}), want: ErrExpired},
		{name: "nbf in the future", tok: withClaims(ed, func(c *Claims) { c.NotBefore = testNow.Unix() + 31 }), want: ErrNotYetValid},
		{name: "iat in the future", tok: withClaims(ed, func(c *Claims) { c.IssuedAt = testNow.Unix() + 31 }), want: ErrNotYetValid},
		{name: "wrong aud", tok: good, opts: func(o *VerifyOptions) { o.Audience = "https://other.example" }, want: ErrAudience},
		{name: "wrong iss", tok: good, opts: func(o *VerifyOptions) { o.Issuer = "https://evil.example" }, want: ErrIssuer},
		{name: "typ JWT", tok: signRaw(t, ed, hdr(AlgEdDSA, ed.ID, "JWT"), payload), want: ErrType},
		{name: "typ with media type prefix", tok: signRaw(t, ed, hdr(AlgEdDSA, ed.ID, "application/"+Type), payload), want: ErrType},
		{name: "typ missing", tok: signRaw(t, ed, `{"alg":"EdDSA","kid":"`+ed.ID+`"}`, payload), want: ErrType},
		{name: "kid missing", tok: signRaw(t, ed, `{"alg":"EdDSA","typ":"`+Type+`"}`, payload), want: ErrMalformed},
		{name: "crit header", tok: signRaw(t, ed, `{"alg":"EdDSA","kid":"`+ed.ID+`","typ":"`+Type+`","crit":["exp"]}`, payload), want: ErrMalformed},
		{name: "truncated", tok: good[:len(good)/2], want: ErrMalformed},
		{name: "signature truncated by one char", tok: good[:len(good)-1], want: ErrMalformed},
		{name: "signature truncated by two chars", tok: good[:len(good)-2], want: ErrSignature},
		{name: "signature missing", tok: gp[0] + "." + gp[1] + ".", want: ErrSignature},
		{name: "signature too long", tok: good + "AAAA", want: ErrSignature},
		{name: "non-canonical signature encoding", tok: good[:len(good)-1] + nonCanonical, want: ErrMalformed},
		{name: "oversized", tok: strings.Repeat("a", MaxTokenSize+1), want: ErrTooLarge},
		{name: "oversized valid prefix", tok: good + strings.Repeat("A", MaxTokenSize), want: ErrTooLarge},
		{name: "two parts", tok: gp[0] + "." + gp[1], want: ErrMalformed},
		{name: "four parts", tok: good + "." + gp[2], want: ErrMalformed},
		{name: "five parts (JWE shape)", tok: gp[0] + ".." + gp[1] + "." + gp[2] + ".", want: ErrMalformed},
		{name: "JSON general serialisation", tok: string(jsonGeneral), want: ErrMalformed},
		{name: "JSON flattened serialisation", tok: string(jsonFlat), want: ErrMalformed},
		{name: "empty", tok: "", want: ErrMalformed},
		{name: "dots only", tok: "..", want: ErrMalformed},
		{name: "garbage characters", tok: "!!!.***.$$$", want: ErrMalformed},
		{name: "garbage base64", tok: "a.b.c", want: ErrMalformed},
		{name: "header not JSON", tok: enc("abc") + "." + gp[1] + "." + gp[2], want: ErrMalformed},
		{name: "padding", tok: gp[0] + "=." + gp[1] + "." + gp[2], want: ErrMalformed},
		{name: "embedded newline", tok: gp[0] + ".\n" + gp[1] + "." + gp[2], want: ErrMalformed},
		{name: "leading space", tok: " " + good, want: ErrMalformed},
		{name: "ES256 not in allow-list", tok: goodES, opts: func(o *VerifyOptions) { o.Algorithms = []string{AlgEdDSA} }, want: ErrAlgorithm},
		{name: "header ES256 with Ed25519 key", tok: signRaw(t, es, hdr(AlgES256, ed.ID, Type), payload), want: ErrAlgorithm},
		{name: "header EdDSA with P-256 key", tok: signRaw(t, ed, hdr(AlgEdDSA, es.ID, Type), payload), want: ErrAlgorithm},
		{name: "lookup key of wrong Go type", tok: good, want: ErrAlgorithm,
			lookup: func(string) (PublicKey, bool) { return PublicKey{ID: ed.ID, Algorithm: AlgEdDSA, Key: esPub}, true }},
		{name: "lookup Ed25519 key of wrong length", tok: good, want: ErrAlgorithm,
			lookup: func(string) (PublicKey, bool) {
				return PublicKey{ID: ed.ID, Algorithm: AlgEdDSA, Key: ed25519.PublicKey{1, 2}}, true
			}},
		{name: "lookup nil P-256 key", tok: goodES, want: ErrAlgorithm,
			lookup: func(string) (PublicKey, bool) {
				return PublicKey{ID: es.ID, Algorithm: AlgES256, Key: (*ecdsa.PublicKey)(nil)}, true
			}},
		{name: "lookup key with unsupported alg", tok: signRaw(t, ed, hdr("RS256", ed.ID, Type), payload), want: ErrAlgorithm,
			opts:   func(o *VerifyOptions) { o.Algorithms = []string{"RS256"} },
			lookup: func(string) (PublicKey, bool) { return PublicKey{ID: ed.ID, Algorithm: "RS256", Key: edPub}, true }},
		{name: "missing jti", tok: withRawClaims(t, ed, func(m map[string]any) { delete(m, "jti") }), want: ErrClaims},
		{name: "missing txn", tok: withRawClaims(t, ed, func(m map[string]any) { delete(m, "txn") }), want: ErrClaims},
		{name: "missing exp", tok: withRawClaims(t, ed, func(m map[string]any) { delete(m, "exp") }), want: ErrClaims},
		{name: "missing iat", tok: withRawClaims(t, ed, func(m map[string]any) { delete(m, "iat") }), want: ErrClaims},
		{name: "missing scope", tok: withRawClaims(t, ed, func(m map[string]any) { delete(m, "scope") }), want: ErrClaims},
		{name: "missing dep", tok: withRawClaims(t, ed, func(m map[string]any) { delete(m, "dep") }), want: ErrClaims},
		{name: "dep zero", tok: withRawClaims(t, ed, func(m map[string]any) { m["dep"] = 0 }), want: ErrClaims},
		{name: "exp before iat", tok: withRawClaims(t, ed, func(m map[string]any) { m["exp"] = m["iat"] }), want: ErrClaims},
		{name: "aud as array", tok: withRawClaims(t, ed, func(m map[string]any) { m["aud"] = []string{"https://api.example"} }), want: ErrMalformed},
		{name: "exp as float", tok: withRawClaims(t, ed, func(m map[string]any) { m["exp"] = 1.5e9 + 0.5 }), want: ErrMalformed},
		{name: "payload not JSON", tok: signRaw(t, ed, hdr(AlgEdDSA, ed.ID, Type), "not json"), want: ErrMalformed},
		{name: "payload JSON array", tok: signRaw(t, ed, hdr(AlgEdDSA, ed.ID, Type), "[]"), want: ErrMalformed},
	}
	// Each case is refused by Verify and by a VerifyCache that has
	// already accepted the good tokens under the default options: a case
	// that reuses a good token with other options or another lookup must
	// be refused from the cache exactly as Verify refuses it.
	warm := NewVerifyCache(0)
	for _, tok := range []string{good, goodES} {
		if _, err := warm.Verify(tok, lookup, testOpts()); err != nil {
			t.Fatal(err)
		}
	}
	verifiers := []struct {
		name   string
		verify func(string, KeyLookup, VerifyOptions) (*Claims, error)
	}{{"Verify", Verify}, {"VerifyCache", warm.Verify}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOpts()
			if tc.opts != nil {
				tc.opts(&opts)
			}
			lk := lookup
			if tc.lookup != nil {
				lk = tc.lookup
			}
			for _, v := range verifiers {
				c, err := v.verify(tc.tok, lk, opts)
				if err == nil {
					t.Fatalf("%s accepted: %+v", v.name, c)
				}
				if c != nil {
					t.Errorf("%s: claims returned with error", v.name)
				}
				if !errors.Is(err, tc.want) {
					t.Fatalf("%s: err = %v, want %v", v.name, err, tc.want)
				}
				assertNoLeak(t, err, tc.tok)
			}
		})
	}
	for _, v := range verifiers {
		if _, err := v.verify(good, nil, testOpts()); !errors.Is(err, ErrUnknownKey) {
			t.Errorf("%s: nil lookup: err = %v", v.name, err)
		}
	}
	if warm.Len() != 2 {
		t.Errorf("the cache holds %d credentials after the refusals, want the 2 good ones", warm.Len())
	}
}

// withRawClaims re-signs sampleClaims after editing them as a generic map,
// so that tests can produce claim sets Mint would refuse.
func withRawClaims(tb testing.TB, k *Key, edit func(map[string]any)) string {
	tb.Helper()
	b, _ := json.Marshal(sampleClaims())
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatal(err)
	}
	edit(m)
	b, _ = json.Marshal(m)
	return signRaw(tb, k, fmt.Sprintf(`{"alg":%q,"kid":%q,"typ":%q}`, k.Algorithm, k.ID, Type), string(b))
}

// assertNoLeak fails if err's message contains any sizeable piece of tok.
func assertNoLeak(tb testing.TB, err error, tok string) {
	tb.Helper()
	msg := err.Error()
	for _, p := range strings.FieldsFunc(tok, func(r rune) bool { return r == '.' || r == '\n' || r == ' ' }) {
		if len(p) >= 8 && strings.Contains(msg, p) {
			tb.Fatalf("error message leaks token content: %q", msg)
		}
	}
}

func TestTimeBoundaries(t *testing.T) {
	k := fixedKey(t, AlgEdDSA)
	lookup := StaticKeys(k.Public())
	c := sampleClaims()
	tok := mustMint(t, k, c)
	at := func(now time.Time, leeway time.Duration) error {
		opts := anyAudience(now)
		opts.Leeway = leeway
		_, err := Verify(tok, lookup, opts)
		return err
	}
	exp, nbf := time.Unix(c.Expiry, 0), time.Unix(c.NotBefore, 0)
	checks := []struct {
		name   string
		now    time.Time
		leeway time.Duration
		want   error
	}{
		{"just before exp+default leeway", exp.Add(DefaultLeeway - time.Nanosecond), 0, nil},
		{"at exp+default leeway", exp.Add(DefaultLeeway), 0, ErrExpired},
		{"just before exp, no leeway", exp.Add(-time.Nanosecond), -1, nil},
		{"at exp, no leeway", exp, -1, ErrExpired},
		{"at nbf, no leeway", nbf, -1, nil},
		{"just before nbf, no leeway", nbf.Add(-time.Nanosecond), -1, ErrNotYetValid},
		{"nbf minus default leeway", nbf.Add(-DefaultLeeway), 0, nil},
		{"beyond nbf leeway", nbf.Add(-DefaultLeeway - time.Second), 0, ErrNotYetValid},
		{"custom leeway", exp.Add(90 * time.Second), 2 * time.Minute, nil},
	}
	for _, ck := range checks {
		if err := at(ck.now, ck.leeway); !errors.Is(err, ck.want) && !(err == nil && ck.want == nil) {
			t.Errorf("%s: err = %v, want %v", ck.name, err, ck.want)
		}
	}
	// Zero Now means the wall clock: the sample token expired long ago.
	if _, err := Verify(tok, lookup, anyAudience(time.Time{})); !errors.Is(err, ErrExpired) {
		t.Errorf("zero Now: err = %v, want ErrExpired", err)
	}
	// Extreme claim values must not wrap around.
	huge := sampleClaims()
	huge.NotBefore = 1<<63 - 1
	if _, err := Verify(mustMint(t, k, huge), lookup, anyAudience(testNow)); !errors.Is(err, ErrNotYetValid) {
		t.Errorf("huge nbf: err = %v", err)
	}
	huge = sampleClaims()
	huge.Expiry = 1<<63 - 1
	hugeOpts := anyAudience(testNow)
	hugeOpts.Leeway = 1 << 62
	if _, err := Verify(mustMint(t, k, huge), lookup, hugeOpts); err != nil {
		t.Errorf("huge exp: err = %v", err)
	}
}

func TestMintRejects(t *testing.T) {
	k := fixedKey(t, AlgEdDSA)
	edits := map[string]func(*Claims){
		"no jti":        func(c *Claims) { c.ID = "" },
		"no txn":        func(c *Claims) { c.Txn = "" },
		"no scope":      func(c *Claims) { c.Scope = "" },
		"no iat":        func(c *Claims) { c.IssuedAt = 0 },
		"no exp":        func(c *Claims) { c.Expiry = 0 },
		"exp at iat":    func(c *Claims) { c.Expiry = c.IssuedAt },
		"dep 0":         func(c *Claims) { c.Depth = 0 },
		"empty actor":   func(c *Claims) { c.Act = PushActor(PushActor(nil, ""), "x") },
		"bad cnf":       func(c *Claims) { c.Cnf = &Confirmation{JKT: "abc"} },
		"empty cnf jkt": func(c *Claims) { c.Cnf = &Confirmation{} },
	}
	for name, edit := range edits {
		c := sampleClaims()
		edit(c)
		if _, err := Mint(k, c); !errors.Is(err, ErrClaims) {
			t.Errorf("%s: err = %v, want ErrClaims", name, err)
		}
	}
	if _, err := Mint(k, nil); !errors.Is(err, ErrClaims) {
		t.Errorf("nil claims: err = %v", err)
	}
	big := sampleClaims()
	big.Scope = strings.Repeat("s ", MaxTokenSize/2)
	if _, err := Mint(k, big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("large claims: err = %v, want ErrTooLarge", err)
	}
	if _, err := Mint(&Key{ID: "x", Algorithm: AlgEdDSA}, sampleClaims()); err == nil {
		t.Error("key without private part accepted")
	}
	if _, err := Mint(nil, sampleClaims()); err == nil {
		t.Error("nil key accepted")
	}
	mismatched := *fixedKey(t, AlgEdDSA)
	mismatched.Algorithm = AlgES256
	if _, err := Mint(&mismatched, sampleClaims()); !errors.Is(err, ErrAlgorithm) {
		t.Errorf("algorithm/key mismatch: err = %v", err)
	}
}

func TestPeekKeyID(t *testing.T) {
	k := fixedKey(t, AlgES256)
	tok := mustMint(t, k, sampleClaims())
	if kid, err := PeekKeyID(tok); err != nil || kid != k.ID {
		t.Fatalf("PeekKeyID = %q, %v", kid, err)
	}
	for _, bad := range []string{"", "a.b", "!.b.c", enc(`{"alg":"EdDSA"}`) + ".e30.", enc("x") + ".e30."} {
		if _, err := PeekKeyID(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("PeekKeyID(%q): err = %v", bad, err)
		}
	}
	if _, err := PeekKeyID(strings.Repeat("a", MaxTokenSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized: err = %v", err)
	}
}

// TestInteropGoJose checks the wire format against an independent JOSE
// implementation in both directions.
func TestInteropGoJose(t *testing.T) {
	for _, alg := range []string{AlgEdDSA, AlgES256} {
		t.Run(alg, func(t *testing.T) {
			k := genKey(t, alg)
			want := sampleClaims()
			tok := mustMint(t, k, want)

			parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
			if err != nil {
				t.Fatal(err)
			}
			h := parsed.Headers[0]
			if h.KeyID != k.ID || h.Algorithm != alg || h.ExtraHeaders["typ"] != Type {
				t.Fatalf("go-jose sees header %+v", h)
			}
			var std jwt.Claims
			var got Claims
			if err := parsed.Claims(k.Public().Key, &std, &got); err != nil {
				t.Fatal(err)
			}
			if err := std.Validate(jwt.Expected{Issuer: want.Issuer, AnyAudience: jwt.Audience{want.Audience}, Time: testNow}); err != nil {
				t.Fatal(err)
			}
			got.Format = FormatTxnToken // not a claim: the header's typ says it
			if !reflect.DeepEqual(&got, want) {
				t.Fatalf("go-jose decoded %+v", got)
			}

			signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: k.priv},
				(&jose.SignerOptions{}).WithType(Type).WithHeader("kid", k.ID))
			if err != nil {
				t.Fatal(err)
			}
			theirs, err := jwt.Signed(signer).Claims(want).Serialize()
			if err != nil {
				t.Fatal(err)
			}
			if alg == AlgES256 {
				// go-jose signs with a random S, high half the time;
				// Verify accepts only the low-S twin.
				sig := dec(t, parts(theirs)[2])
				if !lowS(sig) {
					if _, err := Verify(theirs, StaticKeys(k.Public()), testOpts()); !errors.Is(err, ErrSignature) {
						t.Fatalf("high-S go-jose token: %v, want ErrSignature", err)
					}
					normalizeLowS(sig)
					theirs = withSig(theirs, sig)
				}
			}
			got2, err := Verify(theirs, StaticKeys(k.Public()), testOpts())
			if err != nil {
				t.Fatalf("Verify(go-jose token): %v", err)
			}
			if !reflect.DeepEqual(got2, want) {
				t.Fatalf("claims differ: %+v", got2)
			}
		})
	}
}

func TestConcurrent(t *testing.T) {
	ed, es := fixedKey(t, AlgEdDSA), genKey(t, AlgES256)
	lookup := StaticKeys(ed.Public(), es.Public())
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := ed
			if i%2 == 1 {
				k = es
			}
			for range 20 {
				c := sampleClaims()
				c.ID = fmt.Sprintf("cred-%d", i)
				tok, err := Mint(k, c)
				if err != nil {
					errs <- err
					return
				}
				got, err := Verify(tok, lookup, testOpts())
				if err != nil || got.ID != c.ID {
					errs <- fmt.Errorf("verify: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestValidThumbprint(t *testing.T) {
	good := []string{"NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs", fixedKey(t, AlgEdDSA).ID}
	bad := []string{"", "abc", "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs=",
		"NzbLsXh8uDCcd+6MNwXF4W/7noWXFZAfHkxZsRGC9Xs", "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xt",
		"NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9X\n", strings.Repeat("A", 44)}
	for _, s := range good {
		if !ValidThumbprint(s) {
			t.Errorf("ValidThumbprint(%q) = false", s)
		}
	}
	for _, s := range bad {
		if ValidThumbprint(s) {
			t.Errorf("ValidThumbprint(%q) = true", s)
		}
	}
}

func TestIgnoreValidityStillChecksSignature(t *testing.T) {
	k := genKey(t, AlgEdDSA)
	c := sampleClaims()
	tok := mustMint(t, k, c)
	late := time.Unix(c.Expiry, 0).Add(time.Hour)
	if _, err := Verify(tok, StaticKeys(k.Public()), anyAudience(late)); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired token: got %v, want ErrExpired", err)
	}
	ignore := anyAudience(late)
	ignore.IgnoreValidity = true
	got, err := Verify(tok, StaticKeys(k.Public()), ignore)
	if err != nil || got.ID != c.ID {
		t.Fatalf("IgnoreValidity: got %v, %v", got, err)
	}
	other := genKey(t, AlgEdDSA)
	forged := StaticKeys(PublicKey{ID: k.ID, Algorithm: AlgEdDSA, Key: other.Public().Key})
	if _, err := Verify(tok, forged, ignore); !errors.Is(err, ErrSignature) {
		t.Fatalf("wrong key with IgnoreValidity: got %v, want ErrSignature", err)
	}
}

// TestVerifyOptionsRequired: Verify refuses to run without an expected
// issuer, and without an expected audience unless AnyAudience is set.
func TestVerifyOptionsRequired(t *testing.T) {
	k := fixedKey(t, AlgEdDSA)
	lookup := StaticKeys(k.Public())
	tok := mustMint(t, k, sampleClaims())
	iss, aud := sampleClaims().Issuer, sampleClaims().Audience
	for name, opts := range map[string]VerifyOptions{
		"zero options":             {},
		"no issuer":                {Audience: aud, Now: testNow},
		"no issuer, any audience":  {AnyAudience: true, Now: testNow},
		"no audience":              {Issuer: iss, Now: testNow},
		"no audience, ignore time": {Issuer: iss, IgnoreValidity: true},
		"audience and any":         {Issuer: iss, Audience: aud, AnyAudience: true, Now: testNow},
	} {
		for _, raw := range []string{tok, "", "garbage"} {
			if c, err := Verify(raw, lookup, opts); !errors.Is(err, ErrOptions) || c != nil {
				t.Errorf("%s: Verify = %+v, %v; want ErrOptions", name, c, err)
			}
		}
	}

	// AnyAudience accepts every audience, and still checks the rest.
	for _, a := range []string{aud, "https://other.example", ""} {
		c := sampleClaims()
		c.Audience = a
		got, err := Verify(mustMint(t, k, c), lookup, anyAudience(testNow))
		if err != nil || got.Audience != a {
			t.Errorf("AnyAudience, aud %q: %+v, %v", a, got, err)
		}
	}
	wrongIss := anyAudience(testNow)
	wrongIss.Issuer = "https://evil.example"
	if _, err := Verify(tok, lookup, wrongIss); !errors.Is(err, ErrIssuer) {
		t.Errorf("AnyAudience, wrong issuer: %v", err)
	}
	late := anyAudience(testNow.Add(time.Hour))
	if _, err := Verify(tok, lookup, late); !errors.Is(err, ErrExpired) {
		t.Errorf("AnyAudience, expired: %v", err)
	}
	// An empty "aud" never matches a resource server's audience.
	c := sampleClaims()
	c.Audience = ""
	if _, err := Verify(mustMint(t, k, c), lookup, testOpts()); !errors.Is(err, ErrAudience) {
		t.Errorf("empty aud: %v", err)
	}
}

// TestMaxLifetime: a credential whose exp - iat, or exp - nbf when nbf is
// set and earlier, exceeds MaxLifetime is refused with ErrLifetime.
func TestMaxLifetime(t *testing.T) {
	k := fixedKey(t, AlgEdDSA)
	lookup := StaticKeys(k.Public())
	n := testNow.Unix()
	mint := func(iat, nbf, exp int64) string {
		c := sampleClaims()
		c.IssuedAt, c.NotBefore, c.Expiry = iat, nbf, exp
		return mustMint(t, k, c)
	}
	for _, tc := range []struct {
		name          string
		iat, nbf, exp int64
		max           time.Duration
		ignore        bool
		want          error
	}{
		{"no ceiling", n - 10, n - 10, n + 10*365*86400, 0, false, nil},
		{"negative ceiling is none", n - 10, n - 10, n + 86400, -time.Second, false, nil},
		{"exactly the ceiling", n - 10, n - 10, n + 290, 5 * time.Minute, false, nil},
		{"one second over", n - 10, n - 10, n + 291, 5 * time.Minute, false, ErrLifetime},
		{"fractions truncated", n - 10, n - 10, n + 290, 5*time.Minute + 999*time.Millisecond, false, nil},
		{"fractions truncated, over", n - 10, n - 10, n + 291, 5*time.Minute + 999*time.Millisecond, false, ErrLifetime},
		{"nbf absent (0)", n - 10, 0, n + 290, 5 * time.Minute, false, nil},
		{"nbf after iat", n - 10, n, n + 290, 5 * time.Minute, false, nil},
		{"nbf before iat stretches it", n - 10, n - 20, n + 290, 5 * time.Minute, false, ErrLifetime},
		{"nbf negative", n - 10, -1, n + 60, 5 * time.Minute, false, ErrLifetime},
		{"nbf at the minimum", n - 10, -1 << 63, n + 60, 5 * time.Minute, false, ErrLifetime},
		{"exp at the maximum", n - 10, n - 10, 1<<63 - 1, 5 * time.Minute, false, ErrLifetime},
		{"huge ceiling", n - 10, -1 << 63, 1<<63 - 1, 1<<63 - 1, false, ErrLifetime},
		{"IgnoreValidity still checks it", n - 10, n - 10, n + 3600, 5 * time.Minute, true, ErrLifetime},
	} {
		opts := testOpts()
		opts.MaxLifetime, opts.IgnoreValidity = tc.max, tc.ignore
		if tc.want == nil {
			opts.IgnoreValidity = true // some windows do not hold testNow
		}
		c, err := Verify(mint(tc.iat, tc.nbf, tc.exp), lookup, opts)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: %+v, %v; want %v", tc.name, c, err, tc.want)
		}
		if err != nil && sentinelOf(err) != ErrLifetime {
			t.Errorf("%s: not a distinct sentinel: %v", tc.name, err)
		}
	}
	// The ceiling comes before the validity window: an over-long
	// credential is refused as such even when expired.
	opts := testOpts()
	opts.MaxLifetime = time.Minute
	opts.Now = testNow.Add(24 * time.Hour)
	if _, err := Verify(mustMint(t, k, sampleClaims()), lookup, opts); !errors.Is(err, ErrLifetime) {
		t.Errorf("expired and over-long: %v", err)
	}
}

// TestES256LowS: Mint writes only low-S ES256 signatures, and Verify
// refuses the high-S twin (R, N-S) of a valid signature, which plain
// go-jose accepts.
func TestES256LowS(t *testing.T) {
	k := genKey(t, AlgES256)
	lookup := StaticKeys(k.Public())
	for i := range 64 { // a random S is high half the time
		c := sampleClaims()
		c.ID = fmt.Sprintf("cred-%d", i)
		tok := mustMint(t, k, c)
		if !lowS(dec(t, parts(tok)[2])) {
			t.Fatalf("Mint wrote a high-S signature")
		}
		if _, err := Verify(tok, lookup, testOpts()); err != nil {
			t.Fatal(err)
		}
		hi := highS(t, tok)
		if got, err := Verify(hi, lookup, testOpts()); !errors.Is(err, ErrSignature) {
			t.Fatalf("high-S twin: %+v, %v; want ErrSignature", got, err)
		}
		if _, err := refVerify(hi, lookup, testOpts()); err != nil {
			t.Fatalf("go-jose alone refuses the high-S twin (%v): the test proves nothing", err)
		}
	}
}

// TestSignJWSAndVerifyJWS: the generic signing path writes exactly the
// header {"alg","kid","typ"} with the typ asked for, VerifyJWS returns the
// payload only for that typ, with the same pre-checks as Verify, and
// DecodeStrict reads it by the strict rules.
func TestSignJWSAndVerifyJWS(t *testing.T) {
	for _, alg := range []string{AlgEdDSA, AlgES256} {
		k := fixedKey(t, alg)
		payload := []byte(`{"iss":"x","n":1}`)
		raw, err := SignJWS(k, "secevent+jwt", payload)
		if err != nil {
			t.Fatal(err)
		}
		wantHdr := fmt.Sprintf(`{"alg":%q,"kid":%q,"typ":"secevent+jwt"}`, alg, k.ID)
		if h := string(dec(t, parts(raw)[0])); h != wantHdr {
			t.Fatalf("header = %s, want %s", h, wantHdr)
		}
		got, err := VerifyJWS(raw, StaticKeys(k.Public()), "secevent+jwt", nil)
		if err != nil || string(got) != string(payload) {
			t.Fatalf("VerifyJWS = %s, %v", got, err)
		}
		if _, err := VerifyJWS(raw, StaticKeys(k.Public()), Type, nil); !errors.Is(err, ErrType) {
			t.Fatalf("VerifyJWS with another typ: %v, want ErrType", err)
		}
		if _, err := Verify(raw, StaticKeys(k.Public()), testOpts()); !errors.Is(err, ErrType) {
			t.Fatalf("Verify of a secevent+jwt: %v, want ErrType", err)
		}
		if _, err := VerifyJWS(raw, StaticKeys(), "secevent+jwt", nil); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("VerifyJWS without the key: %v, want ErrUnknownKey", err)
		}
		if _, err := VerifyJWS(raw, StaticKeys(k.Public()), "", nil); !errors.Is(err, ErrOptions) {
			t.Fatalf("VerifyJWS without a typ: %v, want ErrOptions", err)
		}
	}
	if _, err := SignJWS(fixedKey(t, AlgEdDSA), "", []byte(`{}`)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("SignJWS without a typ: %v", err)
	}
	var v struct {
		Iss string `json:"iss"`
	}
	if _, err := DecodeStrict([]byte(`{"iss":"a","ISS":"b"}`), &v); !errors.Is(err, ErrMalformed) {
		t.Fatalf("DecodeStrict of case variants: %v", err)
	}
	if m, err := DecodeStrict([]byte(`{"iss":"a","x":{"y":1}}`), &v); err != nil || v.Iss != "a" || m["x"] == nil {
		t.Fatalf("DecodeStrict = %v, %v, %v", m, v, err)
	}
}
