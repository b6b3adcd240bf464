package agent

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

func TestConfigDefaults(t *testing.T) {
	b, s := testBackend(t)
	resp := mustDo(t, b, s, operator, logical.ReadOperation, "config", nil)
	assert.Equal(t, map[string]interface{}{
		"issuer":             "vault:agent",
		"signing_algorithm":  "EdDSA",
		"session_max_ttl":    int64(86400),
		"step_max_ttl":       int64(3600),
		"max_events":         1000,
		"session_retention":  int64(86400),
		"session_cache_size": defaultSessionCacheSize,
	}, resp.Data)
}

func TestConfigWriteIsPartial(t *testing.T) {
	b, s := testBackend(t)
	mustDo(t, b, s, operator, logical.UpdateOperation, "config", map[string]interface{}{
		"issuer": "https://vault.example.com/v1/agent", "signing_algorithm": "ES256",
	})
	mustDo(t, b, s, operator, logical.UpdateOperation, "config", map[string]interface{}{
		"step_max_ttl": "15m",
	})
	resp := mustDo(t, b, s, operator, logical.ReadOperation, "config", nil)
	assert.Equal(t, "https://vault.example.com/v1/agent", resp.Data["issuer"])
	assert.Equal(t, "ES256", resp.Data["signing_algorithm"])
	assert.Equal(t, int64(900), resp.Data["step_max_ttl"])
	assert.Equal(t, int64(86400), resp.Data["session_max_ttl"])
}

func TestConfigRejectsBadValuesNamingTheField(t *testing.T) {
	for _, tc := range []struct {
		name  string
		data  map[string]interface{}
		field string
	}{
		{"unknown algorithm", map[string]interface{}{"signing_algorithm": "RS256"}, "signing_algorithm"},
		{"none algorithm", map[string]interface{}{"signing_algorithm": "none"}, "signing_algorithm"},
		{"lower-case algorithm", map[string]interface{}{"signing_algorithm": "eddsa"}, "signing_algorithm"},
		{"negative step ttl", map[string]interface{}{"step_max_ttl": -1}, "step_max_ttl"},
		{"zero session ttl", map[string]interface{}{"session_max_ttl": 0}, "session_max_ttl"},
		{"step outlives session", map[string]interface{}{"session_max_ttl": "10m", "step_max_ttl": "1h"}, "step_max_ttl"},
		{"max_events zero", map[string]interface{}{"max_events": 0}, "max_events"},
		{"max_events huge", map[string]interface{}{"max_events": 1 << 30}, "max_events"},
		{"issuer with newline", map[string]interface{}{"issuer": "a\nb"}, "issuer"},
		{"issuer with a C1 control character", map[string]interface{}{"issuer": "a\u0085b"}, "issuer"},
		{"issuer too long", map[string]interface{}{"issuer": string(make([]byte, 600))}, "issuer"},
		{"ttl not a duration", map[string]interface{}{"step_max_ttl": "soon"}, "step_max_ttl"},
		{"events not a number", map[string]interface{}{"max_events": "many"}, "max_events"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, s := testBackend(t)
			resp, err := do(t, b, s, operator, logical.UpdateOperation, "config", tc.data)
			if err == nil {
				require.NotNil(t, resp)
				require.True(t, resp.IsError(), "accepted: %v", resp.Data)
				err = resp.Error()
			}
			assert.Contains(t, err.Error(), tc.field)
			entry, gerr := s.Get(context.Background(), configStoragePath)
			require.NoError(t, gerr)
			assert.Nil(t, entry, "a refused write stored something")
		})
	}
}

func TestConfigDeleteResets(t *testing.T) {
	b, s := testBackend(t)
	mustDo(t, b, s, operator, logical.UpdateOperation, "config", map[string]interface{}{"signing_algorithm": "ES256"})
	mustDo(t, b, s, operator, logical.DeleteOperation, "config", nil)
	resp := mustDo(t, b, s, operator, logical.ReadOperation, "config", nil)
	assert.Equal(t, "EdDSA", resp.Data["signing_algorithm"])
}

