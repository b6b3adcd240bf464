package token

import (
	"bytes"
	"container/list"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"slices"
	"sync"
	"sync/atomic"
)

// DefaultVerifyCacheSize is the number of credentials a VerifyCache made
// with a size of zero or less remembers.
const DefaultVerifyCacheSize = 1024

// A VerifyCache remembers the credentials that Verify accepted, so that a
// credential presented again (the delegation credential a sub-agent
// exchanges for each of its steps, a parent credential) is not parsed and
// its signature not checked again. It is keyed by the SHA-256 of the
// whole serialised credential: only those exact bytes, already verified,
// are ever found in it. Nothing else is skipped. On every call the
// options are checked, and then the remembered facts are checked again as
// Verify would check them: the "typ" against the formats accepted, the
// algorithm against the allow-list, and the key, which the lookup must
// still return (the same ID, algorithm and public key) or the credential
// is verified afresh; and then the claims, as decoded, against the issuer,
// the audience, the lifetime and the validity window at the call's time.
// A credential whose key has left the lookup, or that has expired, is
// refused exactly as Verify refuses it.
//
// Only successes are remembered; a token that fails is checked in full
// each time. The cache holds at most its size of credentials and forgets
// the least recently used first. A VerifyCache is safe for concurrent use.
type VerifyCache struct {
	mu      sync.Mutex
	size    int
	entries map[[sha256.Size]byte]*list.Element
	order   list.List // of *verified, most recently used first

	hits, misses atomic.Uint64
}

// verified is what a VerifyCache remembers of one credential: the claims
// as decoded (Format set from the verified "typ"), the "kid" header, and
// the algorithm and encoding of the key that checked its signature (a copy:
// a caller's later change to its key changes nothing here).
type verified struct {
	sum    [sha256.Size]byte
	claims Claims
	kid    string
	alg    string
	key    []byte
}

// NewVerifyCache returns a cache of at most size credentials
// (DefaultVerifyCacheSize when size <= 0).
func NewVerifyCache(size int) *VerifyCache {
	if size <= 0 {
		size = DefaultVerifyCacheSize
	}
	return &VerifyCache{size: size, entries: make(map[[sha256.Size]byte]*list.Element)}
}

// Verify is [Verify] with the signature of a credential it has accepted
// before remembered (see VerifyCache). It returns the same claims and the
// same errors as Verify would, and the claims are the caller's own copy.
func (vc *VerifyCache) Verify(raw string, lookup KeyLookup, opts VerifyOptions) (*Claims, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	if len(raw) > MaxTokenSize {
		return nil, ErrTooLarge
	}
	sum := sha256.Sum256([]byte(raw))
	if v, ok := vc.get(sum); ok && v.stillSigned(lookup, &opts) {
		vc.hits.Add(1)
		if err := opts.validate(&v.claims); err != nil {
			return nil, err
		}
		return v.claims.clone(), nil
	}
	vc.misses.Add(1)
	c, kid, pk, err := verify(raw, lookup, opts)
	if err != nil {
		return nil, err
	}
	if enc, ok := keyEncoding(pk.Key); ok {
		vc.put(&verified{sum: sum, claims: *c.clone(), kid: kid, alg: pk.Algorithm, key: enc})
	}
	return c, nil
}

// Stats returns how many calls of Verify found their credential
// remembered (hits, the signature not checked again) and how many did not
// (misses, a full verification, successful or not).
func (vc *VerifyCache) Stats() (hits, misses uint64) {
	return vc.hits.Load(), vc.misses.Load()
}

// Len returns the number of credentials remembered.
func (vc *VerifyCache) Len() int {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	return vc.order.Len()
}

func (vc *VerifyCache) get(sum [sha256.Size]byte) (*verified, bool) {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	e, ok := vc.entries[sum]
	if !ok {
		return nil, false
	}
	vc.order.MoveToFront(e)
	return e.Value.(*verified), true
}

func (vc *VerifyCache) put(v *verified) {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	if e, ok := vc.entries[v.sum]; ok {
		e.Value = v
		vc.order.MoveToFront(e)
		return
	}
	vc.entries[v.sum] = vc.order.PushFront(v)
	for vc.order.Len() > vc.size {
		last := vc.order.Back()
		delete(vc.entries, last.Value.(*verified).sum)
		vc.order.Remove(last)
	}
}

// stillSigned reports whether what verifyCompact established for v holds
// under opts and lookup now: its "typ" is one opts accepts, its algorithm
// is in the allow-list, and lookup still returns, for its "kid", a key of
// that algorithm with the very encoding that checked its signature.
func (v *verified) stillSigned(lookup KeyLookup, opts *VerifyOptions) bool {
	if !slices.Contains(opts.types(), v.claims.Format.Type()) || !algorithmAllowed(v.alg, opts.Algorithms) || lookup == nil {
		return false
	}
	pk, ok := lookup(v.kid)
	if !ok || pk.Algorithm != v.alg || !keyFitsAlgorithm(pk.Algorithm, pk.Key) {
		return false
	}
	return hasEncoding(pk.Key, v.key)
}

// hasEncoding reports whether pub, a key keyFitsAlgorithm accepted, is
// encoded as enc (what keyEncoding returned), without copying an Ed25519
// key.
func hasEncoding(pub crypto.PublicKey, enc []byte) bool {
	if p, ok := pub.(ed25519.PublicKey); ok {
		return bytes.Equal(p, enc)
	}
	b, ok := keyEncoding(pub)
	return ok && bytes.Equal(b, enc)
}

// keyEncoding returns a fresh encoding of a public key Verify accepts: the
// 32 bytes of an Ed25519 key, the uncompressed point of a P-256 key.
func keyEncoding(pub crypto.PublicKey) ([]byte, bool) {
	switch p := pub.(type) {
	case ed25519.PublicKey:
		return bytes.Clone(p), true
	case *ecdsa.PublicKey:
		if p == nil {
			return nil, false
		}
		b, err := p.Bytes()
		return b, err == nil
	}
	return nil, false
}

// clone returns a copy of c that shares nothing with it.
func (c *Claims) clone() *Claims {
	out := *c
	if c.Tctx != nil {
		t := *c.Tctx
		out.Tctx = &t
	}
	if c.Rctx != nil {
		r := *c.Rctx
		out.Rctx = &r
	}
	if c.Cnf != nil {
		cnf := *c.Cnf
		out.Cnf = &cnf
	}
	out.Act = c.Act.clone()
	return &out
}

func (a *Actor) clone() *Actor {
	if a == nil {
		return nil
	}
	return &Actor{Subject: a.Subject, Act: a.Act.clone()}
}
