package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/sync/errgroup"

	"github.com/continuoustrust/vault-plugin-secrets-agent/timeline"
	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

// walCloseSession is the kind of the write-ahead log entry of a session
// close.
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

// closeSession persists a session (locked) that just left the active
// state: the session itself with its closing event (and any events staged
// before), its entry in the revocation list, and the removal from its
// role's index. It is the whole cost of closing a session, whatever the
// number of credentials it issued.
func (b *backend) closeSession(ctx context.Context, s logical.Storage, cfg *agentConfig, sess *trust.Session, now time.Time, events ...timeline.Event) error {
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
	// The credential events still waiting for their batch go with the
	// close, in its write-ahead log entry too.
	batch := b.takeBatch(sess.ID)
	events = append(append(slices.Clip(batch), events...), stage(sess, now, closing)...)

	// Closing a session spans two rounds of writes. First, at once, the
	// record, which decides the close, and a write-ahead log entry holding
	// the close's events: if the plugin dies before the second round is
	// done, Vault's rollback manager calls walRollback, which completes
	// it. (Should the plugin die in the instant after the record landed and
	// before the WAL entry did, the periodic tidy still lists the session
	// in revocations and drops its index entry; only the close's events
	// would be missing.)
	walEntry := &closeWAL{Session: sess.ID, Time: now, State: sess.State, EndedAt: sess.EndedAt, Events: events}
	var walID string
	var wal errgroup.Group
	wal.Go(func() (err error) {
		walID, err = framework.PutWAL(ctx, s, walCloseSession, walEntry)
		return err
	})
	err := b.save(ctx, s, cfg, sess, nil, true)
	walErr := wal.Wait()
	if err != nil && len(batch) > 0 {
		// The close did not happen; the credentials did.
		b.putBack(s, sess.ID, batch)
	}
	if err != nil {
		// The record may have landed all the same (a timeout): the WAL
		// entry stays, and the rollback completes the close if it did.
		return err
	}
	if walErr != nil {
		// One more try: without it, nothing would write the close's
		// events should the next round fail.
		walID, walErr = framework.PutWAL(ctx, s, walCloseSession, walEntry)
		if walErr != nil {
			b.Logger().Warn("could not write the WAL entry of a session close; completing it without", "session_id", sess.ID, "error", walErr)
		}
	}
	// Then, at once, its events, its revocation entry and the removal from
	// its role's index, and its SETs for the Shared Signals streams.
	var rest errgroup.Group
	rest.Go(func() error { return b.writeEvents(ctx, s, sess.ID, inWindow(sess, cfg.MaxEvents, events)) })
	rest.Go(func() error { return b.completeClose(ctx, s, sess, now) })
	rest.Go(func() error { return b.signalSessionClosed(ctx, s, sess) })
	err = rest.Wait()
	// Only active sessions are kept in memory; a closed one is read from
	// storage when it is asked about.
	b.forget(sess.ID)
	if err != nil {
		// The WAL entry stays: the rollback manager completes the close.
		return err
	}
	// The close is complete: its WAL entry goes after the answer. If that
	// fails, the rollback manager finds nothing left to do and removes it.
	if walErr == nil {
		b.bg.run(func(ctx context.Context) {
			if err := framework.DeleteWAL(ctx, s, walID); err != nil {
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
	var g errgroup.Group
	g.Go(func() error {
		if err := s.Delete(ctx, roleSessionKey(sess.Role, sess.ID)); err != nil {
			return fmt.Errorf("deleting role index of session %s: %w", sess.ID, err)
		}
		return nil
	})
	if sess.State != trust.StateExpired {
		g.Go(func() error { return b.addRevocation(ctx, s, sess, now) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	b.rates.Forget(sess.ID)
	b.countClose(sess)
	return nil
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
	cfg, err := b.loadConfig(ctx, req.Storage)
	if err != nil {
		return err
	}
	sess, unlock, err := b.lockSession(ctx, req.Storage, w.Session)
	if isNoSession(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unlock()
	if sess.State == trust.StateActive {
		return nil
	}
	at := sess.EndedAt
	if at.IsZero() {
		at = b.now()
	}
	b.Logger().Info("completing an interrupted session close", "session_id", sess.ID)
	if err := b.completeClose(ctx, req.Storage, sess, at); err != nil {
		return err
	}
	// Its SETs (a session a stream already holds is not queued again).
	if err := b.signalSessionClosed(ctx, req.Storage, sess); err != nil {
		return err
	}
	// The close's events, again, if the session closed by this very close
	// (merging is by sequence number, so events already stored are not
	// repeated). A close whose record never landed, the session having
	// closed since by another, has no events to tell.
	if w.State != sess.State || !w.EndedAt.Equal(sess.EndedAt) {
		return nil
	}
	dropped := droppedEvents(sess, cfg.MaxEvents)
	events := slices.DeleteFunc(w.Events, func(e timeline.Event) bool { return e.Seq > sess.EventSeq || e.Seq <= dropped })
	return b.writeEvents(ctx, req.Storage, sess.ID, events)
}
