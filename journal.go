package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	uuid "github.com/hashicorp/go-uuid"
	"github.com/hashicorp/vault/sdk/helper/compressutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/continuoustrust/vault-plugin-secrets-agent/timeline"
)

// The timeline is written through a journal, so that a step credential
// does not cost a storage write of its own.
//
// A request that records events (a credential issued, a violation, a
// session started or ended, ...) hands them to the journal and waits until
// they are in storage: the journal writes the events of every request
// waiting at that moment, from any session, as one entry (a group commit).
// Under concurrency many credentials share one write, and still no request
// is answered before its events are durable.
//
// Compaction moves journal entries into the sessions' timelines, stored in
// chunks of chunkEvents events (events/<id>/<chunk>), and then deletes
// them. It runs in the background once compactEntries entries are waiting
// or compactDelay after the first of them, and at the start of the periodic
// tidy. Compaction is idempotent (an event is placed by its sequence
// number), so entries left behind by a crash, or by another node that was
// active before, are simply compacted again. Readers of a timeline merge
// its chunks with the entries not yet compacted, so they always see every
// event that was promised.
const (
	journalPrefix = "journal/"

	// chunkEvents is how many consecutive events of a session share one
	// storage entry.
	chunkEvents = 64
	// journalBatchEvents bounds the events in one journal entry.
	journalBatchEvents = 256
	// journalWriters writes may be under way at once. A request that
	// finds one under way starts another rather than waiting for it to
	// end (the storage, raft, commits both together); beyond that,
	// requests wait and share the next write.
	journalWriters = 2
	// compactEntries journal entries waiting start a compaction at once;
	// fewer wait at most compactDelay.
	compactEntries = 32
	compactDelay   = 2 * time.Second
	// journalWriteTimeout bounds one journal write: the write serves many
	// requests, so it does not use any one request's context.
	journalWriteTimeout = 30 * time.Second
)

// journalRecord is one event of one session, as written in the journal.
type journalRecord struct {
	Session string         `json:"s"`
	Event   timeline.Event `json:"e"`
}

// journalEntry is what one group commit writes.
type journalEntry struct {
	Records []journalRecord `json:"r"`
}

// journalWait is one request's events, and how it learns they are stored.
type journalWait struct {
	records []journalRecord
	done    chan error
}

// journal is a mount's group committer and compactor.
type journal struct {
	mu sync.Mutex
	// writer names this process's journal entries (journal/<writer>-<n>).
	writer string
	next   uint64
	// queue holds the requests waiting for the next write; writers is
	// how many writes are under way, at most maxWriters (journalWriters).
	queue      []journalWait
	writers    int
	maxWriters int
	// inflight are the keys being written now: compaction leaves them
	// alone until their write returns.
	inflight map[string]bool
	// storage is where background compaction writes: the storage of the
	// requests that filled the journal.
	storage logical.Storage
	// waiting counts entries written since the last compaction began;
	// compactAt of them start one at once, fewer wait at most
	// compactAfter (compactEntries and compactDelay; tests change them).
	waiting      int
	compactAt    int
	compactAfter time.Duration
	compacting   bool
	timer        *time.Timer
	closed       bool
	// bg tracks background work, so that Clean can wait for it.
	bg sync.WaitGroup

	// compactMu serialises every change of timeline chunks: compaction,
	// trimming and deletion.
	compactMu sync.Mutex

	// warn logs what went wrong in the background.
	warn func(msg string, args ...interface{})
}

func newJournal(warn func(msg string, args ...interface{})) *journal {
	writer, err := uuid.GenerateUUID()
	if err != nil {
		writer = fmt.Sprintf("%x", time.Now().UnixNano())
	}
	return &journal{
		writer: writer, inflight: map[string]bool{}, warn: warn,
		compactAt: compactEntries, compactAfter: compactDelay, maxWriters: journalWriters,
	}
}

// append queues a session's events for the next group commit. The
// returned channel yields the outcome of the write that holds them; the
// caller must wait for it before answering its request.
func (j *journal) append(s logical.Storage, session string, events []timeline.Event) <-chan error {
	done := make(chan error, 1)
	if len(events) == 0 {
		done <- nil
		return done
	}
	w := journalWait{records: make([]journalRecord, len(events)), done: done}
	for i, e := range events {
		w.records[i] = journalRecord{Session: session, Event: e}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		done <- fmt.Errorf("the engine is shutting down")
		return done
	}
	j.queue = append(j.queue, w)
	if j.writers < j.maxWriters {
		j.writers++
		j.bg.Add(1)
		go j.writeLoop(s)
	}
	return done
}

