package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/sync/errgroup"

	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

// periodic is called by Vault about once a minute. It lists in
// revocations any closed (ended or revoked) session a crash left out, deletes timeline
// events that fell out of a session's max_events window, marks sessions
// whose lease ran out as expired (in case the lease's revocation has not reached
// the engine yet), deletes closed sessions and their timelines once
// session_retention has passed since their last credential expired, drops
// role index entries of sessions that are gone or closed, and prunes the
// revocation list. Performance standbys, DR secondaries and performance
// secondaries (for replicated mounts) skip it: the primary's active node
// owns the storage.
func (b *backend) periodic(ctx context.Context, req *logical.Request) error {
	if !b.ownsStorage() {
		return nil
	}
	// Deliveries a failing receiver paused resume (see ssf_delivery.go).
	b.ssfKick(req.Storage)
	return b.tidy(ctx, req.Storage)
}

// ownsStorage reports whether this node may write the mount's replicated
// storage: not a performance standby, not a DR secondary, and not a
// performance secondary unless the mount is local.
func (b *backend) ownsStorage() bool {
	sys := b.System()
	rs := sys.ReplicationState()
	return !rs.HasState(consts.ReplicationPerformanceStandby) &&
		!rs.HasState(consts.ReplicationDRSecondary) &&
		!(rs.HasState(consts.ReplicationPerformanceSecondary) && !sys.LocalMount())
}

// tidy does the periodic work; see periodic.
func (b *backend) tidy(ctx context.Context, s logical.Storage) error {
	cfg, err := b.loadConfig(ctx, s)
	if err != nil {
		return err
	}
	// Refused requests counted in memory since their session's record
	// was last written.
	if err := b.flushRefusals(ctx, s, cfg); err != nil {
		b.Logger().Warn("storing counts of refused requests", "error", err)
	}
	expired, deleted, errs := b.tidySessions(ctx, s, cfg)
	if ctx.Err() != nil {
		return ctx.Err()
	}

	if err := b.pruneRevocations(ctx, s, b.now()); err != nil {
		errs = append(errs, err)
	}
	if err := b.tidyApprovals(ctx, s); err != nil {
		errs = append(errs, err)
	}
	if expired+deleted > 0 {
		b.Logger().Info("tidied sessions", "expired", expired, "deleted", deleted)
	}
	return errors.Join(errs...)
}

// tidyBatch is how many sessions the tidy handles between two pauses;
// tidyBudget is the longest one periodic call walks (Vault gives it 90
// seconds): a walk that needs more goes on where it stopped at the next
// call.
const (
	tidyBatch   = 32
	tidyWorkers = 8
)

var tidyBudget = 45 * time.Second

// tidyWalk is where the tidy's walk of the session index stands between
// two periodic calls. It is guarded by the backend's walkedMu.
type tidyWalk struct {
	active  bool
	page    uint64    // the next page to walk
	started time.Time // when the walk began, on the engine's clock
	// newFirst is the first page not found empty, while every page so
	// far was; emptySoFar says whether that is still so.
	newFirst   uint64
	emptySoFar bool
	failed     bool
}

