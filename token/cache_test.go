package token

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"
)

func TestVerifyCacheReturnsWhatVerifyReturns(t *testing.T) {
	for _, alg := range []string{AlgEdDSA, AlgES256} {
		t.Run(alg, func(t *testing.T) {
			k := fixedKey(t, alg)
			lookup := StaticKeys(k.Public())
			tok := mustMint(t, k, sampleClaims())
			want, err := Verify(tok, lookup, testOpts())
			if err != nil {
				t.Fatal(err)
			}
			vc := NewVerifyCache(0)
			for i := range 3 { // a miss, then hits
				got, err := vc.Verify(tok, lookup, testOpts())
				if err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("call %d: claims %+v, want %+v", i, got, want)
				}
			}
			if vc.Len() != 1 {
				t.Fatalf("Len = %d, want 1", vc.Len())
			}
			if hits, misses := vc.Stats(); hits != 2 || misses != 1 {
				t.Fatalf("Stats = %d hits, %d misses, want 2 and 1", hits, misses)
			}
		})
	}
}

// A hit neither parses the token nor checks its signature: it allocates a
// fraction of what a full verification does (the claims copy and little
// else).
func TestVerifyCacheHitSkipsTheSignature(t *testing.T) {
	k := fixedKey(t, AlgEdDSA)
	lookup := StaticKeys(k.Public())
	tok := mustMint(t, k, sampleClaims())
	vc := warmCache(t, tok, lookup)
	full := testing.AllocsPerRun(20, func() {
		if _, err := Verify(tok, lookup, testOpts()); err != nil {
			t.Fatal(err)
		}
	})
	hit := testing.AllocsPerRun(20, func() {
		if _, err := vc.Verify(tok, lookup, testOpts()); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("allocations: a hit %v, a full verification %v", hit, full)
	if hit > 12 || hit*10 > full {
		t.Fatalf("a hit allocates %v times, a full verification %v: the hit is not taken from the cache", hit, full)
	}
}

// What a hit returns is the caller's own: changing it changes neither the
// cache nor what the next caller gets.
func TestVerifyCacheClaimsAreCopies(t *testing.T) {
	k := fixedKey(t, AlgEdDSA)
	lookup := StaticKeys(k.Public())
	tok := mustMint(t, k, sampleClaims())
	vc := NewVerifyCache(0)
	want, err := vc.Verify(tok, lookup, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		c, err := vc.Verify(tok, lookup, testOpts())
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c, want) {
			t.Fatalf("claims %+v, want %+v", c, want)
		}
		c.Scope = "admin"
		c.Tctx.Role = "admin"
		c.Rctx.Description = "changed"
		c.Cnf.JKT = "changed"
		c.Act.Subject = "mallory"
		c.Act.Act.Subject = "mallory"
	}
	// want itself was the first caller's and was not changed.
	again, err := vc.Verify(tok, lookup, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, want) || again.Act.Act.Subject != "planner" {
		t.Fatalf("a caller's change reached the cache: %+v", again)
	}
}

// Every check after the signature runs on every hit, at the call's time
// and with the call's options.
func TestVerifyCacheChecksEachCall(t *testing.T) {
	k := fixedKey(t, AlgEdDSA)
	lookup := StaticKeys(k.Public())
	c := sampleClaims()
	tok := mustMint(t, k, c)
	vc := warmCache(t, tok, lookup)
	at := func(unix int64) func(*VerifyOptions) {
		return func(o *VerifyOptions) { o.Now, o.Leeway = time.Unix(unix, 0), -1 }
	}
	for _, tc := range []struct {
		name string
		opts func(*VerifyOptions)
		want error
	}{
		{"expired since", at(c.Expiry), ErrExpired},
		{"not valid yet at an earlier time", at(c.NotBefore - 1), ErrNotYetValid},
		{"other issuer", func(o *VerifyOptions) { o.Issuer = "https://other.example" }, ErrIssuer},
		{"other audience", func(o *VerifyOptions) { o.Audience = "https://other.example" }, ErrAudience},
		{"lifetime over the maximum", func(o *VerifyOptions) { o.MaxLifetime = time.Minute }, ErrLifetime},
		{"format not accepted", func(o *VerifyOptions) { o.Formats = []Format{FormatAccessToken} }, ErrType},
		{"algorithm not allowed", func(o *VerifyOptions) { o.Algorithms = []string{AlgES256} }, ErrAlgorithm},
		{"no issuer", func(o *VerifyOptions) { o.Issuer = "" }, ErrOptions},
		{"both audience options", func(o *VerifyOptions) { o.AnyAudience = true }, ErrOptions},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOpts()
			tc.opts(&opts)
			_, want := Verify(tok, lookup, opts)
			got, err := vc.Verify(tok, lookup, opts)
			if !errors.Is(err, tc.want) || !errors.Is(want, tc.want) {
				t.Fatalf("cache: %v, Verify: %v, want %v (claims %v)", err, want, tc.want, got)
			}
		})
	}
	// IgnoreValidity accepts the expired credential from the cache too.
	opts := testOpts()
	at(c.Expiry + 3600)(&opts)
	opts.IgnoreValidity = true
	if _, err := vc.Verify(tok, lookup, opts); err != nil {
		t.Fatalf("IgnoreValidity: %v", err)
	}
}

