package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

// The signing keys: the keyring, cached on the backend and stored
// seal-wrapped; its rotation; and the verification of the engine's own
// credentials against it (parent tokens, introspection, reports).

// storedKeyring is the keyring as kept at keys/ring (seal-wrapped).
type storedKeyring struct {
	Current string      `json:"current"`
	Keys    []storedKey `json:"keys"`
}

type storedKey struct {
	// Private is the key pair as token.Key.MarshalPrivate encodes it.
	Private []byte `json:"private"`
	// RetiredAt is when a newer key replaced this one; zero for the
	// current key.
	RetiredAt time.Time `json:"retired_at,omitempty"`
	// NotAfter is when the last credential this key could have signed
	// expires; the key leaves jwks after it.
	NotAfter time.Time `json:"not_after,omitempty"`
}

// keyring is the decoded keyring, cached on the backend.
type keyring struct {
	current *token.Key
	keys    []ringKey // current first
	// verified remembers the credentials verify accepted (by a hash of the
	// whole credential), so that one presented again, such as the
	// delegation credential a sub-agent exchanges for each step, is not
	// parsed and its signature not checked again; every other check runs
	// on each use. A new keyring (a rotation, a change on another node)
	// starts with an empty cache.
	verified *token.VerifyCache
}

// verifyCacheSize is how many credentials a keyring's cache remembers:
// enough for every delegation credential in use on a busy mount, a few MB
// at most.
const verifyCacheSize = 4096

type ringKey struct {
	key      *token.Key
	retired  time.Time
	notAfter time.Time
}

// publicKeys returns every public key that may still verify a live
// credential at now.
func (r *keyring) publicKeys(now time.Time) []token.PublicKey {
	out := make([]token.PublicKey, 0, len(r.keys))
	for _, k := range r.keys {
		if k.notAfter.IsZero() || now.Before(k.notAfter) {
			out = append(out, k.key.Public())
		}
	}
	return out
}

// lookup is a token.KeyLookup over the keys valid at now (those
// publicKeys returns), without building them all.
func (r *keyring) lookup(now time.Time) token.KeyLookup {
	return func(kid string) (token.PublicKey, bool) {
		for _, k := range r.keys {
			if k.key.ID == kid && (k.notAfter.IsZero() || now.Before(k.notAfter)) {
				return k.key.Public(), true
			}
		}
		return token.PublicKey{}, false
	}
}

func decodeKeyring(st *storedKeyring) (*keyring, error) {
	r := &keyring{verified: token.NewVerifyCache(verifyCacheSize)}
	for _, sk := range st.Keys {
		k, err := token.UnmarshalPrivate(sk.Private)
		if err != nil {
			return nil, fmt.Errorf("decoding signing key: %w", err)
		}
		rk := ringKey{key: k, retired: sk.RetiredAt, notAfter: sk.NotAfter}
		if k.ID == st.Current {
			r.current = k
			r.keys = append([]ringKey{rk}, r.keys...)
		} else {
			r.keys = append(r.keys, rk)
		}
	}
	if r.current == nil {
		return nil, fmt.Errorf("the keyring names current key %q but does not hold it", st.Current)
	}
	return r, nil
}

func encodeKeyring(r *keyring) (*storedKeyring, error) {
	st := &storedKeyring{Current: r.current.ID}
	for _, k := range r.keys {
		priv, err := k.key.MarshalPrivate()
		if err != nil {
			return nil, err
		}
		st.Keys = append(st.Keys, storedKey{Private: priv, RetiredAt: k.retired, NotAfter: k.notAfter})
	}
	return st, nil
}

// loadKeyring returns the keyring, creating the first key (with cfg's
// algorithm) when there is none yet.
func (b *backend) loadKeyring(ctx context.Context, s logical.Storage, cfg *agentConfig) (*keyring, error) {
	return loadCached(&b.keyringLock, &b.keyring, func() (*keyring, error) {
		var st storedKeyring
		ok, err := getJSON(ctx, s, keyringPath, &st)
		if err != nil {
			return nil, err
		}
		if ok {
			return decodeKeyring(&st)
		}
		return b.rotateLocked(ctx, s, nil, cfg)
	})
}

