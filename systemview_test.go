package agent

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// askedSystemView counts what the engine asks Vault's system view.
type askedSystemView struct {
	*logical.StaticSystemView
	replication, local atomic.Int64
}

func (s *askedSystemView) ReplicationState() consts.ReplicationState {
	s.replication.Add(1)
	return s.StaticSystemView.ReplicationState()
}

func (s *askedSystemView) LocalMount() bool {
	s.local.Add(1)
	return s.StaticSystemView.LocalMount()
}

// vaultWithoutReplication is what Vault answers on a node of a cluster
// without replication.
const vaultWithoutReplication = consts.ReplicationDRDisabled | consts.ReplicationPerformanceDisabled

func newAskedSystemView(state consts.ReplicationState) *askedSystemView {
	return &askedSystemView{StaticSystemView: &logical.StaticSystemView{
		DefaultLeaseTTLVal:  24 * time.Hour,
		MaxLeaseTTLVal:      32 * 24 * time.Hour,
		ReplicationStateVal: state,
	}}
}

func TestIssuanceDoesNotAskVaultForTheReplicationStateEachTime(t *testing.T) {
	sys := newAskedSystemView(vaultWithoutReplication)
	s := &logical.InmemStorage{}
	b := newTestBackendOn(t, s, func(c *logical.BackendConfig) { c.System = sys })
	cached, ok := b.System().(*cachedSystemView)
	require.True(t, ok, "system view %T", b.System())
	now := time.Now()
	cached.now = func() time.Time { return now } // the copy never ages here
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	before := sys.replication.Load() + sys.local.Load()
	for range 50 {
		_, err := issue(t, b, s, agentA, id, map[string]interface{}{"scopes": "read:secrets/web/a", "audience": "secrets-api"})
		require.NoError(t, err)
	}
	// The framework asks both before each of the 50 requests; Vault is
	// asked at most once for each (before the first, if no earlier
	// request had asked).
	assert.LessOrEqual(t, sys.replication.Load()+sys.local.Load()-before, int64(2))
	assert.Positive(t, sys.replication.Load(), "the framework did ask")
}

func TestCachedSystemViewAgesOut(t *testing.T) {
	sys := newAskedSystemView(vaultWithoutReplication)
	c := newCachedSystemView(sys)
	now := time.Unix(1_800_000_000, 0)
	c.now = func() time.Time { return now }

	assert.Equal(t, vaultWithoutReplication, c.ReplicationState())
	assert.False(t, c.LocalMount())
	assert.Equal(t, int64(1), sys.replication.Load())
	assert.Equal(t, int64(1), sys.local.Load())

	now = now.Add(systemViewTTL - time.Millisecond)
	sys.ReplicationStateVal = consts.ReplicationPerformanceStandby
	assert.Equal(t, vaultWithoutReplication, c.ReplicationState(), "a copy younger than the TTL is used")
	assert.Equal(t, int64(1), sys.replication.Load())

	now = now.Add(time.Millisecond)
	assert.Equal(t, consts.ReplicationPerformanceStandby, c.ReplicationState(), "an old copy is replaced")
	assert.Equal(t, int64(2), sys.replication.Load())
	assert.Equal(t, int64(2), sys.local.Load())
}

func TestCachedSystemViewNeverKeepsAnAnswerVaultCouldNotGive(t *testing.T) {
	// The gRPC system view answers Unknown when Vault cannot be asked.
	sys := newAskedSystemView(consts.ReplicationUnknown)
	c := newCachedSystemView(sys)
	for range 3 {
		assert.Equal(t, consts.ReplicationUnknown, c.ReplicationState())
	}
	assert.Equal(t, int64(3), sys.replication.Load())

	sys.ReplicationStateVal = vaultWithoutReplication
	assert.Equal(t, vaultWithoutReplication, c.ReplicationState())
	assert.Equal(t, vaultWithoutReplication, c.ReplicationState())
	assert.Equal(t, int64(4), sys.replication.Load())
}

func TestCachedSystemViewUnderConcurrency(t *testing.T) {
	sys := newAskedSystemView(consts.ReplicationPerformanceSecondary)
	sys.LocalMountVal = true
	c := newCachedSystemView(sys)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				assert.Equal(t, consts.ReplicationPerformanceSecondary, c.ReplicationState())
				assert.True(t, c.LocalMount())
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int64(1), sys.replication.Load(), "the first callers wait for one answer")
}

func TestPerformanceStandbyStillForwardsWritesFromTheCopy(t *testing.T) {
	s := &logical.InmemStorage{}
	active := newTestBackendOn(t, s)
	writeRole(t, active, s, "web", nil)
	id, _ := startSession(t, active, s, agentA, map[string]interface{}{"role": "web"})

	sys := newAskedSystemView(vaultWithoutReplication | consts.ReplicationPerformanceStandby)
	standby := newTestBackendOn(t, s, func(c *logical.BackendConfig) { c.System = sys })
	for range 3 {
		_, err := issue(t, standby, s, agentA, id, map[string]interface{}{"scopes": "read:secrets/web/a", "audience": "secrets-api"})
		require.ErrorIs(t, err, logical.ErrReadOnly, "Vault forwards the request to the active node")
	}
	assert.Equal(t, int64(1), sys.replication.Load())
}

func TestCachedSystemViewKeepsALocalMountForGood(t *testing.T) {
	sys := newAskedSystemView(consts.ReplicationPerformanceSecondary)
	sys.LocalMountVal = true
	c := newCachedSystemView(sys)
	now := time.Unix(1_800_000_000, 0)
	c.now = func() time.Time { return now }
	assert.True(t, c.LocalMount())
	// The gRPC system view answers false when the call fails: a mount
	// seen local stays local.
	sys.LocalMountVal = false
	now = now.Add(time.Hour)
	assert.True(t, c.LocalMount())
	assert.Equal(t, consts.ReplicationPerformanceSecondary, c.ReplicationState())
	assert.True(t, c.LocalMount())
}
