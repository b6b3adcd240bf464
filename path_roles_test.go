package agent

import (
	"context"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRoleLifecycle(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", map[string]interface{}{"max_steps": 20})

	resp := mustDo(t, b, s, agentA, logical.ReadOperation, "roles/web", nil)
	assert.Equal(t, []string{"list,read:secrets/web/*", "write:secrets/web/tmp/*"}, resp.Data["scopes"])
	assert.Equal(t, 20, resp.Data["max_steps"])
	assert.Equal(t, int64(900), resp.Data["session_ttl"])
	assert.Equal(t, "revoke", resp.Data["on_violation"])

	// An update changes only what it names.
	mustDo(t, b, s, agentA, logical.UpdateOperation, "roles/web", map[string]interface{}{"max_depth": 2})
	resp = mustDo(t, b, s, agentA, logical.ReadOperation, "roles/web", nil)
	assert.Equal(t, 2, resp.Data["max_depth"])
	assert.Equal(t, 20, resp.Data["max_steps"])

	list := mustDo(t, b, s, agentA, logical.ListOperation, "roles/", nil)
	assert.Equal(t, []string{"web"}, list.Data["keys"])

	mustDo(t, b, s, agentA, logical.DeleteOperation, "roles/web", nil)
	resp = mustDo(t, b, s, agentA, logical.ReadOperation, "roles/web", nil)
	assert.Nil(t, resp)
}

func TestRoleRejectsBadFieldsAndStoresNothing(t *testing.T) {
	for _, tc := range []struct {
		data  map[string]interface{}
		field string
	}{
		{map[string]interface{}{"audiences": "a"}, "scopes"},
		{map[string]interface{}{"scopes": "read:x"}, "audiences"},
		{map[string]interface{}{"scopes": "read:x//y", "audiences": "a"}, "scopes"},
		{map[string]interface{}{"scopes": "READ:x", "audiences": "a"}, "scopes"},
		{map[string]interface{}{"scopes": "read:x", "audiences": "a", "session_ttl": "2h"}, "session_ttl"},
		{map[string]interface{}{"scopes": "read:x", "audiences": "a", "step_max_ttl": "2h"}, "step_max_ttl"},
		{map[string]interface{}{"scopes": "read:x", "audiences": "a", "max_steps": 0}, "max_steps"},
		{map[string]interface{}{"scopes": "read:x", "audiences": "a", "on_violation": "explode"}, "on_violation"},
		{map[string]interface{}{"scopes": "read:x", "audiences": "a", "max_depth": "deep"}, "max_depth"},
	} {
		t.Run(tc.field, func(t *testing.T) {
			b, _ := testBackend(t)
			s := &logical.InmemStorage{} // nothing at all, not even what the mount's start writes
			_, err := do(t, b, s, agentA, logical.CreateOperation, "roles/r", tc.data)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.field)
			keys, lerr := s.List(context.Background(), "")
			require.NoError(t, lerr)
			assert.Empty(t, keys, "a refused role write stored something")
		})
	}
}

func TestDeletingARoleRevokesItsSessions(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	resp := mustDo(t, b, s, agentA, logical.DeleteOperation, "roles/web", nil)
	require.NotNil(t, resp)
	assert.Contains(t, resp.Warnings[0], "1 live session was revoked")
	sess := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id, nil)
	assert.Equal(t, "revoked", sess.Data["state"])
	assert.Equal(t, "role deleted", sess.Data["revoked_reason"])
}
