package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/continuoustrust/vault-plugin-secrets-agent/timeline"
	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

// Storage layout of a mount:
//
//	config                       engine configuration
//	roles/<name>                 a role
//	sessions/<id>                a session: state, intent, counters, violations
//	role-sessions/<role>/<id>    index of a role's active sessions (empty entries)
//	events/<id>/<chunk>          a session's timeline, 16 events per entry,
//	                             compressed (see storage_timeline.go)
//	revocations/<minute>-<n>     the revocation list, bucketed by the minute its
//	                             sessions' last credentials expire (see revocations.go)
//	revocations/version          the list's version at its last prune
//	keys/ring                    signing keys (seal-wrapped)
//	wal/...                      Vault's write-ahead log entries of closes in progress
//
// Issuing a step credential writes the chunk its event belongs to; the
// session record is written once per reserved block of steps. Ending or
// revoking a session writes a WAL entry, then sessions/<id>, then at once
// its closing event, one revocations bucket and the role-sessions
// deletion, and deletes the WAL entry after answering: a constant number
// of operations, whatever the number of credentials the session issued.
const (
	rolesPrefix        = "roles/"
	sessionsPrefix     = "sessions/"
	roleSessionsPrefix = "role-sessions/"
	eventsPrefix       = "events/"
	keyringPath        = keysStoragePrefix + "ring"
)

func getJSON(ctx context.Context, s logical.Storage, key string, v interface{}) (bool, error) {
	entry, err := s.Get(ctx, key)
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", key, err)
	}
	if entry == nil {
		return false, nil
	}
	if err := entry.DecodeJSON(v); err != nil {
		return false, fmt.Errorf("decoding %s: %w", key, err)
	}
	return true, nil
}

func putJSON(ctx context.Context, s logical.Storage, key string, v interface{}) error {
	entry, err := logical.StorageEntryJSON(key, v)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", key, err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("writing %s: %w", key, err)
	}
	return nil
}

func getRole(ctx context.Context, s logical.Storage, name string) (*trust.Role, error) {
	var r trust.Role
	ok, err := getJSON(ctx, s, rolesPrefix+name, &r)
	if err != nil || !ok {
		return nil, err
	}
	return &r, nil
}

// readSession reads a session record as stored: its counters are the
// reservations, not the live use (see backend.getSession).
func readSession(ctx context.Context, s logical.Storage, id string) (*trust.Session, error) {
	var sess trust.Session
	ok, err := getJSON(ctx, s, sessionsPrefix+id, &sess)
	if err != nil || !ok {
		return nil, err
	}
	return &sess, nil
}

