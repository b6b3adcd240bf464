package agent

import (
	"context"
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

// opCountingStorage counts reads and writes by first path segment.
type opCountingStorage struct {
	logical.Storage
	mu   sync.Mutex
	gets map[string]int
	puts map[string]int
}

func newOpCounting() *opCountingStorage {
	return &opCountingStorage{Storage: &logical.InmemStorage{}, gets: map[string]int{}, puts: map[string]int{}}
}

func (s *opCountingStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	prefix, _, _ := strings.Cut(key, "/")
	s.mu.Lock()
	s.gets[prefix]++
	s.mu.Unlock()
	return s.Storage.Get(ctx, key)
}

func (s *opCountingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	prefix, _, _ := strings.Cut(e.Key, "/")
	s.mu.Lock()
	s.puts[prefix]++
	s.mu.Unlock()
	return s.Storage.Put(ctx, e)
}

func (s *opCountingStorage) reset() {
	s.mu.Lock()
	s.gets, s.puts = map[string]int{}, map[string]int{}
	s.mu.Unlock()
}

// TestCredentialsWriteNothingOnTheirPath: an ordinary issuance writes
// nothing; its event waits for the session's batch, written in the
// background (batchEvents events or batchDelay after the first), in the
// chunks of 16 it belongs to, never read back.
func TestCredentialsWriteNothingOnTheirPath(t *testing.T) {
	ctx := context.Background()
	b, _ := testBackend(t)
	s := newOpCounting()
	writeRole(t, b, s, "web", map[string]interface{}{"max_rate": 100000, "max_steps": 1000})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	s.reset()
	for i := 0; i < 40; i++ {
		mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	}
	assert.Zero(t, s.puts["events"], "no event written on the request path")
	assert.Zero(t, s.puts["sessions"], "40 steps fit the first reserved block")
	// Readers see them all the same.
	require.Len(t, timelineEvents(t, b, s, id), 41)
	s.reset()

	// The batch is written within batchDelay.
	require.Eventually(t, func() bool {
		keys, err := s.List(ctx, eventsPrefix+id+"/")
		return err == nil && len(keys) == 3
	}, 10*time.Second, 10*time.Millisecond)
	assert.LessOrEqual(t, s.puts["events"], 3, "one batch, three chunks")
	assert.Zero(t, s.gets["events"], "the open chunk is not read back")
	keys, err := s.List(ctx, eventsPrefix+id+"/")
	require.NoError(t, err)
	assert.Equal(t, []string{"000000000000", "000000000001", "000000000002"}, keys, "41 events in chunks of 16")
	events := timelineEvents(t, b, s, id)
	require.Len(t, events, 41)
	for i, e := range events {
		assert.EqualValues(t, i+1, e["seq"])
	}
}

// TestTimelineContinuesOnAnotherNode: a node that did not write a session
// (a restart, or a change of active node) reads its open chunk once and
// goes on from there; nothing is overwritten.
func TestTimelineContinuesOnAnotherNode(t *testing.T) {
	first, s := testBackend(t)
	writeRole(t, first, s, "web", map[string]interface{}{"max_rate": 100000})
	id, _ := startSession(t, first, s, agentA, map[string]interface{}{"role": "web"})
	step := map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"}
	var creds []string
	for i := 0; i < 5; i++ {
		creds = append(creds, mustDo(t, first, s, agentA, logical.UpdateOperation, "creds/"+id, step).Data["credential_id"].(string))
	}
	// The first node stops cleanly: its batches are written.
	first.writeBatches()
	second := newTestBackendOn(t, s)
	for i := 0; i < 20; i++ {
		creds = append(creds, mustDo(t, second, s, agentA, logical.UpdateOperation, "creds/"+id, step).Data["credential_id"].(string))
	}
	var got []string
	for _, e := range timelineEvents(t, second, s, id) {
		if e["kind"] == string(timeline.CredentialIssued) {
			got = append(got, e["credential"].(string))
		}
	}
	assert.Equal(t, creds, got)
}

// TestBatchWriteFailureIsRetried: a batch that storage refuses stays in
// memory, shown to readers, and is written once storage takes it.
func TestBatchWriteFailureIsRetried(t *testing.T) {
	b, _ := testBackend(t)
	s := &failingStorage{Storage: &logical.InmemStorage{}, prefix: eventsPrefix}
	writeRole(t, b, s, "web", map[string]interface{}{"max_rate": 100000})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	step := map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"}
	s.arm(true)
	mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, step)
	b.writeBatches()
	assert.Equal(t, []string{"session_start", "credential_issued"}, eventKinds(t, b, s, id), "kept, and shown")
	s.arm(false)
	b.writeBatches()
	sess, err := b.getSession(context.Background(), s, id)
	require.NoError(t, err)
	stored, err := loadEvents(context.Background(), s, sess, 1000, 0, 0)
	require.NoError(t, err)
	require.Len(t, stored, 2)
	assert.Equal(t, timeline.CredentialIssued, stored[1].Kind)
}

