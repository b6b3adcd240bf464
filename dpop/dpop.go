// Package dpop signs and checks DPoP proofs (RFC 9449, OAuth 2.0
// Demonstrating Proof of Possession): the small JWTs that show a request's
// sender holds the private key a credential is bound to ("cnf": {"jkt":
// <the key's RFC 7638 thumbprint>}).
//
// A proof is a JWS whose header holds "typ" (dpop+jwt), "alg" (EdDSA or
// ES256) and "jwk" (the public key), and whose claims say which request it
// is for: "htm" (the HTTP method), "htu" (the URL, without query and
// fragment), "iat", "jti" (unique), and "ath" (the SHA-256 of the access
// token) when it goes with a credential. [Verify] parses and checks the
// signature with go-jose (github.com/go-jose/go-jose/v4), with the key
// embedded in the header as RFC 9449 requires (and only then: credentials
// never carry their key), reads the claims by package token's strict JSON
// rules, and checks everything else: the type, the method, the URL, the
// time window, the access-token hash, the thumbprint the caller expects,
// and, with a [ReplayCache], that the proof was never seen before.
//
// The package does not depend on Vault.
package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

// Type is the "typ" header of a DPoP proof.
const Type = "dpop+jwt"

// HeaderName is the HTTP header a proof travels in.
const HeaderName = "DPoP"

// Scheme is the Authorization scheme of a DPoP-bound credential
// ("Authorization: DPoP <token>").
const Scheme = "DPoP"

// Limits.
const (
	// MaxProofSize is the largest proof looked at, in bytes.
	MaxProofSize = 4 << 10
	// MaxIDLength is the longest "jti" accepted.
	MaxIDLength = 128
	// DefaultWindow is how far a proof's "iat" may lie from now, either
	// way, when Options.Window is zero.
	DefaultWindow = time.Minute
)

// Algorithms are the proof algorithms accepted and used to sign.
var Algorithms = []string{token.AlgEdDSA, token.AlgES256}

// Errors, matched with errors.Is. Messages never quote the proof.
var (
	// ErrMissing: no proof came where one is needed.
	ErrMissing = errors.New("dpop: no proof")
	// ErrInvalid: the proof is malformed, badly signed, or its claims do
	// not fit the request (method, URL, time, access-token hash).
	ErrInvalid = errors.New("dpop: invalid proof")
	// ErrKey: the proof is signed by another key than the credential's.
	ErrKey = errors.New("dpop: the proof is not by the credential's key")
	// ErrReplay: the proof was seen before.
	ErrReplay = errors.New("dpop: the proof was replayed")
	// ErrBusy: the replay cache is full of live proofs; the request cannot
	// be checked now (fail closed).
	ErrBusy = errors.New("dpop: too many proofs to remember; try again")
)

// Options says what request a proof must be for.
type Options struct {
	// Method is the request's HTTP method ("htm"). Required.
	Method string
	// AltMethods are other methods the request may have been sent with,
	// where the server cannot tell (a Vault plugin sees a write, sent as
	// POST or PUT).
	AltMethods []string
	// URL is the request's URL as its server is reached ("htu"), compared
	// without query and fragment, scheme and host in lower case, default
	// port dropped. Required.
	URL string
	// AccessToken, when set, must be the proof's "ath" (base64url of its
	// SHA-256); when empty, the proof must have no "ath".
	AccessToken string
	// JKT, when set, is the thumbprint the proof's key must have (the
	// credential's "cnf.jkt"); ErrKey otherwise.
	JKT string
	// Now is the time; zero means time.Now().
	Now time.Time
	// Window is how far "iat" may lie from Now, either way; zero means
	// DefaultWindow.
	Window time.Duration
	// Replay, when set, refuses a proof seen before (ErrReplay). Servers
	// set it; without it a proof can be replayed within the window.
	Replay *ReplayCache
}