// tidySessions walks the session index a page at a time and tidies each
// session it lists. It works in batches of tidyBatch and pauses after each
// as long as the batch took, so that it never takes more than half of the
// time of the sessions' locks and of storage from the requests running
// beside it, however many sessions there are; and it stops after
// tidyBudget, to go on from there at the next call. At the end of a walk
// it moves the index's first page past the pages it found empty. It
// deletes the index entries of sessions that are gone (a crash between a
// start's writes).
func (b *backend) tidySessions(ctx context.Context, s logical.Storage, cfg *agentConfig) (expired, deleted int, errs []error) {
	first, last, err := b.index.bounds(ctx, s)
	if err != nil {
		return 0, 0, []error{err}
	}
	// Entries below the first number this node handed out were written
	// by an earlier run: one without a session was left by a crash. Above
	// it, a start may be between its index entries and its record.
	settled := b.index.firstHandedOut() / indexPageSize

	b.walkedMu.Lock()
	w := b.walk
	b.walkedMu.Unlock()
	if !w.active || w.page < first {
		w = tidyWalk{active: true, page: first, started: b.now(), newFirst: first, emptySoFar: true}
	}
	defer func() {
		b.walkedMu.Lock()
		b.walk = w
		b.walkedMu.Unlock()
	}()
	stopAt := time.Now().Add(tidyBudget)
	if d, ok := ctx.Deadline(); ok && d.Add(-15*time.Second).Before(stopAt) {
		stopAt = d.Add(-15 * time.Second)
	}
	for ; w.page <= last; w.page++ {
		page := w.page
		ids, err := s.List(ctx, indexPageKey(page))
		if err != nil {
			w.failed = true
			return expired, deleted, append(errs, err)
		}
		if len(ids) == 0 {
			if w.emptySoFar {
				w.newFirst = page + 1
			}
			continue
		}
		w.emptySoFar = false
		// In batches of tidyBatch sessions, tidyWorkers at a time, with a
		// pause after each batch as long as it took.
		for start := 0; start < len(ids); start += tidyBatch {
			if ctx.Err() != nil {
				// The page is walked again at the next call.
				return expired, deleted, errs
			}
			batch := time.Now()
			var mu sync.Mutex
			var g errgroup.Group
			g.SetLimit(tidyWorkers)
			for _, id := range ids[start:min(start+tidyBatch, len(ids))] {
				g.Go(func() error {
					did, err := b.tidySession(ctx, s, id, cfg)
					if err == nil && did == "missing" && page < settled {
						err = b.deleteDangling(ctx, s, page, id)
					}
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err != nil:
						// One session must not hold up the others, nor the
						// rest of the tidy.
						w.failed = true
						errs = append(errs, fmt.Errorf("tidying session %s: %w", id, err))
					case did == "expired":
						expired++
					case did == "deleted":
						deleted++
					}
					return nil
				})
			}
			_ = g.Wait()
			select {
			case <-ctx.Done():
				return expired, deleted, errs
			case <-time.After(time.Since(batch)):
			}
		}
		if time.Now().After(stopAt) {
			// On from the next page at the next call.
			w.page++
			return expired, deleted, errs
		}
	}
	// The walk is complete.
	if err := b.index.advanceFirst(ctx, s, w.newFirst); err != nil {
		errs = append(errs, err)
	}
	if !w.failed && len(errs) == 0 {
		b.walkedMu.Lock()
		b.walked = w.started
		b.walkedMu.Unlock()
	}
	w = tidyWalk{}
	return expired, deleted, errs
}

// walkedAt is when the last complete walk of the tidy started (zero
// before the first): sessions closed before it were looked at.
func (b *backend) walkedAt() time.Time {
	b.walkedMu.Lock()
	defer b.walkedMu.Unlock()
	return b.walked
}

// dropFromRoleIndex deletes a closed session's entry in its role's index
// of active sessions, if a close left it there.
func (b *backend) dropFromRoleIndex(ctx context.Context, s logical.Storage, sess *trust.Session) error {
	key := roleSessionKey(sess.Role, sess.ID)
	entry, err := s.Get(ctx, key)
	if err != nil || entry == nil {
		return err
	}
	return s.Delete(ctx, key)
}

// deleteDangling deletes the index entries of a session that has no
// record: its entry on page, and its entry in its role's index of active
// sessions, whichever role that was.
func (b *backend) deleteDangling(ctx context.Context, s logical.Storage, page uint64, id string) error {
	roles, err := listRoles(ctx, s)
	if err != nil {
		return err
	}
	for _, role := range roles {
		if err := s.Delete(ctx, roleSessionKey(role, id)); err != nil {
			return err
		}
	}
	// A start's first event may have landed without its record.
	if err := b.deleteChunks(ctx, s, id, func(uint64) bool { return true }); err != nil {
		return err
	}
	return s.Delete(ctx, indexPageKey(page)+id)
}

