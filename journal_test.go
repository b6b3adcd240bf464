package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/timeline"
)

// slowStorage makes every journal write take a while, as a raft write
// does, and counts them.
type slowStorage struct {
	logical.Storage
	delay time.Duration
	mu    sync.Mutex
	puts  map[string]int // by first path segment
}

func (s *slowStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	prefix, _, _ := strings.Cut(e.Key, "/")
	s.mu.Lock()
	if s.puts == nil {
		s.puts = map[string]int{}
	}
	s.puts[prefix]++
	s.mu.Unlock()
	if prefix == "journal" {
		time.Sleep(s.delay)
	}
	return s.Storage.Put(ctx, e)
}

func (s *slowStorage) count(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.puts[prefix]
}

// TestJournalGroupCommitsConcurrentCredentials: credentials issued at the
// same time into different sessions share journal writes, and every one of
// them is in its session's timeline when its request returns.
func TestJournalGroupCommitsConcurrentCredentials(t *testing.T) {
	b, _ := testBackend(t)
	// One write at a time, so that the sharing does not depend on how
	// the two writers' rounds interleave.
	b.journal.maxWriters = 1
	s := &slowStorage{Storage: &logical.InmemStorage{}, delay: 20 * time.Millisecond}
	writeRole(t, b, s, "web", map[string]interface{}{"max_rate": 100000, "max_steps": 1000})
	const sessions, each = 8, 25
	ids := make([]string, sessions)
	for i := range ids {
		ids[i], _ = startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	}
	before := s.count("journal")

	var wg sync.WaitGroup
	issued := make([][]string, sessions)
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < each; n++ {
				resp, err := issue(t, b, s, agentA, id, map[string]interface{}{"scope": "read:secrets/web/x", "audience": "secrets-api"})
				if !assert.NoError(t, err) {
					return
				}
				issued[i] = append(issued[i], resp.Data["credential_id"].(string))
			}
		}()
	}
	wg.Wait()

	writes := s.count("journal") - before
	t.Logf("%d credentials in %d sessions took %d journal writes", sessions*each, sessions, writes)
	assert.Less(t, writes, sessions*each/3, "%d credentials took %d journal writes: they must share them", sessions*each, writes)
	for i, id := range ids {
		var got []string
		for _, e := range timelineEvents(t, b, s, id) {
			if e["kind"] == string(timeline.CredentialIssued) {
				got = append(got, e["credential"].(string))
			}
		}
		assert.Equal(t, issued[i], got, "session %d's timeline holds its credentials, in order", i)
	}
}

