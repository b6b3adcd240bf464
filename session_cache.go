package agent

import (
	"container/list"
	"context"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

// The live-session cache: the active sessions this node served last, with
// their exact counters, at most session_cache_size of them (see config).
// The rest are read from storage when asked for. A session leaves the
// cache only after its exact counters are stored (see evict): the
// reservations storage holds run ahead of the live use, and a session
// read back from them would lose the unused rest of its reserved block,
// and with it the exactness of max_steps.

// defaultSessionCacheSize is how many active sessions a node keeps in
// memory unless config says otherwise: about 15 MiB of resident memory
// (BENCHMARKS.md, "Scale in sessions").
const defaultSessionCacheSize = 10000

// A save evicts at most maxEvictions sessions, and passes over at most
// evictAttempts whose lock is busy (never waiting for one).
const (
	maxEvictions  = 64
	evictAttempts = 8
)

// sessionCache is an LRU list of sessions. It is guarded by the backend's
// liveMu.
type sessionCache struct {
	order *list.List // of *trust.Session, most recently used first
	byID  map[string]*list.Element
}

func newSessionCache() *sessionCache {
	return &sessionCache{order: list.New(), byID: map[string]*list.Element{}}
}

func (c *sessionCache) len() int { return len(c.byID) }

// get returns the cached session id, and marks it used.
func (c *sessionCache) get(id string) (*trust.Session, bool) {
	e, ok := c.byID[id]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*trust.Session), true
}

// put caches sess (replacing any copy of it) as the most recently used.
func (c *sessionCache) put(sess *trust.Session) {
	if e, ok := c.byID[sess.ID]; ok {
		e.Value = sess
		c.order.MoveToFront(e)
		return
	}
	c.byID[sess.ID] = c.order.PushFront(sess)
}

func (c *sessionCache) remove(id string) {
	if e, ok := c.byID[id]; ok {
		c.order.Remove(e)
		delete(c.byID, id)
	}
}

// oldest returns up to n of the least recently used sessions' IDs, the
// oldest first.
func (c *sessionCache) oldest(n int) []string {
	ids := make([]string, 0, n)
	for e := c.order.Back(); e != nil && len(ids) < n; e = e.Prev() {
		ids = append(ids, e.Value.(*trust.Session).ID)
	}
	return ids
}

// sessionCacheSize is the cache's bound under cfg.
func (c *agentConfig) sessionCacheSize() int {
	if c.SessionCacheSize > 0 {
		return c.SessionCacheSize
	}
	return defaultSessionCacheSize
}

// makeRoom evicts the least recently used sessions while the cache holds
// more than size. Each is locked with TryLock, so that a save, which holds
// its own session's lock, never waits for another's (nor deadlocks on a
// lock it shares with it): a busy session is passed over, and the next
// save tries again.
func (b *backend) makeRoom(ctx context.Context, s logical.Storage, size int) {
	b.liveMu.Lock()
	want := min(b.cache.len()-size, maxEvictions)
	var candidates []string
	if want > 0 {
		candidates = b.cache.oldest(want + evictAttempts)
	}
	b.liveMu.Unlock()
	for _, id := range candidates {
		if want == 0 {
			return
		}
		lock := b.sessionLock(id)
		if !lock.TryLock() {
			continue
		}
		err := b.evict(ctx, s, id)
		lock.Unlock()
		if err != nil {
			b.Logger().Warn("could not store a session's counters to evict it from the cache", "session_id", id, "error", err)
			continue
		}
		want--
	}
}

// evict drops session id (locked by the caller) from the cache, after
// storing its exact counters when storage holds reservations ahead of
// them: read back, the session resumes exactly where it was.
func (b *backend) evict(ctx context.Context, s logical.Storage, id string) error {
	b.liveMu.Lock()
	sess, ok := b.cache.get(id)
	b.liveMu.Unlock()
	if !ok {
		return nil
	}
	// Its events first: a crash before the record is written finds them.
	if err := b.writeBatch(ctx, s, id); err != nil {
		return err
	}
	if sess.StepsReserved != sess.StepsUsed || sess.EventSeqReserved != sess.EventSeq {
		exact := sess.Clone()
		exact.StepsReserved, exact.EventSeqReserved = exact.StepsUsed, exact.EventSeq
		if err := putSession(ctx, s, exact); err != nil {
			return err
		}
	}
	b.forget(id)
	b.rates.ForgetIfFull(id, b.now())
	return nil
}

// releaseAll stores every cached session's batch and exact counters and
// empties the cache: the plugin is stopping, and whichever node serves
// the sessions next resumes them exactly, with nothing to account for.
func (b *backend) releaseAll(ctx context.Context, s logical.Storage) {
	b.liveMu.Lock()
	ids := b.cache.oldest(b.cache.len())
	b.liveMu.Unlock()
	for i, id := range ids {
		lock := b.sessionLock(id)
		lock.Lock()
		err := b.releaseOne(ctx, s, id)
		lock.Unlock()
		if err != nil {
			// Storage is gone (a node that lost leadership): the next
			// node accounts for what is left.
			b.Logger().Warn("could not store the counters of sessions before stopping", "sessions_left", len(ids)-i, "error", err)
			return
		}
	}
}

// releaseOne evicts session id (locked) if storage still holds what this
// node wrote last: another node that took the session over since (a
// storage that still takes this node's writes after it lost leadership)
// must never see its record overwritten by older counters.
func (b *backend) releaseOne(ctx context.Context, s logical.Storage, id string) error {
	b.liveMu.Lock()
	mine, ok := b.cache.byID[id]
	b.liveMu.Unlock()
	if !ok {
		return nil
	}
	sess := mine.Value.(*trust.Session)
	stored, err := readSession(ctx, s, id)
	if err != nil {
		return err
	}
	if stored == nil || stored.State != sess.State || stored.StepsReserved != sess.StepsReserved ||
		stored.EventSeqReserved != sess.EventSeqReserved {
		b.forget(id)
		return nil
	}
	return b.evict(ctx, s, id)
}