// tidySession tidies session id, and says what it did: "expired",
// "deleted", "missing" (there is no such session) or "".
func (b *backend) tidySession(ctx context.Context, s logical.Storage, id string, cfg *agentConfig) (string, error) {
	did, trimTo, err := b.tidySessionLocked(ctx, s, id, cfg)
	if err != nil || trimTo == 0 {
		return did, err
	}
	// Chunks of dropped events are deleted without the session's lock:
	// after a long burst they can be thousands, and the session must not
	// wait for them (nothing writes to a chunk this far back).
	if err := b.deleteChunks(ctx, s, id, func(c uint64) bool { return c < trimTo/chunkEvents }); err != nil {
		return did, err
	}
	sess, unlock, err := b.lockSession(ctx, s, id)
	if isNoSession(err) {
		return did, nil
	}
	if err != nil {
		return did, err
	}
	defer unlock()
	if sess.EventsDropped >= trimTo {
		return did, nil
	}
	sess.EventsDropped = trimTo
	return did, b.save(ctx, s, cfg, sess, nil, true)
}

// tidySessionLocked does what the tidy must do under the session's lock,
// and says up to which event the session's timeline is to be trimmed (0:
// nothing to trim).
func (b *backend) tidySessionLocked(ctx context.Context, s logical.Storage, id string, cfg *agentConfig) (string, uint64, error) {
	sess, unlock, err := b.lockSession(ctx, s, id)
	if isNoSession(err) {
		return "missing", 0, nil
	}
	if err != nil {
		return "", 0, err
	}
	defer unlock()
	// Events waiting for their batch are written first: none may land
	// in a chunk after the tidy deleted it.
	if err := b.writeBatch(ctx, s, id); err != nil {
		return "", 0, err
	}
	now := b.now()
	// Chunks 0 .. trimTo/chunkEvents-1 hold only dropped events.
	trimTo := droppedEvents(sess, cfg.MaxEvents) / chunkEvents * chunkEvents
	if trimTo <= sess.EventsDropped {
		trimTo = 0
	}
	if sess.State == trust.StateActive && sess.StateAt(now) == trust.StateExpired {
		sess.Expire(now)
		return "expired", trimTo, b.closeSession(ctx, s, cfg, sess, now)
	}
	if sess.State == trust.StateActive {
		// An approval past its expiry is recorded by the tidy, not only
		// when the session is next touched.
		if expired := expireApprovals(sess, now); len(expired) > 0 {
			if err := b.save(ctx, s, cfg, sess, expired, true); err != nil {
				return "", 0, err
			}
		}
	}
	if sess.State == trust.StateEnded || sess.State == trust.StateRevoked {
		// A close interrupted before its WAL entry was stored: its
		// credentials must still be listed (a no-op when they are).
		if err := b.addRevocation(ctx, s, sess, now); err != nil {
			return "", 0, err
		}
	}
	if sess.State != trust.StateActive && !sess.EndedAt.Before(b.walkedAt()) {
		// And it must leave its role's index of active sessions. Each
		// closed session is looked at once by a node, by the first walk
		// that starts after its close.
		if err := b.dropFromRoleIndex(ctx, s, sess); err != nil {
			return "", 0, err
		}
	}
	if sess.State != trust.StateActive {
		done := sess.TokensValidUntil()
		if sess.EndedAt.After(done) {
			done = sess.EndedAt
		}
		if now.After(done.Add(cfg.SessionRetention)) {
			return "deleted", 0, b.deleteSession(ctx, s, sess)
		}
	}
	return "", trimTo, nil
}

// tidyApprovals deletes the approvals whose session is gone (the tidy
// deletes a closed session after its retention): they go with it.
func (b *backend) tidyApprovals(ctx context.Context, s logical.Storage) error {
	ids, err := s.List(ctx, approvalsPrefix)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a, err := getApproval(ctx, s, id)
		if err != nil || a == nil {
			continue
		}
		sess, err := b.getSession(ctx, s, a.Session)
		if err != nil {
			return err
		}
		if sess == nil {
			if err := s.Delete(ctx, approvalKey(id)); err != nil {
				return err
			}
		}
	}
	return nil
}
