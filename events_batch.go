package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/continuoustrust/vault-plugin-secrets-agent/timeline"
	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

// Credential events in batches. An ordinary issuance (a credential_issued
// event, within the steps already reserved in storage) writes nothing on
// its request path: its event is kept by the node serving the session and
// written with the session's next batch, at most batchEvents events or
// batchDelay after the first, whichever comes first, and always before or
// with any other write of the session: a violation, an end, a revoke, an
// approval, a renewal, the next reservation block, an eviction from the
// cache. What stays synchronous is everything that decides: violations,
// kills, approval decisions, budget reservations.
//
// The crash window: a node that stops without writing its batches loses
// at most batchEvents (or batchDelay of) credential_issued events of each
// session. The steps they used were reserved in storage, so budgets stay
// exact; the next node to touch the session records how many reserved
// steps have no event (a steps_unaccounted event, see lockSession). Vault's
// audit devices remain the per-request record.
//
// The bounds were chosen by BenchmarkEventBatching (storage writes per
// credential, sessions stepping at a steady rate). batchEvents is the
// largest block of steps reserved at a time, so a crash loses no more
// events than it forfeits steps. The delay only helps sessions that step
// more often than once per delay; a timeline chunk holds 16 events, so
// batches past 16 events save little more. At 4 steps a second a session
// costs 0.56 writes per credential with 250 ms, 0.22 with 1 s; at 16 a
// second 0.25 and 0.12; at 64 a second and more, about 0.09 with any
// delay (a chunk every 16 events, the reservation every 64). 5 s would
// save more for slow sessions, but keep their events from other nodes'
// readers, and from the timeline after a crash, for that long.
const (
	batchEvents = 64
	batchDelay  = time.Second
	// batchLimit bounds a session's kept events, in batches, when its
	// batches cannot be written: past it, issuances write their events
	// themselves (and fail when storage does).
	batchLimit = 4
)

// eventBatch is a session's events kept back, and what writes them.
type eventBatch struct {
	events []timeline.Event
	s      logical.Storage
	timer  *time.Timer
}

// deferrable reports whether events may wait for the session's batch:
// only credential_issued events.
func deferrable(events []timeline.Event) bool {
	for _, e := range events {
		if e.Kind != timeline.CredentialIssued {
			return false
		}
	}
	return len(events) > 0
}

// keep adds events (already within the session's max_events window) to
// session id's batch, and reports false, keeping nothing, when the batch
// is full (its writes failing). A full batch, or the first event's timer,
// writes it in the background.
func (b *backend) keep(s logical.Storage, id string, events []timeline.Event) bool {
	b.liveMu.Lock()
	if b.stopped {
		b.liveMu.Unlock()
		return false
	}
	eb := b.batches[id]
	if eb == nil {
		eb = &eventBatch{}
		b.batches[id] = eb
	}
	if len(eb.events)+len(events) > batchLimit*b.batchEvents {
		b.liveMu.Unlock()
		return false
	}
	eb.events = append(eb.events, events...)
	eb.s = s
	full := len(eb.events) >= b.batchEvents
	if eb.timer == nil && !full {
		eb.timer = time.AfterFunc(b.batchDelay, func() { b.writeBatchLater(id) })
	}
	b.liveMu.Unlock()
	if full {
		b.bg.run(func(context.Context) { b.writeBatchLater(id) })
	}
	return true
}

// takeBatch removes and returns session id's kept events. The session's
// lock must be held.
func (b *backend) takeBatch(id string) []timeline.Event {
	b.liveMu.Lock()
	defer b.liveMu.Unlock()
	return b.takeBatchLocked(id)
}

func (b *backend) takeBatchLocked(id string) []timeline.Event {
	eb := b.batches[id]
	if eb == nil {
		return nil
	}
	if eb.timer != nil {
		eb.timer.Stop()
	}
	delete(b.batches, id)
	return eb.events
}

// keptAfter returns a copy of session id's kept events after seq, for
// readers of the timeline.
func (b *backend) keptAfter(id string, seq uint64) []timeline.Event {
	b.liveMu.Lock()
	defer b.liveMu.Unlock()
	eb := b.batches[id]
	if eb == nil {
		return nil
	}
	var out []timeline.Event
	for _, e := range eb.events {
		if e.Seq > seq {
			out = append(out, e)
		}
	}
	return out
}

