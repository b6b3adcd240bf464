// Package conformance generates the conformance vectors every verifier of
// the engine's credentials must pass, in any language: the scope grammar,
// matching and containment; credentials with their keys, valid ones and
// each way one must be refused, with the error code to refuse it with; and
// revocation-feed sequences. The vectors are written from this Go code,
// which is the reference (scope, token, verifier), to
// testdata/conformance/ by `go run ./internal/conformance/cmd`; a test
// fails when what is checked in differs from what the code writes, and
// when the Go packages disagree with a vector.
package conformance

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/continuoustrust/vault-plugin-secrets-agent/dpop"
	"github.com/continuoustrust/vault-plugin-secrets-agent/scope"
	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
	"github.com/continuoustrust/vault-plugin-secrets-agent/verifier"
)

// The verification context of the credential vectors.
const (
	Issuer         = "https://vault.example.com:8200/v1/agent"
	Now            = 1_800_000_000
	LeewaySeconds  = 30
	MaxLifetimeSec = 3600
	// RevokedSession is the session the revocation list of the credential
	// vectors holds.
	RevokedSession = "sess-revoked"
)

// Error codes: what a verifier refuses a credential with. Every verifier
// names its refusals with these codes (TypeScript: err.code; Python:
// exc.code).
const (
	CodeMalformed     = "malformed"
	CodeTooLarge      = "too_large"
	CodeAlgorithm     = "algorithm"
	CodeUnknownKey    = "unknown_key"
	CodeSignature     = "signature"
	CodeType          = "type"
	CodeIssuer        = "issuer"
	CodeAudience      = "audience"
	CodeExpired       = "expired"
	CodeNotYetValid   = "not_yet_valid"
	CodeClaims        = "claims"
	CodeLifetime      = "lifetime"
	CodeSessionClosed = "session_closed"
	CodeProofRequired = "proof_required"
)

// Code is the conformance code of a Go verification error.
func Code(err error) string {
	for _, c := range []struct {
		err  error
		code string
	}{
		{verifier.ErrSessionClosed, CodeSessionClosed}, {verifier.ErrProof, CodeProofRequired},
		{token.ErrTooLarge, CodeTooLarge}, {token.ErrMalformed, CodeMalformed}, {token.ErrAlgorithm, CodeAlgorithm},
		{token.ErrUnknownKey, CodeUnknownKey}, {token.ErrSignature, CodeSignature}, {token.ErrType, CodeType},
		{token.ErrIssuer, CodeIssuer}, {token.ErrAudience, CodeAudience}, {token.ErrExpired, CodeExpired},
		{token.ErrNotYetValid, CodeNotYetValid}, {token.ErrLifetime, CodeLifetime}, {token.ErrClaims, CodeClaims},
	} {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return "other: " + err.Error()
}

// Generate writes every vector file: name -> content.
func Generate() (map[string][]byte, error) {
	out := map[string][]byte{}
	for name, gen := range map[string]func() (any, error){
		"scope.json":       scopeVectors,
		"tokens.json":      tokenVectors,
		"revocations.json": revocationVectors,
		"htu.json":         htuVectors,
	} {
		v, err := gen()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return nil, err
		}
		out[name] = append(b, '\n')
	}
	return out, nil
}

// ---- DPoP htu ----

// HTUFile is htu.json: URLs as a DPoP proof's "htu" (or a request's URL)
// may spell them, and what Go's dpop.NormalizeURL makes of each. A port
// compares URLs only through its normalisation, so it must never give
// another value than Go's: it gives Go's, or refuses (a port may refuse
// more than Go, never less), and it must take the plain ones.
type HTUFile struct {
	Description string    `json:"description"`
	Cases       []HTUCase `json:"cases"`
}

// HTUCase is one URL: Normalized is Go's result, empty when Go refuses
// it; Plain says a port must take it.
type HTUCase struct {
	URL        string `json:"url"`
	Normalized string `json:"normalized"`
	Plain      bool   `json:"plain,omitempty"`
}

func htuVectors() (any, error) {
	f := HTUFile{Description: "A port's normalisation of each url either equals normalized (Go's dpop.NormalizeURL) or refuses it; " +
		"it refuses every url whose normalized is empty, and takes every plain one."}
	for _, c := range []struct {
		url   string
		plain bool
	}{
		{"https://rs.example/x", true}, {"HTTPS://RS.Example:443/x?q=1#f", true}, {"http://rs.example:80", true},
		{"https://rs.example:8443/a/b/", true}, {"https://rs.example/a/../b", true}, {"https://rs.example/./a", true},
		{"https://rs.example/%7Ex", true}, {"https://rs.example/%7ex", true}, {"http://[::1]:8080/x", true},
		{"https://rs.example:/x", true}, {"https://rs.example:0443/x", true}, {"https://RS.example/A", true},
		{"http://u:p@rs.example/x", false}, {"https://evil.example\\@rs.example/x", false}, {"https://a<b@rs.example/", false},
		{"https://rs.example/a b", false}, {"https://rs.example/a\tb", false}, {"https://rs.example/a|b", false},
		{"https://rs.example/%zz", false}, {"https://rs.example/x#%zz", false}, {"https://[fe80::1%25eth0]/x", false},
		{"https://[1.2.3.4]/x", false}, {"https://café.example/x", false}, {"https://rs.example/é", false},
		{"ftp://rs.example/x", false}, {"https:///x", false}, {"//rs.example/x", false}, {"https://rs.example\\x", false},
		{"https://rs.example/\u0000", false}, {"", false},
	} {
		n, err := dpop.NormalizeURL(c.url)
		if err != nil {
			n = ""
		}
		if c.plain && n == "" {
			return nil, fmt.Errorf("htu %q: Go refuses a plain URL", c.url)
		}
		f.Cases = append(f.Cases, HTUCase{URL: c.url, Normalized: n, Plain: c.plain})
	}
	return f, nil
}

