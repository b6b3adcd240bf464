package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

func pathConfig(b *backend) *framework.Path {
	return &framework.Path{
		Pattern: "config$",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
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
			"session_cache_size": {
				Type: framework.TypeInt,
				Description: fmt.Sprintf(`How many active sessions the active node keeps in memory `+
					`(%d to %d); the others are read from storage when used. Bounds the plugin's `+
					`memory whatever the number of live sessions. Defaults to %d.`,
					minSessionCacheSize, maxSessionCacheSize, defaultSessionCacheSize),
				Default: defaultSessionCacheSize,
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback:  b.pathConfigRead,
				Summary:   "Read the engine configuration.",
				Responses: configReadResponses(),
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
				Responses:                   configWriteResponses(),
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
				Responses:                   noContentResponses(),
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
	resp := &logical.Response{Data: map[string]interface{}{
		"issuer":             cfg.issuerFor(req.MountPoint),
		"signing_algorithm":  cfg.SigningAlgorithm,
		"session_max_ttl":    int64(cfg.SessionMaxTTL.Seconds()),
		"step_max_ttl":       int64(cfg.StepMaxTTL.Seconds()),
		"max_events":         cfg.MaxEvents,
		"session_retention":  int64(cfg.SessionRetention.Seconds()),
		"session_cache_size": cfg.sessionCacheSize(),
	}}
	if w := issuerWarning(cfg.issuerFor(req.MountPoint), req.MountPoint); w != "" {
		resp.AddWarning(w)
	}
	return resp, nil
}

func (b *backend) pathConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if err := refuseUnknownFields(req, d); err != nil {
		return nil, err
	}
	before, cfg, err := b.updateConfig(ctx, req.Storage, func(cfg *agentConfig) error { return applyConfigFields(d, cfg) })
	if err != nil || cfg.SigningAlgorithm == before.SigningAlgorithm {
		return nil, err
	}
	// A new algorithm needs a new key; the old one stays in jwks until its
	// credentials expire. (Without a keyring yet, the first key will use
	// the new algorithm anyway.)
	r, err := b.rotateExistingKey(ctx, req.Storage, cfg)
	if err != nil || r == nil {
		return nil, err
	}
	resp := &logical.Response{}
	resp.AddWarning(fmt.Sprintf("signing_algorithm changed: new signing key %s (%s); older keys stay in jwks until their credentials expire", r.current.ID, r.current.Algorithm))
	return resp, nil
}

// applyConfigFields applies the fields a config write names to cfg, and
// refuses a bad one naming it.
func applyConfigFields(d *framework.FieldData, cfg *agentConfig) error {
	if v, ok := d.GetOk("issuer"); ok {
		issuer := strings.TrimSpace(v.(string))
		if err := trust.ValidLine("issuer", issuer, maxIssuerLength); err != nil {
			return badRequest(err)
		}
		cfg.Issuer = issuer
	}
	if v, ok := d.GetOk("signing_algorithm"); ok {
		alg := v.(string)
		if alg != token.AlgEdDSA && alg != token.AlgES256 {
			return badField("signing_algorithm", "%q is not supported; use %q or %q", alg, token.AlgEdDSA, token.AlgES256)
		}
		cfg.SigningAlgorithm = alg
	}
	if v, ok := d.GetOk("session_max_ttl"); ok {
		ttl := time.Duration(v.(int)) * time.Second
		if ttl <= 0 {
			return badField("session_max_ttl", "must be a positive duration")
		}
		cfg.SessionMaxTTL = ttl
	}
	if v, ok := d.GetOk("step_max_ttl"); ok {
		ttl := time.Duration(v.(int)) * time.Second
		if ttl <= 0 {
			return badField("step_max_ttl", "must be a positive duration")
		}
		cfg.StepMaxTTL = ttl
	}
	if v, ok := d.GetOk("max_events"); ok {
		n := v.(int)
		if n < 1 || n > maxEventsCeiling {
			return badField("max_events", "must be between 1 and %d, got %d", maxEventsCeiling, n)
		}
		cfg.MaxEvents = n
	}
	if v, ok := d.GetOk("session_retention"); ok {
		ttl := time.Duration(v.(int)) * time.Second
		if ttl < 0 {
			return badField("session_retention", "must not be negative")
		}
		cfg.SessionRetention = ttl
	}
	if v, ok := d.GetOk("session_cache_size"); ok {
		n := v.(int)
		if n < minSessionCacheSize || n > maxSessionCacheSize {
			return badField("session_cache_size", "must be between %d and %d, got %d", minSessionCacheSize, maxSessionCacheSize, n)
		}
		cfg.SessionCacheSize = n
	}
	if cfg.StepMaxTTL > cfg.SessionMaxTTL {
		return badField("step_max_ttl", "%s exceeds session_max_ttl %s; a step credential cannot outlive its session",
			cfg.StepMaxTTL, cfg.SessionMaxTTL)
	}
	return nil
}

func (b *backend) pathConfigDelete(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	return nil, b.resetConfig(ctx, req.Storage)
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
  session_cache_size Active sessions the active node keeps in memory
                     (default 10000); the rest are read from storage.

A write changes only the fields it names. A delete resets every field to its
default. Durations accept Vault's forms ("90s", "15m", "1h") or seconds.
`
