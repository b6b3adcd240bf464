package agent

import (
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
)

func TestIntrospect(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	resp := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/x", "audience": "secrets-api",
	})
	tok := resp.Data["token"].(string)

	in := mustDo(t, b, s, agentB, logical.UpdateOperation, "introspect", map[string]interface{}{"token": tok})
	assert.Equal(t, true, in.Data["active"])
	assert.Equal(t, "active", in.Data["session_state"])
	assert.Equal(t, id, in.Data["txn"])
	assert.Equal(t, "read:secrets/web/x", in.Data["scope"])
	assert.Equal(t, "secrets-api", in.Data["aud"])

	for _, bad := range []string{"garbage", tok[:len(tok)-2], tok + "x", "a.b.c"} {
		in := mustDo(t, b, s, agentB, logical.UpdateOperation, "introspect", map[string]interface{}{"token": bad})
		assert.Equal(t, map[string]interface{}{"active": false}, in.Data)
	}
	_, err := do(t, b, s, agentB, logical.UpdateOperation, "introspect", nil)
	assert.ErrorContains(t, err, "token: is required")

	// Expired.
	b.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	in = mustDo(t, b, s, agentB, logical.UpdateOperation, "introspect", map[string]interface{}{"token": tok})
	assert.Equal(t, false, in.Data["active"])
}