// ---- case folding ----

// CaseFoldSources returns the case-folding tables of the TypeScript and
// Python verifiers, by their paths from the repository's root: for every
// rune whose Unicode simple case folding orbit holds others, the smallest
// rune of that orbit. Two member names are equal under Go's
// strings.EqualFold exactly when they map to the same runes, which is
// how the engine's strict JSON reading compares them.
func CaseFoldSources() map[string][]byte {
	var pairs [][2]rune
	for r := rune(0); r <= unicode.MaxRune; r++ {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		if least != r {
			pairs = append(pairs, [2]rune{r, least})
		}
	}
	var js, py strings.Builder
	const note = "Generated by go run ./internal/conformance/cmd from Go's unicode.SimpleFold; do not edit."
	js.WriteString("// " + note + "\n//\n// FOLD maps a code point to the least code point of its Unicode simple case\n// folding orbit, for every code point whose orbit holds others: two member\n// names are equal under Go's strings.EqualFold exactly when they fold to the\n// same string.\nexport const FOLD = new Map([\n")
	py.WriteString("\"\"\"" + note + "\n\nFOLD maps a code point to the least code point of its Unicode simple case\nfolding orbit, for every code point whose orbit holds others: two member\nnames are equal under Go's strings.EqualFold exactly when they fold to the\nsame string.\"\"\"\n\nFOLD = {\n")
	for i, p := range pairs {
		if i%8 == 0 {
			js.WriteString("  ")
			py.WriteString("    ")
		}
		fmt.Fprintf(&js, "[0x%x, 0x%x],", p[0], p[1])
		fmt.Fprintf(&py, "0x%x: 0x%x,", p[0], p[1])
		if i%8 == 7 || i == len(pairs)-1 {
			js.WriteString("\n")
			py.WriteString("\n")
		} else {
			js.WriteString(" ")
			py.WriteString(" ")
		}
	}
	js.WriteString("]);\n")
	py.WriteString("}\n")
	return map[string][]byte{
		"sdks/typescript/src/casefold.js":        []byte(js.String()),
		"sdks/python/agent_verifier/casefold.py": []byte(py.String()),
	}
}

// ---- scope ----

// ScopeFile is scope.json.
type ScopeFile struct {
	Description string          `json:"description"`
	Parse       []ParseCase     `json:"parse"`
	Match       []MatchCase     `json:"match"`
	Contains    []ContainsCase  `json:"contains"`
	Sets        []SetMatchCases `json:"sets"`
}

// ParseCase: input parses to canonical, or fails at the byte offset.
type ParseCase struct {
	Input     string `json:"input"`
	Valid     bool   `json:"valid"`
	Canonical string `json:"canonical,omitempty"`
	Offset    *int   `json:"offset,omitempty"`
}

// MatchCase: scope allows (action, resource) or not.
type MatchCase struct {
	Scope    string `json:"scope"`
	Action   string `json:"action"`
	Resource string `json:"resource"`
	Allowed  bool   `json:"allowed"`
}

// ContainsCase: every request inner allows, outer allows.
type ContainsCase struct {
	Outer     string `json:"outer"`
	Inner     string `json:"inner"`
	Contained bool   `json:"contained"`
}

// SetMatchCases: a "scope" claim (space-separated) and what it allows.
type SetMatchCases struct {
	Claim   string      `json:"claim"`
	Valid   bool        `json:"valid"`
	Matches []MatchCase `json:"matches,omitempty"`
}

var trickyPatterns = []string{
	"read:a", "read:a/b", "read:a/*", "read:a*", "read:a/b*", "read:+", "read:+/b", "read:a/+",
	"read:a/+/c", "read:+/+", "read:*", "*:*", "*:a/*", "read,write:a/*", "write,read:a/b", "read:a/.x*",
	"read:.*", "read:a/b/*", "list,read:secrets/web/*", "read:secrets/we*", "read:secrets/web/tls",
	"deploy:k8s/+/deployments/web", "read,list:a", "x:a/b/c", "read:a/+/*", "call:tools/search",
	"call:tools/*", "read:resources/docs/*", "get:prompts/+", "read:A/b", "read:a~b@c=d-e.f_g",
}