// A key that left the lookup, or was replaced under the same ID, makes a
// remembered credential fail as Verify fails it.
func TestVerifyCacheFollowsTheKeys(t *testing.T) {
	k := fixedKey(t, AlgEdDSA)
	tok := mustMint(t, k, sampleClaims())
	vc := warmCache(t, tok, StaticKeys(k.Public()))
	if _, err := vc.Verify(tok, StaticKeys(), testOpts()); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("key gone: err = %v, want ErrUnknownKey", err)
	}
	other := genKey(t, AlgEdDSA)
	other.ID = k.ID
	if _, err := vc.Verify(tok, StaticKeys(other.Public()), testOpts()); !errors.Is(err, ErrSignature) {
		t.Fatalf("key replaced under the same ID: err = %v, want ErrSignature", err)
	}
	es := fixedKey(t, AlgES256)
	swapped := func(string) (PublicKey, bool) {
		return PublicKey{ID: k.ID, Algorithm: AlgES256, Key: es.Public().Key}, true
	}
	if _, err := vc.Verify(tok, swapped, testOpts()); !errors.Is(err, ErrAlgorithm) {
		t.Fatalf("key of another algorithm under the same ID: err = %v, want ErrAlgorithm", err)
	}
	// The key back: the credential verifies again.
	if _, err := vc.Verify(tok, StaticKeys(k.Public()), testOpts()); err != nil {
		t.Fatal(err)
	}
}

// The key is asked for again by the token's "kid", whatever ID the lookup
// gave it, and compared by value: a lookup that answered under an alias, or
// a key changed in place, is followed as Verify follows it.
func TestVerifyCacheAsksForTheTokensKeyID(t *testing.T) {
	k := fixedKey(t, AlgEdDSA)
	tok := mustMint(t, k, sampleClaims())
	pub := k.Public()
	pub.ID = "" // as a key read from a JWK Set without "kid"
	withdrawn := false
	lookup := func(kid string) (PublicKey, bool) {
		if kid == k.ID && !withdrawn || kid == "" {
			return pub, true
		}
		return PublicKey{}, false
	}
	vc := warmCache(t, tok, lookup)
	withdrawn = true
	_, want := Verify(tok, lookup, testOpts())
	if _, err := vc.Verify(tok, lookup, testOpts()); !errors.Is(err, ErrUnknownKey) || !errors.Is(want, ErrUnknownKey) {
		t.Fatalf("kid withdrawn: cache %v, Verify %v, want ErrUnknownKey", err, want)
	}

	// A key changed in place after the credential was remembered.
	withdrawn = false
	if _, err := vc.Verify(tok, lookup, testOpts()); err != nil {
		t.Fatal(err)
	}
	changed := ed25519.PublicKey(bytes.Clone(pub.Key.(ed25519.PublicKey)))
	pub.Key = changed
	lookup2 := func(string) (PublicKey, bool) { return pub, true }
	if _, err := vc.Verify(tok, lookup2, testOpts()); err != nil {
		t.Fatal(err)
	}
	changed[0] ^= 1
	if _, err := vc.Verify(tok, lookup2, testOpts()); !errors.Is(err, ErrSignature) {
		t.Fatalf("key changed in place: err = %v, want ErrSignature", err)
	}
}

