package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	uuid "github.com/hashicorp/go-uuid"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/sync/errgroup"

	"github.com/continuoustrust/vault-plugin-secrets-agent/timeline"
	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

// Sessions as this node keeps them: the path handlers ask for a session
// here, hand its decisions to the trust package, and persist the outcome
// here. A session that leaves the active state is closed by wal.go's
// closeSession; its record goes to storage.go, its timeline to
// storage_timeline.go.

// getSession returns a session as this node knows it. A session this
// node has written is served from memory, with its exact live counters
// (steps used, event sequence), which may run ahead of storage: storage
// holds reservations, written once per block (see save). Any other session
// is read from storage and its counters set to the reservations, which are
// upper bounds (after a restart, or on a node that just became active).
// The caller gets its own copy.
func (b *backend) getSession(ctx context.Context, s logical.Storage, id string) (*trust.Session, error) {
	b.liveMu.Lock()
	cached, ok := b.cache.get(id)
	b.liveMu.Unlock()
	if ok {
		return cached.Clone(), nil
	}
	sess, err := readSession(ctx, s, id)
	if err != nil || sess == nil {
		return sess, err
	}
	sess.Recover()
	return sess, nil
}

// lockSession locks session id and reads it. It returns the session and
// the function that unlocks it; or, unlocked, an error: refuseNoSession
// when there is no such session (see isNoSession).
func (b *backend) lockSession(ctx context.Context, s logical.Storage, id string) (*trust.Session, func(), error) {
	lock := b.sessionLock(id)
	lock.Lock()
	sess, err := b.getSession(ctx, s, id)
	if err == nil && sess == nil {
		err = refuseNoSession(id)
	}
	if err == nil {
		err = b.accountForRecovery(ctx, s, sess)
	}
	if err != nil {
		lock.Unlock()
		return nil, nil, err
	}
	return sess, lock.Unlock, nil
}

// remember keeps a copy of a session this node just saved.
func (b *backend) remember(sess *trust.Session) {
	c := sess.Clone()
	b.liveMu.Lock()
	b.cache.put(c)
	b.liveMu.Unlock()
}

// forget drops the copy of a session that changed elsewhere or is gone,
// and of its last timeline chunk.
func (b *backend) forget(id string) {
	b.liveMu.Lock()
	b.cache.remove(id)
	delete(b.chunks, id)
	b.liveMu.Unlock()
}

// stage gives events their place in the session's timeline. The caller
// then persists the session and the events with save or closeSession.
func stage(sess *trust.Session, now time.Time, events ...timeline.Event) []timeline.Event {
	for i := range events {
		sess.EventSeq++
		events[i].Seq = sess.EventSeq
		if events[i].Time.IsZero() {
			events[i].Time = now
		}
	}
	return events
}

// save persists a session's newly staged events and, when force is set
// or its use outgrew its reservations, the session record itself. A step
// credential is usually just its event, written to its timeline chunk:
// the record is written once per block of steps (see
// trust.Session.Reserve). Events older than cfg's max_events are not
// written; the periodic tidy deletes the chunks that hold only such
// events, off the request path.
func (b *backend) save(ctx context.Context, s logical.Storage, cfg *agentConfig, sess *trust.Session, events []timeline.Event, force bool) (err error) {
	// Whatever fails half-way, the copy in memory must not outlive what
	// storage holds: drop it, so the next request reads storage.
	defer func() {
		if err != nil {
			b.forget(sess.ID)
		}
	}()
	events = inWindow(sess, cfg.MaxEvents, events)
	// An ordinary issuance writes nothing: its event waits for the
	// session's batch (see events_batch.go).
	if !force && !sess.NeedsReservation() && deferrable(events) && b.keep(s, sess.ID, events) {
		b.remember(sess)
		b.makeRoom(ctx, s, cfg.sessionCacheSize())
		return nil
	}
	// Anything else writes the batch too; if that fails, the batch is
	// kept for a later write (its credentials were issued).
	batch := b.takeBatch(sess.ID)
	defer func() {
		if err != nil && len(batch) > 0 {
			b.putBack(s, sess.ID, batch)
		}
	}()
	if !force && !sess.NeedsReservation() {
		if err := b.writeEvents(ctx, s, sess.ID, append(slices.Clip(batch), events...)); err != nil {
			return err
		}
		batch = nil
		b.remember(sess)
		b.makeRoom(ctx, s, cfg.sessionCacheSize())
		return nil
	}
	// The batch first: its events' numbers lie within the reservation
	// storage holds already.
	if len(batch) > 0 {
		if err := b.writeEvents(ctx, s, sess.ID, batch); err != nil {
			return err
		}
		batch = nil
	}
	// Then the record: no event may reach storage with a number that a
	// restart could hand out again, nor tell of a change (an end, a
	// violation, a renewal) that is not stored. It counts as used only the
	// steps whose events are stored (the new events come after it): a
	// node that reads it back after a crash counts every later reserved
	// step that has no event (see accountForRecovery).
	sess.Reserve()
	rec := sess
	if len(events) > 0 {
		rec = sess.Clone()
		rec.EventSeq = events[0].Seq - 1
		for _, e := range events {
			if e.Kind == timeline.CredentialIssued {
				rec.StepsUsed--
			}
		}
	}
	if err := putSession(ctx, s, rec); err != nil {
		return err
	}
	if err := b.writeEvents(ctx, s, sess.ID, events); err != nil {
		return err
	}
	b.remember(sess)
	b.makeRoom(ctx, s, cfg.sessionCacheSize())
	return nil
}

