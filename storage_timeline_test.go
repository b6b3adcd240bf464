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

// TestCredentialWritesOneChunk: a credential costs one write, of the
// chunk its event belongs to, which the serving node keeps in memory and
// does not read back.
func TestCredentialWritesOneChunk(t *testing.T) {
	ctx := context.Background()
	b, _ := testBackend(t)
	s := newOpCounting()
	writeRole(t, b, s, "web", map[string]interface{}{"max_rate": 100000, "max_steps": 1000})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	s.reset()
	for i := 0; i < 40; i++ {
		mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	}
	assert.Equal(t, 40, s.puts["events"], "one chunk write per credential")
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

// TestEventWriteFailureFailsTheRequest: a credential whose event could
// not be stored is not issued; the next request starts from storage.
func TestEventWriteFailureFailsTheRequest(t *testing.T) {
	b, _ := testBackend(t)
	s := &failingStorage{Storage: &logical.InmemStorage{}, prefix: eventsPrefix}
	writeRole(t, b, s, "web", map[string]interface{}{"max_rate": 100000})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	step := map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"}
	s.arm(true)
	resp, err := issue(t, b, s, agentA, id, step)
	require.Error(t, err)
	assert.Nil(t, resp)
	s.arm(false)
	mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, step)
	assert.Equal(t, []string{"session_start", "credential_issued"}, eventKinds(t, b, s, id))
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

// TestLegacyEventKeysAreRead: events stored one per key by versions
// before chunks are still in the timeline, and deleted with it.
func TestLegacyEventKeysAreRead(t *testing.T) {
	ctx := context.Background()
	b, s := testBackend(t)
	writeRole(t, b, s, "web", map[string]interface{}{"max_rate": 100000})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	// Rewrite the start event the old way.
	require.NoError(t, s.Delete(ctx, chunkKey(id, 0)))
	b.forgetChunk(id)
	require.NoError(t, putJSON(ctx, s, fmt.Sprintf("%s%s/%020d", eventsPrefix, id, 1), timeline.Event{Seq: 1, Kind: timeline.SessionStart}))
	mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	assert.Equal(t, []string{"session_start", "credential_issued"}, eventKinds(t, b, s, id))
	sess, err := b.getSession(ctx, s, id)
	require.NoError(t, err)
	require.NoError(t, b.deleteSession(ctx, s, sess))
	keys, err := s.List(ctx, eventsPrefix+id+"/")
	require.NoError(t, err)
	assert.Empty(t, keys)
}

// TestNothingRunsAfterClean: work asked for after Clean does not start.
func TestNothingRunsAfterClean(t *testing.T) {
	g := newBackground()
	g.close()
	ran := false
	g.run(func(context.Context) { ran = true })
	g.wait()
	assert.False(t, ran)
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

// slowDeleteStorage makes deletes slow and says when the first one starts.
type slowDeleteStorage struct {
	logical.Storage
	started chan struct{}
	once    sync.Once
}

func (s *slowDeleteStorage) Delete(ctx context.Context, key string) error {
	s.once.Do(func() { close(s.started) })
	time.Sleep(5 * time.Millisecond)
	return s.Storage.Delete(ctx, key)
}

// TestTrimmingDoesNotHoldTheSession: the tidy deletes a long session's
// dropped chunks without its lock, so the session's requests never wait
// for them.
func TestTrimmingDoesNotHoldTheSession(t *testing.T) {
	ctx := context.Background()
	b, _ := testBackend(t)
	s := &slowDeleteStorage{Storage: &logical.InmemStorage{}, started: make(chan struct{})}
	mustDo(t, b, s, agentA, logical.UpdateOperation, "config", map[string]interface{}{"max_events": 10})
	writeRole(t, b, s, "web", map[string]interface{}{"max_rate": 100000, "max_steps": 10000})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	step := map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"}
	for i := 0; i < 1600; i++ {
		mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, step)
	}
	tidied := make(chan error, 1)
	go func() { tidied <- b.tidy(ctx, s) }()
	<-s.started
	mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, step)
	select {
	case err := <-tidied:
		t.Fatalf("the credential waited for the tidy (%v)", err)
	default:
	}
	require.NoError(t, <-tidied)
	keys, err := s.List(ctx, eventsPrefix+id+"/")
	require.NoError(t, err)
	assert.LessOrEqual(t, len(keys), 2)
	assert.Len(t, timelineEvents(t, b, s, id), 10)
}