// A credential remembered by a call that ignored its validity (a report
// of an expired credential) is still refused by a call that does not.
func TestVerifyCacheIgnoreValidityThenStrict(t *testing.T) {
	k := fixedKey(t, AlgEdDSA)
	lookup := StaticKeys(k.Public())
	c := sampleClaims()
	tok := mustMint(t, k, c)
	late := testOpts()
	late.Now = time.Unix(c.Expiry+3600, 0)
	vc := NewVerifyCache(0)
	lenient := late
	lenient.IgnoreValidity = true
	if _, err := vc.Verify(tok, lookup, lenient); err != nil {
		t.Fatal(err)
	}
	if _, err := vc.Verify(tok, lookup, late); !errors.Is(err, ErrExpired) {
		t.Fatalf("err = %v, want ErrExpired", err)
	}
	if hits, misses := vc.Stats(); hits != 1 || misses != 1 {
		t.Fatalf("Stats = %d hits, %d misses, want 1 and 1", hits, misses)
	}
}

func TestVerifyCacheRemembersOnlySuccesses(t *testing.T) {
	k := fixedKey(t, AlgEdDSA)
	lookup := StaticKeys(k.Public())
	tok := mustMint(t, k, sampleClaims())
	vc := NewVerifyCache(0)
	p := parts(tok)
	forged := p[0] + "." + p[1] + "." + parts(mustMint(t, genKey(t, AlgEdDSA), sampleClaims()))[2]
	for range 2 {
		if _, err := vc.Verify(forged, lookup, testOpts()); !errors.Is(err, ErrSignature) {
			t.Fatalf("forged: err = %v", err)
		}
		opts := testOpts()
		opts.Audience = "https://other.example"
		if _, err := vc.Verify(tok, lookup, opts); !errors.Is(err, ErrAudience) {
			t.Fatalf("other audience: err = %v", err)
		}
	}
	if vc.Len() != 0 {
		t.Fatalf("Len = %d after refusals only, want 0", vc.Len())
	}
}

func TestVerifyCacheForgetsTheLeastRecentlyUsed(t *testing.T) {
	k := fixedKey(t, AlgEdDSA)
	lookup := StaticKeys(k.Public())
	toks := numberedTokens(t, k, 4)
	vc := NewVerifyCache(3)
	for _, i := range []int{0, 1, 2, 0, 3} { // 1 is the least recently used when 3 comes
		if _, err := vc.Verify(toks[i], lookup, testOpts()); err != nil {
			t.Fatal(err)
		}
	}
	if vc.Len() != 3 {
		t.Fatalf("Len = %d, want 3", vc.Len())
	}
	for i, want := range []bool{true, false, true, true} {
		vc.mu.Lock()
		_, held := vc.entries[sumOf(toks[i])]
		vc.mu.Unlock()
		if held != want {
			t.Errorf("credential %d held = %v, want %v", i, held, want)
		}
	}
}

func TestVerifyCacheConcurrent(t *testing.T) {
	k := fixedKey(t, AlgEdDSA)
	lookup := StaticKeys(k.Public())
	toks := numberedTokens(t, k, 8)
	vc := NewVerifyCache(4)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 50 {
				tok := toks[(w+i)%len(toks)]
				c, err := vc.Verify(tok, lookup, testOpts())
				if err != nil {
					t.Error(err)
					return
				}
				if want := fmt.Sprintf("cred-%d", (w+i)%len(toks)); c.ID != want {
					t.Errorf("claims of %s returned for %s", c.ID, want)
					return
				}
				c.Act = nil // the caller's copy
			}
		})
	}
	wg.Wait()
	if vc.Len() > 4 {
		t.Fatalf("Len = %d over the size 4", vc.Len())
	}
}

func sumOf(raw string) [32]byte { return sha256.Sum256([]byte(raw)) }

// warmCache returns a cache that has verified tok under testOpts.
func warmCache(tb testing.TB, tok string, lookup KeyLookup) *VerifyCache {
	tb.Helper()
	vc := NewVerifyCache(0)
	if _, err := vc.Verify(tok, lookup, testOpts()); err != nil {
		tb.Fatal(err)
	}
	return vc
}

// numberedTokens mints n credentials by k, with IDs cred-0 to cred-<n-1>.
func numberedTokens(tb testing.TB, k *Key, n int) []string {
	tb.Helper()
	toks := make([]string, n)
	for i := range toks {
		c := sampleClaims()
		c.ID = fmt.Sprintf("cred-%d", i)
		toks[i] = mustMint(tb, k, c)
	}
	return toks
}
