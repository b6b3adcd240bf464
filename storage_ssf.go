package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/sync/errgroup"

	"github.com/continuoustrust/vault-plugin-secrets-agent/scope"
	"github.com/continuoustrust/vault-plugin-secrets-agent/ssf"
	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

// Shared Signals (SSF 1.0, CAEP 1.0): the streams an administrator
// subscribed, and each stream's outbox of Security Event Tokens (SETs) still
// to deliver. The paths are in path_ssf.go, the delivery in ssf_delivery.go.
//
// Storage layout:
//
//	ssf/streams/<id>                        a stream: how to deliver, to whom, and
//	                                        its outbox counters (next_seq, dropped)
//	ssf/auth/<id>                           a push stream's Authorization header
//	                                        (seal-wrapped; never read back)
//	ssf/outbox/<id>/<seq>-<subject>         one SET to deliver: <seq> is the stream's
//	                                        sequence, zero-padded to 20 digits so that
//	                                        a storage List gives the outbox in order;
//	                                        <subject> is the session ID (so that closing
//	                                        a session twice, as a WAL rollback may, does
//	                                        not queue it twice) or verify-<jti>
//
// An entry holds what the SET says, not the SET itself: the SET is signed
// when it is delivered (pushed, or served to a poll), with the signing key
// current then, which jwks holds however long the receiver was away. Its
// jti is fixed when it is queued, and a session's is derived from the
// stream and the session: a SET delivered twice (delivery is at least once)
// has the same jti both times.
//
// Queueing a session's SET writes, per stream that asked for the event,
// its outbox entry and the stream record (its sequence counter) at once,
// under the stream's lock. With no stream, it writes nothing, and reads
// nothing once this node has listed the streams.
const (
	ssfStreamsPrefix = "ssf/streams/"
	ssfAuthPrefix    = "ssf/auth/"
	ssfOutboxPrefix  = "ssf/outbox/"

	// ssfOutboxBound is how many SETs one stream's outbox holds. Past it,
	// the oldest are dropped and counted in the stream's "dropped".
	ssfOutboxBound = 10000

	// Delivery methods, as the paths name them.
	deliveryPush = "push"
	deliveryPoll = "poll"

	// ssfVerifyPrefix begins the subject of a verification SET's entry.
	ssfVerifyPrefix = "verify-"
)