var trickyParse = []string{
	"", ":", "read", "read:", ":a", "READ:a", "Read:a", "read:a//b", "read:/a", "read:a/", "read:a/../b",
	"read:a/./b", "read:.", "read:..", "read:a+", "read:+*", "read:a/+*", "read:a*b", "re*ad:a", "read,,write:a",
	"read,:a", ",read:a", "*,read:a", "read,*:a", "read:a b", "read:\u00e9", "read:a/b/", "b,a,b:x", "read:a%2f",
	"read:a:b", "read:*/a", "read:a/**", "read:a/*/", "read:...", "read:..x", "read:.x/..*", "a.b_c-d:x",
	"read:" + strings.Repeat("a", scope.MaxLength-5), "read:" + strings.Repeat("a", scope.MaxLength-4),
	"read:a\x00", "read\t:a", "read:a\xff", "*:+/+/*", "read:++", "read:+a", "read:a+/b",
}

var matchRequests = []struct{ action, resource string }{
	{"read", "a"}, {"read", "a/b"}, {"read", "a/b/c"}, {"write", "a/b"}, {"read", "ab"}, {"read", "a/.x"},
	{"read", "a/.xy"}, {"read", ".git"}, {"read", "secrets/web/tls"}, {"read", "secrets/web"}, {"read", "secrets/wex/y"},
	{"list", "secrets/web/x"}, {"deploy", "k8s/prod/deployments/web"}, {"read", "b/b"}, {"read", "x"},
	{"call", "tools/search"}, {"call", "tools/delete_doc"}, {"get", "prompts/p"}, {"get", "prompts/p/q"},
	{"read", "A/b"}, {"read", "a~b@c=d-e.f_g"}, {"x", "a/b/c"},
	// Not concrete requests: never allowed.
	{"*", "a"}, {"Read", "a"}, {"read", "a//b"}, {"read", "a/../b"}, {"read", "a/+"}, {"read", "a/*"}, {"read", ""},
	{"", "a"}, {"read", "/a"}, {"read", "a/"}, {"read", "."}, {"read", "a b"},
}

func scopeVectors() (any, error) {
	f := ScopeFile{Description: "The scope grammar (parse: canonical form, or the byte offset of the first offending byte), " +
		"matching of concrete requests, and containment (every request inner allows, outer allows), decided by package scope."}
	parse := append([]string{}, trickyParse...)
	parse = append(parse, trickyPatterns...)
	rng := rand.New(rand.NewPCG(1, 2))
	randomPatterns := make([]string, 0, 120)
	for len(randomPatterns) < 120 {
		randomPatterns = append(randomPatterns, randomScope(rng))
	}
	parse = append(parse, randomPatterns...)
	for _, in := range parse {
		c := ParseCase{Input: in}
		sc, err := scope.Parse(in)
		if err == nil {
			c.Valid, c.Canonical = true, sc.String()
		} else {
			var pe *scope.ParseError
			if !errors.As(err, &pe) {
				return nil, fmt.Errorf("parse %q: %v", in, err)
			}
			off := pe.Offset
			c.Offset = &off
		}
		f.Parse = append(f.Parse, c)
	}
	patterns := append(append([]string{}, trickyPatterns...), randomPatterns...)
	var valid []scope.Scope
	for _, p := range patterns {
		if sc, err := scope.Parse(p); err == nil {
			valid = append(valid, sc)
		}
	}
	for _, sc := range valid[:len(trickyPatterns)] {
		for _, r := range matchRequests {
			f.Match = append(f.Match, MatchCase{sc.String(), r.action, r.resource, sc.Match(r.action, r.resource)})
		}
	}
	for i := 0; i < 400; i++ {
		sc := valid[rng.IntN(len(valid))]
		a, r := randomRequest(rng)
		f.Match = append(f.Match, MatchCase{sc.String(), a, r, sc.Match(a, r)})
	}
	tricky := valid[:len(trickyPatterns)]
	for _, o := range tricky {
		for _, in := range tricky {
			f.Contains = append(f.Contains, ContainsCase{o.String(), in.String(), scope.Contains(o, in)})
		}
	}
	for i := 0; i < 600; i++ {
		o, in := valid[rng.IntN(len(valid))], valid[rng.IntN(len(valid))]
		f.Contains = append(f.Contains, ContainsCase{o.String(), in.String(), scope.Contains(o, in)})
	}
	for _, claim := range []string{
		"read:docs/* write:docs/drafts/*", "call:tools/search call:tools/read_doc", "", "read:a  read:b",
		"read:a read:a", "READ:a", "read:a/*\tread:b", strings.TrimSpace(strings.Repeat("read:a ", 65)),
	} {
		set, err := scope.ParseSpaceSeparated(claim)
		c := SetMatchCases{Claim: claim, Valid: err == nil}
		if err == nil {
			for _, r := range matchRequests[:22] {
				c.Matches = append(c.Matches, MatchCase{claim, r.action, r.resource, set.Match(r.action, r.resource)})
			}
		}
		f.Sets = append(f.Sets, c)
	}
	return f, nil
}

// The small alphabet of the scope property tests, so that random
// patterns often overlap or nest.
var (
	genSegments = []string{"a", "b", "ab", "x", "+", ".x"}
	genPrefixes = []string{"", "a", "b", "ab", "x", "."}
	genActions  = []string{"read", "write", "list", "*"}
)