// startSession starts a session of role roleName for creator with the
// intent it asked for: the intent must lie inside the role, and the role
// must have room under its max_sessions. Starts of one role run at once:
// they hold the role's lock shared, against a change or a deletion of the
// role, and take their place under max_sessions in one step (see
// session_count.go).
func (b *backend) startSession(ctx context.Context, s logical.Storage, cfg *agentConfig, roleName, creator string, ir trust.IntentRequest, source string) (sess *trust.Session, ttl time.Duration, err error) {
	lock := b.roleLock(roleName)
	lock.RLock()
	defer lock.RUnlock()

	role, err := b.role(ctx, s, roleName)
	if err != nil {
		return nil, 0, err
	}
	if role == nil {
		return nil, 0, badField("role", "no role named %q", roleName)
	}
	limits := trust.Limits{SessionMaxTTL: cfg.SessionMaxTTL, StepMaxTTL: cfg.StepMaxTTL}
	intent, ttl, err := trust.Negotiate(roleName, role.Within(limits), ir, cfg.SessionMaxTTL)
	if err != nil {
		return nil, 0, badRequest(err)
	}
	now := b.now()
	id, err := uuid.GenerateUUID()
	if err != nil {
		return nil, 0, err
	}
	sess = trust.NewSession(id, roleName, creator, intent, ttl, now)
	// The new session's lock, until it is in memory: nothing (the tidy
	// walking the index) may read it back from storage half-made.
	lock2 := b.sessionLock(id)
	lock2.Lock()
	defer lock2.Unlock()
	if role.MaxSessions > 0 {
		var ok bool
		ok, err = b.takePlace(ctx, s, sess, role.MaxSessions, now)
		if err != nil {
			return nil, 0, err
		}
		if !ok {
			return nil, 0, refuseLimit(http.StatusTooManyRequests,
				"role %q already has its max_sessions of %d active sessions", roleName, role.MaxSessions)
		}
		placed := sess
		defer func() {
			if err != nil {
				b.countClose(placed)
			}
		}()
	}
	seq, err := b.index.nextSeq(ctx, s)
	if err != nil {
		return nil, 0, err
	}
	defer b.index.done(seq)
	sess.IndexSeq = seq

	// The index entries first, at once: a crash before the record is
	// written leaves dangling entries (skipped by readers, deleted by the
	// tidy), never a session missing from an index.
	var idx errgroup.Group
	idx.Go(func() error {
		return s.Put(ctx, &logical.StorageEntry{Key: roleSessionKey(roleName, id), Value: []byte("{}")})
	})
	idx.Go(func() error {
		return s.Put(ctx, &logical.StorageEntry{Key: indexEntryKey(seq, id), Value: []byte("{}")})
	})
	if err = idx.Wait(); err != nil {
		return nil, 0, err
	}
	start := stage(sess, now, timeline.Event{
		Kind:     timeline.SessionStart,
		Detail:   intent.Purpose,
		Scopes:   intent.Scopes,
		Audience: strings.Join(intent.Audiences, " "),
		Source:   source,
	})
	// Then the record and its first event, at once: no number of the new
	// session can be handed out again, and an event without its record
	// (the record failed) belongs to a dangling entry, which the tidy
	// deletes with its timeline.
	sess.Reserve()
	var rec errgroup.Group
	rec.Go(func() error { return putSession(ctx, s, sess) })
	rec.Go(func() error { return b.writeEvents(ctx, s, id, inWindow(sess, cfg.MaxEvents, start)) })
	if err = rec.Wait(); err != nil {
		b.forget(id)
		return nil, 0, err
	}
	b.remember(sess)
	b.makeRoom(ctx, s, cfg.sessionCacheSize())
	b.Logger().Debug("session started", "session_id", id, "role", roleName)
	b.notifier.send(notifySessionStart, "session_id", id, "role", roleName, logical.EventMetadataPath, "sessions/"+id)
	return sess, ttl, nil
}

