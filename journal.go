package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
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
	// storage entry. An event is at most about 20 KiB (64 scopes of 256
	// bytes, and a few more fields of 256), so a chunk stays well under
	// the storage backends' entry limits (raft's 1 MiB, Consul's 512 KiB).
	chunkEvents = 16
	// journalBatchBytes bounds the encoded events of one journal entry;
	// a single request always goes, whatever its size.
	journalBatchBytes = 256 << 10
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

// journalWait is one request's events, encoded, and how it learns they
// are stored.
type journalWait struct {
	records []journalRecord
	raw     []byte // the records as comma-separated JSON
	done    chan journalResult
}

// journalResult is the outcome of the write that held a request's events:
// its error, or the storage index it reached (which Vault Enterprise's
// performance standbys use to read a request's own writes).
type journalResult struct {
	err   error
	index logical.WALState
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
	// alone until their write returns. written holds the records of the
	// entries this process wrote and has not compacted yet, so that
	// compaction need not read them back; listed says whether storage was
	// searched for entries of earlier processes since this one started.
	inflight map[string]bool
	written  map[string][]journalRecord
	listed   bool
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
	// bg tracks background work, so that Clean can wait for it; ctx is
	// cancelled by close, so that none of it outlives the mount.
	bg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc

	// compactMu serialises every change of timeline chunks: compaction,
	// trimming and deletion.
	compactMu sync.Mutex

	// warn logs what went wrong in the background.
	warn func(msg string, args ...interface{})
	// floor says whether a session still exists and up to which sequence
	// number its events are dropped (see backend.timelineFloor).
	floor func(ctx context.Context, s logical.Storage, id string) (floor uint64, exists bool, err error)
}