func randomScope(rng *rand.Rand) string {
	n := 1 + rng.IntN(3)
	acts := make([]string, 1+rng.IntN(2))
	for i := range acts {
		acts[i] = genActions[rng.IntN(len(genActions))]
	}
	segs := make([]string, n)
	for i := range segs {
		segs[i] = genSegments[rng.IntN(len(genSegments))]
	}
	if rng.IntN(3) == 0 {
		segs[n-1] = genPrefixes[rng.IntN(len(genPrefixes))] + "*"
	}
	return strings.Join(acts, ",") + ":" + strings.Join(segs, "/")
}

func randomRequest(rng *rand.Rand) (string, string) {
	concrete := []string{"a", "b", "ab", "x", "abc", ".x", "xa", "ba"}
	n := 1 + rng.IntN(4)
	segs := make([]string, n)
	for i := range segs {
		segs[i] = concrete[rng.IntN(len(concrete))]
	}
	return genActions[rng.IntN(3)], strings.Join(segs, "/")
}

// ---- credentials ----

// TokenFile is tokens.json.
type TokenFile struct {
	Description        string            `json:"description"`
	Issuer             string            `json:"issuer"`
	Now                int64             `json:"now"`
	LeewaySeconds      int               `json:"leeway_seconds"`
	MaxLifetimeSeconds int               `json:"max_lifetime_seconds"`
	JWKS               json.RawMessage   `json:"jwks"`
	RevokedSessions    []string          `json:"revoked_sessions"`
	Codes              map[string]string `json:"codes"`
	Cases              []TokenCase       `json:"cases"`
}

// TokenCase is one credential to verify for audience, accepting formats.
type TokenCase struct {
	Name     string   `json:"name"`
	Token    string   `json:"token"`
	Audience string   `json:"audience"`
	Formats  []string `json:"formats"`
	Valid    bool     `json:"valid"`
	// Error is the code to refuse it with.
	Error string `json:"error,omitempty"`
	// Claims are some claims a valid credential verifies to.
	Claims map[string]any `json:"claims,omitempty"`
	// RandomizedSignature: an ES256 signature, which differs at every
	// generation; only the header and payload are compared with the
	// generator's output.
	RandomizedSignature bool `json:"randomized_signature,omitempty"`
}

// Keys returns the fixed keys of the vectors: Ed25519 and P-256.
func Keys() (ed, es *token.Key, err error) {
	edPriv := ed25519.NewKeyFromSeed([]byte("conformance-vectors-ed25519-seed"))
	esPriv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), []byte("conformance-vectors-p256-scalar!"))
	if err != nil {
		return nil, nil, err
	}
	if ed, err = loadKey(edPriv, token.AlgEdDSA); err != nil {
		return nil, nil, err
	}
	es, err = loadKey(esPriv, token.AlgES256)
	return ed, es, err
}

// loadKey makes a token.Key of priv, its kid the RFC 7638 thumbprint.
func loadKey(priv crypto.Signer, alg string) (*token.Key, error) {
	pub := jose.JSONWebKey{Key: priv.Public()}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	jwk, err := json.Marshal(jose.JSONWebKey{Key: priv, KeyID: base64.RawURLEncoding.EncodeToString(tp), Algorithm: alg, Use: "sig"})
	if err != nil {
		return nil, err
	}
	rec, _ := json.Marshal(map[string]any{"created": time.Unix(Now-86400, 0).UTC(), "jwk": json.RawMessage(jwk)})
	return token.UnmarshalPrivate(rec)
}

func baseClaims() *token.Claims {
	return &token.Claims{
		Format: token.FormatTxnToken, Issuer: Issuer, Subject: "entity-7", Audience: "docs-api",
		IssuedAt: Now - 10, NotBefore: Now - 10, Expiry: Now + 50, ID: "cred-1", Txn: "sess-1",
		Scope: "read:docs/* write:docs/drafts/*", Depth: 1,
		Tctx: &token.TxnContext{Role: "doc-editor", Purpose: "summarise the plan"},
	}
}

var b64 = base64.RawURLEncoding

// signed signs header and payload JSON with k, as go-jose does, for the
// refusal vectors (headers Mint never writes).
func signed(k *token.Key, header map[string]any, claims any) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.Algorithm), Key: privateOf(k)}, withHeaders(header))
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

func withHeaders(h map[string]any) *jose.SignerOptions {
	o := &jose.SignerOptions{}
	for k, v := range h {
		o = o.WithHeader(jose.HeaderKey(k), v)
	}
	return o
}

// privateOf reads k's private key back from its stored form.
func privateOf(k *token.Key) crypto.Signer {
	b, _ := k.MarshalPrivate()
	var rec struct {
		JWK json.RawMessage `json:"jwk"`
	}
	_ = json.Unmarshal(b, &rec)
	var jwk jose.JSONWebKey
	_ = jwk.UnmarshalJSON(rec.JWK)
	return jwk.Key.(crypto.Signer)
}

