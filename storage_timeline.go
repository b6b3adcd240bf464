package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/golang/snappy"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/sync/errgroup"

	"github.com/continuoustrust/vault-plugin-secrets-agent/timeline"
	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

// A session's timeline is stored in chunks of chunkEvents consecutive
// events (events/<id>/<chunk>), as snappy-compressed JSON: events repeat
// most of their text, so a chunk takes a fraction of the bytes of its
// events' JSON, and the tidy drops old events a chunk at a time.
//
// Recording an event rewrites the chunk it belongs to: one storage write.
// The node that serves a session keeps the session's last chunk in memory
// beside the session, so that it need not read it back; any other node
// (after a restart or a change of active node) reads it once. Every write
// happens under the session's lock.
//
// A session keeps its max_events most recent events (the engine's
// configuration): older ones are no longer written nor served, and the
// chunks that hold only such events are deleted by the periodic tidy.
const (
	// chunkEvents is how many consecutive events of a session share one
	// storage entry. An event is at most about 20 KiB (64 scopes of 256
	// bytes, and a few more fields of 256), so a chunk stays well under
	// the storage backends' entry limits (raft's 1 MiB, Consul's 512 KiB).
	chunkEvents = 16

	// deleteWorkers is how many deletes of a session's timeline chunks
	// run at once.
	deleteWorkers = 8

	// chunkCanary starts a stored chunk: snappy's block format follows.
	// (Vault's compressutil, whose snappy writer allocates some 150 KiB
	// of buffers per call, twice the cost of the rest of an issuance,
	// would start it with 'L', 'G', 'S' or '4'.)
	chunkCanary = 'b'
)

// openChunk is the last chunk of a session's timeline, as stored, with
// its JSON encoding, so that appending an event encodes only that event.
type openChunk struct {
	index  uint64
	events []timeline.Event
	raw    []byte // the JSON array's elements, comma-separated
}

// writeEvents records a session's events in its timeline chunks. The
// session must be locked.
func (b *backend) writeEvents(ctx context.Context, s logical.Storage, id string, events []timeline.Event) error {
	if len(events) == 0 {
		return nil
	}
	byChunk := map[uint64][]timeline.Event{}
	var order []uint64
	for _, e := range events {
		c := chunkOf(e.Seq)
		if _, ok := byChunk[c]; !ok {
			order = append(order, c)
		}
		byChunk[c] = append(byChunk[c], e)
	}
	for _, c := range order {
		have, raw, err := b.chunk(ctx, s, id, c)
		if err != nil {
			return err
		}
		add := byChunk[c]
		var merged []timeline.Event
		if raw != nil && len(have) > 0 && add[0].Seq > have[len(have)-1].Seq && slices.IsSortedFunc(add, bySeq) {
			// Appending to the open chunk: encode only the new events.
			merged = append(slices.Clip(have), add...)
			for _, e := range add {
				enc, err := json.Marshal(e)
				if err != nil {
					return fmt.Errorf("encoding timeline event: %w", err)
				}
				raw = append(append(slices.Clip(raw), ','), enc...)
			}
		} else {
			merged = mergeEvents(have, add)
			if raw, err = encodeEvents(merged); err != nil {
				return err
			}
		}
		if err := putChunk(ctx, s, chunkKey(id, c), raw); err != nil {
			b.forgetChunk(id)
			return err
		}
		b.keepChunk(id, c, merged, raw)
	}
	return nil
}

func bySeq(a, b timeline.Event) int {
	switch {
	case a.Seq < b.Seq:
		return -1
	case a.Seq > b.Seq:
		return 1
	}
	return 0
}

// encodeEvents is the JSON array elements of events, comma-separated.
func encodeEvents(events []timeline.Event) ([]byte, error) {
	raw, err := json.Marshal(events)
	if err != nil {
		return nil, fmt.Errorf("encoding timeline events: %w", err)
	}
	return raw[1 : len(raw)-1], nil
}

// chunk returns chunk c of a session's timeline, and its encoding when it
// is the session's open chunk (nil otherwise): from memory when it is,
// else from storage.
func (b *backend) chunk(ctx context.Context, s logical.Storage, id string, c uint64) ([]timeline.Event, []byte, error) {
	b.liveMu.Lock()
	open := b.chunks[id]
	b.liveMu.Unlock()
	switch {
	case open != nil && open.index == c:
		return open.events, open.raw, nil
	case open != nil && open.index+1 == c:
		// This node wrote the session's newest chunk: the next one is
		// new.
		return nil, nil, nil
	}
	have, err := getChunk(ctx, s, chunkKey(id, c))
	return have, nil, err
}

// keepChunk remembers a session's newest chunk.
func (b *backend) keepChunk(id string, c uint64, events []timeline.Event, raw []byte) {
	b.liveMu.Lock()
	defer b.liveMu.Unlock()
	if open := b.chunks[id]; open == nil || open.index <= c {
		b.chunks[id] = &openChunk{index: c, events: events, raw: raw}
	}
}

