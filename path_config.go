package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const (
	configStoragePath = "config"
	keysStoragePrefix = "keys/"

	// Signing algorithms a step credential may be signed with.
	algEdDSA = "EdDSA"
	algES256 = "ES256"

	defaultSessionMaxTTL = 24 * time.Hour
	defaultStepMaxTTL    = time.Hour
	defaultMaxEvents     = 1000
	defaultRetention     = 24 * time.Hour

	// maxEventsCeiling bounds max_events so a typo cannot fill storage.
	maxEventsCeiling = 100000
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
}

// keyLifetimeAfterRetirement is how long a retired signing key must stay
// in jwks: the longest a credential signed just before (or, having waited
// for a lock, just after) the rotation may live.
func (c *agentConfig) keyLifetimeAfterRetirement() time.Duration {
	return max(c.StepMaxTTL, c.StepMaxTTLSeen, defaultStepMaxTTL) + time.Minute
}

func defaultConfig() *agentConfig {
	return &agentConfig{
		SigningAlgorithm: algEdDSA,
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

func pathConfig(b *backend) *framework.Path {
	return &framework.Path{
		Pattern: "config$",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "agent",
		},
		Fields: map[string]*framework.FieldSchema{
			"issuer": {
				Type: framework.TypeString,
				Description: `The "iss" claim of every step credential; resource servers ` +
					`check it. Defaults to "vault:<mount path>", e.g. "vault:agent".`,
				DisplayAttrs: &framework.DisplayAttributes{Name: "Issuer"},
			},
			"signing_algorithm": {
				Type: framework.TypeString,
				Description: `The JWS algorithm of step credentials: "EdDSA" (Ed25519, the ` +
					`default) or "ES256" (ECDSA P-256). A change creates a new signing key at ` +
					`once; older keys stay in jwks until their credentials expire.`,
				Default:       algEdDSA,
				AllowedValues: []interface{}{algEdDSA, algES256},
			},
			"session_max_ttl": {
				Type: framework.TypeDurationSecond,
				Description: `The longest a session may live, renewals included; no role's ` +
					`session_max_ttl may exceed it. Defaults to 24h.`,
				Default: int(defaultSessionMaxTTL.Seconds()),
			},
			"step_max_ttl": {
				Type: framework.TypeDurationSecond,
				Description: `The longest a step credential may live; no role's step_max_ttl ` +
					`may exceed it. Defaults to 1h.`,
				Default: int(defaultStepMaxTTL.Seconds()),
			},
			"max_events": {
				Type: framework.TypeInt,
				Description: fmt.Sprintf(`How many timeline events one session keeps (1 to %d); `+
					`beyond it the oldest are dropped and counted. Defaults to %d.`,
					maxEventsCeiling, defaultMaxEvents),
				Default: defaultMaxEvents,
			},
			"session_retention": {
				Type: framework.TypeDurationSecond,
				Description: `How long a closed session's record and timeline stay readable ` +
					`after its last credential expired; then the periodic tidy deletes them. Defaults to 24h.`,
				Default: int(defaultRetention.Seconds()),
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathConfigRead,
				Summary:  "Read the engine configuration.",
				DisplayAttrs: &framework.DisplayAttributes{
					OperationVerb: "read", OperationSuffix: "configuration",
				},
			},
			logical.UpdateOperation: &framework.PathOperation{
				Callback: b.pathConfigWrite,
				// Writes replicated storage: run on the active node of the primary.
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
				Summary:                     "Configure the engine. Omitted fields keep their current values.",
				DisplayAttrs: &framework.DisplayAttributes{
					OperationVerb: "configure",
				},
			},
			logical.DeleteOperation: &framework.PathOperation{
				Callback: b.pathConfigDelete,
				// Writes replicated storage: run on the active node of the primary.
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
				Summary:                     "Reset the engine configuration to its defaults.",
				DisplayAttrs: &framework.DisplayAttributes{
					OperationVerb: "delete", OperationSuffix: "configuration",
				},
			},
		},
		HelpSynopsis:    pathConfigHelpSyn,
		HelpDescription: pathConfigHelpDesc,
	}
}

func (b *backend) pathConfigRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	cfg, err := b.loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{
		"issuer":            cfg.issuerFor(req.MountPoint),
		"signing_algorithm": cfg.SigningAlgorithm,
		"session_max_ttl":   int64(cfg.SessionMaxTTL.Seconds()),
		"step_max_ttl":      int64(cfg.StepMaxTTL.Seconds()),
		"max_events":        cfg.MaxEvents,
		"session_retention": int64(cfg.SessionRetention.Seconds()),
	}}, nil
}

func (b *backend) pathConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if err := refuseUnknownFields(req, d); err != nil {
		return nil, err
	}
	resp, algChanged, err := b.writeConfig(ctx, req, d)
	if err != nil || resp != nil || !algChanged {
		return resp, err
	}
	// A new algorithm needs a new key; the old one stays in jwks until its
	// credentials expire. (Without a keyring yet, the first key will use
	// the new algorithm anyway.)
	if entry, err := req.Storage.Get(ctx, keyringPath); err != nil || entry == nil {
		return nil, err
	}
	r, err := b.rotateKey(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	resp = &logical.Response{}
	resp.AddWarning(fmt.Sprintf("signing_algorithm changed: new signing key %s (%s); older keys stay in jwks until their credentials expire", r.current.ID, r.current.Algorithm))
	return resp, nil
}

