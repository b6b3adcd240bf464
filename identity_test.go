package agent

import (
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

func TestAccessorBoundSession(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	root := caller{accessor: "root-accessor"}
	id, _ := startSession(t, b, s, root, map[string]interface{}{"role": "web"})
	resp := mustDo(t, b, s, root, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	c, err := token.Verify(resp.Data["token"].(string), token.StaticKeys(jwksKeys(t, b, s)...), token.VerifyOptions{Issuer: "vault:agent", Audience: "secrets-api"})
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(c.Subject, "hmac-sha256:"), "sub is a salted hash: %s", c.Subject)
	assert.NotContains(t, c.Subject, "root-accessor", "never the raw accessor")
	sess := mustDo(t, b, s, root, logical.ReadOperation, "session/"+id, nil)
	assert.Equal(t, "active", sess.Data["state"])

	// The same accessor hashes the same on every request (the salt is
	// stored), and differently on another mount.
	b2, s2 := testBackend(t)
	writeRole(t, b2, s2, "web", nil)
	id2, _ := startSession(t, b2, s2, root, map[string]interface{}{"role": "web"})
	resp2 := mustDo(t, b2, s2, root, logical.UpdateOperation, "creds/"+id2, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	c2, err := token.Verify(resp2.Data["token"].(string), token.StaticKeys(jwksKeys(t, b2, s2)...), token.VerifyOptions{Issuer: "vault:agent", Audience: "secrets-api"})
	require.NoError(t, err)
	assert.NotEqual(t, c.Subject, c2.Subject)
}
