package agent

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
)

// systemViewTTL is how long the answers of ReplicationState and LocalMount
// are reused.
//
// The SDK's framework asks Vault both before every request to a path whose
// operation forwards to the active node (every path of this engine that
// writes): for an external plugin that is two gRPC round trips to Vault,
// each costing Vault and the plugin CPU, on every credential. Neither
// answer changes while a mount is set up: a node that becomes or stops
// being a performance standby, and a cluster whose replication role
// changes, set their mounts up again, which makes a new backend with an
// empty copy. The copy's age bounds the rest.
const systemViewTTL = time.Second

// cachedSystemView is Vault's system view with ReplicationState and
// LocalMount answered from a copy at most systemViewTTL old. Everything
// else goes to Vault.
type cachedSystemView struct {
	logical.SystemView
	now func() time.Time

	// copy is the last answer; refresh lets one caller at a time ask
	// Vault again while the others keep using the copy.
	copy    atomic.Pointer[replicationCopy]
	refresh sync.Mutex
	// local: Vault said the mount is local. That never changes while
	// the mount is set up, and "not local" is also what the gRPC system
	// view answers on an error, so only a true answer is kept for good.
	local atomic.Bool
}

type replicationCopy struct {
	state consts.ReplicationState
	local bool
	at    time.Time
}

func newCachedSystemView(sys logical.SystemView) *cachedSystemView {
	return &cachedSystemView{SystemView: sys, now: time.Now}
}

// ReplicationState is Vault's answer, at most systemViewTTL old.
func (s *cachedSystemView) ReplicationState() consts.ReplicationState {
	return s.current().state
}

// LocalMount is Vault's answer, at most systemViewTTL old.
func (s *cachedSystemView) LocalMount() bool {
	if s.local.Load() {
		return true
	}
	return s.current().local
}

func (s *cachedSystemView) current() *replicationCopy {
	c := s.copy.Load()
	if c != nil && s.now().Sub(c.at) < systemViewTTL {
		return c
	}
	if c != nil && !s.refresh.TryLock() {
		return c // another caller is asking Vault; its answer follows
	}
	if c == nil {
		s.refresh.Lock()
		if c = s.copy.Load(); c != nil {
			s.refresh.Unlock()
			return c
		}
	}
	defer s.refresh.Unlock()
	fresh := &replicationCopy{
		state: s.SystemView.ReplicationState(),
		local: s.local.Load() || s.SystemView.LocalMount(),
		at:    s.now(),
	}
	if fresh.local {
		s.local.Store(true)
	}
	if fresh.state == consts.ReplicationUnknown {
		// Vault could not be asked: the gRPC system view answers
		// Unknown on an error, and Vault itself never does (a node
		// without replication is "disabled" for both kinds). The
		// answer serves this request, as the SDK would use it, and is
		// never kept.
		return fresh
	}
	s.copy.Store(fresh)
	return fresh
}
