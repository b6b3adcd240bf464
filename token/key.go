package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	jjson "github.com/go-jose/go-jose/v4/json"
)

// Key is a signing key pair. ID and Algorithm go into the header of every
// credential it mints. A Key is immutable once created and safe for
// concurrent use; do not change its fields.
type Key struct {
	// ID is the key ID ("kid"): the RFC 7638 SHA-256 thumbprint of the
	// public key for keys made by GenerateKey.
	ID string
	// Algorithm is AlgEdDSA or AlgES256.
	Algorithm string
	// Created is when the key was generated (UTC, whole seconds).
	Created time.Time

	priv crypto.Signer // ed25519.PrivateKey or *ecdsa.PrivateKey (P-256)
}

// PublicKey is the verification half of a Key.
type PublicKey struct {
	// ID is the key ID ("kid").
	ID string
	// Algorithm is AlgEdDSA or AlgES256; Verify only accepts tokens whose
	// header "alg" equals it.
	Algorithm string
	// Key is an ed25519.PublicKey (EdDSA) or a P-256 *ecdsa.PublicKey (ES256).
	Key crypto.PublicKey
}

// GenerateKey creates a new random key pair for alg (AlgEdDSA or
// AlgES256). Its ID is the RFC 7638 SHA-256 thumbprint of the public key.
func GenerateKey(alg string) (*Key, error) {
	var priv crypto.Signer
	switch alg {
	case AlgEdDSA:
		_, p, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("token: generate key: %w", err)
		}
		priv = p
	case AlgES256:
		p, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("token: generate key: %w", err)
		}
		priv = p
	default:
		return nil, fmt.Errorf("%w: cannot generate a key for this algorithm", ErrAlgorithm)
	}
	return newKey(alg, priv, time.Now())
}

// newKey wraps priv, naming it by its public key thumbprint.
func newKey(alg string, priv crypto.Signer, created time.Time) (*Key, error) {
	jwk := jose.JSONWebKey{Key: priv.Public()}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, errors.New("token: cannot compute key thumbprint")
	}
	return &Key{
		ID:        base64.RawURLEncoding.EncodeToString(tp),
		Algorithm: alg,
		Created:   created.UTC().Truncate(time.Second),
		priv:      priv,
	}, nil
}

// Public returns the verification half of k.
func (k *Key) Public() PublicKey {
	p := PublicKey{ID: k.ID, Algorithm: k.Algorithm}
	if k.priv != nil {
		p.Key = k.priv.Public()
	}
	return p
}

// storedKey is the storage form written by MarshalPrivate.
type storedKey struct {
	Created time.Time       `json:"created"`
	JWK     json.RawMessage `json:"jwk"`
}

// MarshalPrivate serialises k, private part included, for storage. The
// format is a JSON object {"created": RFC 3339 time, "jwk": private JWK
// with "kid", "alg" and "use":"sig"}. Protect the result like the key
// itself; UnmarshalPrivate reads it back.
func (k *Key) MarshalPrivate() ([]byte, error) {
	if k == nil || k.priv == nil {
		return nil, errors.New("token: marshal key: no private part")
	}
	jwk, err := json.Marshal(jose.JSONWebKey{Key: k.priv, KeyID: k.ID, Algorithm: k.Algorithm, Use: "sig"})
	if err != nil {
		return nil, errors.New("token: marshal key: cannot encode JWK")
	}
	return json.Marshal(storedKey{Created: k.Created, JWK: jwk})
}