// TestConfigInvalidate checks that a change written by another node (here:
// straight into storage) is seen once Vault invalidates the key.
func TestConfigInvalidate(t *testing.T) {
	b, s := testBackend(t)
	mustDo(t, b, s, operator, logical.ReadOperation, "config", nil) // warm the cache
	entry, err := logical.StorageEntryJSON(configStoragePath, &agentConfig{
		SigningAlgorithm: token.AlgES256, SessionMaxTTL: defaultSessionMaxTTL, StepMaxTTL: defaultStepMaxTTL, MaxEvents: 7,
	})
	require.NoError(t, err)
	require.NoError(t, s.Put(context.Background(), entry))

	resp := mustDo(t, b, s, operator, logical.ReadOperation, "config", nil)
	assert.Equal(t, "EdDSA", resp.Data["signing_algorithm"], "cache should still hold the old value")

	b.invalidate(context.Background(), configStoragePath)
	resp = mustDo(t, b, s, operator, logical.ReadOperation, "config", nil)
	assert.Equal(t, "ES256", resp.Data["signing_algorithm"])
	assert.Equal(t, 7, resp.Data["max_events"])
}

// TestConfigConcurrentWritesKeepEveryField checks that partial writes do
// not lose each other's fields.
func TestConfigConcurrentWritesKeepEveryField(t *testing.T) {
	b, s := testBackend(t)
	var wg sync.WaitGroup
	for _, data := range []map[string]interface{}{
		{"issuer": "iss-a"}, {"signing_algorithm": "ES256"}, {"max_events": 5}, {"step_max_ttl": 30},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := do(t, b, s, operator, logical.UpdateOperation, "config", data)
			assert.NoError(t, err)
			assert.False(t, resp != nil && resp.IsError(), "%v", resp)
		}()
	}
	wg.Wait()
	b.invalidate(context.Background(), configStoragePath)
	resp := mustDo(t, b, s, operator, logical.ReadOperation, "config", nil)
	assert.Equal(t, "iss-a", resp.Data["issuer"])
	assert.Equal(t, "ES256", resp.Data["signing_algorithm"])
	assert.Equal(t, 5, resp.Data["max_events"])
	assert.Equal(t, int64(30), resp.Data["step_max_ttl"])
}

func TestSigningAlgorithmChangeRotatesToES256(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	jwksKeys(t, b, s) // creates the first (EdDSA) key
	resp := mustDo(t, b, s, agentA, logical.UpdateOperation, "config", map[string]interface{}{"signing_algorithm": "ES256"})
	require.NotNil(t, resp)
	assert.Contains(t, resp.Warnings[0], "ES256")
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	tok := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/x", "audience": "secrets-api",
	}).Data["token"].(string)
	c, err := token.Verify(tok, token.StaticKeys(jwksKeys(t, b, s)...), token.VerifyOptions{Issuer: "vault:agent", Audience: "secrets-api", Algorithms: []string{token.AlgES256}})
	require.NoError(t, err)
	assert.Equal(t, id, c.Txn)
}

// TestLoweredEngineStepTTLBindsExistingRoles: lowering config's
// step_max_ttl lowers what sessions of existing roles may be issued, and a
// rotated key stays in jwks as long as any credential it signed may live.
func TestLoweredEngineStepTTLBindsExistingRoles(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil) // step_max_ttl 5m
	mustDo(t, b, s, agentA, logical.UpdateOperation, "config", map[string]interface{}{"step_max_ttl": 60})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	resp := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/x", "audience": "secrets-api", "ttl": 300,
	})
	c, err := token.Verify(resp.Data["token"].(string), token.StaticKeys(jwksKeys(t, b, s)...), token.VerifyOptions{Issuer: "vault:agent", Audience: "secrets-api"})
	require.NoError(t, err)
	assert.Equal(t, int64(60), c.Expiry-c.IssuedAt)

	mustDo(t, b, s, agentA, logical.UpdateOperation, "keys/rotate", nil)
	start := time.Now()
	b.now = func() time.Time { return start.Add(55 * time.Minute) }
	assert.Len(t, jwksKeys(t, b, s), 2, "the default step_max_ttl of 1h was in force before: the old key stays")
}