// withSession runs fn on the session id under the session's lock. When fn
// reports that the session left the active state, the session is closed
// (persisted, listed in revocations, dropped from its role's index);
// otherwise nothing is written by withSession itself.
func (b *backend) withSession(ctx context.Context, s logical.Storage, cfg *agentConfig, id string, fn func(*trust.Session, time.Time) (bool, error)) error {
	sess, unlock, err := b.lockSession(ctx, s, id)
	if err != nil {
		return err
	}
	defer unlock()
	now := b.now()
	closed, err := fn(sess, now)
	if err != nil || !closed {
		return err
	}
	return b.closeSession(ctx, s, cfg, sess, now)
}

// refusalFlushInterval bounds how often refused requests write a
// session's record: at most once per interval per session, however many
// arrive (the counts in between wait in memory, and are shown by reads).
const refusalFlushInterval = 10 * time.Second

// refusalTally holds the refused requests of one session not yet stored.
type refusalTally struct {
	foreign, inactive trust.CallSummary
	stored            time.Time // when the record last took them
}

// countRefused counts a refused request in one of the session's summaries
// (sum points into sess: ForeignCalls or InactiveCalls): the only trace
// that a foreign caller, or a request on a session no longer active,
// leaves. It never touches the session's state, budgets, violations or
// timeline, and it writes the record at most once per
// refusalFlushInterval: a caller cannot turn refused requests into a
// stream of storage writes. The periodic tidy stores what is left.
func (b *backend) countRefused(ctx context.Context, s logical.Storage, cfg *agentConfig, sess *trust.Session, sum *trust.CallSummary, caller string, now time.Time) error {
	b.talliesMu.Lock()
	t := b.tallies[sess.ID]
	if t == nil {
		t = &refusalTally{}
		b.tallies[sess.ID] = t
	}
	if sum == &sess.ForeignCalls {
		t.foreign.Add(caller, now)
	} else {
		t.inactive.Add(caller, now)
	}
	if now.Sub(t.stored) < refusalFlushInterval {
		b.talliesMu.Unlock()
		return nil
	}
	b.talliesMu.Unlock()
	return b.storeRefusals(ctx, s, cfg, sess, now)
}

// withPendingRefusals adds the refused requests not yet stored to a copy
// of a session about to be shown.
func (b *backend) withPendingRefusals(sess *trust.Session) *trust.Session {
	b.talliesMu.Lock()
	defer b.talliesMu.Unlock()
	if t := b.tallies[sess.ID]; t != nil {
		sess.ForeignCalls.Merge(t.foreign)
		sess.InactiveCalls.Merge(t.inactive)
	}
	return sess
}

// storeRefusals writes a session's pending refused requests into its
// record. The session's lock must be held.
func (b *backend) storeRefusals(ctx context.Context, s logical.Storage, cfg *agentConfig, sess *trust.Session, now time.Time) error {
	b.talliesMu.Lock()
	t := b.tallies[sess.ID]
	if t == nil || t.foreign.Count+t.inactive.Count == 0 {
		b.talliesMu.Unlock()
		return nil
	}
	pending := *t
	delete(b.tallies, sess.ID)
	b.tallies[sess.ID] = &refusalTally{stored: now}
	b.talliesMu.Unlock()

	sess.ForeignCalls.Merge(pending.foreign)
	sess.InactiveCalls.Merge(pending.inactive)
	var err error
	if sess.State == trust.StateActive {
		err = b.save(ctx, s, cfg, sess, nil, true)
	} else {
		// Only active sessions are kept in memory.
		err = putSession(ctx, s, sess)
	}
	if err != nil {
		// Keep the counts for the next try.
		b.talliesMu.Lock()
		if cur := b.tallies[sess.ID]; cur != nil {
			cur.foreign.Merge(pending.foreign)
			cur.inactive.Merge(pending.inactive)
			cur.stored = pending.stored
		}
		b.talliesMu.Unlock()
	}
	return err
}