// writeLoop writes everything queued, one entry per round, until the
// queue is empty. Requests that arrive while maxWriters writes are under
// way share the next one.
func (j *journal) writeLoop(s logical.Storage) {
	defer j.bg.Done()
	for {
		j.mu.Lock()
		if len(j.queue) == 0 {
			j.writers--
			j.mu.Unlock()
			return
		}
		n, events := 0, 0
		for n < len(j.queue) && (n == 0 || events+len(j.queue[n].records) <= journalBatchEvents) {
			events += len(j.queue[n].records)
			n++
		}
		batch := slices.Clone(j.queue[:n])
		j.queue = slices.Delete(j.queue, 0, n)
		j.next++
		key := fmt.Sprintf("%s%s-%016x", journalPrefix, j.writer, j.next)
		j.inflight[key] = true
		j.storage = s
		j.mu.Unlock()

		entry := journalEntry{Records: make([]journalRecord, 0, events)}
		for _, w := range batch {
			entry.Records = append(entry.Records, w.records...)
		}
		ctx, cancel := context.WithTimeout(context.Background(), journalWriteTimeout)
		err := putCompressed(ctx, s, key, &entry)
		cancel()

		j.mu.Lock()
		delete(j.inflight, key)
		if err == nil {
			j.waiting++
			j.scheduleCompaction()
		}
		j.mu.Unlock()
		for _, w := range batch {
			w.done <- err
		}
	}
}

// scheduleCompaction starts a background compaction when enough entries
// wait, or arms a timer for the first of them. j.mu must be held.
func (j *journal) scheduleCompaction() {
	if j.closed || j.compacting || j.waiting == 0 {
		return
	}
	if j.waiting >= j.compactAt {
		if j.timer != nil {
			j.timer.Stop()
			j.timer = nil
		}
		j.compacting = true
		j.waiting = 0
		j.bg.Add(1)
		go j.compactInBackground(j.storage)
		return
	}
	if j.timer == nil {
		j.timer = time.AfterFunc(j.compactAfter, func() {
			j.mu.Lock()
			defer j.mu.Unlock()
			j.timer = nil
			j.waiting = max(j.waiting, j.compactAt)
			j.scheduleCompaction()
		})
	}
}

func (j *journal) compactInBackground(s logical.Storage) {
	defer j.bg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	err := j.compact(ctx, s)
	cancel()
	if err != nil {
		// The entries stay; the next compaction (or the periodic tidy)
		// takes them again.
		j.warn("compacting the timeline journal", "error", err)
	}
	j.mu.Lock()
	j.compacting = false
	j.scheduleCompaction()
	j.mu.Unlock()
}

// background runs f in the background; Clean waits for it.
func (j *journal) background(f func()) {
	j.bg.Add(1)
	go func() {
		defer j.bg.Done()
		f()
	}()
}

// close stops background work and waits for what is under way.
func (j *journal) close() {
	j.mu.Lock()
	j.closed = true
	if j.timer != nil {
		j.timer.Stop()
		j.timer = nil
	}
	j.mu.Unlock()
	j.bg.Wait()
}

// settle waits until every queued write and background compaction has
// finished. Tests use it to look at storage at rest.
func (j *journal) settle() {
	for {
		j.bg.Wait()
		j.mu.Lock()
		idle := j.writers == 0 && !j.compacting
		j.mu.Unlock()
		if idle {
			return
		}
	}
}