func putSession(ctx context.Context, s logical.Storage, sess *trust.Session) error {
	return putJSON(ctx, s, sessionsPrefix+sess.ID, sess)
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

// getSession returns a session as this node knows it. A session this
// node has written is served from memory, with its exact live counters
// (steps used, event sequence), which may run ahead of storage: storage
// holds reservations, written once per block (see save). Any other session
// is read from storage and its counters set to the reservations, which are
// upper bounds (after a restart, or on a node that just became active).
// The caller gets its own copy.
func (b *backend) getSession(ctx context.Context, s logical.Storage, id string) (*trust.Session, error) {
	b.liveMu.Lock()
	cached, ok := b.live[id]
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

// remember keeps a copy of a session this node just saved.
func (b *backend) remember(sess *trust.Session) {
	c := sess.Clone()
	b.liveMu.Lock()
	b.live[sess.ID] = c
	b.liveMu.Unlock()
}

// forget drops the copy of a session that changed elsewhere or is gone,
// and of its last timeline chunk.
func (b *backend) forget(id string) {
	b.liveMu.Lock()
	delete(b.live, id)
	delete(b.chunks, id)
	b.liveMu.Unlock()
}

// save persists a session's newly staged events and, when force is set
// or its use outgrew its reservations, the session record itself. A step
// credential is usually just its event, group-committed with the events of
// other requests (see journal.go): the record is written once per block of
// steps (see trust.Session.Reserve). Events older than the engine's
// max_events are no longer served, and deleted in bulk by the periodic
// tidy (trimEvents), off the request path.
func (b *backend) save(ctx context.Context, s logical.Storage, sess *trust.Session, events []timeline.Event, force bool) (err error) {
	// Whatever fails half-way, the copy in memory must not outlive what
	// storage holds: drop it, so the next request reads storage.
	defer func() {
		if err != nil {
			b.forget(sess.ID)
		}
	}()
	cfg, err := b.loadConfig(ctx, s)
	if err != nil {
		return err
	}
	// The record first, when it must be written: no event may reach
	// storage with a number that a restart could hand out again, nor tell
	// of a change (an end, a violation, a renewal) that is not stored.
	if force || sess.NeedsReservation() {
		sess.Reserve()
		if err := putSession(ctx, s, sess); err != nil {
			return err
		}
	}
	if err := b.writeEvents(ctx, s, sess.ID, inWindow(sess, cfg.MaxEvents, events)); err != nil {
		return err
	}
	b.remember(sess)
	return nil
}

// inWindow drops the events that are already beyond a session's
// max_events window.
func inWindow(sess *trust.Session, maxEvents int, events []timeline.Event) []timeline.Event {
	limit := uint64(maxEvents)
	return slices.DeleteFunc(slices.Clone(events), func(e timeline.Event) bool { return e.Seq+limit <= sess.EventSeq })
}

// droppedEvents is how many of a session's oldest events are no longer
// kept.
func droppedEvents(sess *trust.Session, maxEvents int) uint64 {
	if limit := uint64(maxEvents); sess.EventSeq > limit {
		return max(sess.EventsDropped, sess.EventSeq-limit)
	}
	return sess.EventsDropped
}

// closeSession persists a session that just left the active state: the
// session itself with its closing event (and any events staged before),
// its entry in the revocation list, and the removal from its role's
// index. It is the whole cost of closing a session, whatever the number of
// credentials it issued.
func (b *backend) closeSession(ctx context.Context, s logical.Storage, sess *trust.Session, now time.Time, events ...timeline.Event) error {
	closing := timeline.Event{Kind: timeline.SessionEnd}
	switch sess.State {
	case trust.StateRevoked:
		closing = timeline.Event{Kind: timeline.SessionRevoke, Detail: sess.RevokedReason}
		b.notifier.send(notifySessionRevoke, "session_id", sess.ID, "role", sess.Role, "reason", sess.RevokedReason)
	case trust.StateExpired:
		closing = timeline.Event{Kind: timeline.SessionExpire}
	default:
		b.notifier.send(notifySessionEnd, "session_id", sess.ID, "role", sess.Role)
	}
	events = append(events, stage(sess, now, closing)...)

	// Closing a session spans two rounds of writes. First, at once, the
	// record, which decides the close, and a write-ahead log entry holding
	// the close's events: if the plugin dies before the second round is
	// done, Vault's rollback manager calls walRollback, which completes
	// it. (Should the plugin die in the instant after the record landed and
	// before the WAL entry did, the periodic tidy still lists the session
	// in revocations and drops its index entry; only the close's events
	// would be missing.)
	type walPut struct {
		id  string
		err error
	}
	walEntry := &closeWAL{Session: sess.ID, Time: now, State: sess.State, EndedAt: sess.EndedAt, Events: events}
	wal := make(chan walPut, 1)
	go func() {
		id, err := framework.PutWAL(ctx, s, walCloseSession, walEntry)
		wal <- walPut{id, err}
	}()
	err := b.save(ctx, s, sess, nil, true)
	w := <-wal
	if err != nil {
		// The record may have landed all the same (a timeout): the WAL
		// entry stays, and the rollback completes the close if it did.
		return err
	}
	if w.err != nil {
		// One more try: without it, nothing would write the close's
		// events should the next round fail.
		w.id, w.err = framework.PutWAL(ctx, s, walCloseSession, walEntry)
		if w.err != nil {
			b.Logger().Warn("could not write the WAL entry of a session close; completing it without", "session_id", sess.ID, "error", w.err)
		}
	}
	// Then, at once, its events, its revocation entry and the removal from
	// its role's index.
	cfg, err := b.loadConfig(ctx, s)
	if err != nil {
		return err
	}
	written := make(chan error, 1)
	go func() { written <- b.writeEvents(ctx, s, sess.ID, inWindow(sess, cfg.MaxEvents, events)) }()
	err = b.completeClose(ctx, s, sess, now)
	if werr := <-written; err == nil {
		err = werr
	}
	if err != nil {
		// The WAL entry stays: the rollback manager completes the close.
		b.forget(sess.ID)
		return err
	}
	// Only active sessions are kept in memory; a closed one is read from
	// storage when it is asked about.
	b.forget(sess.ID)
	// The close is complete: its WAL entry goes after the answer. If that
	// fails, the rollback manager finds nothing left to do and removes it.
	if w.err == nil {
		b.bg.run(func(ctx context.Context) {
			if err := framework.DeleteWAL(ctx, s, w.id); err != nil {
				b.Logger().Debug("deleting a completed close's WAL entry", "session_id", sess.ID, "error", err)
			}
		})
	}
	return nil
}

// completeClose does what follows persisting a closed session: list it
// in revocations (unless it merely expired) and drop it from its role's
// index, both at once. Both steps are idempotent.
func (b *backend) completeClose(ctx context.Context, s logical.Storage, sess *trust.Session, now time.Time) error {
	unindexed := make(chan error, 1)
	go func() {
		err := s.Delete(ctx, roleSessionsPrefix+sess.Role+"/"+sess.ID)
		if err != nil {
			err = fmt.Errorf("deleting role index of session %s: %w", sess.ID, err)
		}
		unindexed <- err
	}()
	var err error
	if sess.State != trust.StateExpired {
		err = b.addRevocation(ctx, s, sess, now)
	}
	if ierr := <-unindexed; err == nil {
		err = ierr
	}
	if err != nil {
		return err
	}
	b.rates.Forget(sess.ID)
	return nil
}

const walCloseSession = "close_session"

// closeWAL is the write-ahead log entry of a session being closed: the
// close it records (the state it leads to, and when), and the close's
// events.
type closeWAL struct {
	Session string           `json:"session"`
	Time    time.Time        `json:"time"`
	State   trust.State      `json:"state,omitempty"`
	EndedAt time.Time        `json:"ended_at,omitempty"`
	Events  []timeline.Event `json:"events,omitempty"`
}

// walRollback completes a session close that the plugin did not complete.
// If the session record never reached storage, the session is still active
// and stays so (the request that was closing it failed); otherwise its
// revocation entry and index removal are completed.
func (b *backend) walRollback(ctx context.Context, req *logical.Request, kind string, data interface{}) error {
	if kind != walCloseSession {
		return nil
	}
	// The WAL's data comes back from storage as decoded JSON.
	raw, err := json.Marshal(data)
	if err != nil {
		return nil
	}
	var w closeWAL
	if err := json.Unmarshal(raw, &w); err != nil || w.Session == "" {
		return nil
	}
	lock := b.sessionLock(w.Session)
	lock.Lock()
	defer lock.Unlock()
	sess, err := b.getSession(ctx, req.Storage, w.Session)
	if err != nil || sess == nil || sess.State == trust.StateActive {
		return err
	}
	at := sess.EndedAt
	if at.IsZero() {
		at = b.now()
	}
	b.Logger().Info("completing an interrupted session close", "session_id", sess.ID)
	if err := b.completeClose(ctx, req.Storage, sess, at); err != nil {
		return err
	}
	// The close's events, again, if the session closed by this very close
	// (merging is by sequence number, so events already stored are not
	// repeated). A close whose record never landed, the session having
	// closed since by another, has no events to tell.
	if w.State != sess.State || !w.EndedAt.Equal(sess.EndedAt) {
		return nil
	}
	cfg, err := b.loadConfig(ctx, req.Storage)
	if err != nil {
		return err
	}
	dropped := droppedEvents(sess, cfg.MaxEvents)
	events := slices.DeleteFunc(w.Events, func(e timeline.Event) bool { return e.Seq > sess.EventSeq || e.Seq <= dropped })
	return b.writeEvents(ctx, req.Storage, sess.ID, events)
}

// deleteSession removes a closed session and its whole timeline.
func (b *backend) deleteSession(ctx context.Context, s logical.Storage, sess *trust.Session) error {
	b.forget(sess.ID)
	if err := b.deleteChunks(ctx, s, sess.ID, func(uint64) bool { return true }); err != nil {
		return err
	}
	if err := s.Delete(ctx, roleSessionsPrefix+sess.Role+"/"+sess.ID); err != nil {
		return err
	}
	return s.Delete(ctx, sessionsPrefix+sess.ID)
}
