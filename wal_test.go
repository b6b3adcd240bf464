package agent

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEndingASessionCostsConstantWrites proves revocation is O(1) in the
// number of credentials: ending or revoking a session after 5 or after 500
// issued credentials costs the same number of storage writes, and every
// credential is revoked afterwards.
func TestEndingASessionCostsConstantWrites(t *testing.T) {
	for _, action := range []string{"end", "revoke"} {
		t.Run(action, func(t *testing.T) {
			few := writesToEndSession(t, 5, action)
			many := writesToEndSession(t, 500, action)
			assert.Equal(t, few, many, "ending a session must cost the same whatever the credential count")
			// The write-ahead log entry; the session; its closing event,
			// the revocation list and the role index entry, at once; and,
			// after the answer, the WAL's removal.
			assert.Equal(t, 6, many)
		})
	}
}

func writesToEndSession(t *testing.T, n int, action string) int {
	t.Helper()
	b, _ := testBackend(t)
	s := &countingStorage{Storage: &logical.InmemStorage{}}
	// As Vault does when the mount starts on the active node.
	require.NoError(t, b.Initialize(context.Background(), &logical.InitializationRequest{Storage: s}))
	writeRole(t, b, s, "web", map[string]interface{}{"max_steps": 1000, "max_rate": 100000})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	tokens := make([]string, 0, n)
	for i := 0; i < n; i++ {
		resp := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
			"scopes": "read:secrets/web/x", "audience": "secrets-api",
		})
		tokens = append(tokens, resp.Data["token"].(string))
	}
	// The credential events still waiting for their batch would ride
	// with the close (at most batchEvents of them, whatever n): written
	// first, the close is measured alone.
	b.bg.wait()
	b.writeBatches()
	s.reset()
	mustDo(t, b, s, agentA, logical.UpdateOperation, "sessions/"+id+"/"+action, nil)
	b.bg.wait()
	w := s.writes()

	for _, tok := range []string{tokens[0], tokens[n/2], tokens[n-1]} {
		in := mustDo(t, b, s, agentA, logical.UpdateOperation, "introspect", map[string]interface{}{"token": tok})
		assert.Equal(t, false, in.Data["active"])
	}
	rev := mustDo(t, b, s, caller{}, logical.ReadOperation, "revocations", nil)
	listed := rev.Data["sessions"].([]map[string]interface{})
	require.Len(t, listed, 1)
	assert.Equal(t, id, listed[0]["id"])
	return w
}

// TestInterruptedCloseIsCompletedByRollback: if the plugin dies after
// writing a revoked session but before listing it in revocations, Vault's
// rollback of the write-ahead log entry completes the close.
func TestInterruptedCloseIsCompletedByRollback(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	ctx := context.Background()

	// What a crash half-way through closeSession leaves: the WAL entry
	// and the revoked session, nothing else.
	sess, err := b.getSession(ctx, s, id)
	require.NoError(t, err)
	_, err = framework.PutWAL(ctx, s, walCloseSession, &closeWAL{Session: id, Time: time.Now()})
	require.NoError(t, err)
	require.True(t, sess.Revoke("operator: crash test", time.Now()))
	require.NoError(t, putSession(ctx, s, sess))
	rev := mustDo(t, b, s, caller{}, logical.ReadOperation, "revocations", nil)
	require.Empty(t, rev.Data["sessions"])

	// After a crash the process starts afresh: nothing is remembered.
	b.forget(id)
	// Vault's rollback manager hands the entry back, decoded from JSON.
	onlyWALRollback(t, b, s)()
	requireCloseCompleted(t, b, s, "web", id)

	// A WAL entry for a session whose close never reached storage leaves it
	// active: the request that was closing it failed.
	alive, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	require.NoError(t, b.walRollback(ctx, &logical.Request{Storage: s}, walCloseSession, map[string]interface{}{"session": alive}))
	st := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+alive, nil)
	assert.Equal(t, "active", st.Data["state"])
}

// TestFailedCloseNeverLeavesTheSessionActive: if storage fails half-way
// through a close, the node must not go on serving the session from a stale
// copy in memory: what storage says (revoked) wins, and the write-ahead log
// completes the rest.
func TestFailedCloseNeverLeavesTheSessionActive(t *testing.T) {
	b, _ := testBackend(t)
	s := &failingStorage{Storage: &logical.InmemStorage{}, prefix: eventsPrefix}
	writeRole(t, b, s, "web", map[string]interface{}{"max_rate": 100000})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	step := map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"}
	tok := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, step).Data["token"].(string)

	s.arm(true)
	_, err := do(t, b, s, agentA, logical.UpdateOperation, "sessions/"+id+"/revoke", nil)
	require.Error(t, err, "the close failed half-way")
	s.arm(false)

	_, err = issue(t, b, s, agentA, id, step)
	require.ErrorContains(t, err, "is revoked")
	in := mustDo(t, b, s, agentB, logical.UpdateOperation, "introspect", map[string]interface{}{"token": tok})
	assert.Equal(t, false, in.Data["active"])

	// Vault's rollback of the WAL entry lists it in revocations.
	rollback := onlyWALRollback(t, b, s)
	rollback()
	rev := mustDo(t, b, s, caller{}, logical.ReadOperation, "revocations", nil)
	require.Len(t, rev.Data["sessions"], 1)
	// The closing event, lost with its failed write, comes back from the
	// WAL entry.
	assert.Equal(t, []string{"session_start", "credential_issued", "session_revoke"}, eventKinds(t, b, s, id))
}