func newJournal(warn func(msg string, args ...interface{})) *journal {
	writer, err := uuid.GenerateUUID()
	if err != nil {
		writer = fmt.Sprintf("%x", time.Now().UnixNano())
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &journal{
		floor:  func(context.Context, logical.Storage, string) (uint64, bool, error) { return 0, true, nil },
		writer: writer, inflight: map[string]bool{}, written: map[string][]journalRecord{}, warn: warn,
		compactAt: compactEntries, compactAfter: compactDelay, maxWriters: journalWriters,
		ctx: ctx, cancel: cancel,
	}
}

// append queues a session's events for the next group commit. The
// returned channel yields the outcome of the write that holds them; the
// caller must wait for it before answering its request (see commit).
func (j *journal) append(s logical.Storage, session string, events []timeline.Event) <-chan journalResult {
	done := make(chan journalResult, 1)
	if len(events) == 0 {
		done <- journalResult{}
		return done
	}
	var buf bytes.Buffer
	for i, e := range events {
		if i > 0 {
			buf.WriteByte(',')
		}
		raw, err := json.Marshal(journalRecord{Session: session, Event: e})
		if err != nil {
			done <- journalResult{err: fmt.Errorf("encoding timeline event: %w", err)}
			return done
		}
		buf.Write(raw)
	}
	w := journalWait{raw: buf.Bytes(), done: done}
	for _, e := range events {
		w.records = append(w.records, journalRecord{Session: session, Event: e})
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		done <- journalResult{err: errShuttingDown}
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
		n, size := 0, 0
		for n < len(j.queue) && (n == 0 || size+len(j.queue[n].raw) <= journalBatchBytes) {
			size += len(j.queue[n].raw) + 1
			n++
		}
		batch := slices.Clone(j.queue[:n])
		j.queue = slices.Delete(j.queue, 0, n)
		j.next++
		key := fmt.Sprintf("%s%s-%016x", journalPrefix, j.writer, j.next)
		j.inflight[key] = true
		j.storage = s
		j.mu.Unlock()

		raw := make([]byte, 0, size+8)
		raw = append(raw, `{"r":[`...)
		for i, w := range batch {
			if i > 0 {
				raw = append(raw, ',')
			}
			raw = append(raw, w.raw...)
		}
		raw = append(raw, "]}"...)
		var index logical.WALState
		ctx, cancel := context.WithTimeout(logical.IndexStateContext(j.ctx, &index), journalWriteTimeout)
		err := putCompressedRaw(ctx, s, key, raw)
		cancel()

		j.mu.Lock()
		delete(j.inflight, key)
		if err == nil {
			var records []journalRecord
			for _, w := range batch {
				records = append(records, w.records...)
			}
			j.written[key] = records
			j.waiting++
			j.scheduleCompaction()
		}
		j.mu.Unlock()
		for _, w := range batch {
			w.done <- journalResult{err: err, index: index}
		}
	}
}

// errShuttingDown answers requests that arrive while the mount closes.
var errShuttingDown = errors.New("the engine is shutting down")

// commit waits for a write started by append, and passes the storage index
// it reached on to the request's context, as Vault's storage client does
// for the request's own writes.
func commit(ctx context.Context, done <-chan journalResult) error {
	res := <-done
	if res.err != nil {
		return res.err
	}
	if ws := logical.IndexStateFromContext(ctx); ws != nil && res.index.LocalIndex > ws.LocalIndex {
		ws.LocalIndex, ws.ReplicatedIndex = res.index.LocalIndex, res.index.ReplicatedIndex
	}
	return nil
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
	ctx, cancel := context.WithTimeout(j.ctx, 5*time.Minute)
	err := j.compact(ctx, s, false)
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

// background runs f in the background with a context that close
// cancels; Clean waits for it. After close, f does not run.
func (j *journal) background(f func(ctx context.Context)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return
	}
	j.bg.Add(1)
	go func() {
		defer j.bg.Done()
		ctx, cancel := context.WithTimeout(j.ctx, journalWriteTimeout)
		defer cancel()
		f(ctx)
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
	j.cancel()
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

// compact moves journal entries into their sessions' timeline chunks,
// and deletes them: the entries this process wrote, from memory, and, the
// first time and whenever full is set (the tidy), any other entry found in
// storage (left by a crash, or by the node active before). Events of
// sessions that are gone, or that fell out of their max_events window, are
// dropped. A session whose chunks cannot be written does not hold up the
// others: the entries that hold its events stay for the next compaction,
// and the error is returned after the rest is done.
func (j *journal) compact(ctx context.Context, s logical.Storage, full bool) error {
	j.compactMu.Lock()
	defer j.compactMu.Unlock()

	j.mu.Lock()
	entries := j.written
	j.written = map[string][]journalRecord{}
	list := full || !j.listed
	j.mu.Unlock()
	// Entries not compacted go back, for the next round.
	var failedKeys []string
	defer func() {
		j.mu.Lock()
		for _, k := range failedKeys {
			if recs, ok := entries[k]; ok {
				j.written[k] = recs
			}
		}
		j.mu.Unlock()
	}()

	if list {
		keys, err := s.List(ctx, journalPrefix)
		if err != nil {
			failedKeys = slices.Collect(maps.Keys(entries))
			return fmt.Errorf("listing the journal: %w", err)
		}
		j.mu.Lock()
		keys = slices.DeleteFunc(keys, func(k string) bool {
			_, mine := j.written[journalPrefix+k]
			return mine || j.inflight[journalPrefix+k]
		})
		j.mu.Unlock()
		for _, k := range keys {
			if _, ok := entries[journalPrefix+k]; ok {
				continue
			}
			var entry journalEntry
			ok, err := getCompressed(ctx, s, journalPrefix+k, &entry)
			if err != nil {
				failedKeys = slices.Collect(maps.Keys(entries))
				return err
			}
			if ok {
				entries[journalPrefix+k] = entry.Records
			}
		}
		j.mu.Lock()
		j.listed = true
		j.mu.Unlock()
	}
	if len(entries) == 0 {
		return nil
	}

	bySession := map[string][]timeline.Event{}
	for _, recs := range entries {
		for _, r := range recs {
			bySession[r.Session] = append(bySession[r.Session], r.Event)
		}
	}
	var (
		mu     sync.Mutex
		failed = map[string]bool{}
		errs   []error
	)
	parallel(len(bySession), slices.Collect(maps.Keys(bySession)), func(id string) {
		events := bySession[id]
		floor, exists, err := j.floor(ctx, s, id)
		if err == nil && exists {
			events = slices.DeleteFunc(events, func(e timeline.Event) bool { return e.Seq <= floor })
			err = mergeIntoChunks(ctx, s, id, events)
		}
		if err != nil {
			mu.Lock()
			failed[id] = true
			errs = append(errs, fmt.Errorf("compacting the timeline of session %s: %w", id, err))
			mu.Unlock()
		}
	})
	var done []string
	for k, recs := range entries {
		if slices.ContainsFunc(recs, func(r journalRecord) bool { return failed[r.Session] }) {
			failedKeys = append(failedKeys, k)
		} else {
			done = append(done, k)
		}
	}
	parallel(len(done), done, func(k string) {
		if err := s.Delete(ctx, k); err != nil {
			// Its events are in the chunks; the next full compaction
			// finds the entry and deletes it.
			mu.Lock()
			errs = append(errs, fmt.Errorf("deleting compacted journal entry: %w", err))
			mu.Unlock()
		}
	})
	return errors.Join(errs...)
}

// compactWorkers storage operations of a compaction run at once: the
// storage (raft) commits them together.
const compactWorkers = 8

// parallel calls f for every item, compactWorkers at a time.
func parallel(n int, items []string, f func(string)) {
	if n == 0 {
		return
	}
	work := make(chan string)
	var wg sync.WaitGroup
	for w := 0; w < min(n, compactWorkers); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				f(it)
			}
		}()
	}
	for _, it := range items {
		work <- it
	}
	close(work)
	wg.Wait()
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

// chunkKey is where chunk c of a session's timeline is stored (see
// parseEventKey).
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
	return putCompressedRaw(ctx, s, key, raw)
}

// putCompressedRaw stores JSON text compressed.
func putCompressedRaw(ctx context.Context, s logical.Storage, key string, raw []byte) error {
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
