package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

// The engine's configuration: its defaults, its cache on the backend, and
// its changes. path_config.go reads and writes it for operators; every
// request loads it once (loadConfig) and hands it down.

const (
	// The signing algorithms a step credential may be signed with: the
	// token package's. (Named here for config's field schema.)
	algEdDSA = token.AlgEdDSA
	algES256 = token.AlgES256

	defaultSessionMaxTTL = 24 * time.Hour
	defaultStepMaxTTL    = time.Hour
	defaultMaxEvents     = 1000
	defaultRetention     = 24 * time.Hour

	// maxEventsCeiling bounds max_events so a typo cannot fill storage.
	maxEventsCeiling = 100000
	// The bounds of session_cache_size.
	minSessionCacheSize = 16
	maxSessionCacheSize = 1000000
	// maxIssuerLength bounds the issuer, a claim of every credential.
	maxIssuerLength = 512
)

// agentConfig is the engine-wide configuration, stored at "config".
// The zero value of a field means "the default".
type agentConfig struct {
	// Issuer is the "iss" claim of every step credential. Empty means
	// "vault:<mount path>", derived per request.
	Issuer string `json:"issuer,omitempty"`
	// SigningAlgorithm is EdDSA (Ed25519) or ES256 (P-256).
	SigningAlgorithm string `json:"signing_algorithm"`
	// SessionMaxTTL is the ceiling for every role's session_max_ttl.
	SessionMaxTTL time.Duration `json:"session_max_ttl"`
	// StepMaxTTL is the ceiling for every role's step_max_ttl.
	StepMaxTTL time.Duration `json:"step_max_ttl"`
	// MaxEvents is how many timeline events one session keeps; older
	// ones are dropped and counted.
	MaxEvents int `json:"max_events"`
	// SessionRetention is how long a closed session's record and
	// timeline stay readable after its last credential expired.
	SessionRetention time.Duration `json:"session_retention"`
	// StepMaxTTLSeen is the longest step_max_ttl ever configured: sessions
	// started under it may still issue credentials that long, so a retired
	// signing key stays in jwks for at least that long.
	StepMaxTTLSeen time.Duration `json:"step_max_ttl_seen,omitempty"`
	// SessionCacheSize bounds the active sessions kept in memory (see
	// session_cache.go); 0 means defaultSessionCacheSize.
	SessionCacheSize int `json:"session_cache_size,omitempty"`
}

// keyLifetimeAfterRetirement is how long a retired signing key must stay
// in jwks: the longest a credential signed just before (or, having waited
// for a lock, just after) the rotation may live.
func (c *agentConfig) keyLifetimeAfterRetirement() time.Duration {
	return max(c.StepMaxTTL, c.StepMaxTTLSeen, defaultStepMaxTTL) + time.Minute
}

func defaultConfig() *agentConfig {
	return &agentConfig{
		SigningAlgorithm: token.AlgEdDSA,
		SessionMaxTTL:    defaultSessionMaxTTL,
		StepMaxTTL:       defaultStepMaxTTL,
		MaxEvents:        defaultMaxEvents,
		SessionRetention: defaultRetention,
	}
}

// issuerFor returns the issuer for tokens minted through the mount at
// mountPoint.
func (c *agentConfig) issuerFor(mountPoint string) string {
	if c.Issuer != "" {
		return c.Issuer
	}
	return "vault:" + strings.TrimSuffix(mountPoint, "/")
}

// loadConfig returns the engine configuration, from the cache when it is
// warm. The result is shared: callers must not modify it.
func (b *backend) loadConfig(ctx context.Context, s logical.Storage) (*agentConfig, error) {
	return loadCached(&b.configLock, &b.config, func() (*agentConfig, error) { return readConfig(ctx, s) })
}

// readConfig reads the stored configuration over the defaults.
func readConfig(ctx context.Context, s logical.Storage) (*agentConfig, error) {
	cfg := defaultConfig()
	entry, err := s.Get(ctx, configStoragePath)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if entry != nil {
		if err := entry.DecodeJSON(cfg); err != nil {
			return nil, fmt.Errorf("decoding config: %w", err)
		}
	}
	return cfg, nil
}

// updateConfig applies change to a copy of the configuration and stores
// the result, holding the lock across the read-modify-write so that two
// concurrent writes cannot lose each other's fields. It returns the
// configuration before and after; when change fails, nothing is stored.
func (b *backend) updateConfig(ctx context.Context, s logical.Storage, change func(*agentConfig) error) (before, after *agentConfig, err error) {
	b.configLock.Lock()
	defer b.configLock.Unlock()

	if before = b.config; before == nil {
		if before, err = readConfig(ctx, s); err != nil {
			return nil, nil, err
		}
	}
	cfg := *before
	if err := change(&cfg); err != nil {
		return nil, nil, err
	}
	cfg.StepMaxTTLSeen = max(cfg.StepMaxTTLSeen, before.StepMaxTTL, cfg.StepMaxTTL)
	if err := putJSON(ctx, s, configStoragePath, &cfg); err != nil {
		return nil, nil, err
	}
	b.config = &cfg
	return before, &cfg, nil
}

// resetConfig puts every field back to its default.
func (b *backend) resetConfig(ctx context.Context, s logical.Storage) error {
	b.configLock.Lock()
	defer b.configLock.Unlock()
	if err := s.Delete(ctx, configStoragePath); err != nil {
		return err
	}
	b.config = nil
	return nil
}
