// Package agent is the Vault-facing half of the agent-session secrets
// engine: the logical.Backend that Vault mounts, its paths, field schemas,
// help text and storage. The decisions themselves (scope containment, token
// minting, trust rules) live in plain packages with no Vault import, so that
// resource servers reuse exactly the same code.
package agent

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/helper/salt"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/continuoustrust/vault-plugin-secrets-agent/dpop"
	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

// backendHelp is shown by `vault path-help agent/`.
const backendHelp = `
The agent secrets engine gives autonomous AI agents continuous trust.

An agent's task is a session with a declared intent (scopes, audiences,
budgets, purpose) that must lie inside a role. Every step of the task gets
its own short-lived signed credential whose scope only narrows. Every
request is checked against the intent as it is made; a session that exceeds
its intent is revoked, and all its credentials are revoked with it at once.

Start with "config" (issuer, signing algorithm, limits), then "roles/".
`

// Factory returns a configured instance of the backend. Vault calls it once
// per mount; under plugin multiplexing one process serves every mount, so
// all state lives on the backend value, never in package variables.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := newBackend()
	setup := *conf
	if setup.System != nil {
		setup.System = newCachedSystemView(setup.System)
	}
	if err := b.Setup(ctx, &setup); err != nil {
		return nil, err
	}
	b.notifier = newNotifier(conf.EventsSender, b.Logger())
	b.storage = conf.StorageView
	return b, nil
}

// backend is one mount of the engine.
type backend struct {
	*framework.Backend

	// configLock guards config, a cache of the stored engine configuration
	// (nil until first loaded, and again after Invalidate).
	configLock sync.RWMutex
	config     *agentConfig

	// saltLock guards saltCache, the mount's salt for hashing token
	// accessors (see identity.go).
	saltLock  sync.RWMutex
	saltCache *salt.Salt

	// keyringLock guards keyring, the cached signing keys.
	keyringLock sync.RWMutex
	keyring     *keyring

	// sessionLocks serialise the read-modify-write of one session, so
	// budgets hold exactly under concurrent requests; roleLocks do the same
	// for a role and its max_sessions count.
	sessionLocks []*locksutil.LockEntry
	roleLocks    []*locksutil.LockEntry
	// revocationsLock guards revs, the revocation list as this node
	// knows it (see revocations.go), and serialises its updates.
	revocationsLock sync.Mutex
	revs            revocations
	// revsChanged is closed, and replaced, whenever the list changes or
	// this node's copy is dropped: it wakes the blocking revocations
	// queries (see revocations.go). revWaiters counts them.
	revsChanged chan struct{}
	revWaiters  atomic.Int64

	// cache holds the active sessions this node served last, with their
	// exact counters; storage holds reservations ahead of them (see
	// session.go, session_cache.go).
	// chunks holds their last timeline chunks (see storage_timeline.go).
	// talliesMu guards tallies: each session's refused requests not yet
	// stored in its record (see countRefused).
	talliesMu sync.Mutex
	tallies   map[string]*refusalTally

	liveMu sync.Mutex
	cache  *sessionCache
	chunks map[string]*openChunk
	// batches holds the credential events waiting to be written (see
	// events_batch.go); once stopped, none is kept.
	batches map[string]*eventBatch
	// batchEvents and batchDelay bound a batch: the constants of the same
	// names (events_batch.go), which only benchmarks change
	// (BenchmarkEventBatching).
	batchEvents int
	batchDelay  time.Duration
	stopped     bool

	// index hands out the sessions' places in the paged list of sessions
	// (see session_index.go); active counts the active sessions of the
	// roles that have a max_sessions (see session_count.go).
	index  sessionIndex
	active activeSessions
	// roles holds the roles read since they last changed (see role).
	rolesMu sync.Mutex
	roles   map[string]*trust.Role
	// walked is when the tidy's last complete walk of the sessions
	// started (see periodic.go).
	walkedMu sync.Mutex
	walked   time.Time
	walk     tidyWalk

	// rates holds each active session's max_rate token bucket.
	rates trust.RateLimiters
	// proofs remembers the DPoP proofs this node accepted, so that none is
	// accepted twice (creds and token are forwarded to the active node).
	proofs *dpop.ReplayCache

	// notifier sends notifications (Vault events) in the background.
	notifier *notifier

	// bg runs work after answers (see background.go).
	bg *background

	// ssf holds the Shared Signals streams as this node knows them, and
	// their deliveries (see storage_ssf.go, ssf_delivery.go).
	ssf ssfHub

	// storage is the mount's storage, for the work of stopping.
	storage logical.Storage

	// now is the clock; tests replace it.
	now func() time.Time
}