// compact moves every journal entry in storage (except those being
// written) into its sessions' timeline chunks, and deletes it.
func (j *journal) compact(ctx context.Context, s logical.Storage) error {
	j.compactMu.Lock()
	defer j.compactMu.Unlock()
	keys, err := s.List(ctx, journalPrefix)
	if err != nil {
		return fmt.Errorf("listing the journal: %w", err)
	}
	j.mu.Lock()
	keys = slices.DeleteFunc(keys, func(k string) bool { return j.inflight[journalPrefix+k] })
	j.mu.Unlock()
	for len(keys) > 0 {
		n := min(len(keys), 256)
		if err := compactEntriesInto(ctx, s, keys[:n]); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}

// compactEntriesInto merges the named journal entries into chunks, then
// deletes them.
func compactEntriesInto(ctx context.Context, s logical.Storage, keys []string) error {
	bySession := map[string][]timeline.Event{}
	for _, k := range keys {
		var entry journalEntry
		ok, err := getCompressed(ctx, s, journalPrefix+k, &entry)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		for _, r := range entry.Records {
			bySession[r.Session] = append(bySession[r.Session], r.Event)
		}
	}
	for id, events := range bySession {
		if err := mergeIntoChunks(ctx, s, id, events); err != nil {
			return err
		}
	}
	for _, k := range keys {
		if err := s.Delete(ctx, journalPrefix+k); err != nil {
			return fmt.Errorf("deleting compacted journal entry: %w", err)
		}
	}
	return nil
}

// mergeIntoChunks writes a session's events into their chunks. An event
// already there is replaced by the same event, so merging twice is
// harmless.
func mergeIntoChunks(ctx context.Context, s logical.Storage, id string, events []timeline.Event) error {
	byChunk := map[uint64][]timeline.Event{}
	for _, e := range events {
		if e.Seq == 0 {
			continue
		}
		c := chunkOf(e.Seq)
		byChunk[c] = append(byChunk[c], e)
	}
	for c, add := range byChunk {
		key := chunkKey(id, c)
		var have []timeline.Event
		if _, err := getCompressed(ctx, s, key, &have); err != nil {
			return err
		}
		if err := putCompressed(ctx, s, key, mergeEvents(have, add)); err != nil {
			return err
		}
	}
	return nil
}

// mergeEvents returns the events of both lists in sequence order, one per
// sequence number (the later list wins).
func mergeEvents(have, add []timeline.Event) []timeline.Event {
	out := append(slices.Clone(have), add...)
	slices.SortStableFunc(out, func(a, b timeline.Event) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
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

// chunkOf is the chunk that holds event seq (sequence numbers start at 1).
func chunkOf(seq uint64) uint64 { return (seq - 1) / chunkEvents }

// chunkKey is where chunk c of a session's timeline is stored.
func chunkKey(session string, c uint64) string {
	return fmt.Sprintf("%s%s/%012d", eventsPrefix, session, c)
}

// journalEvents returns the events of one session waiting in the journal.
func journalEvents(ctx context.Context, s logical.Storage, session string) ([]timeline.Event, error) {
	keys, err := s.List(ctx, journalPrefix)
	if err != nil {
		return nil, fmt.Errorf("listing the journal: %w", err)
	}
	var out []timeline.Event
	for _, k := range keys {
		var entry journalEntry
		// An entry compacted since the list is gone: its events are in
		// the chunks, which the caller reads after this.
		if _, err := getCompressed(ctx, s, journalPrefix+k, &entry); err != nil {
			return nil, err
		}
		for _, r := range entry.Records {
			if r.Session == session {
				out = append(out, r.Event)
			}
		}
	}
	return out, nil
}

// putCompressed stores v as snappy-compressed JSON. Timeline events repeat
// most of their text, so they compress several times over.
func putCompressed(ctx context.Context, s logical.Storage, key string, v interface{}) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", key, err)
	}
	value, err := compressutil.Compress(raw, &compressutil.CompressionConfig{Type: compressutil.CompressionTypeSnappy})
	if err != nil {
		return fmt.Errorf("compressing %s: %w", key, err)
	}
	if err := s.Put(ctx, &logical.StorageEntry{Key: key, Value: value}); err != nil {
		return fmt.Errorf("writing %s: %w", key, err)
	}
	return nil
}

// getCompressed reads what putCompressed stored.
func getCompressed(ctx context.Context, s logical.Storage, key string, v interface{}) (bool, error) {
	entry, err := s.Get(ctx, key)
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", key, err)
	}
	if entry == nil {
		return false, nil
	}
	raw, notCompressed, err := compressutil.Decompress(entry.Value)
	if err != nil {
		return false, fmt.Errorf("decompressing %s: %w", key, err)
	}
	if notCompressed {
		raw = entry.Value
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("decoding %s: %w", key, err)
	}
	return true, nil
}