// Proof is a verified proof.
type Proof struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the proof's key, base64url.
	JKT string
	// ID is the proof's "jti".
	ID string
	// IssuedAt is its "iat".
	IssuedAt time.Time
	// Expires is when the proof stops being accepted (iat + window): how
	// long a replay cache must remember it.
	Expires time.Time
}

// claims are a proof's claims.
type claims struct {
	ID       string `json:"jti"`
	Method   string `json:"htm"`
	URL      string `json:"htu"`
	IssuedAt int64  `json:"iat"`
	ATH      string `json:"ath,omitempty"`
	Nonce    string `json:"nonce,omitempty"`
}

var b64 = base64.RawURLEncoding

// Verify checks proof against opts and returns it verified. It fails with
// ErrMissing for an empty proof, ErrInvalid for anything malformed or not
// matching the request, ErrKey when the key is not opts.JKT's, ErrReplay
// for a proof seen before, and ErrBusy when the replay cache is full.
func Verify(proof string, opts Options) (*Proof, error) {
	if proof == "" {
		return nil, ErrMissing
	}
	if opts.Method == "" || opts.URL == "" {
		return nil, errors.New("dpop: Options.Method and Options.URL are required")
	}
	if len(proof) > MaxProofSize || strings.Count(proof, ".") != 2 {
		return nil, fmt.Errorf("%w: not a compact JWS of at most %d bytes", ErrInvalid, MaxProofSize)
	}
	// The header, read by the strict rules first: only typ, alg and jwk.
	head, err := b64.Strict().DecodeString(proof[:strings.IndexByte(proof, '.')])
	if err != nil {
		return nil, fmt.Errorf("%w: header is not base64url", ErrInvalid)
	}
	var h struct {
		Typ string `json:"typ"`
		Alg string `json:"alg"`
	}
	members, err := token.DecodeStrict(head, &h)
	if err != nil {
		return nil, fmt.Errorf("%w: header is not a JSON object read by the strict rules", ErrInvalid)
	}
	for name := range members {
		if name != "typ" && name != "alg" && name != "jwk" {
			return nil, fmt.Errorf("%w: header member %q not allowed (only typ, alg and jwk)", ErrInvalid, clip(name))
		}
	}
	if h.Typ != Type {
		return nil, fmt.Errorf("%w: typ must be %q", ErrInvalid, Type)
	}
	if h.Alg != token.AlgEdDSA && h.Alg != token.AlgES256 {
		return nil, fmt.Errorf("%w: alg must be EdDSA or ES256", ErrInvalid)
	}
	jws, err := jose.ParseSignedCompact(proof, []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256})
	if err != nil || len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%w: not a JWS go-jose accepts", ErrInvalid)
	}
	jwk := jws.Signatures[0].Header.JSONWebKey
	if jwk == nil || !jwk.IsPublic() || !jwk.Valid() || !keyFits(h.Alg, jwk.Key) {
		return nil, fmt.Errorf("%w: jwk must be a public %s key", ErrInvalid, h.Alg)
	}
	payload, err := jws.Verify(jwk.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: signature does not verify", ErrInvalid)
	}
	var c claims
	if _, err := token.DecodeStrict(payload, &c); err != nil {
		return nil, fmt.Errorf("%w: claims are not a JSON object read by the strict rules", ErrInvalid)
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("%w: no thumbprint for the key", ErrInvalid)
	}
	p := &Proof{JKT: b64.EncodeToString(tp), ID: c.ID, IssuedAt: time.Unix(c.IssuedAt, 0)}

	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	window := opts.Window
	if window <= 0 {
		window = DefaultWindow
	}
	want, err := NormalizeURL(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("dpop: Options.URL: %w", err)
	}
	switch {
	case c.ID == "" || len(c.ID) > MaxIDLength:
		return nil, fmt.Errorf("%w: jti must be 1 to %d bytes", ErrInvalid, MaxIDLength)
	case c.Method != opts.Method && !slices.Contains(opts.AltMethods, c.Method):
		return nil, fmt.Errorf("%w: htm is not the request's method", ErrInvalid)
	case !sameURL(c.URL, want):
		return nil, fmt.Errorf("%w: htu is not the request's URL", ErrInvalid)
	case c.IssuedAt <= 0 || now.Sub(p.IssuedAt) > window || p.IssuedAt.Sub(now) > window:
		return nil, fmt.Errorf("%w: iat is not within %s of now", ErrInvalid, window)
	case c.Nonce != "":
		return nil, fmt.Errorf("%w: nonces are not used here", ErrInvalid)
	}
	if opts.AccessToken != "" {
		if c.ATH != AccessTokenHash(opts.AccessToken) {
			return nil, fmt.Errorf("%w: ath is not the hash of the credential", ErrInvalid)
		}
	} else if c.ATH != "" {
		return nil, fmt.Errorf("%w: ath given where no credential goes with the proof", ErrInvalid)
	}
	if opts.JKT != "" && p.JKT != opts.JKT {
		return nil, ErrKey
	}
	p.Expires = p.IssuedAt.Add(window)
	if opts.Replay != nil {
		if err := opts.Replay.Remember(p, now); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// AccessTokenHash is the "ath" of a credential: base64url(SHA-256(token)).
func AccessTokenHash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return b64.EncodeToString(sum[:])
}