// TestJournalEntriesOfAnEarlierProcessAreKept: entries a crashed process
// (or the node active before) left in the journal are read with the
// timeline, and compacted by the next tidy.
func TestJournalEntriesOfAnEarlierProcessAreKept(t *testing.T) {
	ctx := context.Background()
	first, s := testBackend(t)
	first.journal.compactAt, first.journal.compactAfter = 1<<30, time.Hour
	writeRole(t, first, s, "web", map[string]interface{}{"max_rate": 100000})
	id, _ := startSession(t, first, s, agentA, map[string]interface{}{"role": "web"})
	for i := 0; i < 70; i++ {
		mustDo(t, first, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scope": "read:secrets/web/x", "audience": "secrets-api"})
	}
	pending, err := s.List(ctx, journalPrefix)
	require.NoError(t, err)
	require.Len(t, pending, 71, "one entry per request when requests do not overlap")

	// A new process on the same storage: the first one's copy of the
	// session in memory is gone.
	second := newTestBackendOn(t, s)
	events := timelineEvents(t, second, s, id)
	require.Len(t, events, 71)
	for i, e := range events {
		assert.EqualValues(t, i+1, e["seq"])
	}

	require.NoError(t, second.tidy(ctx, s))
	pending, err = s.List(ctx, journalPrefix)
	require.NoError(t, err)
	assert.Empty(t, pending, "the tidy compacts the journal")
	chunks, err := s.List(ctx, eventsPrefix+id+"/")
	require.NoError(t, err)
	assert.Equal(t, []string{"000000000000", "000000000001", "000000000002", "000000000003", "000000000004"}, chunks, "71 events in chunks of 16")
	assert.Equal(t, events, timelineEvents(t, second, s, id), "compaction changes nothing a reader sees")

	// Compacting what is already compacted changes nothing either.
	require.NoError(t, mergeIntoChunks(ctx, s, id, []timeline.Event{{Seq: 3, Kind: timeline.CredentialIssued, Credential: "x"}}))
	again := timelineEvents(t, second, s, id)
	require.Len(t, again, 71)
	assert.Equal(t, "x", again[2]["credential"])
}

// TestJournalCompactsInTheBackground: once enough entries wait, a
// background compaction moves them into chunks.
func TestJournalCompactsInTheBackground(t *testing.T) {
	ctx := context.Background()
	b, s := testBackend(t)
	b.journal.compactAt = 4
	writeRole(t, b, s, "web", map[string]interface{}{"max_rate": 100000})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	for i := 0; i < 9; i++ {
		mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scope": "read:secrets/web/x", "audience": "secrets-api"})
	}
	b.journal.settle()
	pending, err := s.List(ctx, journalPrefix)
	require.NoError(t, err)
	assert.Less(t, len(pending), 4, "at most compactAt-1 entries are left waiting")
	chunks, err := s.List(ctx, eventsPrefix+id+"/")
	require.NoError(t, err)
	assert.Equal(t, []string{"000000000000"}, chunks)
	assert.Len(t, timelineEvents(t, b, s, id), 10)

	// The delay compacts the rest.
	b.journal.mu.Lock()
	b.journal.compactAfter = time.Millisecond
	b.journal.mu.Unlock()
	mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scope": "read:secrets/web/x", "audience": "secrets-api"})
	require.Eventually(t, func() bool {
		pending, err := s.List(ctx, journalPrefix)
		return err == nil && len(pending) == 0
	}, 10*time.Second, 10*time.Millisecond)
	assert.Len(t, timelineEvents(t, b, s, id), 11)
}

// TestJournalWriteFailureFailsTheRequest: a credential whose event could
// not be stored is not issued, and the budget it reserved stays spent.
func TestJournalWriteFailureFailsTheRequest(t *testing.T) {
	b, _ := testBackend(t)
	s := &failingStorage{Storage: &logical.InmemStorage{}, prefix: journalPrefix}
	writeRole(t, b, s, "web", map[string]interface{}{"max_rate": 100000})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	step := map[string]interface{}{"scope": "read:secrets/web/x", "audience": "secrets-api"}
	s.arm(true)
	resp, err := issue(t, b, s, agentA, id, step)
	require.Error(t, err)
	assert.Nil(t, resp)
	s.arm(false)
	mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, step)
	kinds := eventKinds(t, b, s, id)
	assert.Equal(t, []string{"session_start", "credential_issued"}, kinds)
}

func TestMergeEvents(t *testing.T) {
	ev := func(seq uint64, cred string) timeline.Event { return timeline.Event{Seq: seq, Credential: cred} }
	got := mergeEvents([]timeline.Event{ev(1, "a"), ev(3, "c")}, []timeline.Event{ev(2, "b"), ev(3, "C"), ev(1, "A")})
	assert.Equal(t, []timeline.Event{ev(1, "A"), ev(2, "b"), ev(3, "C")}, got)
	assert.Empty(t, mergeEvents(nil, nil))
}

func BenchmarkJournalCompaction(b *testing.B) {
	ctx := context.Background()
	s := &logical.InmemStorage{}
	j := newJournal(func(string, ...interface{}) {})
	j.compactAt, j.compactAfter = 1<<30, time.Hour
	defer j.close()
	events := make([]timeline.Event, 16)
	for b.Loop() {
		for i := 0; i < 16; i++ {
			for k := range events {
				events[k] = timeline.Event{Seq: uint64(k + 1), Kind: timeline.CredentialIssued, Credential: fmt.Sprint(k)}
			}
			require.NoError(b, commit(ctx, j.append(s, fmt.Sprintf("s%d", i), events)))
		}
		require.NoError(b, j.compact(ctx, s, true))
	}
}