// UnmarshalPrivate reads a key written by MarshalPrivate. It checks that
// the algorithm is supported and fits the key type, that the key ID is set,
// and that the public and private parts agree. Errors never quote the
// input.
func UnmarshalPrivate(b []byte) (*Key, error) {
	var sk storedKey
	if err := json.Unmarshal(b, &sk); err != nil || len(sk.JWK) == 0 {
		return nil, errors.New("token: stored key: not a valid key record")
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(sk.JWK); err != nil {
		return nil, errors.New("token: stored key: invalid JWK")
	}
	if jwk.KeyID == "" {
		return nil, errors.New("token: stored key: missing kid")
	}
	var priv crypto.Signer
	switch jwk.Algorithm {
	case AlgEdDSA:
		p, ok := jwk.Key.(ed25519.PrivateKey)
		if !ok || len(p) != ed25519.PrivateKeySize {
			return nil, errors.New("token: stored key: EdDSA key is not an Ed25519 private key")
		}
		priv = p // go-jose has checked that x matches d
	case AlgES256:
		p, ok := jwk.Key.(*ecdsa.PrivateKey)
		if !ok || p.Curve == nil || p.Curve.Params() != elliptic.P256().Params() {
			return nil, errors.New("token: stored key: ES256 key is not a P-256 private key")
		}
		raw, err := p.Bytes()
		if err != nil {
			return nil, errors.New("token: stored key: ES256 key is not a P-256 private key")
		}
		// Rebuild from the scalar so x/y cannot disagree with d.
		clean, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), raw)
		if err != nil || !clean.PublicKey.Equal(&p.PublicKey) {
			return nil, errors.New("token: stored key: ES256 public and private parts disagree")
		}
		priv = clean
	default:
		return nil, fmt.Errorf("%w: stored key has unsupported alg", ErrAlgorithm)
	}
	return &Key{ID: jwk.KeyID, Algorithm: jwk.Algorithm, Created: sk.Created, priv: priv}, nil
}

// JWK returns p as a public JSON Web Key with "use":"sig" and its "alg"
// and "kid" set.
func (p PublicKey) JWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: p.Key, KeyID: p.ID, Algorithm: p.Algorithm, Use: "sig"}
}

// JWKS returns a JWK Set of the given public keys, ready for json.Marshal
// (for example to serve at a JWKS endpoint).
func JWKS(keys ...PublicKey) jose.JSONWebKeySet {
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(keys))}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.JWK())
	}
	return set
}

// jwkHead holds every JWK member that go-jose reads (the members of its
// rawJSONWebKey), so that strictDecode refuses a case variant of any of
// them: ParseJWKS and Thumbprint look at the very names go-jose builds the
// key from. The private and symmetric members are only looked at for
// presence (a null value counts as present).
type jwkHead struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Use string `json:"use"`

	X   jjson.RawMessage `json:"x"`
	Y   jjson.RawMessage `json:"y"`
	N   jjson.RawMessage `json:"n"`
	E   jjson.RawMessage `json:"e"`
	Pub jjson.RawMessage `json:"pub"`

	X5c     jjson.RawMessage `json:"x5c"`
	X5u     jjson.RawMessage `json:"x5u"`
	X5t     jjson.RawMessage `json:"x5t"`
	X5tS256 jjson.RawMessage `json:"x5t#S256"`

	D    jjson.RawMessage `json:"d"`
	P    jjson.RawMessage `json:"p"`
	Q    jjson.RawMessage `json:"q"`
	Dp   jjson.RawMessage `json:"dp"`
	Dq   jjson.RawMessage `json:"dq"`
	Qi   jjson.RawMessage `json:"qi"`
	K    jjson.RawMessage `json:"k"`
	Priv jjson.RawMessage `json:"priv"`
}

// private reports whether h has a private or symmetric key member.
func (h *jwkHead) private() bool {
	for _, m := range []jjson.RawMessage{h.D, h.P, h.Q, h.Dp, h.Dq, h.Qi, h.K, h.Priv} {
		if m != nil {
			return true
		}
	}
	return false
}

// jwkSet is a JWK Set as ParseJWKS reads it.
type jwkSet struct {
	Keys []jjson.RawMessage `json:"keys"`
}