// keyFits reports whether pub is a key for alg.
func keyFits(alg string, pub any) bool {
	switch alg {
	case token.AlgEdDSA:
		k, ok := pub.(ed25519.PublicKey)
		return ok && len(k) == ed25519.PublicKeySize
	case token.AlgES256:
		k, ok := pub.(*ecdsa.PublicKey)
		return ok && k.Curve == elliptic.P256()
	}
	return false
}

// NormalizeURL returns u as compared for "htu" (RFC 9449 section 4.3,
// RFC 3986 section 6.2.2 and 6.2.3): no query or fragment, scheme and host
// in lower case, the default port dropped, an empty path as "/".
func NormalizeURL(u string) (string, error) {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" || (p.Scheme != "https" && p.Scheme != "http" && !strings.EqualFold(p.Scheme, "https") && !strings.EqualFold(p.Scheme, "http")) {
		return "", errors.New("not an absolute http(s) URL")
	}
	p.Scheme = strings.ToLower(p.Scheme)
	host, port := strings.ToLower(p.Hostname()), p.Port()
	if (p.Scheme == "https" && port == "443") || (p.Scheme == "http" && port == "80") {
		port = ""
	}
	if port != "" {
		p.Host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		p.Host = "[" + host + "]"
	} else {
		p.Host = host
	}
	p.RawQuery, p.Fragment, p.RawFragment, p.ForceQuery, p.User = "", "", "", false, nil
	if p.Path == "" {
		p.Path = "/"
	}
	return p.String(), nil
}

func sameURL(htu, want string) bool {
	got, err := NormalizeURL(htu)
	return err == nil && got == want
}

func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

// ReplayCache remembers the proofs seen, each until its window ends, so
// that none is accepted twice. It holds at most a fixed number of live
// proofs: when full, it refuses new ones (ErrBusy) rather than forget one
// that could be replayed. It is safe for concurrent use.
type ReplayCache struct {
	mu    sync.Mutex
	max   int
	seen  map[string]time.Time
	queue []replayEntry // in the order seen; expiries are close to that order
}

type replayEntry struct {
	key   string
	until time.Time
}

// DefaultReplayCacheSize is the number of live proofs a cache made by
// NewReplayCache(0) holds: 100,000 proofs a minute.
const DefaultReplayCacheSize = 100_000

// NewReplayCache returns a cache holding at most max live proofs (zero
// means DefaultReplayCacheSize).
func NewReplayCache(max int) *ReplayCache {
	if max <= 0 {
		max = DefaultReplayCacheSize
	}
	return &ReplayCache{max: max, seen: map[string]time.Time{}}
}