// loadConfigAndKeyring loads what a request that mints or verifies
// credentials needs, once: the configuration and the keyring.
func (b *backend) loadConfigAndKeyring(ctx context.Context, s logical.Storage) (*agentConfig, *keyring, error) {
	cfg, err := b.loadConfig(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	r, err := b.loadKeyring(ctx, s, cfg)
	if err != nil {
		return nil, nil, err
	}
	return cfg, r, nil
}

// rotateKey makes a new current signing key with cfg's algorithm. The
// previous key stays in jwks until every credential it signed has
// expired.
func (b *backend) rotateKey(ctx context.Context, s logical.Storage, cfg *agentConfig) (*keyring, error) {
	return b.rotate(ctx, s, cfg, true)
}

// rotateExistingKey is rotateKey for a mount that has a keyring; a mount
// without one yet gets none (its first key will have cfg's algorithm
// anyway), and a nil keyring.
func (b *backend) rotateExistingKey(ctx context.Context, s logical.Storage, cfg *agentConfig) (*keyring, error) {
	return b.rotate(ctx, s, cfg, false)
}

func (b *backend) rotate(ctx context.Context, s logical.Storage, cfg *agentConfig, create bool) (*keyring, error) {
	b.keyringLock.Lock()
	defer b.keyringLock.Unlock()

	var old *keyring
	var st storedKeyring
	ok, err := getJSON(ctx, s, keyringPath, &st)
	if err != nil || (!ok && !create) {
		return nil, err
	}
	if ok {
		if old, err = decodeKeyring(&st); err != nil {
			return nil, err
		}
	}
	return b.rotateLocked(ctx, s, old, cfg)
}

// rotateLocked writes a keyring with a fresh current key in front of the
// still-useful keys of old (nil for none). b.keyringLock must be held.
func (b *backend) rotateLocked(ctx context.Context, s logical.Storage, old *keyring, cfg *agentConfig) (*keyring, error) {
	k, err := token.GenerateKey(cfg.SigningAlgorithm)
	if err != nil {
		return nil, err
	}
	now := b.now()
	r := &keyring{current: k, keys: []ringKey{{key: k}}, verified: token.NewVerifyCache(verifyCacheSize)}
	if old != nil {
		for _, rk := range old.keys {
			if rk.retired.IsZero() {
				// No credential outlives the longest step_max_ttl.
				rk.retired = now
				rk.notAfter = now.Add(cfg.keyLifetimeAfterRetirement())
			}
			if now.Before(rk.notAfter) {
				r.keys = append(r.keys, rk)
			}
		}
	}
	st, err := encodeKeyring(r)
	if err != nil {
		return nil, err
	}
	if err := putJSON(ctx, s, keyringPath, st); err != nil {
		return nil, err
	}
	b.keyring = r
	b.Logger().Info("signing key created", "kid", k.ID, "algorithm", k.Algorithm, "keys_in_jwks", len(r.keys))
	return r, nil
}

// verify checks that raw is a step credential of this engine: signed by
// one of its keys still in jwks at now, for issuer, whatever its audience.
// With anyTime, its validity window is not checked: a report of an expired
// credential's use is still attributable to its session. (Keys leave the
// ring once every credential they signed has expired; such a credential
// can no longer be attributed.)
func (r *keyring) verify(raw, issuer string, now time.Time, anyTime bool) (*token.Claims, error) {
	return r.verified.Verify(raw, r.lookup(now), token.VerifyOptions{
		Issuer:         issuer,
		AnyAudience:    true, // the engine's own credentials, whatever they are for
		Formats:        token.Formats,
		Now:            now,
		Leeway:         -1, // the engine's own clock: no skew to tolerate
		IgnoreValidity: anyTime,
	})
}

// isVerifyError tells a token that does not verify from a failure of the
// engine itself.
func isVerifyError(err error) bool {
	for _, e := range []error{
		token.ErrMalformed, token.ErrUnknownKey, token.ErrAlgorithm, token.ErrSignature,
		token.ErrExpired, token.ErrNotYetValid, token.ErrIssuer, token.ErrAudience,
		token.ErrType, token.ErrTooLarge, token.ErrClaims,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// whyUnverified says why a token did not verify (an error of verify), in
// words that follow the token's name ("parent_token has expired"),
// without echoing the token.
func whyUnverified(err error) string {
	switch {
	case errors.Is(err, token.ErrTooLarge):
		return "is too large"
	case errors.Is(err, token.ErrExpired):
		return "has expired"
	case errors.Is(err, token.ErrNotYetValid):
		return "is not valid yet"
	case errors.Is(err, token.ErrUnknownKey), errors.Is(err, token.ErrSignature), errors.Is(err, token.ErrAlgorithm):
		return "does not verify against this engine's keys"
	case errors.Is(err, token.ErrIssuer):
		return "was issued by another engine"
	case errors.Is(err, token.ErrType):
		return "is not a txntoken+jwt"
	default:
		return "is malformed"
	}
}
