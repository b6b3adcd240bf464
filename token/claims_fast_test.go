package token

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// mintedPayloads returns the claims payloads, as Mint writes them, of
// claim sets exercising every optional member.
func mintedPayloads(tb testing.TB) [][]byte {
	tb.Helper()
	edits := []func(*Claims){
		func(*Claims) {},
		func(c *Claims) { c.Tctx, c.Rctx, c.Parent, c.Act, c.Cnf = nil, nil, "", nil, nil },
		func(c *Claims) { c.Tctx = &TxnContext{Role: "r"} },
		func(c *Claims) { c.Tctx = &TxnContext{} },
		func(c *Claims) { c.Rctx = &RequestContext{Step: "s"} },
		func(c *Claims) { c.Rctx = &RequestContext{ReqIP: "::1"} },
		func(c *Claims) { c.Act = nil },
		func(c *Claims) { c.Act = PushActor(nil, "only") },
		func(c *Claims) {
			for i := range maxMintedActors + 3 {
				c.Act = PushActor(c.Act, strings.Repeat("a", i+1))
			}
		},
		func(c *Claims) { c.Cnf = nil },
		func(c *Claims) { c.Issuer, c.Subject, c.Audience = "", "", "" },
		func(c *Claims) { c.NotBefore = -1 },
		func(c *Claims) { c.NotBefore = 0 },
		func(c *Claims) { c.NotBefore, c.Expiry = -1<<63, 1<<63-1 },
		func(c *Claims) { c.Depth = 1<<31 + 5 },
		func(c *Claims) { c.Scope = "read:é/日本 write:x" },                     // UTF-8, no escape
		func(c *Claims) { c.Tctx.Purpose = `say "hi" <b>&\ ` + "\n\u2028\t" }, // escapes
		func(c *Claims) { c.Subject = "bad \xff utf-8" },                      // Marshal writes \ufffd
		func(c *Claims) { c.Rctx.Step = "\x7f\u00a0" },
	}
	var out [][]byte
	for _, edit := range edits {
		c := sampleClaims()
		edit(c)
		cc := *c
		if cc.Rctx != nil && *cc.Rctx == (RequestContext{}) {
			cc.Rctx = nil
		}
		b, err := json.Marshal(&cc)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// assertMintedClaimsAgree fails if mintedClaims recognises p but
// encoding/json reads it differently (or not at all).
func assertMintedClaimsAgree(t *testing.T, p []byte) (recognised bool) {
	t.Helper()
	got, ok := mintedClaims(p)
	if !ok {
		return false
	}
	want := new(Claims)
	if err := json.Unmarshal(p, want); err != nil {
		t.Fatalf("mintedClaims read %s, which encoding/json refuses: %v", p, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("mintedClaims read %s as\n%+v\nencoding/json as\n%+v", p, got, want)
	}
	return true
}

func TestMintedClaims(t *testing.T) {
	for _, p := range mintedPayloads(t) {
		recognised := assertMintedClaimsAgree(t, p)
		// Mint's output is recognised unless it has escapes or an actor
		// chain longer than maxMintedActors.
		long := strings.Count(string(p), `"act":`) > maxMintedActors
		if recognised == (strings.Contains(string(p), `\`) || long) {
			t.Errorf("recognised = %v for %s", recognised, p)
		}
	}
	sample, _ := json.Marshal(sampleClaims())
	s := string(sample)
	for _, p := range []string{
		"", "{}", "null", "[]", s + " ", " " + s, s + "x", s[:len(s)-1],
		strings.Replace(s, `"iss"`, `"ISS"`, 1),
		strings.Replace(s, `{"iss":`, `{"iss":"dup","iss":`, 1),
		strings.Replace(s, `,"sub":`, `, "sub":`, 1),
		strings.Replace(s, `"dep":2`, `"dep":2.0`, 1),
		strings.Replace(s, `"dep":2`, `"dep":02`, 1),
		strings.Replace(s, `"dep":2`, `"dep":2e0`, 1),
		strings.Replace(s, `"dep":2`, `"dep":-`, 1),
		strings.Replace(s, `"dep":2`, `"dep":"2"`, 1),
		strings.Replace(s, `"dep":2`, `"dep":99999999999999999999`, 1),
		strings.Replace(s, `"aud":"https://api.example"`, `"aud":["https://api.example"]`, 1),
		strings.Replace(s, `"tctx":{`, `"tctx":null,"x":{`, 1),
		strings.Replace(s, `"jti":"cred-0001"`, `"jti":"cred\u0030001"`, 1),
		strings.Replace(s, `"jti":"cred-0001"`, "\"jti\":\"cred\x01\"", 1),
		strings.Replace(s, `"jti":"cred-0001"`, "\"jti\":\"cred\xc3\"", 1),
		strings.Replace(s, `"rctx":{`, `"rctx":{"req_ip":"a",`, 1),
		strings.Replace(s, `,"cnf":`, `,"cnf":null,"cnf2":`, 1),
	} {
		if assertMintedClaimsAgree(t, []byte(p)) {
			t.Errorf("recognised: %s", p)
		}
	}
	// Empty objects are read as encoding/json reads them.
	for _, p := range []string{
		strings.Replace(s, `"rctx":{"step":"fetch-issues","req_ip":"10.0.0.7"}`, `"rctx":{}`, 1),
	} {
		if !assertMintedClaimsAgree(t, []byte(p)) {
			t.Errorf("not recognised: %s", p)
		}
	}
}

// FuzzMintedClaims checks that whatever mintedClaims recognises,
// encoding/json decodes to the same claims.
func FuzzMintedClaims(f *testing.F) {
	for _, p := range mintedPayloads(f) {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		assertMintedClaimsAgree(t, p)
	})
}
