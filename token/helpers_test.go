package token

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"math/big"
	"strings"
	"testing"
	"time"
)

// testNow is the fixed verification time used throughout the tests.
var testNow = time.Unix(1_750_000_000, 0)

// fixedKey returns a deterministic key for alg, so that fuzz workers and
// repeated runs agree on key IDs and Ed25519 signatures.
func fixedKey(tb testing.TB, alg string) *Key {
	tb.Helper()
	var k *Key
	var err error
	switch alg {
	case AlgEdDSA:
		k, err = newKey(alg, ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)), time.Unix(1_700_000_000, 0))
	case AlgES256:
		var p *ecdsa.PrivateKey
		p, err = ecdsa.ParseRawPrivateKey(elliptic.P256(), bytes.Repeat([]byte{9}, 32))
		if err == nil {
			k, err = newKey(alg, p, time.Unix(1_700_000_000, 0))
		}
	default:
		tb.Fatalf("no fixed key for %q", alg)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// genKey returns a fresh random key.
func genKey(tb testing.TB, alg string) *Key {
	tb.Helper()
	k, err := GenerateKey(alg)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// sampleClaims returns a fully populated claim set valid at testNow. Its
// JSON is a multiple of 3 bytes long, so that its base64url encoding has no
// unused bits (strictCases relies on it).
func sampleClaims() *Claims {
	n := testNow.Unix()
	return &Claims{
		Format:    FormatTxnToken,
		Issuer:    "https://vault.example/v1/agent",
		Subject:   "5b3c1f2e-entity",
		Audience:  "https://api.example",
		IssuedAt:  n - 10,
		NotBefore: n - 10,
		Expiry:    n + 300,
		ID:        "cred-0001",
		Txn:       "sess-0001",
		Scope:     "repo:read issues:write",
		Tctx:      &TxnContext{Role: "triage", Purpose: "label new issues"},
		Rctx:      &RequestContext{Description: "fetch-issue-42", ReqIP: "10.0.0.7"},
		Parent:    "cred-0000",
		Depth:     2,
		Act:       PushActor(PushActor(nil, "planner"), "worker"),
		Cnf:       &Confirmation{JKT: "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"},
	}
}

// testOpts returns verification options matching sampleClaims.
func testOpts() VerifyOptions {
	return VerifyOptions{Issuer: "https://vault.example/v1/agent", Audience: "https://api.example", Now: testNow}
}

// enc is unpadded base64url.
func enc(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// dec decodes one segment or fails the test.
func dec(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// signRaw builds a compact JWS from literal header and payload JSON,
// signed by k with k's own algorithm, bypassing Mint (and go-jose, which
// cannot sign arbitrary header JSON) to produce tokens an attacker or a
// buggy issuer could. ES256 signatures are low-S, as Mint writes them
// (highS turns one into its high-S twin).
func signRaw(tb testing.TB, k *Key, header, payload string) string {
	tb.Helper()
	input := enc(header) + "." + enc(payload)
	var sig []byte
	switch priv := k.priv.(type) {
	case ed25519.PrivateKey:
		sig = ed25519.Sign(priv, []byte(input))
	case *ecdsa.PrivateKey:
		digest := sha256.Sum256([]byte(input))
		r, s, err := ecdsa.Sign(rand.Reader, priv, digest[:])
		if err != nil {
			tb.Fatal(err)
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		normalizeLowS(sig) // as Mint does: Verify refuses high-S signatures
	default:
		tb.Fatalf("signRaw: unsupported key type %T", k.priv)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// mustMint mints or fails the test.
func mustMint(tb testing.TB, k *Key, c *Claims) string {
	tb.Helper()
	tok, err := Mint(k, c)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// parts splits a compact token.
func parts(tok string) []string { return strings.Split(tok, ".") }

// highS returns tok, an ES256 token with a low-S signature, with S
// replaced by N-S: the other valid signature of the same message.
func highS(tb testing.TB, tok string) string {
	tb.Helper()
	p := parts(tok)
	sig := dec(tb, p[2])
	if !lowS(sig) {
		tb.Fatal("highS: signature is not low-S")
	}
	n := elliptic.P256().Params().N
	new(big.Int).Sub(n, new(big.Int).SetBytes(sig[32:])).FillBytes(sig[32:])
	if lowS(sig) {
		tb.Fatal("highS: N-S is low too")
	}
	return p[0] + "." + p[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// anyAudience returns verification options for the sample issuer that
// accept any audience, at now.
func anyAudience(now time.Time) VerifyOptions {
	return VerifyOptions{Issuer: sampleClaims().Issuer, AnyAudience: true, Now: now}
}
