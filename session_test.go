package agent

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Requests on a session that is no longer active, by anyone, add nothing
// to its history: the violation that revoked it stays in its record and in
// its timeline, however many requests follow.
func TestRequestsOnAClosedSessionCannotFloodIt(t *testing.T) {
	b, s := testBackend(t)
	mustDo(t, b, s, agentA, logical.UpdateOperation, "config", map[string]interface{}{"max_events": 5})
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	tok := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scopes": "read:secrets/web/tls", "audience": "secrets-api"}).Data["token"].(string)
	_, err := issue(t, b, s, agentA, id, map[string]interface{}{"scopes": "write:secrets/web/tls", "audience": "secrets-api"})
	require.ErrorContains(t, err, "violation scope_outside_intent")
	before := timelineEvents(t, b, s, id)

	for i := 0; i < 20; i++ {
		_, err := issue(t, b, s, agentA, id, map[string]interface{}{"scopes": "read:secrets/web/tls", "audience": "secrets-api"})
		require.ErrorContains(t, err, "is revoked")
		_, err = issue(t, b, s, agentB, id, map[string]interface{}{"scopes": "read:secrets/web/tls", "audience": "secrets-api"})
		require.ErrorContains(t, err, "belongs to another caller")
		rep := mustDo(t, b, s, agentB, logical.UpdateOperation, "report", map[string]interface{}{
			"token": tok, "action": "delete", "resource": "secrets/web/tls",
		})
		assert.Equal(t, false, rep.Data["recorded"])
	}

	sess := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id, nil)
	assert.Equal(t, 1, sess.Data["violation_count"])
	violations := sess.Data["violations"].([]map[string]interface{})
	require.Len(t, violations, 1)
	assert.Equal(t, "scope_outside_intent", violations[0]["kind"])
	assert.EqualValues(t, 40, sess.Data["inactive_calls"].(map[string]interface{})["count"], "the creator's requests and the reports")
	assert.EqualValues(t, 20, sess.Data["foreign_calls"].(map[string]interface{})["count"])
	assert.Equal(t, before, timelineEvents(t, b, s, id), "the timeline is closed")
}

// sessionWrites counts storage puts to session records.
type sessionWrites struct {
	logical.Storage
	mu   sync.Mutex
	puts map[string]int
}

func (s *sessionWrites) Put(ctx context.Context, e *logical.StorageEntry) error {
	s.mu.Lock()
	if strings.HasPrefix(e.Key, sessionsPrefix) {
		s.puts[e.Key]++
	}
	s.mu.Unlock()
	return s.Storage.Put(ctx, e)
}

// TestIssuanceWritesTheSessionOncePerBlock: a step credential costs its
// event; the session record is written once per reserved block of steps.
func TestIssuanceWritesTheSessionOncePerBlock(t *testing.T) {
	b, _ := testBackend(t)
	s := &sessionWrites{Storage: &logical.InmemStorage{}, puts: map[string]int{}}
	writeRole(t, b, s, "web", map[string]interface{}{"max_steps": 1000, "max_rate": 100000})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	for i := 0; i < 200; i++ {
		mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	}
	// One write at start, then one per block of 64 steps (and of 64 events).
	assert.LessOrEqual(t, s.puts[sessionsPrefix+id], 1+4)
	st := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id, nil)
	assert.Equal(t, 200, st.Data["steps_used"], "the node that issues knows the exact count")
	events := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id+"/events", nil).Data["events"].([]map[string]interface{})
	assert.Len(t, events, 201)
}

// TestBudgetNeverExceededAcrossRestarts: a new backend on the same storage
// (a restart, or another node becoming active) counts every reserved step
// as used, so the budget errs towards fewer credentials, never more.
func TestBudgetNeverExceededAcrossRestarts(t *testing.T) {
	s := &logical.InmemStorage{}
	newB := func() *backend { return newTestBackendOn(t, s) }
	b := newB()
	writeRole(t, b, s, "web", map[string]interface{}{"max_steps": 50, "max_rate": 100000, "on_violation": "deny", "violation_limit": 1000})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web", "max_steps": 50})
	issued := 0
	for restart := 0; restart < 20; restart++ {
		for i := 0; i < 3; i++ {
			if _, err := issue(t, b, s, agentA, id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"}); err == nil {
				issued++
			}
		}
		b = newB() // the live counters are gone
	}
	assert.LessOrEqual(t, issued, 50)
	st := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id, nil)
	assert.GreaterOrEqual(t, st.Data["steps_used"], issued)
	assert.LessOrEqual(t, st.Data["steps_used"], 50)
	// Event numbers are never reused across restarts.
	events := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id+"/events", nil).Data["events"].([]map[string]interface{})
	seen := map[interface{}]bool{}
	for _, e := range events {
		require.False(t, seen[e["seq"]], "event seq %v reused", e["seq"])
		seen[e["seq"]] = true
	}
}

// Refused requests write a session's record at most once per
// refusalFlushInterval, however many arrive; reads show every one, and
// the periodic tidy stores what is pending.
func TestRefusedRequestsDoNotBecomeAStreamOfWrites(t *testing.T) {
	b, s := testBackend(t)
	now := time.Now()
	b.now = func() time.Time { return now }
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	// The first credential creates the signing key: a write of its own.
	mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	b.writeBatches()

	counting := &countingStorage{Storage: s}
	for i := 0; i < 50; i++ {
		_, err := issue(t, b, counting, agentB, id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
		require.ErrorContains(t, err, "belongs to another caller")
	}
	assert.Equal(t, 1, counting.writes(), "the first refusal is stored at once, the next 49 wait")
	shown := mustDo(t, b, s, agentA, logical.ReadOperation, "session/"+id, nil).Data["foreign_calls"].(map[string]interface{})
	assert.EqualValues(t, 50, shown["count"], "reads show the pending ones")

	stored, err := readSession(context.Background(), s, id)
	require.NoError(t, err)
	assert.EqualValues(t, 1, stored.ForeignCalls.Count)

	now = now.Add(refusalFlushInterval)
	require.NoError(t, b.tidy(context.Background(), s))
	stored, err = readSession(context.Background(), s, id)
	require.NoError(t, err)
	assert.EqualValues(t, 50, stored.ForeignCalls.Count, "the tidy stored them")
	assert.Equal(t, "entity-b", stored.ForeignCalls.LastCaller)
	shown = mustDo(t, b, s, agentA, logical.ReadOperation, "session/"+id, nil).Data["foreign_calls"].(map[string]interface{})
	assert.EqualValues(t, 50, shown["count"], "nothing counted twice")

	// After the interval, the next refusal is stored at once again.
	counting.reset()
	now = now.Add(refusalFlushInterval)
	_, err = issue(t, b, counting, agentB, id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	require.Error(t, err)
	assert.Equal(t, 1, counting.writes())
}

func TestCallSummaryMerge(t *testing.T) {
	var a, b trust.CallSummary
	a.Add("x", time.Unix(10, 0))
	b.Add("y", time.Unix(5, 0))
	b.Add("z", time.Unix(20, 0))
	a.Merge(b)
	assert.EqualValues(t, 3, a.Count)
	assert.Equal(t, time.Unix(5, 0), a.First)
	assert.Equal(t, time.Unix(20, 0), a.Last)
	assert.Equal(t, "z", a.LastCaller)
	a.Merge(trust.CallSummary{})
	assert.EqualValues(t, 3, a.Count)
}