// writeBatchLater writes session id's batch under the session's lock,
// off any request's path.
func (b *backend) writeBatchLater(id string) {
	lock := b.sessionLock(id)
	lock.Lock()
	defer lock.Unlock()
	b.liveMu.Lock()
	eb := b.batches[id]
	var s logical.Storage
	if eb != nil {
		s = eb.s
	}
	events := b.takeBatchLocked(id)
	b.liveMu.Unlock()
	if len(events) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.writeEvents(ctx, s, id, events); err != nil {
		b.Logger().Warn("writing a batch of credential events; will try again", "session_id", id, "events", len(events), "error", err)
		b.putBack(s, id, events)
	}
}

// putBack returns events whose write failed to the front of session id's
// batch, to be tried again.
func (b *backend) putBack(s logical.Storage, id string, events []timeline.Event) {
	b.liveMu.Lock()
	defer b.liveMu.Unlock()
	if b.stopped {
		// Nothing is written once the plugin stopped: the next node
		// accounts for them.
		return
	}
	eb := b.batches[id]
	if eb == nil {
		eb = &eventBatch{s: s}
		b.batches[id] = eb
	}
	eb.events = append(events, eb.events...)
	if eb.timer == nil {
		eb.timer = time.AfterFunc(b.batchDelay, func() { b.writeBatchLater(id) })
	}
}

// writeBatch writes session id's batch now. The session's lock must be
// held.
func (b *backend) writeBatch(ctx context.Context, s logical.Storage, id string) error {
	events := b.takeBatch(id)
	if len(events) == 0 {
		return nil
	}
	if err := b.writeEvents(ctx, s, id, events); err != nil {
		b.putBack(s, id, events)
		return err
	}
	return nil
}

// eventsOf reads a session's kept events after seq after (at most limit,
// 0 for all), with those still waiting for their batch on this node.
func (b *backend) eventsOf(ctx context.Context, s logical.Storage, sess *trust.Session, maxEvents int, after uint64, limit int) ([]timeline.Event, error) {
	events, err := loadEvents(ctx, s, sess, maxEvents, after, limit)
	if err != nil {
		return nil, err
	}
	kept := b.keptAfter(sess.ID, max(after, droppedEvents(sess, maxEvents)))
	if len(kept) > 0 {
		events = mergeEvents(events, kept)
	}
	if limit > 0 && len(events) > limit {
		events = events[:limit]
	}
	return events, nil
}

// stopBatches writes every session's batch one last time, and stops:
// nothing is kept or written after it (the plugin is stopping).
func (b *backend) stopBatches() {
	b.writeBatches()
	b.liveMu.Lock()
	b.stopped = true
	for id := range b.batches {
		b.takeBatchLocked(id)
	}
	b.liveMu.Unlock()
}

// writeBatches writes every session's batch now.
func (b *backend) writeBatches() {
	b.liveMu.Lock()
	ids := make([]string, 0, len(b.batches))
	for id := range b.batches {
		ids = append(ids, id)
	}
	b.liveMu.Unlock()
	for _, id := range ids {
		b.writeBatchLater(id)
	}
}

// accountForRecovery records, in a session read back from storage by a
// node with no record of its live use, how many of the steps reserved
// beyond the stored use have no credential_issued event (see
// trust.Session.Recover): a steps_unaccounted event, written at once with
// the session, so that it is recorded once. The session's lock must be
// held.
func (b *backend) accountForRecovery(ctx context.Context, s logical.Storage, sess *trust.Session) error {
	if sess.Unaccounted == 0 {
		return nil
	}
	reserved := sess.Unaccounted
	sess.Unaccounted = 0
	if sess.State != trust.StateActive {
		return nil
	}
	// The events written after the stored record: at most a reserved
	// block's, in the session's last chunks.
	written, err := loadEvents(ctx, s, sess, maxEventsCeiling, sess.RecoveredAt, 0)
	if err != nil {
		return err
	}
	// And those this node still keeps for their batch (a failed write
	// dropped the session's copy, not its batch).
	written = append(written, b.keptAfter(sess.ID, sess.RecoveredAt)...)
	issued := 0
	for _, e := range written {
		if e.Kind == timeline.CredentialIssued {
			issued++
		}
	}
	missing := reserved - issued
	if missing <= 0 {
		return nil
	}
	cfg, err := b.loadConfig(ctx, s)
	if err != nil {
		return err
	}
	now := b.now()
	events := stage(sess, now, timeline.Event{
		Kind: timeline.StepsUnaccounted, Steps: missing,
		Detail: fmt.Sprintf("%d of the %d steps reserved before a restart or a change of active node have no credential_issued event; Vault's audit log shows which were issued", missing, reserved),
	})
	b.Logger().Info("steps without events after a restart or a change of active node", "session_id", sess.ID, "steps", missing)
	return b.save(ctx, s, cfg, sess, events, true)
}