// TestCrashLosesAtMostTheBatchAndSaysSo: a node that stops without
// writing its batches (a crash) loses their events, never a budget step:
// the next node counts the reserved steps that have no event, once, in a
// steps_unaccounted event, and the session goes on, exactly within its
// budget.
func TestCrashLosesAtMostTheBatchAndSaysSo(t *testing.T) {
	ctx := context.Background()
	first, s := testBackend(t)
	writeRole(t, first, s, "web", map[string]interface{}{"max_rate": 100000, "max_steps": 100})
	id, _ := startSession(t, first, s, agentA, map[string]interface{}{"role": "web"})
	step := map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"}
	for i := 0; i < 3; i++ {
		mustDo(t, first, s, agentA, logical.UpdateOperation, "creds/"+id, step)
	}
	// The crash: the first node's batch (3 events) is lost.
	first.liveMu.Lock()
	first.takeBatchLocked(id)
	first.liveMu.Unlock()

	second := newTestBackendOn(t, s)
	mustDo(t, second, s, agentA, logical.UpdateOperation, "creds/"+id, step)
	events := timelineEvents(t, second, s, id)
	var marker map[string]interface{}
	issued := 0
	for _, e := range events {
		switch e["kind"] {
		case string(timeline.StepsUnaccounted):
			require.Nil(t, marker, "recorded once")
			marker = e
		case string(timeline.CredentialIssued):
			issued++
		}
	}
	require.NotNil(t, marker)
	// The block of max_steps 100 reserved 9 steps beyond the stored use:
	// 3 issued (their events lost), 6 not.
	assert.EqualValues(t, 9, marker["steps"])
	assert.Equal(t, 1, issued, "the second node's credential")
	st := mustDo(t, second, s, agentA, logical.ReadOperation, "session/"+id, nil)
	assert.EqualValues(t, 10, st.Data["steps_used"], "the lost block counts as used, never more")

	// The graph shows it.
	g := mustDo(t, second, s, caller{}, logical.ReadOperation, "sessions/"+id+"/graph", nil)
	assert.Contains(t, g.Data["dot"], "9 reserved steps without an event")

	// The second node stops cleanly: a third finds nothing more to
	// account for.
	second.releaseAll(ctx, s)
	third := newTestBackendOn(t, s)
	mustDo(t, third, s, agentA, logical.UpdateOperation, "creds/"+id, step)
	n := 0
	for _, e := range timelineEvents(t, third, s, id) {
		if e["kind"] == string(timeline.StepsUnaccounted) {
			n++
		}
	}
	assert.Equal(t, 1, n)
	st = mustDo(t, third, s, agentA, logical.ReadOperation, "session/"+id, nil)
	assert.EqualValues(t, 11, st.Data["steps_used"], "a clean stop forfeits nothing")
}

// TestChunksStayBelowEntryLimits: a chunk of the largest events the API
// allows (64 scopes of 256 bytes) stays far below raft's and Consul's
// entry limits.
func TestChunksStayBelowEntryLimits(t *testing.T) {
	ctx := context.Background()
	b, s := testBackend(t)
	big := strings.Repeat("x", 220)
	scopes := make([]string, 64)
	for i := range scopes {
		scopes[i] = fmt.Sprintf("read:s/%03d/%s%d", i, big, i)
	}
	var events []timeline.Event
	for seq := uint64(1); seq <= chunkEvents; seq++ {
		events = append(events, timeline.Event{Seq: seq, Kind: timeline.CredentialIssued, Scopes: scopes,
			Description: strings.Repeat("s", 256), Actor: strings.Repeat("a", 256), Detail: strings.Repeat("d", 256)})
	}
	require.NoError(t, b.writeEvents(ctx, s, "big", events))
	e, err := s.Get(ctx, chunkKey("big", 0))
	require.NoError(t, err)
	assert.Less(t, len(e.Value), 512<<10)
}

func TestMergeEvents(t *testing.T) {
	ev := func(seq uint64, cred string) timeline.Event { return timeline.Event{Seq: seq, Credential: cred} }
	got := mergeEvents([]timeline.Event{ev(1, "a"), ev(3, "c")}, []timeline.Event{ev(2, "b"), ev(3, "C"), ev(1, "A")})
	assert.Equal(t, []timeline.Event{ev(1, "A"), ev(2, "b"), ev(3, "C")}, got)
	assert.Empty(t, mergeEvents(nil, nil))
}

func BenchmarkWriteEvents(b *testing.B) {
	ctx := context.Background()
	be := newBackend()
	s := &logical.InmemStorage{}
	seq := uint64(0)
	for b.Loop() {
		seq++
		if err := be.writeEvents(ctx, s, "s", []timeline.Event{{Seq: seq, Kind: timeline.CredentialIssued,
			Credential: "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0", Scopes: []string{"read:secrets/web/tls"}, Audience: "secrets-api"}}); err != nil {
			b.Fatal(err)
		}
	}
}