func tokenVectors() (any, error) {
	ed, es, err := Keys()
	if err != nil {
		return nil, err
	}
	other, err := loadKey(ed25519.NewKeyFromSeed([]byte("conformance-vectors-unknown-key!")), token.AlgEdDSA)
	if err != nil {
		return nil, err
	}
	jwks, err := json.Marshal(token.JWKS(ed.Public(), es.Public()))
	if err != nil {
		return nil, err
	}
	f := TokenFile{
		Description: "Credentials to verify at now (Unix seconds) with the keys of jwks, for issuer and each case's audience, " +
			"accepting the case's formats, with leeway_seconds of clock skew, refusing lifetimes (exp - iat) over " +
			"max_lifetime_seconds, refusing sessions in revoked_sessions, and refusing a credential bound to a key " +
			"(cnf.jkt) presented without a DPoP proof. Valid cases give claims; others the code to refuse with.",
		Issuer: Issuer, Now: Now, LeewaySeconds: LeewaySeconds, MaxLifetimeSeconds: MaxLifetimeSec,
		JWKS: jwks, RevokedSessions: []string{RevokedSession},
		Codes: map[string]string{
			CodeMalformed: "not a compact JWS of canonical base64url, a header or payload that is not one JSON object (duplicate members included), a header member other than alg, kid and typ, or no kid",
			CodeTooLarge:  "over 16384 bytes", CodeAlgorithm: "an algorithm other than EdDSA and ES256, or not the algorithm of the key kid names",
			CodeUnknownKey: "no key with that kid in jwks", CodeSignature: "the signature does not verify (or a high-S ES256 signature)",
			CodeType:   "typ is not that of an accepted format (txntoken+jwt for txn_token, at+jwt for access_token)",
			CodeIssuer: "iss is not issuer", CodeAudience: "aud is not the audience", CodeExpired: "now - leeway >= exp",
			CodeNotYetValid: "now + leeway < nbf or < iat", CodeClaims: "a required claim is missing (jti, txn, scope, iat, exp > iat, dep >= 1; and sub, aud, client_id for access tokens)",
			CodeLifetime: "exp - iat over max_lifetime_seconds", CodeSessionClosed: "the session (txn) is in the revocation list",
			CodeProofRequired: "the credential is bound to a key (cnf) and came without a DPoP proof",
		},
	}
	add := func(name, raw, aud string, formats []token.Format, want string) {
		fs := make([]string, len(formats))
		for i, x := range formats {
			fs[i] = string(x)
		}
		f.Cases = append(f.Cases, TokenCase{Name: name, Token: raw, Audience: aud, Formats: fs, Valid: want == "", Error: want})
	}
	txn := []token.Format{token.FormatTxnToken}
	at := []token.Format{token.FormatAccessToken}
	mint := func(k *token.Key, edit func(*token.Claims)) (string, error) {
		c := baseClaims()
		if edit != nil {
			edit(c)
		}
		return token.Mint(k, c)
	}
	type mintCase struct {
		name    string
		k       *token.Key
		edit    func(*token.Claims)
		aud     string
		formats []token.Format
		want    string
	}
	for _, m := range []mintCase{
		{"valid transaction token (EdDSA)", ed, nil, "docs-api", txn, ""},
		{"valid transaction token (ES256)", es, nil, "docs-api", txn, ""},
		{"valid access token for an MCP server", ed, func(c *token.Claims) {
			c.Format, c.Audience, c.ClientID, c.Scope = token.FormatAccessToken, "https://tools.example.com/mcp", c.Subject, "call:tools/search"
		}, "https://tools.example.com/mcp", at, ""},
		{"valid derived credential with an actor chain", ed, func(c *token.Claims) {
			c.Depth, c.Parent, c.Act = 2, "cred-0", token.PushActor(token.PushActor(nil, "planner"), "summariser")
			c.Rctx = &token.RequestContext{Description: "write the summary", ReqIP: "192.0.2.1"}
		}, "docs-api", txn, ""},
		{"valid within the leeway after exp", ed, func(c *token.Claims) { c.Expiry, c.IssuedAt, c.NotBefore = Now-29, Now-89, Now-89 }, "docs-api", txn, ""},
		{"expired beyond the leeway", ed, func(c *token.Claims) { c.Expiry, c.IssuedAt, c.NotBefore = Now-30, Now-90, Now-90 }, "docs-api", txn, CodeExpired},
		{"nbf in the future", ed, func(c *token.Claims) { c.NotBefore = Now + 31 }, "docs-api", txn, CodeNotYetValid},
		{"iat in the future", ed, func(c *token.Claims) { c.IssuedAt, c.NotBefore, c.Expiry = Now+31, Now+31, Now+90 }, "docs-api", txn, CodeNotYetValid},
		{"another audience", ed, nil, "billing-api", txn, CodeAudience},
		{"another issuer", ed, func(c *token.Claims) { c.Issuer = "https://evil.example/v1/agent" }, "docs-api", txn, CodeIssuer},
		{"an access token where transaction tokens are accepted", ed, func(c *token.Claims) {
			c.Format, c.ClientID = token.FormatAccessToken, c.Subject
		}, "docs-api", txn, CodeType},
		{"a transaction token where access tokens are accepted", ed, nil, "docs-api", at, CodeType},
		{"lifetime over the maximum", ed, func(c *token.Claims) { c.Expiry = c.IssuedAt + MaxLifetimeSec + 1 }, "docs-api", txn, CodeLifetime},
		{"a revoked session", ed, func(c *token.Claims) { c.Txn = RevokedSession }, "docs-api", txn, CodeSessionClosed},
		{"bound to a key, without a proof", ed, func(c *token.Claims) {
			c.Cnf = &token.Confirmation{JKT: "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"}
		}, "docs-api", txn, CodeProofRequired},
		{"signed by a key not in jwks", other, nil, "docs-api", txn, CodeUnknownKey},
	} {
		raw, err := mint(m.k, m.edit)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
		add(m.name, raw, m.aud, m.formats, m.want)
		if m.k == es {
			f.Cases[len(f.Cases)-1].RandomizedSignature = true
		}
	}

	good, err := mint(ed, nil)
	if err != nil {
		return nil, err
	}
	parts := strings.Split(good, ".")
	header := func(h string) string { return b64.EncodeToString([]byte(h)) + "." + parts[1] + "." + parts[2] }
	std := map[string]any{"kid": ed.ID, "typ": token.Type}
	claimsMap := func(edit func(map[string]any)) map[string]any {
		var m map[string]any
		b, _ := json.Marshal(baseClaims())
		_ = json.Unmarshal(b, &m)
		if edit != nil {
			edit(m)
		}
		return m
	}
	hand := []struct {
		name, raw, want string
	}{
		{"alg none, no signature", b64.EncodeToString([]byte(`{"alg":"none","kid":"`+ed.ID+`","typ":"txntoken+jwt"}`)) + "." + parts[1] + ".", CodeAlgorithm},
		{"alg HS256 keyed with the public key", hs256(ed, parts[1]), CodeAlgorithm},
		{"alg ES256 with the EdDSA key's kid", header(`{"alg":"ES256","kid":"` + ed.ID + `","typ":"txntoken+jwt"}`), CodeAlgorithm},
		{"a flipped signature byte", parts[0] + "." + parts[1] + "." + flip(parts[2]), CodeSignature},
		{"the payload of another credential", parts[0] + "." + b64.EncodeToString(mustJSON(claimsMap(func(m map[string]any) { m["scope"] = "*:*" }))) + "." + parts[2], CodeSignature},
		{"two segments", parts[0] + "." + parts[1], CodeMalformed},
		{"padding in base64url", parts[0] + "." + parts[1] + "=." + parts[2], CodeMalformed},
		{"standard base64 characters", parts[0] + "." + strings.ReplaceAll(strings.ReplaceAll(parts[1], "-", "+"), "_", "/") + "+." + parts[2], CodeMalformed},
		{"over 16384 bytes", parts[0] + "." + strings.Repeat("A", token.MaxTokenSize) + "." + parts[2], CodeTooLarge},
		{"duplicate header member", header(`{"alg":"EdDSA","kid":"` + ed.ID + `","typ":"txntoken+jwt","alg":"EdDSA"}`), CodeMalformed},
		{"no kid", header(`{"alg":"EdDSA","typ":"txntoken+jwt"}`), CodeMalformed},
	}
	for _, h := range hand {
		add(h.name, h.raw, "docs-api", txn, h.want)
	}
	for _, s := range []struct {
		name   string
		header map[string]any
		claims map[string]any
		want   string
	}{
		{"a crit header", map[string]any{"kid": ed.ID, "typ": token.Type, "crit": []string{"exp"}}, claimsMap(nil), CodeMalformed},
		{"an embedded jwk", map[string]any{"kid": ed.ID, "typ": token.Type, "jwk": ed.Public().JWK()}, claimsMap(nil), CodeMalformed},
		{"a jku", map[string]any{"kid": ed.ID, "typ": token.Type, "jku": "https://evil.example/jwks"}, claimsMap(nil), CodeMalformed},
		{"typ JWT", map[string]any{"kid": ed.ID, "typ": "JWT"}, claimsMap(nil), CodeType},
		{"no jti", std, claimsMap(func(m map[string]any) { delete(m, "jti") }), CodeClaims},
		{"no txn", std, claimsMap(func(m map[string]any) { delete(m, "txn") }), CodeClaims},
		{"no scope", std, claimsMap(func(m map[string]any) { delete(m, "scope") }), CodeClaims},
		{"dep 0", std, claimsMap(func(m map[string]any) { m["dep"] = 0 }), CodeClaims},
		{"exp not after iat", std, claimsMap(func(m map[string]any) { m["exp"] = m["iat"] }), CodeClaims},
		{"exp a string", std, claimsMap(func(m map[string]any) { m["exp"] = fmt.Sprint(Now + 50) }), CodeMalformed},
		{"a payload that is an array", std, nil, CodeMalformed},
		// Member names are compared as Go's strings.EqualFold compares
		// them: rune by rune, under Unicode simple case folding.
		{"members equal under case folding (ß, ẞ)", std, claimsMap(func(m map[string]any) { m["x"] = map[string]any{"ß": 1, "ẞ": 2} }), CodeMalformed},
		{"members that only look alike (ss, ß)", std, claimsMap(func(m map[string]any) { m["x"] = map[string]any{"ss": 1, "ß": 2} }), ""},
		{"members that only look alike (i, dotless ı)", std, claimsMap(func(m map[string]any) { m["x"] = map[string]any{"i": 1, "ı": 2} }), ""},
		{"a claim spelled with the long s (ſcope)", std, claimsMap(func(m map[string]any) { m["ſcope"] = "*:*" }), CodeMalformed},
		{"members equal under case folding (kid, and Kid with the Kelvin sign)", std, claimsMap(func(m map[string]any) { m["x"] = map[string]any{"kid": 1, "Kid": 2} }), CodeMalformed},
	} {
		var payload any = s.claims
		if s.claims == nil {
			payload = []any{claimsMap(nil)}
		}
		raw, err := signed(ed, s.header, payload)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		add(s.name, raw, "docs-api", txn, s.want)
	}
	{
		// An access token without client_id, signed by hand.
		m := claimsMap(func(m map[string]any) { m["aud"] = "https://tools.example.com/mcp" })
		raw, err := signed(ed, map[string]any{"kid": ed.ID, "typ": token.TypeAccessToken}, m)
		if err != nil {
			return nil, err
		}
		add("an access token without client_id", raw, "https://tools.example.com/mcp", at, CodeClaims)
	}
	{
		// A payload with a duplicate claim, signed by hand (go-jose's
		// signer signs bytes as given).
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: privateOf(ed)}, withHeaders(std))
		if err != nil {
			return nil, err
		}
		// Each payload is the standard claims with one edit, all refused
		// as malformed:
		//   - a duplicate claim;
		//   - bytes that are not UTF-8;
		//   - escapes of lone surrogates, which Go reads as U+FFFD, so
		//     that the two names are one;
		//   - integer claims written as other numbers of the same value:
		//     JSON has one integer spelling, and a claim is an integer
		//     only in it.
		claims := string(mustJSON(claimsMap(nil)))
		exp := regexp.MustCompile(`"exp":([0-9]+)`).FindStringSubmatch(claims)[1]
		for _, c := range []struct{ name, from, to string }{
			{"a duplicate claim", `"scope":`, `"scope":"*:*","scope":`},
			{"a claim with bytes that are not UTF-8", `"scope":"`, `"x":"a` + "\xe2\x82" + `","scope":"`},
			{"members equal once lone surrogates are read (\\ud800, \\udfff)", `"scope":"`, `"x":{"\ud800":1,"\udfff":2},"scope":"`},
			{"exp written as a decimal", `"exp":` + exp, `"exp":` + exp + `.0`},
			{"exp written with an exponent", `"exp":` + exp, `"exp":` + exp[:1] + "." + exp[1:] + "e" + fmt.Sprint(len(exp)-1)},
			{"dep written as a decimal", `"dep":1,`, `"dep":1.0,`},
		} {
			p := strings.Replace(claims, c.from, c.to, 1)
			if p == claims {
				return nil, fmt.Errorf("%s: %s not in the claims", c.name, c.from)
			}
			jws, err := signer.Sign([]byte(p))
			if err != nil {
				return nil, err
			}
			raw, _ := jws.CompactSerialize()
			add(c.name, raw, "docs-api", txn, CodeMalformed)
		}
	}

	// Every case, checked against the Go reference.
	for i := range f.Cases {
		c := &f.Cases[i]
		claims, err := VerifyCase(f, *c)
		got := ""
		if err != nil {
			got = Code(err)
		}
		if got != c.Error {
			return nil, fmt.Errorf("case %q: the Go packages say %q, the vector %q", c.Name, got, c.Error)
		}
		if c.Valid {
			c.Claims = map[string]any{"iss": claims.Issuer, "sub": claims.Subject, "aud": claims.Audience,
				"jti": claims.ID, "txn": claims.Txn, "scope": claims.Scope, "dep": claims.Depth, "exp": claims.Expiry}
			if claims.ClientID != "" {
				c.Claims["client_id"] = claims.ClientID
			}
		}
	}
	return f, nil
}