func newBackend() *backend {
	b := &backend{
		sessionLocks: locksutil.CreateLocks(),
		roleLocks:    locksutil.CreateLocks(),
		now:          time.Now,
		cache:        newSessionCache(),
		batches:      map[string]*eventBatch{},
		batchEvents:  batchEvents,
		batchDelay:   batchDelay,
		chunks:       map[string]*openChunk{},
		tallies:      map[string]*refusalTally{},
		proofs:       dpop.NewReplayCache(0),
	}
	b.bg = newBackground()
	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelp),
		BackendType: logical.TypeLogical,
		PathsSpecial: &logical.Paths{
			// Resource servers fetch keys and revocations without a token.
			Unauthenticated: []string{
				"jwks",
				"revocations",
				wellKnownOAuth,
				wellKnownOpenID,
				// Token exchange: the subject token is the authority.
				"token",
				// Shared Signals receivers discover the transmitter.
				wellKnownSSF,
			},
			// Signing keys are the engine's secret material, and so are
			// the Authorization headers push streams send their receivers.
			SealWrapStorage: []string{
				keysStoragePrefix,
				ssfAuthPrefix,
			},
			// Write-ahead log entries of closes in progress belong to the
			// node (cluster) that wrote them, as in Vault's own plugins.
			LocalStorage: []string{
				framework.WALPrefix,
			},
		},
		Paths: framework.PathAppend(
			[]*framework.Path{
				pathConfig(b),
				pathKeysRotate(b),
				pathCreds(b),
				pathToken(b),
				pathReport(b),
			},
			pathRoles(b),
			pathSession(b),
			pathTimeline(b),
			pathApprovals(b),
			pathVerify(b),
			pathMetadata(b),
			pathSSF(b),
		),
		Secrets: []*framework.Secret{
			secretSession(b),
		},
		InitializeFunc: b.initialize,
		Invalidate:     b.invalidate,
		Clean:          b.clean,
		PeriodicFunc:   b.periodic,
		WALRollback:    b.walRollback,
		// A close interrupted for longer than this is completed by the
		// rollback manager.
		WALRollbackMinAge: 10 * time.Second,
		RunningVersion:    Version,
	}
	answerRefusals(b.Backend.Paths)
	return b
}

// invalidate drops caches when another node (a performance standby or
// replica) changed the storage behind them.
func (b *backend) invalidate(_ context.Context, key string) {
	switch key {
	case configStoragePath:
		b.configLock.Lock()
		b.config = nil
		b.configLock.Unlock()
	case keyringPath:
		b.keyringLock.Lock()
		b.keyring = nil
		b.keyringLock.Unlock()
	case saltStoragePath:
		b.forgetSalt()
	default:
		// Another node wrote a session: the copy here is stale.
		if id, ok := strings.CutPrefix(key, sessionsPrefix); ok {
			b.forget(id)
		}
		if rest, ok := strings.CutPrefix(key, eventsPrefix); ok {
			id, _, _ := strings.Cut(rest, "/")
			b.forgetChunk(id)
		}
		if name, ok := strings.CutPrefix(key, rolesPrefix); ok {
			b.forgetRole(name)
		}
		if key == sessionIndexHeadKey {
			b.index.drop()
		}
		if strings.HasPrefix(key, revocationsPrefix) {
			b.forgetRevocations()
		}
		b.ssfInvalidate(key)
	}
}

// clean runs when the mount is unmounted or the plugin shuts down.
func (b *backend) clean(ctx context.Context) {
	// Credential events still waiting for their batch, and the exact
	// counters of the sessions in memory, are written while storage is
	// still there (it is not, on a node that lost leadership).
	if b.storage != nil {
		b.releaseAll(ctx, b.storage)
	}
	b.stopBatches()
	b.bg.close()
	b.notifier.close()
}

// loadCached returns *cached, or, when it is nil (not loaded yet, or
// dropped by invalidate), what load returns, which it keeps in *cached.
// mu guards cached; load runs holding it.
func loadCached[T any](mu *sync.RWMutex, cached **T, load func() (*T, error)) (*T, error) {
	mu.RLock()
	v := *cached
	mu.RUnlock()
	if v != nil {
		return v, nil
	}
	mu.Lock()
	defer mu.Unlock()
	if *cached != nil {
		return *cached, nil
	}
	v, err := load()
	if err != nil {
		return nil, err
	}
	*cached = v
	return v, nil
}

func (b *backend) sessionLock(id string) *locksutil.LockEntry {
	return locksutil.LockForKey(b.sessionLocks, id)
}

func (b *backend) roleLock(name string) *locksutil.LockEntry {
	return locksutil.LockForKey(b.roleLocks, name)
}
