package agent

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLeaseRenewAndRevoke(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, start := startSession(t, b, s, agentA, map[string]interface{}{"role": "web", "ttl": "5m"})

	renew := leaseRequest(t, s, logical.RenewOperation, start)
	renew.Secret.Increment = 10 * time.Minute
	resp, err := b.HandleRequest(context.Background(), renew)
	require.NoError(t, err)
	require.False(t, resp.IsError(), "%v", resp.Error())
	assert.InDelta(t, (10 * time.Minute).Seconds(), resp.Secret.TTL.Seconds(), 2)

	// Renewal never passes session_max_ttl.
	renew = leaseRequest(t, s, logical.RenewOperation, start)
	renew.Secret.Increment = 5 * time.Hour
	resp, err = b.HandleRequest(context.Background(), renew)
	require.NoError(t, err)
	assert.LessOrEqual(t, resp.Secret.TTL, time.Hour)

	tok := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/x", "audience": "secrets-api",
	}).Data["token"]

	_, err = b.HandleRequest(context.Background(), leaseRequest(t, s, logical.RevokeOperation, start))
	require.NoError(t, err)
	sess := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id, nil)
	assert.Equal(t, "revoked", sess.Data["state"])
	assert.Equal(t, "lease revoked", sess.Data["revoked_reason"])
	in := mustDo(t, b, s, agentA, logical.UpdateOperation, "introspect", map[string]interface{}{"token": tok})
	assert.Equal(t, false, in.Data["active"])

	// Renewing a closed session fails clearly; revoking it again is a no-op.
	resp, err = b.HandleRequest(context.Background(), leaseRequest(t, s, logical.RenewOperation, start))
	require.NoError(t, err)
	require.True(t, resp.IsError())
	assert.Contains(t, resp.Error().Error(), "is revoked and cannot be renewed")
	_, err = b.HandleRequest(context.Background(), leaseRequest(t, s, logical.RevokeOperation, start))
	require.NoError(t, err)
}