// Remember records a verified proof until it expires, or fails with
// ErrReplay when it is remembered already, or ErrBusy when the cache is
// full of live proofs. Verify calls it when Options.Replay is set; a
// server that must first decide whether the request deserves a place in
// the cache (that it comes from a live session's caller) verifies without
// Options.Replay and calls Remember then.
func (c *ReplayCache) Remember(p *Proof, now time.Time) error {
	return c.check(p.JKT+":"+p.ID, p.Expires, now)
}

// check records key until then (inclusive: a proof is accepted at its
// last instant), or fails with ErrReplay when it is remembered, or ErrBusy
// when the cache is full of live proofs.
func (c *ReplayCache) check(key string, until, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Forget what expired: the front of the queue, mostly.
	for len(c.queue) > 0 && c.queue[0].until.Before(now) {
		e := c.queue[0]
		c.queue = c.queue[1:]
		if t, ok := c.seen[e.key]; ok && t.Before(now) {
			delete(c.seen, e.key)
		}
	}
	if t, ok := c.seen[key]; ok && !t.Before(now) {
		return ErrReplay
	}
	if len(c.seen) >= c.max {
		// A full cache may hold expired entries behind a live one at the
		// front: sweep them once before refusing.
		c.sweep(now)
		if len(c.seen) >= c.max {
			return ErrBusy
		}
	}
	c.seen[key] = until
	c.queue = append(c.queue, replayEntry{key, until})
	return nil
}

// sweep forgets every expired entry.
func (c *ReplayCache) sweep(now time.Time) {
	kept := c.queue[:0]
	for _, e := range c.queue {
		if !e.until.Before(now) {
			kept = append(kept, e)
		} else if t, ok := c.seen[e.key]; ok && t.Before(now) {
			delete(c.seen, e.key)
		}
	}
	c.queue = kept
}

// Len is the number of proofs remembered.
func (c *ReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// Key is a client's DPoP key: it signs proofs, and credentials are bound
// to its thumbprint. It is safe for concurrent use.
type Key struct {
	alg  string
	priv crypto.Signer
	jkt  string
}

// GenerateKey returns a new key for alg (EdDSA or ES256).
func GenerateKey(alg string) (*Key, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case token.AlgEdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case token.AlgES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, fmt.Errorf("dpop: unsupported algorithm %q (want EdDSA or ES256)", alg)
	}
	if err != nil {
		return nil, err
	}
	pub := jose.JSONWebKey{Key: priv.Public()}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	return &Key{alg: alg, priv: priv, jkt: b64.EncodeToString(tp)}, nil
}

// Thumbprint is the key's RFC 7638 SHA-256 thumbprint, base64url: what a
// bound credential's "cnf.jkt" holds.
func (k *Key) Thumbprint() string { return k.jkt }

// Algorithm is the key's signing algorithm.
func (k *Key) Algorithm() string { return k.alg }

// Proof signs a proof for a request with this method and URL (its query
// and fragment are left out), at now (zero means time.Now()), for the
// credential accessToken ("ath"), or for none when it is empty.
func (k *Key) Proof(method, rawURL, accessToken string, now time.Time) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("dpop: the request URL: %w", err)
	}
	u.RawQuery, u.Fragment, u.RawFragment, u.ForceQuery = "", "", "", false
	if now.IsZero() {
		now = time.Now()
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return "", err
	}
	c := claims{ID: b64.EncodeToString(id), Method: method, URL: u.String(), IssuedAt: now.Unix()}
	if accessToken != "" {
		c.ATH = AccessTokenHash(accessToken)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.alg), Key: k.priv},
		(&jose.SignerOptions{EmbedJWK: true}).WithType(Type))
	if err != nil {
		return "", fmt.Errorf("dpop: cannot sign: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("dpop: cannot sign: %w", err)
	}
	return jws.CompactSerialize()
}
