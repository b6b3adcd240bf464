package token

import (
	"crypto/ed25519"
	"testing"
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