// ParseJWKS parses a JWK Set (as served by the engine) into verification
// keys. It is strict: the set and each key are read by the strict JSON
// rules of strictDecode (go-jose's JSON package, exact member names, no
// duplicate member, no two members differing only in case, no case variant
// of a member go-jose reads), so that the members checked here are the
// ones go-jose builds the key from. Every key must have a "kid" (unique in
// the set), an "alg" of EdDSA (kty OKP, crv Ed25519) or ES256 (kty EC,
// crv P-256), "use" absent or "sig", and no private or symmetric members;
// otherwise the whole set is rejected. An empty "keys" array yields no
// keys and no error.
func ParseJWKS(b []byte) ([]PublicKey, error) {
	var set jwkSet
	if _, err := strictDecode(b, &set); err != nil {
		return nil, errors.New("token: JWKS is not a JSON object read by the strict rules")
	}
	if set.Keys == nil {
		return nil, errors.New(`token: JWKS has no "keys" array`)
	}
	out := make([]PublicKey, 0, len(set.Keys))
	seen := make(map[string]bool, len(set.Keys))
	for i, raw := range set.Keys {
		var head jwkHead
		if _, err := strictDecode(raw, &head); err != nil {
			return nil, fmt.Errorf("token: JWKS key %d: not a JWK object read by the strict rules", i)
		}
		if head.private() {
			return nil, fmt.Errorf("token: JWKS key %d: private or symmetric key", i)
		}
		if head.Kid == "" {
			return nil, fmt.Errorf("token: JWKS key %d: missing kid", i)
		}
		if seen[head.Kid] {
			return nil, fmt.Errorf("token: JWKS key %d: duplicate kid", i)
		}
		seen[head.Kid] = true
		if head.Use != "" && head.Use != "sig" {
			return nil, fmt.Errorf("token: JWKS key %d: use is not sig", i)
		}
		switch {
		case head.Alg == AlgEdDSA && head.Kty == "OKP" && head.Crv == "Ed25519":
		case head.Alg == AlgES256 && head.Kty == "EC" && head.Crv == "P-256":
		default:
			return nil, fmt.Errorf("%w: JWKS key %d: unsupported alg/kty/crv", ErrAlgorithm, i)
		}
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(raw); err != nil {
			return nil, fmt.Errorf("token: JWKS key %d: not a valid JWK", i)
		}
		if !jwk.IsPublic() || !jwk.Valid() {
			return nil, fmt.Errorf("token: JWKS key %d: not a valid public key", i)
		}
		// Both readings name the same members; check they agree anyway.
		if jwk.KeyID != head.Kid || jwk.Algorithm != head.Alg || jwk.Use != head.Use {
			return nil, fmt.Errorf("token: JWKS key %d: read differently by go-jose", i)
		}
		if !keyFitsAlgorithm(head.Alg, jwk.Key) {
			return nil, fmt.Errorf("%w: JWKS key %d: key does not fit its alg", ErrAlgorithm, i)
		}
		out = append(out, PublicKey{ID: jwk.KeyID, Algorithm: jwk.Algorithm, Key: jwk.Key})
	}
	return out, nil
}

// Thumbprint returns the RFC 7638 SHA-256 thumbprint, unpadded base64url,
// of a public JWK given as JSON. RSA, EC and OKP (Ed25519) keys are
// supported; private and symmetric keys are rejected, so that callers do
// not pass secrets around by mistake.
func Thumbprint(jwkJSON []byte) (string, error) {
	var head jwkHead
	if _, err := strictDecode(jwkJSON, &head); err != nil {
		return "", errors.New("token: thumbprint: not a JWK object read by the strict rules")
	}
	if head.private() {
		return "", errors.New("token: thumbprint: JWK is not a public key")
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(jwkJSON); err != nil {
		return "", errors.New("token: thumbprint: not a valid JWK")
	}
	if !jwk.IsPublic() {
		return "", errors.New("token: thumbprint: JWK is not a public key")
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("token: thumbprint: %v", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}