func (b *backend) forgetChunk(id string) {
	b.liveMu.Lock()
	delete(b.chunks, id)
	b.liveMu.Unlock()
}

// loadEvents reads a session's kept events after seq after, at most limit.
func loadEvents(ctx context.Context, s logical.Storage, sess *trust.Session, maxEvents int, after uint64, limit int) ([]timeline.Event, error) {
	if dropped := droppedEvents(sess, maxEvents); after < dropped {
		after = dropped
	}
	if after >= sess.EventSeq {
		return nil, nil
	}
	keys, err := s.List(ctx, eventsPrefix+sess.ID+"/")
	if err != nil {
		return nil, err
	}
	var events []timeline.Event
	for _, k := range keys {
		c, ok := parseChunkKey(k)
		if !ok || c < chunkOf(after+1) {
			continue
		}
		chunk, err := getChunk(ctx, s, eventsPrefix+sess.ID+"/"+k)
		if err != nil {
			return nil, err
		}
		events = append(events, chunk...)
	}
	events = mergeEvents(nil, events)
	out := events[:0]
	for _, e := range events {
		if e.Seq > after && e.Seq <= sess.EventSeq && (limit <= 0 || len(out) < limit) {
			out = append(out, e)
		}
	}
	return out, nil
}

// deleteChunks deletes the timeline chunks of a session that drop says
// to, several at a time (raft commits them together).
func (b *backend) deleteChunks(ctx context.Context, s logical.Storage, id string, drop func(chunk uint64) bool) error {
	keys, err := s.List(ctx, eventsPrefix+id+"/")
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(deleteWorkers)
	for _, k := range keys {
		if c, ok := parseChunkKey(k); ok && !drop(c) {
			continue
		}
		if gctx.Err() != nil {
			break // a delete failed: stop there
		}
		g.Go(func() error {
			if err := s.Delete(gctx, eventsPrefix+id+"/"+k); err != nil {
				return fmt.Errorf("deleting timeline of session %s: %w", id, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// mergeEvents returns the events of both lists in sequence order, one per
// sequence number (the later list wins), so that writing an event twice
// (a close completed again by the rollback) records it once.
func mergeEvents(have, add []timeline.Event) []timeline.Event {
	out := append(slices.Clone(have), add...)
	slices.SortStableFunc(out, bySeq)
	// Keep the last of each run of equal sequence numbers.
	w := 0
	for i := range out {
		if i+1 < len(out) && out[i+1].Seq == out[i].Seq {
			continue
		}
		out[w] = out[i]
		w++
	}
	return out[:w]
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

// chunkOf is the chunk that holds event seq (sequence numbers start at 1).
func chunkOf(seq uint64) uint64 { return (seq - 1) / chunkEvents }

// chunkKey is where chunk c of a session's timeline is stored (see
// parseChunkKey).
func chunkKey(session string, c uint64) string {
	return fmt.Sprintf("%s%s/%012d", eventsPrefix, session, c)
}

// parseChunkKey reads a key under events/<id>/: a chunk number of 12
// digits.
func parseChunkKey(k string) (uint64, bool) {
	if len(k) != 12 {
		return 0, false
	}
	n, err := strconv.ParseUint(k, 10, 64)
	return n, err == nil
}

// putChunk stores a chunk's events, given as comma-separated JSON, as a
// snappy-compressed JSON array after chunkCanary.
func putChunk(ctx context.Context, s logical.Storage, key string, elements []byte) error {
	raw := make([]byte, 0, len(elements)+2)
	raw = append(append(append(raw, '['), elements...), ']')
	value := make([]byte, 1+snappy.MaxEncodedLen(len(raw)))
	value[0] = chunkCanary
	value = value[:1+len(snappy.Encode(value[1:], raw))]
	if err := s.Put(ctx, &logical.StorageEntry{Key: key, Value: value}); err != nil {
		return fmt.Errorf("writing %s: %w", key, err)
	}
	return nil
}

// getChunk reads what putChunk stored; nothing when there is no such
// chunk.
func getChunk(ctx context.Context, s logical.Storage, key string) ([]timeline.Event, error) {
	entry, err := s.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", key, err)
	}
	if entry == nil || len(entry.Value) == 0 {
		return nil, nil
	}
	if entry.Value[0] != chunkCanary {
		return nil, fmt.Errorf("decoding %s: not a timeline chunk", key)
	}
	raw, err := snappy.Decode(nil, entry.Value[1:])
	if err != nil {
		return nil, fmt.Errorf("decompressing %s: %w", key, err)
	}
	var events []timeline.Event
	if err := json.Unmarshal(raw, &events); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", key, err)
	}
	return events, nil
}