// flushRefusals stores the refused requests still pending for sessions
// whose last store is older than refusalFlushInterval (the periodic tidy
// calls it), and forgets the tallies of sessions that are gone.
func (b *backend) flushRefusals(ctx context.Context, s logical.Storage, cfg *agentConfig) error {
	now := b.now()
	b.talliesMu.Lock()
	var due []string
	for id, t := range b.tallies {
		switch {
		case t.foreign.Count+t.inactive.Count > 0 && now.Sub(t.stored) >= refusalFlushInterval:
			due = append(due, id)
		case t.foreign.Count+t.inactive.Count == 0 && now.Sub(t.stored) >= refusalFlushInterval:
			delete(b.tallies, id)
		}
	}
	b.talliesMu.Unlock()
	var errs []error
	for _, id := range due {
		sess, unlock, err := b.lockSession(ctx, s, id)
		if isNoSession(err) {
			b.talliesMu.Lock()
			delete(b.tallies, id)
			b.talliesMu.Unlock()
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := b.storeRefusals(ctx, s, cfg, sess, now); err != nil {
			errs = append(errs, fmt.Errorf("storing refused requests of session %s: %w", id, err))
		}
		unlock()
	}
	return errors.Join(errs...)
}

// applyViolation records v against the session (already locked), revokes
// it when the role's rule says so, and persists the outcome. It reports
// whether the session was revoked.
func (b *backend) applyViolation(ctx context.Context, s logical.Storage, cfg *agentConfig, sess *trust.Session, v *trust.Violation) (bool, error) {
	revoked := sess.RecordViolation(*v)
	b.Logger().Debug("violation", "session_id", sess.ID, "kind", v.Kind, "session_revoked", revoked)
	b.notifier.send(notifyViolation, "session_id", sess.ID, "role", sess.Role, "kind", string(v.Kind),
		"session_revoked", fmt.Sprint(revoked), logical.EventMetadataPath, "sessions/"+sess.ID)
	events := stage(sess, v.Time, timeline.Event{
		Kind: timeline.Violation, Violation: string(v.Kind), Detail: v.Detail,
		Source: v.Source, Credential: v.Credential,
	})
	if revoked {
		return true, b.closeSession(ctx, s, cfg, sess, v.Time, events...)
	}
	return false, b.save(ctx, s, cfg, sess, events, true)
}

// revokeRoleSessions revokes every live session of a role, and reports
// how many it revoked.
func (b *backend) revokeRoleSessions(ctx context.Context, s logical.Storage, cfg *agentConfig, role, reason string) (int, error) {
	ids, err := s.List(ctx, roleSessionsPrefix+role+"/")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		err := b.withSession(ctx, s, cfg, id, func(sess *trust.Session, now time.Time) (bool, error) {
			if sess.Revoke(reason, now) {
				n++
				return true, nil
			}
			// Already closed: only its index entry was left.
			return false, s.Delete(ctx, roleSessionKey(role, id))
		})
		if isNoSession(err) {
			err = s.Delete(ctx, roleSessionKey(role, id))
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// deleteRole deletes role name, then revokes its live sessions, and
// reports how many it revoked. The role goes first, so that no new
// session can start under it.
func (b *backend) deleteRole(ctx context.Context, s logical.Storage, cfg *agentConfig, name string) (int, error) {
	lock := b.roleLock(name)
	lock.Lock()
	defer lock.Unlock()
	b.forgetRole(name)
	if err := s.Delete(ctx, rolesPrefix+name); err != nil {
		return 0, err
	}
	n, err := b.revokeRoleSessions(ctx, s, cfg, name, "role deleted")
	b.dropCount(name)
	if err != nil {
		return n, err
	}
	b.Logger().Info("role deleted", "role", name, "sessions_revoked", n)
	return n, nil
}

// deleteSession removes a closed session and its whole timeline. The
// record goes before the index entries: a crash in between leaves a
// dangling entry, which the tidy walking the index deletes, never a record
// no index leads to.
func (b *backend) deleteSession(ctx context.Context, s logical.Storage, sess *trust.Session) error {
	b.forget(sess.ID)
	b.takeBatch(sess.ID)
	if err := b.deleteChunks(ctx, s, sess.ID, func(uint64) bool { return true }); err != nil {
		return err
	}
	if err := s.Delete(ctx, sessionsPrefix+sess.ID); err != nil {
		return err
	}
	var g errgroup.Group
	g.Go(func() error { return s.Delete(ctx, roleSessionKey(sess.Role, sess.ID)) })
	if sess.IndexSeq != 0 {
		g.Go(func() error { return s.Delete(ctx, indexEntryKey(sess.IndexSeq, sess.ID)) })
	}
	return g.Wait()
}
