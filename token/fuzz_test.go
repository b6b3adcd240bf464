package token

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// sentinels lists every error kind Verify may report.
var sentinels = []error{ErrMalformed, ErrUnknownKey, ErrAlgorithm, ErrSignature, ErrExpired,
	ErrNotYetValid, ErrIssuer, ErrAudience, ErrType, ErrTooLarge, ErrClaims, ErrLifetime, ErrOptions}

// FuzzVerify feeds arbitrary strings to Verify and PeekKeyID. Neither may
// panic, every failure must carry a sentinel error, and the only inputs
// that may verify are the genuine tokens minted here: for Ed25519 the exact
// string (signatures are deterministic and encodings canonical), for ES256
// the low-S signatures over the genuine header and payload. Accepted tokens
// must round-trip through Mint, and Verify must accept nothing that go-jose
// alone refuses (compareWithReference).
func FuzzVerify(f *testing.F) {
	ed, es := fixedKey(f, AlgEdDSA), fixedKey(f, AlgES256)
	lookup := StaticKeys(ed.Public(), es.Public())
	want := sampleClaims()
	edTok := mustMint(f, ed, want)
	esTok := mustMint(f, es, want)
	esInput := esTok[:strings.LastIndexByte(esTok, '.')]
	p := parts(edTok)

	for _, s := range []string{
		edTok, esTok,
		"", ".", "..", "...", "a.b.c", "e30.e30.", "e30.e30.e30",
		edTok[:len(edTok)-1], edTok[:len(edTok)-2], edTok + "A", edTok + ".",
		p[0] + "." + p[1], p[0] + ".." + p[2],
		enc(`{"alg":"none","typ":"txntoken+jwt"}`) + "." + p[1] + ".",
		enc(`{"alg":"HS256","kid":"`+ed.ID+`","typ":"txntoken+jwt"}`) + "." + p[1] + "." + p[2],
		enc(`{"alg":"ES256","kid":"`+ed.ID+`","typ":"txntoken+jwt"}`) + "." + p[1] + "." + parts(esTok)[2],
		enc(`{"alg":"EdDSA","kid":"`+ed.ID+`","typ":"JWT"}`) + "." + p[1] + "." + p[2],
		enc(`{"alg":"EdDSA","kid":"`+ed.ID+`","typ":"txntoken+jwt","crit":[]}`) + "." + p[1] + "." + p[2],
		`{"payload":"` + p[1] + `","signatures":[{"protected":"` + p[0] + `","signature":"` + p[2] + `"}]}`,
		"\x00\xff." + p[1] + "." + p[2],
		highS(f, esTok),
	} {
		f.Add(s)
	}
	for _, tc := range strictCases(f) {
		if tc.want != nil { // the others are validly signed by the test keys
			f.Add(tc.tok)
		}
	}

	f.Fuzz(func(t *testing.T, s string) {
		_, _ = PeekKeyID(s)
		compareWithReference(t, s, lookup)
		c, err := Verify(s, lookup, testOpts())
		if err != nil {
			if c != nil {
				t.Fatal("claims returned with an error")
			}
			for _, e := range sentinels {
				if errors.Is(err, e) {
					return
				}
			}
			t.Fatalf("error without sentinel: %v", err)
		}
		genuine := s == edTok || (strings.HasPrefix(s, esInput+".") && strings.IndexByte(s[len(esInput)+1:], '.') < 0 &&
			lowS(dec(t, s[len(esInput)+1:])))
		if !genuine {
			t.Fatalf("forged input verified: %q", s)
		}
		if !reflect.DeepEqual(c, want) {
			t.Fatalf("claims differ: %+v", c)
		}
		if s == edTok {
			assertRoundTrip(t, ed, s, c, lookup)
		} else {
			assertRoundTrip(t, es, s, c, lookup)
		}
	})
}
