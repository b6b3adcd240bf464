package token

import (
	"crypto/ed25519"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

func BenchmarkMintEdDSA(b *testing.B) {
	k := fixedKey(b, AlgEdDSA)
	c := sampleClaims()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Mint(k, c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMintES256(b *testing.B) {
	k := fixedKey(b, AlgES256)
	c := sampleClaims()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Mint(k, c); err != nil {
			b.Fatal(err)
		}
	}
}

func benchmarkVerify(b *testing.B, alg string) {
	k := fixedKey(b, alg)
	tok := mustMint(b, k, sampleClaims())
	lookup := StaticKeys(k.Public())
	opts := testOpts()
	b.SetBytes(int64(len(tok)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(tok, lookup, opts); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyEdDSA(b *testing.B) { benchmarkVerify(b, AlgEdDSA) }

func BenchmarkVerifyES256(b *testing.B) { benchmarkVerify(b, AlgES256) }

// BenchmarkVerifyCacheHit: a credential verified before, presented again
// (VerifyCache.Verify: the hash, the re-checks, the claims copy).
func BenchmarkVerifyCacheHit(b *testing.B) {
	k := fixedKey(b, AlgEdDSA)
	tok := mustMint(b, k, sampleClaims())
	lookup := StaticKeys(k.Public())
	opts := testOpts()
	vc := NewVerifyCache(0)
	if _, err := vc.Verify(tok, lookup, opts); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(tok)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := vc.Verify(tok, lookup, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawEd25519Verify is the floor for BenchmarkVerifyEdDSA: one
// ed25519.Verify over a message as long as the benchmark token's signing
// input.
func BenchmarkRawEd25519Verify(b *testing.B) {
	k := fixedKey(b, AlgEdDSA)
	tok := mustMint(b, k, sampleClaims())
	p := parts(tok)
	msg := []byte(p[0] + "." + p[1])
	sig := dec(b, p[2])
	pub := k.Public().Key.(ed25519.PublicKey)
	b.SetBytes(int64(len(tok)))
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("bad signature")
		}
	}
}

// BenchmarkVerifyOverRawEd25519 alternates one Verify of an EdDSA token,
// one go-jose alone (goJoseAlone) and one raw ed25519.Verify of its signing
// input, and reports the ratios of their times to the raw check
// ("verify/raw", "gojose/raw"): all three run under the same load, so the
// ratios hold even on a busy machine, where separate benchmarks drift.
func BenchmarkVerifyOverRawEd25519(b *testing.B) {
	k := fixedKey(b, AlgEdDSA)
	tok := mustMint(b, k, sampleClaims())
	lookup := StaticKeys(k.Public())
	opts := testOpts()
	p := parts(tok)
	msg := []byte(p[0] + "." + p[1])
	sig := dec(b, p[2])
	pub := k.Public().Key.(ed25519.PublicKey)
	var inVerify, inGoJose, inRaw time.Duration
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		if _, err := Verify(tok, lookup, opts); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := goJoseAlone(tok, lookup, opts); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("bad signature")
		}
		inVerify += t1.Sub(t0)
		inGoJose += t2.Sub(t1)
		inRaw += time.Since(t2)
	}
	b.ReportMetric(float64(inVerify)/float64(inRaw), "verify/raw")
	b.ReportMetric(float64(inGoJose)/float64(inRaw), "gojose/raw")
}

// goJoseAlone verifies tok with go-jose alone: jwt.ParseSigned, the key
// for its "kid", Claims, and the same checks of the claims as Verify, but
// none of Verify's pre-checks or strict JSON rules. It is the floor for a
// Verify that goes through go-jose.
func goJoseAlone(tok string, lookup KeyLookup, opts VerifyOptions) error {
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256})
	if err != nil {
		return err
	}
	pk, ok := lookup(parsed.Headers[0].KeyID)
	if !ok || pk.Algorithm != parsed.Headers[0].Algorithm {
		return ErrUnknownKey
	}
	c := new(Claims)
	if err := parsed.Claims(pk.Key, c); err != nil {
		return err
	}
	return opts.validate(c)
}

// BenchmarkGoJoseAloneEdDSA measures goJoseAlone on the benchmark token.
func BenchmarkGoJoseAloneEdDSA(b *testing.B) {
	k := fixedKey(b, AlgEdDSA)
	tok := mustMint(b, k, sampleClaims())
	lookup := StaticKeys(k.Public())
	opts := testOpts()
	b.ReportAllocs()
	for b.Loop() {
		if err := goJoseAlone(tok, lookup, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyRejectForged measures the cost of rejecting a token with a
// bad signature, the cheapest attack on a resource server.
func BenchmarkVerifyRejectForged(b *testing.B) {
	k := fixedKey(b, AlgEdDSA)
	tok := []byte(mustMint(b, k, sampleClaims()))
	if i := len(tok) - 10; tok[i] == 'A' {
		tok[i] = 'B'
	} else {
		tok[i] = 'A'
	}
	s := string(tok)
	lookup := StaticKeys(k.Public())
	opts := testOpts()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(s, lookup, opts); err == nil {
			b.Fatal("forged token verified")
		}
	}
}