// onlyWALRollback checks that storage holds exactly one WAL entry and
// returns a function that rolls it back as Vault's rollback manager does
// (its data decoded from JSON).
func onlyWALRollback(t *testing.T, b *backend, s logical.Storage) func() {
	t.Helper()
	ctx := context.Background()
	wals, err := framework.ListWAL(ctx, s)
	require.NoError(t, err)
	require.Len(t, wals, 1)
	entry, err := framework.GetWAL(ctx, s, wals[0])
	require.NoError(t, err)
	raw, _ := json.Marshal(entry.Data)
	var data interface{}
	require.NoError(t, json.Unmarshal(raw, &data))
	return func() {
		t.Helper()
		require.NoError(t, b.walRollback(ctx, &logical.Request{Storage: s}, entry.Kind, data))
	}
}

// TestCloseWhoseRecordFailsLeavesNoTrace: when the session record cannot
// be written, the close did not happen: the session stays active, and its
// timeline does not claim it ended.
func TestCloseWhoseRecordFailsLeavesNoTrace(t *testing.T) {
	b, _ := testBackend(t)
	s := &failingStorage{Storage: &logical.InmemStorage{}, prefix: sessionsPrefix}
	writeRole(t, b, s, "web", map[string]interface{}{"max_rate": 100000})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	step := map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"}
	mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, step)

	s.arm(true)
	_, err := do(t, b, s, agentA, logical.UpdateOperation, "sessions/"+id+"/end", nil)
	require.Error(t, err)
	s.arm(false)
	// The session goes on, and takes a credential whose event takes the
	// number the failed close had staged for its closing event.
	mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, step)

	// The WAL entry stays (the record might have landed all the same);
	// its rollback finds the session active and writes nothing.
	// The failed write dropped the node's copy of the session: the next
	// request read it back from storage and, like a node after a crash,
	// counted the steps reserved beyond the stored use that have no event
	// (the block minus the first credential).
	rollback := onlyWALRollback(t, b, s)
	rollback()
	assert.Equal(t, []string{"session_start", "credential_issued", "steps_unaccounted", "credential_issued"}, eventKinds(t, b, s, id))
	rev := mustDo(t, b, s, caller{}, logical.ReadOperation, "revocations", nil)
	assert.Empty(t, rev.Data["sessions"])

	// Revoked later by an operator, the session's rollback of the earlier
	// close still tells nothing of it.
	mustDo(t, b, s, caller{}, logical.UpdateOperation, "sessions/"+id+"/revoke", nil)
	rollback()
	assert.Equal(t, []string{"session_start", "credential_issued", "steps_unaccounted", "credential_issued", "session_revoke"}, eventKinds(t, b, s, id))
}

// The WAL prefix is local storage, as in Vault's own plugins.
func TestWALIsLocalStorage(t *testing.T) {
	b, _ := testBackend(t)
	assert.Contains(t, b.PathsSpecial.LocalStorage, framework.WALPrefix)
}

// TestInterruptedCloseStillYieldsItsSET: a close interrupted after its
// session record landed, before its second round (the revocation entry,
// the SETs), is completed by the WAL rollback, which queues the session's
// SET on every stream; rolling back again queues nothing more, and a SET
// queued again after delivery keeps its jti, so receivers drop it.
func TestInterruptedCloseStillYieldsItsSET(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	stream := createStream(t, b, s, map[string]interface{}{"delivery_method": "poll", "audience": "rs"})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	ctx := context.Background()

	sess, err := b.getSession(ctx, s, id)
	require.NoError(t, err)
	_, err = framework.PutWAL(ctx, s, walCloseSession, &closeWAL{Session: id, Time: time.Now()})
	require.NoError(t, err)
	require.True(t, sess.Revoke("violation: bad_parent", time.Now()))
	require.NoError(t, putSession(ctx, s, sess))
	b.forget(id)
	require.Empty(t, outbox(t, s, stream))

	rollback := onlyWALRollback(t, b, s)
	rollback()
	entries := outbox(t, s, stream)
	require.Len(t, entries, 1)
	assert.Equal(t, id, entries[0].Session)
	assert.Equal(t, "violation: bad_parent", entries[0].Reason)
	rollback()
	assert.Len(t, outbox(t, s, stream), 1, "no second SET for the same close")

	answer := poll(t, b, s, stream, map[string]interface{}{"returnImmediately": true})
	jti := sessionSETID(stream, id)
	require.Contains(t, answer.Sets, jti)
	assert.Equal(t, id, verifySET(t, b, s, answer.Sets[jti], "rs").Txn)
	poll(t, b, s, stream, map[string]interface{}{"ack": jti, "maxEvents": 0})
	rollback()
	again := poll(t, b, s, stream, map[string]interface{}{"returnImmediately": true})
	assert.Equal(t, []string{jti}, keysOf(again.Sets), "delivered at least once, with the same jti")
}
