package agent

import (
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

func TestKeyRotationKeepsOldKeysUntilTheirTokensExpire(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	step := map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"}
	old := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, step).Data["token"].(string)
	oldKid, err := token.PeekKeyID(old)
	require.NoError(t, err)

	rot := mustDo(t, b, s, agentA, logical.UpdateOperation, "keys/rotate", nil)
	assert.NotEqual(t, oldKid, rot.Data["kid"])
	keys := jwksKeys(t, b, s)
	require.Len(t, keys, 2)

	fresh := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, step).Data["token"].(string)
	newKid, _ := token.PeekKeyID(fresh)
	assert.Equal(t, rot.Data["kid"], newKid)
	for _, tok := range []string{old, fresh} {
		in := mustDo(t, b, s, agentA, logical.UpdateOperation, "introspect", map[string]interface{}{"token": tok})
		assert.Equal(t, true, in.Data["active"])
	}

	// After step_max_ttl the old key leaves jwks.
	b.now = func() time.Time { return time.Now().Add(62 * time.Minute) }
	keys = jwksKeys(t, b, s)
	require.Len(t, keys, 1)
	assert.Equal(t, newKid, keys[0].ID)
}