// TestJournalBatchesAreBoundedInBytes: large events (64 long scopes each)
// are spread over several journal entries, none much larger than
// journalBatchBytes.
func TestJournalBatchesAreBoundedInBytes(t *testing.T) {
	ctx := context.Background()
	s := &logical.InmemStorage{}
	j := newJournal(func(string, ...interface{}) {})
	j.compactAt, j.compactAfter, j.maxWriters = 1<<30, time.Hour, 1
	t.Cleanup(j.close)
	big := strings.Repeat("x", 250)
	scopes := make([]string, 64)
	for i := range scopes {
		scopes[i] = fmt.Sprintf("read:secrets/%03d/%s", i, big)
	}
	// Hold the writer while the requests queue up.
	j.mu.Lock()
	j.writers = j.maxWriters
	j.mu.Unlock()
	var done []<-chan journalResult
	for i := 0; i < 40; i++ {
		done = append(done, j.append(s, fmt.Sprintf("s%d", i), []timeline.Event{{Seq: 1, Kind: timeline.CredentialIssued, Scopes: scopes}}))
	}
	j.mu.Lock()
	j.writers = 0
	j.mu.Unlock()
	done = append(done, j.append(s, "last", []timeline.Event{{Seq: 1, Kind: timeline.CredentialIssued}}))
	for _, d := range done {
		require.NoError(t, commit(ctx, d))
	}
	keys, err := s.List(ctx, journalPrefix)
	require.NoError(t, err)
	assert.Greater(t, len(keys), 2, "about 700 KiB of events take several entries")
	for _, k := range keys {
		e, err := s.Get(ctx, journalPrefix+k)
		require.NoError(t, err)
		var entry journalEntry
		_, err = getCompressed(ctx, s, journalPrefix+k, &entry)
		require.NoError(t, err)
		raw, _ := json.Marshal(entry)
		assert.Less(t, len(raw), journalBatchBytes+20<<10, "entry %s", k)
		assert.NotEmpty(t, e.Value)
	}
	require.NoError(t, j.compact(ctx, s, true))
	chunks, err := s.List(ctx, eventsPrefix+"s0/")
	require.NoError(t, err)
	assert.Equal(t, []string{"000000000000"}, chunks)
}

// chunkFailingStorage refuses writes of one session's timeline chunks.
type chunkFailingStorage struct {
	logical.Storage
	session string
}

func (c *chunkFailingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if strings.HasPrefix(e.Key, eventsPrefix+c.session+"/") {
		return fmt.Errorf("injected failure")
	}
	return c.Storage.Put(ctx, e)
}

// TestCompactionFailureIsContained: a session whose chunks cannot be
// written keeps its events in the journal, where readers still find them;
// the other sessions are compacted, and the tidy carries on.
func TestCompactionFailureIsContained(t *testing.T) {
	ctx := context.Background()
	b, _ := testBackend(t)
	b.journal.compactAt, b.journal.compactAfter = 1<<30, time.Hour
	mem := &logical.InmemStorage{}
	writeRole(t, b, mem, "web", map[string]interface{}{"max_rate": 100000})
	bad, _ := startSession(t, b, mem, agentA, map[string]interface{}{"role": "web"})
	good, _ := startSession(t, b, mem, agentA, map[string]interface{}{"role": "web"})
	step := map[string]interface{}{"scope": "read:secrets/web/x", "audience": "secrets-api"}
	for i := 0; i < 3; i++ {
		mustDo(t, b, mem, agentA, logical.UpdateOperation, "creds/"+bad, step)
		mustDo(t, b, mem, agentA, logical.UpdateOperation, "creds/"+good, step)
	}
	s := &chunkFailingStorage{Storage: mem, session: bad}
	require.Error(t, b.journal.compact(ctx, s, true))
	chunks, err := s.List(ctx, eventsPrefix+good+"/")
	require.NoError(t, err)
	assert.NotEmpty(t, chunks, "the healthy session was compacted")
	pending, err := s.List(ctx, journalPrefix)
	require.NoError(t, err)
	assert.Len(t, pending, 4, "the entries with the failing session's events stay: its start and its 3 credentials")
	assert.Len(t, eventKinds(t, b, s, bad), 4)
	assert.Len(t, eventKinds(t, b, s, good), 4)
	require.NoError(t, b.tidy(ctx, s), "the tidy logs the failure and carries on")
}

// TestCompactionDropsEventsOfDeletedSessions: an event that reaches the
// journal after its session was deleted (a late report on a dead token)
// does not bring back chunks nobody will delete.
func TestCompactionDropsEventsOfDeletedSessions(t *testing.T) {
	ctx := context.Background()
	b, s := testBackend(t)
	b.journal.compactAt, b.journal.compactAfter = 1<<30, time.Hour
	require.NoError(t, commit(ctx, b.journal.append(s, "gone", []timeline.Event{{Seq: 7, Kind: timeline.Violation}})))
	require.NoError(t, b.journal.compact(ctx, s, true))
	keys, err := s.List(ctx, eventsPrefix)
	require.NoError(t, err)
	assert.Empty(t, keys)
	pending, err := s.List(ctx, journalPrefix)
	require.NoError(t, err)
	assert.Empty(t, pending)
}

