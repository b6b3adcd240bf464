package agent

import (
	"context"
	"fmt"
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
//	events/<id>/<seq>            a session's timeline, one event per entry
//	revocations                  the revocation list
//	keys/ring                    signing keys (seal-wrapped)
//	wal/...                      Vault's write-ahead log entries of kills in progress
//
// Issuing a step credential writes its event; the session record is
// written once per reserved block of steps. Ending or revoking a session
// writes a WAL entry, sessions/<id>, its closing event and revocations,
// deletes its role-sessions entry and the WAL entry: a constant number of
// operations, whatever the number of credentials the session issued.
const (
	rolesPrefix        = "roles/"
	sessionsPrefix     = "sessions/"
	roleSessionsPrefix = "role-sessions/"
	eventsPrefix       = "events/"
	revocationsPath    = "revocations"
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
// then persists the session and the events with save or finishSession.
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

// forget drops the copy of a session that changed elsewhere or is gone.
func (b *backend) forget(id string) {
	b.liveMu.Lock()
	delete(b.live, id)
	b.liveMu.Unlock()
}

// save persists a session's newly staged events and, when force is set
// or its use outgrew its reservations, the session record itself. A step
// credential is usually just its event: the record is written once per
// block of steps (see trust.Session.Reserve). Events older than the
// engine's max_events are no longer served at once, and deleted in bulk
// by the periodic tidy (trimEvents), off the request path.
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
	if force || sess.NeedsReservation() {
		sess.Reserve()
		if err := putSession(ctx, s, sess); err != nil {
			return err
		}
	}
	limit := uint64(cfg.MaxEvents)
	for _, e := range events {
		if e.Seq+limit <= sess.EventSeq {
			continue // already beyond the window
		}
		if err := putJSON(ctx, s, eventKey(sess.ID, e.Seq), e); err != nil {
			return err
		}
	}
	b.remember(sess)
	return nil
}

// droppedEvents is how many of a session's oldest events are no longer
// kept.
func droppedEvents(sess *trust.Session, maxEvents int) uint64 {
	if limit := uint64(maxEvents); sess.EventSeq > limit {
		return max(sess.EventsDropped, sess.EventSeq-limit)
	}
	return sess.EventsDropped
}

// finishSession persists a session that just left the active state: the
// session itself with its closing event (and any events staged before),
// its entry in the revocation list, and the removal from its role's
// index. It is the whole cost of killing a session, whatever the number of
// credentials it issued.
func (b *backend) finishSession(ctx context.Context, s logical.Storage, sess *trust.Session, now time.Time, events ...timeline.Event) error {
	closing := timeline.Event{Kind: timeline.SessionEnd}
	switch sess.State {
	case trust.StateRevoked:
		closing = timeline.Event{Kind: timeline.SessionRevoke, Detail: sess.RevokedReason}
		b.events.send(eventSessionRevoke, "session_id", sess.ID, "role", sess.Role, "reason", sess.RevokedReason)
	case trust.StateExpired:
		closing = timeline.Event{Kind: timeline.SessionExpire}
	default:
		b.events.send(eventSessionEnd, "session_id", sess.ID, "role", sess.Role)
	}
	events = append(events, stage(sess, now, closing)...)

	// Killing a session spans several writes. A write-ahead log entry
	// makes it all or nothing: if the plugin dies half-way, Vault's
	// rollback manager calls walRollback, which completes it.
	walID, err := framework.PutWAL(ctx, s, walFinishSession, &finishWAL{Session: sess.ID, Time: now})
	if err != nil {
		return err
	}
	if err := b.save(ctx, s, sess, events, true); err != nil {
		return err
	}
	if err := b.completeFinish(ctx, s, sess, now); err != nil {
		return err
	}
	// Only active sessions are kept in memory; a finished one is read from
	// storage when it is asked about.
	b.forget(sess.ID)
	return framework.DeleteWAL(ctx, s, walID)
}

// completeFinish does what follows persisting a finished session: list it
// in revocations (unless it merely expired) and drop it from its role's
// index. Both steps are idempotent.
func (b *backend) completeFinish(ctx context.Context, s logical.Storage, sess *trust.Session, now time.Time) error {
	if sess.State != trust.StateExpired {
		if err := b.addRevocation(ctx, s, sess, now); err != nil {
			return err
		}
	}
	if err := s.Delete(ctx, roleSessionsPrefix+sess.Role+"/"+sess.ID); err != nil {
		return fmt.Errorf("deleting role index of session %s: %w", sess.ID, err)
	}
	b.rates.Forget(sess.ID)
	return nil
}

const walFinishSession = "finish_session"

// finishWAL is the write-ahead log entry of a session being finished.
type finishWAL struct {
	Session string    `json:"session"`
	Time    time.Time `json:"time"`
}

// walRollback completes a session kill that the plugin did not finish. If
// the session record never reached storage, the session is still active
// and stays so (the request that was killing it failed); otherwise its
// revocation entry and index removal are completed.
func (b *backend) walRollback(ctx context.Context, req *logical.Request, kind string, data interface{}) error {
	if kind != walFinishSession {
		return nil
	}
	// The WAL's data comes back from storage as decoded JSON.
	m, _ := data.(map[string]interface{})
	id, _ := m["session"].(string)
	if id == "" {
		return nil
	}
	w := finishWAL{Session: id}
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
	b.Logger().Info("completing an interrupted session kill", "session_id", sess.ID)
	return b.completeFinish(ctx, req.Storage, sess, at)
}

// eventKey is where event seq of a session is stored.
func eventKey(session string, seq uint64) string {
	return fmt.Sprintf("%s%s/%020d", eventsPrefix, session, seq)
}

// loadEvents reads a session's kept events after seq after, at most limit.
func loadEvents(ctx context.Context, s logical.Storage, sess *trust.Session, maxEvents int, after uint64, limit int) ([]timeline.Event, error) {
	if dropped := droppedEvents(sess, maxEvents); after < dropped {
		after = dropped
	}
	var out []timeline.Event
	for seq := after + 1; seq <= sess.EventSeq && (limit <= 0 || len(out) < limit); seq++ {
		var e timeline.Event
		ok, err := getJSON(ctx, s, eventKey(sess.ID, seq), &e)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// deleteSession removes a finished session and its whole timeline.
func (b *backend) deleteSession(ctx context.Context, s logical.Storage, sess *trust.Session) error {
	b.forget(sess.ID)
	keys, err := s.List(ctx, eventsPrefix+sess.ID+"/")
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := s.Delete(ctx, eventsPrefix+sess.ID+"/"+k); err != nil {
			return err
		}
	}
	if err := s.Delete(ctx, roleSessionsPrefix+sess.Role+"/"+sess.ID); err != nil {
		return err
	}
	return s.Delete(ctx, sessionsPrefix+sess.ID)
}

func (b *backend) addRevocation(ctx context.Context, s logical.Storage, sess *trust.Session, now time.Time) error {
	b.revocationsLock.Lock()
	defer b.revocationsLock.Unlock()
	var list trust.RevocationList
	if _, err := getJSON(ctx, s, revocationsPath, &list); err != nil {
		return err
	}
	if !list.Add(sess, now) {
		return nil
	}
	return putJSON(ctx, s, revocationsPath, &list)
}

// trimEvents deletes the events of a session that fell out of its
// max_events window since the last trim, and records how far it got. The
// session must be locked.
func (b *backend) trimEvents(ctx context.Context, s logical.Storage, sess *trust.Session, maxEvents int) error {
	target := droppedEvents(sess, maxEvents)
	if target <= sess.EventsDropped {
		return nil
	}
	for seq := sess.EventsDropped + 1; seq <= target; seq++ {
		if err := s.Delete(ctx, eventKey(sess.ID, seq)); err != nil {
			return fmt.Errorf("dropping event %d of session %s: %w", seq, sess.ID, err)
		}
	}
	sess.EventsDropped = target
	return b.save(ctx, s, sess, nil, true)
}
