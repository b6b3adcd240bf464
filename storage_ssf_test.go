package agent

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/ssf"
	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

// TestEverySessionCloseQueuesASET: whatever closes a session (its agent,
// an operator, a violation, the revocation of its lease, the deletion of
// its role, or its expiry found by the tidy), each stream that asked for
// session-revoked events gets one SET for it in its outbox, in the order
// the sessions closed, saying why; a stream that did not ask gets none,
// and a stream created later gets none of the earlier closes.
func TestEverySessionCloseQueuesASET(t *testing.T) {
	b, s := testBackend(t)
	ctx := context.Background()
	writeRole(t, b, s, "web", nil)
	writeRole(t, b, s, "doomed", nil)
	stream := createStream(t, b, s, map[string]interface{}{"delivery_method": "poll", "audience": "rs"})
	verifyOnly := createStream(t, b, s, map[string]interface{}{"delivery_method": "poll", "audience": "rs", "events_requested": ssf.EventVerification})
	step := map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"}

	ended, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	mustDo(t, b, s, agentA, logical.UpdateOperation, "sessions/"+ended+"/end", nil)

	revoked, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	mustDo(t, b, s, operator, logical.UpdateOperation, "sessions/"+revoked+"/revoke", map[string]interface{}{"reason": "drill"})

	violated, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web", "scopes": "read:secrets/web/x"})
	_, err := issue(t, b, s, agentA, violated, map[string]interface{}{"scopes": "read:secrets/web/tls", "audience": "secrets-api"})
	require.ErrorContains(t, err, "scope_outside_intent")

	leased, start := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+leased, step)
	_, err = b.HandleRequest(ctx, leaseRequest(t, s, logical.RevokeOperation, start))
	require.NoError(t, err)

	orphaned, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "doomed"})
	mustDo(t, b, s, operator, logical.DeleteOperation, "roles/doomed", nil)

	expiring, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web", "ttl": "1m"})
	later := time.Now().Add(2 * time.Minute)
	b.now = func() time.Time { return later }
	require.NoError(t, b.tidy(ctx, s))
	require.Equal(t, "expired", mustDo(t, b, s, operator, logical.ReadOperation, "sessions/"+expiring, nil).Data["state"])
	b.now = time.Now

	want := []struct {
		session, initiating, reason string
	}{
		{ended, ssf.InitiatingUser, "ended by its agent"},
		{revoked, ssf.InitiatingAdmin, "operator: drill"},
		{violated, ssf.InitiatingPolicy, "violation: scope_outside_intent"},
		{leased, ssf.InitiatingSystem, "lease revoked"},
		{orphaned, ssf.InitiatingAdmin, "role deleted"},
		{expiring, ssf.InitiatingSystem, "expired: its lease ran out"},
	}
	entries := outbox(t, s, stream)
	require.Len(t, entries, len(want))
	for i, w := range want {
		e := entries[i]
		assert.Equal(t, ssf.EventSessionRevoked, e.Event, w.reason)
		assert.Equal(t, w.session, e.Session, w.reason)
		assert.Equal(t, w.initiating, e.Initiating, w.reason)
		assert.Equal(t, w.reason, e.Reason)
		assert.Equal(t, sessionSETID(stream, w.session), e.JTI)
		endedAt := mustDo(t, b, s, operator, logical.ReadOperation, "sessions/"+w.session, nil).Data["ended_at"].(string)
		assert.Equal(t, endedAt, time.Unix(e.EventTimestamp, 0).UTC().Format(time.RFC3339), w.reason)
	}
	assert.Empty(t, outbox(t, s, verifyOnly), "a stream that asked for no session-revoked event")

	// Served, each SET verifies against jwks and says what the entry says.
	answer := poll(t, b, s, stream, map[string]interface{}{"returnImmediately": true})
	require.Len(t, answer.Sets, len(want))
	for _, w := range want {
		raw := answer.Sets[sessionSETID(stream, w.session)]
		require.NotEmpty(t, raw, w.reason)
		set := verifySET(t, b, s, raw, "rs")
		assert.Equal(t, w.session, set.Txn)
		assert.Equal(t, &ssf.SubjectID{Format: "opaque", ID: w.session}, set.Subject)
		assert.Equal(t, map[string]string{"en": w.reason}, set.Events.SessionRevoked.ReasonAdmin)
		assert.Equal(t, w.initiating, set.Events.SessionRevoked.InitiatingEntity)
	}

	// Queueing is idempotent: the same session is not queued twice.
	sess, err := b.getSession(ctx, s, ended)
	require.NoError(t, err)
	require.NoError(t, b.signalSessionClosed(ctx, s, sess))
	assert.Len(t, outbox(t, s, stream), len(want))

	// A stream created now gets nothing of the closes before it.
	fresh := createStream(t, b, s, map[string]interface{}{"delivery_method": "poll", "audience": "rs"})
	assert.Empty(t, outbox(t, s, fresh))
}