// TestLegacyEventKeysAreRead: events stored one per key by versions
// before chunks are still in the timeline, and deleted with it.
func TestLegacyEventKeysAreRead(t *testing.T) {
	ctx := context.Background()
	b, s := testBackend(t)
	writeRole(t, b, s, "web", map[string]interface{}{"max_rate": 100000})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	require.NoError(t, b.journal.compact(ctx, s, true))
	// Rewrite the start event the old way.
	require.NoError(t, s.Delete(ctx, chunkKey(id, 0)))
	require.NoError(t, putJSON(ctx, s, fmt.Sprintf("%s%s/%020d", eventsPrefix, id, 1), timeline.Event{Seq: 1, Kind: timeline.SessionStart}))
	mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scope": "read:secrets/web/x", "audience": "secrets-api"})
	assert.Equal(t, []string{"session_start", "credential_issued"}, eventKinds(t, b, s, id))
	sess, err := b.getSession(ctx, s, id)
	require.NoError(t, err)
	require.NoError(t, b.deleteSession(ctx, s, sess))
	keys, err := s.List(ctx, eventsPrefix+id+"/")
	require.NoError(t, err)
	assert.Empty(t, keys)
}

// TestNumberingResumesAfterAnotherProcess: a process that takes over a
// session whose events are still in the journal numbers new events past
// them; nothing is overwritten.
func TestNumberingResumesAfterAnotherProcess(t *testing.T) {
	first, s := testBackend(t)
	first.journal.compactAt, first.journal.compactAfter = 1<<30, time.Hour
	writeRole(t, first, s, "web", map[string]interface{}{"max_rate": 100000})
	id, _ := startSession(t, first, s, agentA, map[string]interface{}{"role": "web"})
	step := map[string]interface{}{"scope": "read:secrets/web/x", "audience": "secrets-api"}
	var creds []string
	for i := 0; i < 5; i++ {
		creds = append(creds, mustDo(t, first, s, agentA, logical.UpdateOperation, "creds/"+id, step).Data["credential_id"].(string))
	}
	second := newTestBackendOn(t, s)
	for i := 0; i < 5; i++ {
		creds = append(creds, mustDo(t, second, s, agentA, logical.UpdateOperation, "creds/"+id, step).Data["credential_id"].(string))
	}
	require.NoError(t, second.tidy(context.Background(), s))
	var got []string
	for _, e := range timelineEvents(t, second, s, id) {
		if e["kind"] == string(timeline.CredentialIssued) {
			got = append(got, e["credential"].(string))
		}
	}
	assert.Equal(t, creds, got)
}

// TestNothingRunsAfterClose: background work asked for after Clean does
// not start, and requests are refused rather than left waiting.
func TestNothingRunsAfterClose(t *testing.T) {
	j := newJournal(func(string, ...interface{}) {})
	j.close()
	ran := false
	j.background(func(context.Context) { ran = true })
	j.bg.Wait()
	assert.False(t, ran)
	err := commit(context.Background(), j.append(&logical.InmemStorage{}, "s", []timeline.Event{{Seq: 1}}))
	assert.ErrorIs(t, err, errShuttingDown)
}

// readCountingStorage counts reads of journal entries.
type readCountingStorage struct {
	logical.Storage
	mu    sync.Mutex
	reads int
}

func (r *readCountingStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if strings.HasPrefix(key, journalPrefix) {
		r.mu.Lock()
		r.reads++
		r.mu.Unlock()
	}
	return r.Storage.Get(ctx, key)
}

// TestCompactionWorksFromMemory: the entries a process wrote are compacted
// from memory, not read back from storage.
func TestCompactionWorksFromMemory(t *testing.T) {
	ctx := context.Background()
	b, _ := testBackend(t)
	b.journal.compactAt, b.journal.compactAfter = 1<<30, time.Hour
	s := &readCountingStorage{Storage: &logical.InmemStorage{}}
	writeRole(t, b, s, "web", map[string]interface{}{"max_rate": 100000})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	require.NoError(t, b.journal.compact(ctx, s, false)) // the first one also looks for older entries
	for i := 0; i < 20; i++ {
		mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scope": "read:secrets/web/x", "audience": "secrets-api"})
	}
	require.NoError(t, b.journal.compact(ctx, s, false))
	assert.Zero(t, s.reads)
	pending, err := s.List(ctx, journalPrefix)
	require.NoError(t, err)
	assert.Empty(t, pending)
	assert.Len(t, eventKinds(t, b, s, id), 21)
}