// VerifyCase verifies one credential vector with package token and the
// revocation and binding rules of package verifier (a credential presented
// as a bearer token).
func VerifyCase(f TokenFile, c TokenCase) (*token.Claims, error) {
	keys, err := token.ParseJWKS(f.JWKS)
	if err != nil {
		return nil, err
	}
	formats := make([]token.Format, len(c.Formats))
	for i, x := range c.Formats {
		formats[i] = token.Format(x)
	}
	claims, err := token.Verify(c.Token, token.StaticKeys(keys...), token.VerifyOptions{
		Issuer: f.Issuer, Audience: c.Audience, Formats: formats, Now: time.Unix(f.Now, 0),
		Leeway: time.Duration(f.LeewaySeconds) * time.Second, MaxLifetime: time.Duration(f.MaxLifetimeSeconds) * time.Second,
	})
	if err != nil {
		return nil, err
	}
	for _, id := range f.RevokedSessions {
		if claims.Txn == id {
			return nil, verifier.ErrSessionClosed
		}
	}
	if claims.Cnf != nil {
		return nil, verifier.ErrProof
	}
	return claims, nil
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// flip changes the first character of a base64url signature.
func flip(sig string) string {
	c := byte('A')
	if sig[0] == 'A' {
		c = 'B'
	}
	return string(c) + sig[1:]
}

// hs256 is the classic confusion: HMAC-SHA256 keyed with the public key.
func hs256(k *token.Key, payload string) string {
	h := b64.EncodeToString([]byte(`{"alg":"HS256","kid":"` + k.ID + `","typ":"txntoken+jwt"}`))
	pub := k.Public().Key.(ed25519.PublicKey)
	mac := hmac.New(sha256.New, pub)
	mac.Write([]byte(h + "." + payload))
	return h + "." + payload + "." + b64.EncodeToString(mac.Sum(nil))
}

// ---- revocations ----

// RevocationFile is revocations.json.
type RevocationFile struct {
	Description string          `json:"description"`
	Sequences   []RevocationSeq `json:"sequences"`
}

// RevocationSeq is a sequence of answers applied in order to a fresh list.
type RevocationSeq struct {
	Name  string           `json:"name"`
	Steps []RevocationStep `json:"steps"`
}

// RevocationStep is one answer of revocations (the raw body), fetched at
// now, and the list after it.
type RevocationStep struct {
	Answer   json.RawMessage `json:"answer"`
	Now      int64           `json:"now"`
	Accepted bool            `json:"accepted"`
	Changed  bool            `json:"changed"`
	Version  uint64          `json:"version"`
	Closed   []string        `json:"closed"`
}

func revocationVectors() (any, error) {
	f := RevocationFile{Description: "Answers of the engine's revocations path, applied in order to a fresh list " +
		"(verifier.RevocationList.Apply): whether each is accepted (an error keeps the list held), whether it changed " +
		"the list, and the version and closed sessions after it. The first answer, and any answer with complete: true, " +
		"is the whole list; any other is a delta that adds, and drops sessions whose exp is over 60 s before now."}
	ans := func(s string) json.RawMessage { return json.RawMessage(s) }
	seqs := []struct {
		name    string
		answers []json.RawMessage
		nows    []int64
	}{
		{"full list, then deltas, then nothing new", []json.RawMessage{
			ans(`{"data":{"version":3,"epoch":"e1","sessions":[{"id":"a","exp":1800000100},{"id":"b","exp":1800000100}]}}`),
			ans(`{"data":{"version":4,"epoch":"e1","complete":false,"sessions":[{"id":"c","exp":1800000200}]}}`),
			ans(`{"data":{"version":4,"epoch":"e1","complete":false,"sessions":[]}}`),
		}, nil},
		{"a rollback is refused", []json.RawMessage{
			ans(`{"data":{"version":5,"epoch":"e1","sessions":[{"id":"a","exp":1800000100}]}}`),
			ans(`{"data":{"version":2,"epoch":"e1","complete":true,"sessions":[]}}`),
			ans(`{"data":{"version":4,"epoch":"e1","complete":false,"sessions":[{"id":"z","exp":1800000100}]}}`),
		}, nil},
		{"a complete answer replaces the list", []json.RawMessage{
			ans(`{"data":{"version":1,"epoch":"e1","sessions":[{"id":"a","exp":1800000100}]}}`),
			ans(`{"data":{"version":7,"epoch":"e1","complete":true,"sessions":[{"id":"b","exp":1800000100}]}}`),
		}, nil},
		{"a new history replaces the list even at a lower version", []json.RawMessage{
			ans(`{"data":{"version":9,"epoch":"e1","sessions":[{"id":"a","exp":1800000100}]}}`),
			ans(`{"data":{"version":2,"epoch":"e2","complete":true,"sessions":[{"id":"x","exp":1800000100}]}}`),
			ans(`{"data":{"version":1,"epoch":"e3","complete":false,"sessions":[{"id":"y","exp":1800000100}]}}`),
		}, nil},
		{"deltas drop sessions long expired", []json.RawMessage{
			ans(`{"data":{"version":1,"sessions":[{"id":"old","exp":1799999000},{"id":"new","exp":1800000500}]}}`),
			ans(`{"data":{"version":2,"complete":false,"sessions":[{"id":"c","exp":1800000500}]}}`),
		}, []int64{Now, Now}},
		{"answers without a valid list are refused", []json.RawMessage{
			ans(`{"data":{"version":1,"sessions":[{"id":"a","exp":1800000100}]}}`),
			ans(`{}`),
			ans(`null`),
			ans(`{"data":{"sessions":[]}}`),
			ans(`{"data":{"version":3}}`),
			ans(`{"data":{"version":3,"sessions":{"id":"b"}}}`),
			ans(`{"data":{"version":3,"sessions":[{"exp":1800000100}]}}`),
			ans(`{"data":{"version":3,"sessions":[{"id":"","exp":1800000100}]}}`),
			ans(`{"data":{"version":"3","sessions":[]}}`),
		}, nil},
		{"a non-empty list at version 0 is refused", []json.RawMessage{
			ans(`{"data":{"version":0,"sessions":[{"id":"a","exp":1800000100}]}}`),
			ans(`{"data":{"version":0,"sessions":[]}}`),
		}, nil},
	}
	for _, s := range seqs {
		var l verifier.RevocationList
		seq := RevocationSeq{Name: s.name}
		for i, a := range s.answers {
			now := int64(Now)
			if s.nows != nil {
				now = s.nows[i]
			}
			changed, err := l.Apply(a, time.Unix(now, 0))
			closed := l.Sessions()
			slices.Sort(closed)
			seq.Steps = append(seq.Steps, RevocationStep{Answer: a, Now: now, Accepted: err == nil, Changed: changed, Version: l.Version(), Closed: closed})
		}
		f.Sequences = append(f.Sequences, seq)
	}
	return f, nil
}
