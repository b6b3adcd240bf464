package agent

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The authorization-server metadata is served, unauthenticated and raw,
// at both well-known paths once the issuer is this mount's URL; until
// then it is a 404 naming the issuer, and config says why in a warning.
func TestAuthorizationServerMetadata(t *testing.T) {
	b, s := testBackend(t)
	for _, p := range []string{wellKnownOAuth, wellKnownOpenID} {
		_, err := do(t, b, s, caller{}, logical.ReadOperation, p, nil)
		require.Error(t, err, p)
		assert.Equal(t, http.StatusNotFound, err.(*refused).Code())
		assert.Equal(t, "issuer", refusalData(t, err)["field"])
		assert.Contains(t, err.Error(), "is not a URL")
	}
	cfg := mustDo(t, b, s, operator, logical.ReadOperation, "config", nil)
	require.Len(t, cfg.Warnings, 1)
	assert.Contains(t, cfg.Warnings[0], "set issuer to https://<vault address>/v1/agent")

	for issuer, why := range map[string]string{
		"http://vault.example.com/v1/agent":   "is not https",
		"https://vault.example.com/v1/other":  "does not end in /v1/agent",
		"https://vault.example.com/v1/agent?": "has a query",
		"https://vault.example.com/v1/agent/": "",
	} {
		mustDo(t, b, s, operator, logical.UpdateOperation, "config", map[string]interface{}{"issuer": issuer})
		_, err := do(t, b, s, caller{}, logical.ReadOperation, wellKnownOAuth, nil)
		if why == "" {
			require.NoError(t, err, issuer)
			continue
		}
		require.Error(t, err, issuer)
		assert.Contains(t, err.Error(), why, issuer)
	}

	mustDo(t, b, s, operator, logical.UpdateOperation, "config", map[string]interface{}{"issuer": "https://vault.example.com:8200/v1/agent"})
	assert.Empty(t, mustDo(t, b, s, operator, logical.ReadOperation, "config", nil).Warnings)
	for _, p := range []string{wellKnownOAuth, wellKnownOpenID} {
		resp := mustDo(t, b, s, caller{}, logical.ReadOperation, p, nil)
		assert.Equal(t, http.StatusOK, resp.Data[logical.HTTPStatusCode])
		assert.Equal(t, "application/json", resp.Data[logical.HTTPContentType])
		var md map[string]interface{}
		require.NoError(t, json.Unmarshal(resp.Data[logical.HTTPRawBody].([]byte), &md))
		assert.Equal(t, "https://vault.example.com:8200/v1/agent", md["issuer"])
		assert.Equal(t, "https://vault.example.com:8200/v1/agent/jwks", md["jwks_uri"])
		assert.Equal(t, []interface{}{}, md["response_types_supported"])
		assert.Equal(t, []interface{}{"urn:ietf:params:oauth:grant-type:token-exchange"}, md["grant_types_supported"])
		assert.Equal(t, "https://vault.example.com:8200/v1/agent/token", md["token_endpoint"])
		assert.Equal(t, []interface{}{"EdDSA", "ES256"}, md["dpop_signing_alg_values_supported"])
	}
	assert.Contains(t, b.PathsSpecial.Unauthenticated, wellKnownOAuth)
	assert.Contains(t, b.PathsSpecial.Unauthenticated, wellKnownOpenID)

	// A loopback Vault may use http.
	mustDo(t, b, s, operator, logical.UpdateOperation, "config", map[string]interface{}{"issuer": "http://127.0.0.1:8200/v1/agent"})
	mustDo(t, b, s, caller{}, logical.ReadOperation, wellKnownOAuth, nil)
}