// TestQueueingASETCostsTwoWritesPerStream: without streams, a close writes
// nothing more; with one, it writes the outbox entry and the stream's
// counter, in the same round as the revocation entry.
func TestQueueingASETCostsTwoWritesPerStream(t *testing.T) {
	for streams, extra := range []int{0, 2, 4} {
		b, _ := testBackend(t)
		s := &countingStorage{Storage: &logical.InmemStorage{}}
		writeRole(t, b, s, "web", nil)
		for range streams {
			createStream(t, b, s, map[string]interface{}{"delivery_method": "poll", "audience": "rs"})
		}
		id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
		s.reset()
		mustDo(t, b, s, agentA, logical.UpdateOperation, "sessions/"+id+"/end", nil)
		b.bg.wait()
		assert.Equal(t, 6+extra, s.writes(), "%d streams", streams)
	}
}

// TestOutboxBoundDropsTheOldest: past its bound, a stream's outbox drops
// its oldest SETs, counts them in "dropped", and logs a warning once per
// burst.
func TestOutboxBoundDropsTheOldest(t *testing.T) {
	var logs logBuffer
	s := &logical.InmemStorage{}
	b := newTestBackendOn(t, s, withLog(&logs))
	b.ssf.bound = 3
	ctx := context.Background()
	id := createStream(t, b, s, map[string]interface{}{"delivery_method": "poll", "audience": "rs"})

	closed := 0
	closeN := func(b *backend, n int) []string {
		var ids []string
		for range n {
			closed++
			sess := &trust.Session{ID: fmt.Sprintf("session-%02d", closed), State: trust.StateEnded, EndedAt: time.Now()}
			require.NoError(t, b.signalSessionClosed(ctx, s, sess))
			ids = append(ids, sess.ID)
		}
		return ids
	}
	ids := closeN(b, 5)
	var sessions []string
	for _, e := range outbox(t, s, id) {
		sessions = append(sessions, e.Session)
	}
	assert.Equal(t, ids[2:], sessions, "the newest three, in order")
	read := mustDo(t, b, s, operator, logical.ReadOperation, "ssf/streams/"+id, nil).Data
	assert.EqualValues(t, 2, read["dropped"])
	assert.EqualValues(t, 3, read["pending"])
	assert.Equal(t, 1, strings.Count(logs.String(), "outbox is full"), "one warning per burst")

	// Drained below half the bound, the next burst warns again.
	answer := poll(t, b, s, id, map[string]interface{}{"returnImmediately": true})
	var acks []string
	for jti := range answer.Sets {
		acks = append(acks, jti)
	}
	poll(t, b, s, id, map[string]interface{}{"ack": acks, "maxEvents": 0})
	closeN(b, 4)
	assert.EqualValues(t, 3, mustDo(t, b, s, operator, logical.ReadOperation, "ssf/streams/"+id, nil).Data["dropped"])
	assert.Equal(t, 2, strings.Count(logs.String(), "outbox is full"))

	// The bound and the counter survive a restart: a new node lists the
	// outbox and goes on from the stored sequence.
	b2 := newTestBackendOn(t, s)
	b2.ssf.bound = 3
	closeN(b2, 1)
	sessions = nil
	for _, e := range outbox(t, s, id) {
		sessions = append(sessions, e.Session)
	}
	assert.Equal(t, []string{"session-08", "session-09", "session-10"}, sessions)
	assert.EqualValues(t, 4, mustDo(t, b2, s, operator, logical.ReadOperation, "ssf/streams/"+id, nil).Data["dropped"])
}