// writeConfig applies a config write and reports whether the signing
// algorithm changed.
func (b *backend) writeConfig(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, bool, error) {
	// Hold the lock across read-modify-write so two concurrent writes
	// cannot lose each other's fields.
	b.configLock.Lock()
	defer b.configLock.Unlock()

	current, err := b.readConfigLocked(ctx, req.Storage)
	if err != nil {
		return nil, false, err
	}
	cfg := *current

	if v, ok := d.GetOk("issuer"); ok {
		issuer := strings.TrimSpace(v.(string))
		if len(issuer) > 512 {
			return nil, false, badField("issuer", "must be at most 512 bytes")
		}
		if strings.ContainsFunc(issuer, isControl) {
			return nil, false, badField("issuer", "must not contain control characters")
		}
		cfg.Issuer = issuer
	}
	if v, ok := d.GetOk("signing_algorithm"); ok {
		alg := v.(string)
		if alg != algEdDSA && alg != algES256 {
			return nil, false, badField("signing_algorithm", "%q is not supported; use %q or %q", alg, algEdDSA, algES256)
		}
		cfg.SigningAlgorithm = alg
	}
	if v, ok := d.GetOk("session_max_ttl"); ok {
		ttl := time.Duration(v.(int)) * time.Second
		if ttl <= 0 {
			return nil, false, badField("session_max_ttl", "must be a positive duration")
		}
		cfg.SessionMaxTTL = ttl
	}
	if v, ok := d.GetOk("step_max_ttl"); ok {
		ttl := time.Duration(v.(int)) * time.Second
		if ttl <= 0 {
			return nil, false, badField("step_max_ttl", "must be a positive duration")
		}
		cfg.StepMaxTTL = ttl
	}
	if v, ok := d.GetOk("max_events"); ok {
		n := v.(int)
		if n < 1 || n > maxEventsCeiling {
			return nil, false, badField("max_events", "must be between 1 and %d, got %d", maxEventsCeiling, n)
		}
		cfg.MaxEvents = n
	}
	if v, ok := d.GetOk("session_retention"); ok {
		ttl := time.Duration(v.(int)) * time.Second
		if ttl < 0 {
			return nil, false, badField("session_retention", "must not be negative")
		}
		cfg.SessionRetention = ttl
	}
	cfg.StepMaxTTLSeen = max(cfg.StepMaxTTLSeen, current.StepMaxTTL, cfg.StepMaxTTL)
	if cfg.StepMaxTTL > cfg.SessionMaxTTL {
		return nil, false, badField("step_max_ttl", "%s exceeds session_max_ttl %s; a step credential cannot outlive its session",
			cfg.StepMaxTTL, cfg.SessionMaxTTL)
	}

	entry, err := logical.StorageEntryJSON(configStoragePath, &cfg)
	if err != nil {
		return nil, false, err
	}
	if err := req.Storage.Put(ctx, entry); err != nil {
		return nil, false, err
	}
	b.config = &cfg
	return nil, cfg.SigningAlgorithm != current.SigningAlgorithm, nil
}

func (b *backend) pathConfigDelete(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	b.configLock.Lock()
	defer b.configLock.Unlock()

	if err := req.Storage.Delete(ctx, configStoragePath); err != nil {
		return nil, err
	}
	b.config = nil
	return nil, nil
}

// loadConfig returns the engine configuration, from the cache when it is
// warm. The result is shared: callers must not modify it.
func (b *backend) loadConfig(ctx context.Context, s logical.Storage) (*agentConfig, error) {
	b.configLock.RLock()
	cfg := b.config
	b.configLock.RUnlock()
	if cfg != nil {
		return cfg, nil
	}

	b.configLock.Lock()
	defer b.configLock.Unlock()
	return b.readConfigLocked(ctx, s)
}

// readConfigLocked loads the configuration into the cache; b.configLock
// must be held for writing.
func (b *backend) readConfigLocked(ctx context.Context, s logical.Storage) (*agentConfig, error) {
	if b.config != nil {
		return b.config, nil
	}
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
	b.config = cfg
	return cfg, nil
}

func isControl(r rune) bool {
	return r < 0x20 || r == 0x7f
}

const pathConfigHelpSyn = `Configure the agent secrets engine: issuer, signing algorithm and engine-wide limits.`

const pathConfigHelpDesc = `
This path holds the settings shared by every role and session of this mount.
Nothing needs configuring before first use: every field has a default, and
"vault read" shows the values in force.

  issuer             The "iss" claim of step credentials. Resource servers
                     check it against the value they expect. Defaults to
                     "vault:<mount path>".
  signing_algorithm  "EdDSA" (Ed25519, the default) or "ES256". A change
                     creates a new signing key at once; older keys stay
                     in jwks until their credentials expire.
  session_max_ttl    Ceiling for any role's session_max_ttl (default 24h).
  step_max_ttl       Ceiling for any role's step_max_ttl (default 1h).
  max_events         Timeline events kept per session (default 1000).
  session_retention  How long closed sessions stay readable after their
                     last credential expired (default 24h).

A write changes only the fields it names. A delete resets every field to its
default. Durations accept Vault's forms ("90s", "15m", "1h") or seconds.
`