// ssfStream is a stream as stored at ssf/streams/<id>.
type ssfStream struct {
	ID             string `json:"id"`
	DeliveryMethod string `json:"delivery_method"`
	// EndpointURL is where a push stream's SETs are POSTed.
	EndpointURL string `json:"endpoint_url,omitempty"`
	// AuthorizationSet says whether ssf/auth/<id> holds an Authorization
	// header for the pushes.
	AuthorizationSet bool `json:"authorization_set,omitempty"`
	// Audience is the SETs' "aud": the receiver.
	Audience        string   `json:"audience"`
	EventsRequested []string `json:"events_requested"`
	// Mount is the mount path the stream was last written through: the
	// default issuer of its SETs until this node has seen a request (see
	// ssfIssuer).
	Mount     string    `json:"mount,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// NextSeq is the sequence number of the last SET queued; Dropped counts
	// the SETs dropped past the outbox bound.
	NextSeq uint64 `json:"next_seq"`
	Dropped uint64 `json:"dropped"`
}

// wants reports whether the stream asked for events of type event. A
// verification event is always delivered (SSF 1.0 §8.1.4).
func (r *ssfStream) wants(event string) bool {
	return event == ssf.EventVerification || slices.Contains(r.EventsRequested, event)
}

// ssfAuth is a push stream's Authorization header as stored at
// ssf/auth/<id>.
type ssfAuth struct {
	Header string `json:"header"`
}

// outboxEntry is one SET to deliver, as stored in a stream's outbox.
type outboxEntry struct {
	JTI   string `json:"jti"`
	Event string `json:"event"`
	// For a session-revoked event: the session, when it stopped being
	// active (Unix seconds), who or what initiated it, and why.
	Session        string `json:"session,omitempty"`
	EventTimestamp int64  `json:"event_timestamp,omitempty"`
	Initiating     string `json:"initiating_entity,omitempty"`
	Reason         string `json:"reason,omitempty"`
	// For a verification event: the state to echo.
	State string `json:"state,omitempty"`
}

// outboxItem is an outbox entry as this node indexes it, from its key.
type outboxItem struct {
	name    string // <seq>-<subject>, under ssf/outbox/<stream>/
	seq     uint64
	subject string
	jti     string
}

// parseOutboxName reads an outbox key's last segment.
func parseOutboxName(stream, name string) (outboxItem, bool) {
	seqText, subject, ok := strings.Cut(name, "-")
	if !ok || len(seqText) != 20 || subject == "" {
		return outboxItem{}, false
	}
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil {
		return outboxItem{}, false
	}
	jti, verification := strings.CutPrefix(subject, ssfVerifyPrefix)
	if !verification {
		jti = sessionSETID(stream, subject)
	}
	return outboxItem{name: name, seq: seq, subject: subject, jti: jti}, true
}

// outboxKey is the storage key of an outbox entry.
func outboxKey(stream, name string) string {
	return ssfOutboxPrefix + stream + "/" + name
}

// sessionSETID is the jti of the session-revoked SET of session on
// stream: the same every time it is queued, so that a receiver drops a
// SET delivered twice. It is shaped like a UUID.
func sessionSETID(stream, session string) string {
	sum := sha256.Sum256([]byte("ssf session-revoked\x00" + stream + "\x00" + session))
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// ssfHub is this node's view of the streams: which exist, and each
// stream's record, Authorization header and outbox index, loaded from
// storage once and kept in step by every change this node makes (and
// dropped by invalidate when another node changes them).
type ssfHub struct {
	mu      sync.Mutex
	loaded  bool
	ids     map[string]bool
	streams map[string]*ssfStreamState
	// mount is the mount path of the latest request (see ssfIssuer).
	mount string
	// started: this node has started its deliveries (see ssfNote).
	started bool

	// Settings that tests change: the outbox bound, how long a poll
	// waits for a SET, the client that pushes, and the first and last
	// retry delays of a push.
	bound      int
	pollWait   time.Duration
	client     *http.Client
	minBackoff time.Duration
	maxBackoff time.Duration
}

// ssfStreamState is one stream as this node knows it. mu is the stream's
// lock: it serialises the changes of its record and of its outbox (queueing,
// delivering, acknowledging, dropping); it is never held across a push.
type ssfStreamState struct {
	id string
	mu sync.Mutex

	loaded bool
	gone   bool
	rec    ssfStream
	auth   string
	// pending is the outbox in order; queued indexes it by subject.
	pending []outboxItem
	queued  map[string]bool
	// warned: the drop past the bound was logged, and the outbox has not
	// drained to half the bound since.
	warned bool

	// notify is closed (and replaced) whenever a SET is queued: polls
	// waiting for one wake up.
	notify chan struct{}

	// Push delivery: whether a drainer runs, the current retry delay and
	// when the next attempt may be made, and whether the receiver is
	// failing (logged once per failure burst).
	running bool
	backoff time.Duration
	retryAt time.Time
	failing bool
}

// state returns the state of stream id, making it when there is none.
func (h *ssfHub) state(id string) *ssfStreamState {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.streams == nil {
		h.streams = map[string]*ssfStreamState{}
	}
	st := h.streams[id]
	if st == nil {
		st = &ssfStreamState{id: id, notify: make(chan struct{})}
		h.streams[id] = st
	}
	return st
}

func (h *ssfHub) outboxBound() int {
	if h.bound > 0 {
		return h.bound
	}
	return ssfOutboxBound
}

// ssfStreamIDs returns the IDs of the streams, sorted: from memory once
// this node has listed them.
func (b *backend) ssfStreamIDs(ctx context.Context, s logical.Storage) ([]string, error) {
	h := &b.ssf
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.loaded {
		keys, err := s.List(ctx, ssfStreamsPrefix)
		if err != nil {
			return nil, fmt.Errorf("listing streams: %w", err)
		}
		h.ids = map[string]bool{}
		for _, k := range keys {
			h.ids[k] = true
		}
		h.loaded = true
	}
	ids := make([]string, 0, len(h.ids))
	for id := range h.ids {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids, nil
}

// ssfLoad fills st from storage unless it is loaded: the record, the
// Authorization header and the outbox index. st.mu must be held. A
// stream that is not in storage is marked gone.
func (b *backend) ssfLoad(ctx context.Context, s logical.Storage, st *ssfStreamState) error {
	if st.loaded {
		return nil
	}
	var rec ssfStream
	ok, err := getJSON(ctx, s, ssfStreamsPrefix+st.id, &rec)
	if err != nil {
		return err
	}
	if !ok {
		st.gone = true
		st.pending, st.queued = nil, nil
		return nil
	}
	var auth ssfAuth
	if rec.AuthorizationSet {
		if _, err := getJSON(ctx, s, ssfAuthPrefix+st.id, &auth); err != nil {
			return err
		}
	}
	names, err := s.List(ctx, ssfOutboxPrefix+st.id+"/")
	if err != nil {
		return fmt.Errorf("listing the outbox of stream %s: %w", st.id, err)
	}
	sort.Strings(names)
	pending := make([]outboxItem, 0, len(names))
	queued := make(map[string]bool, len(names))
	for _, name := range names {
		it, ok := parseOutboxName(st.id, name)
		if !ok {
			continue
		}
		pending = append(pending, it)
		queued[it.subject] = true
	}
	st.rec, st.auth, st.pending, st.queued = rec, auth.Header, pending, queued
	st.gone, st.loaded = false, true
	return nil
}

// ssfLocked runs fn on stream id, loaded, under its lock. fn is not run
// for a stream that does not exist: ssfLocked then answers
// refuseNoStream.
func (b *backend) ssfLocked(ctx context.Context, s logical.Storage, id string, fn func(*ssfStreamState) error) error {
	st := b.ssf.state(id)
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := b.ssfLoad(ctx, s, st); err != nil {
		return err
	}
	if st.gone {
		return refuseNoStream(id)
	}
	return fn(st)
}

// refuseNoStream refuses a request naming a stream that does not exist.
func refuseNoStream(id string) error {
	return &refusal{status: http.StatusNotFound, msg: fmt.Sprintf("stream_id: no stream %q", scope.Clip(id)), data: map[string]interface{}{
		"reason": reasonNotFound, "field": "stream_id",
	}}
}

// saveStream writes a stream's record and, when auth is not nil, its
// Authorization header (deleted when empty), and keeps them in st. st.mu
// must be held (or st be new).
func (b *backend) saveStream(ctx context.Context, s logical.Storage, st *ssfStreamState, rec ssfStream, auth *string) error {
	if auth != nil {
		rec.AuthorizationSet = *auth != ""
		var err error
		if *auth == "" {
			err = s.Delete(ctx, ssfAuthPrefix+rec.ID)
		} else {
			err = putJSON(ctx, s, ssfAuthPrefix+rec.ID, &ssfAuth{Header: *auth})
		}
		if err != nil {
			st.loaded = false
			return err
		}
		st.auth = *auth
	}
	if err := putJSON(ctx, s, ssfStreamsPrefix+rec.ID, &rec); err != nil {
		st.loaded = false
		return err
	}
	st.rec = rec
	return nil
}

// createStream stores a new stream (its record and Authorization header)
// with an empty outbox.
func (b *backend) createStream(ctx context.Context, s logical.Storage, rec ssfStream, auth string) error {
	st := b.ssf.state(rec.ID)
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := b.saveStream(ctx, s, st, rec, &auth); err != nil {
		return err
	}
	st.pending, st.queued = nil, map[string]bool{}
	st.loaded, st.gone = true, false
	b.ssf.mu.Lock()
	if b.ssf.loaded {
		b.ssf.ids[rec.ID] = true
	}
	b.ssf.mu.Unlock()
	b.Logger().Info("stream created", "stream_id", rec.ID, "delivery_method", rec.DeliveryMethod)
	return nil
}

// deleteStream deletes a stream, its Authorization header and its whole
// outbox. The record goes first: nothing is queued for it afterwards.
func (b *backend) deleteStream(ctx context.Context, s logical.Storage, id string) error {
	st := b.ssf.state(id)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.loaded = false
	if err := s.Delete(ctx, ssfStreamsPrefix+id); err != nil {
		return err
	}
	st.gone = true
	b.ssf.mu.Lock()
	delete(b.ssf.ids, id)
	b.ssf.mu.Unlock()
	if err := s.Delete(ctx, ssfAuthPrefix+id); err != nil {
		return err
	}
	names, err := s.List(ctx, ssfOutboxPrefix+id+"/")
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := s.Delete(ctx, outboxKey(id, name)); err != nil {
			return err
		}
	}
	st.pending, st.queued, st.auth = nil, nil, ""
	st.loaded = true // gone, and known to be
	close(st.notify)
	st.notify = make(chan struct{})
	b.Logger().Info("stream deleted", "stream_id", id, "pending_dropped", len(names))
	return nil
}

// signalSessionClosed queues the CAEP session-revoked SET of sess, which
// just stopped being active, on every stream that asked for the event,
// and wakes their delivery. Queueing is idempotent: a session already in
// a stream's outbox is not queued again. It is part of the close (see
// closeSession, walRollback): when it fails, the close's WAL entry stays
// and the rollback queues again.
func (b *backend) signalSessionClosed(ctx context.Context, s logical.Storage, sess *trust.Session) error {
	ids, err := b.ssfStreamIDs(ctx, s)
	if err != nil || len(ids) == 0 {
		return err
	}
	at := sess.EndedAt
	if at.IsZero() {
		at = b.now()
	}
	initiating, reason := closeReason(sess)
	var g errgroup.Group
	for _, id := range ids {
		g.Go(func() error {
			e := &outboxEntry{
				JTI: sessionSETID(id, sess.ID), Event: ssf.EventSessionRevoked, Session: sess.ID,
				EventTimestamp: at.Unix(), Initiating: initiating, Reason: reason,
			}
			_, err := b.enqueueSET(ctx, s, id, sess.ID, e)
			return err
		})
	}
	return g.Wait()
}

// closeReason says who or what closed a session (a CAEP initiating
// entity) and why, for the SET's reason_admin.
func closeReason(sess *trust.Session) (initiating, reason string) {
	switch sess.State {
	case trust.StateEnded:
		return ssf.InitiatingUser, "ended by its agent"
	case trust.StateExpired:
		return ssf.InitiatingSystem, "expired: its lease ran out"
	}
	r := sess.RevokedReason
	switch {
	case strings.HasPrefix(r, "violation:"):
		return ssf.InitiatingPolicy, r
	case strings.HasPrefix(r, "operator:"), r == "revoked by an operator", r == "role deleted":
		return ssf.InitiatingAdmin, r
	default:
		// "lease revoked": the lease, or the token that created it, was
		// revoked.
		return ssf.InitiatingSystem, r
	}
}

// enqueueSET queues e on stream id under subject (a session ID, or
// verify-<jti>), unless the stream is gone, did not ask for e's event, or
// already holds subject. It reports whether it queued e, and then wakes
// the stream's delivery.
func (b *backend) enqueueSET(ctx context.Context, s logical.Storage, id, subject string, e *outboxEntry) (bool, error) {
	st := b.ssf.state(id)
	queued, err := b.enqueueLocked(ctx, s, st, subject, e)
	if queued {
		b.ssfWake(s, st)
	}
	return queued, err
}

func (b *backend) enqueueLocked(ctx context.Context, s logical.Storage, st *ssfStreamState, subject string, e *outboxEntry) (bool, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := b.ssfLoad(ctx, s, st); err != nil {
		return false, err
	}
	if st.gone || !st.rec.wants(e.Event) || st.queued[subject] {
		return false, nil
	}
	rec := st.rec
	seq := rec.NextSeq + 1
	if n := len(st.pending); n > 0 && st.pending[n-1].seq >= seq {
		seq = st.pending[n-1].seq + 1
	}
	rec.NextSeq = seq
	it := outboxItem{name: fmt.Sprintf("%020d-%s", seq, subject), seq: seq, subject: subject, jti: e.JTI}
	var drop []outboxItem
	if over := len(st.pending) + 1 - b.ssf.outboxBound(); over > 0 {
		drop = st.pending[:over]
		rec.Dropped += uint64(over)
	}

	var g errgroup.Group
	g.Go(func() error { return putJSON(ctx, s, outboxKey(st.id, it.name), e) })
	g.Go(func() error { return putJSON(ctx, s, ssfStreamsPrefix+st.id, &rec) })
	if err := g.Wait(); err != nil {
		// Storage may hold either write: read it again next time.
		st.loaded = false
		return false, err
	}
	st.rec = rec
	st.pending = append(slices.Clone(st.pending[len(drop):]), it)
	st.queued[subject] = true
	for _, d := range drop {
		delete(st.queued, d.subject)
	}
	close(st.notify)
	st.notify = make(chan struct{})

	if len(drop) > 0 {
		if !st.warned {
			st.warned = true
			b.Logger().Warn("a stream's outbox is full: dropping its oldest SETs", "stream_id", st.id,
				"bound", b.ssf.outboxBound(), "dropped_total", rec.Dropped)
		}
		var errs []error
		for _, d := range drop {
			if err := s.Delete(ctx, outboxKey(st.id, d.name)); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			// The SET is queued; the outbox is only over its bound until
			// the next load.
			b.Logger().Warn("deleting dropped SETs", "stream_id", st.id, "error", err)
			st.loaded = false
		}
	}
	return true, nil
}

// removeItem deletes an outbox entry (delivered, acknowledged, or refused
// for good) from storage and from st. st.mu must be held.
func (b *backend) removeItem(ctx context.Context, s logical.Storage, st *ssfStreamState, it outboxItem) error {
	if err := s.Delete(ctx, outboxKey(st.id, it.name)); err != nil {
		return err
	}
	if i := slices.IndexFunc(st.pending, func(p outboxItem) bool { return p.name == it.name }); i >= 0 {
		st.pending = slices.Delete(st.pending, i, i+1)
		delete(st.queued, it.subject)
	}
	if st.warned && len(st.pending) <= b.ssf.outboxBound()/2 {
		st.warned = false
	}
	return nil
}

// ssfInvalidate drops what this node holds of a stream that another node
// changed.
func (b *backend) ssfInvalidate(key string) {
	var id string
	for _, prefix := range []string{ssfStreamsPrefix, ssfAuthPrefix, ssfOutboxPrefix} {
		if rest, ok := strings.CutPrefix(key, prefix); ok {
			id, _, _ = strings.Cut(rest, "/")
			if prefix == ssfStreamsPrefix {
				b.ssf.mu.Lock()
				b.ssf.loaded = false
				b.ssf.mu.Unlock()
			}
			break
		}
	}
	if id == "" {
		return
	}
	b.ssf.mu.Lock()
	st := b.ssf.streams[id]
	b.ssf.mu.Unlock()
	if st != nil {
		st.mu.Lock()
		st.loaded = false
		st.mu.Unlock()
	}
}
