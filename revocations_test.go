package agent

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

// endedSession is a session ended at now whose last credential expires
// at exp.
func endedSession(id string, now, exp time.Time) *trust.Session {
	return &trust.Session{ID: id, State: trust.StateEnded, EndedAt: now, ExpiresAt: exp,
		Intent: trust.Intent{StepMaxTTL: exp.Sub(now)}}
}

func revocationIDs(t *testing.T, b *backend, s logical.Storage, now time.Time) ([]string, uint64) {
	t.Helper()
	view, err := b.listRevocations(context.Background(), s, now, nil, "")
	require.NoError(t, err)
	require.True(t, view.complete)
	ids := []string{}
	for _, r := range view.sessions {
		ids = append(ids, r.ID)
	}
	return ids, view.version
}

// TestRevocationsAreBucketedByExpiry: no storage entry grows with the
// number of closed sessions; each minute of expiry has its own bucket, pruned whole.
func TestRevocationsAreBucketedByExpiry(t *testing.T) {
	ctx := context.Background()
	b, s := testBackend(t)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var want []string
	for i := 0; i < 300; i++ {
		id := fmt.Sprintf("s%03d", i)
		at := now.Add(time.Duration(i) * time.Second)
		// Expiries spread over 10 minutes: 10 buckets.
		require.NoError(t, b.addRevocation(ctx, s, endedSession(id, at, now.Add(time.Duration(i%10)*time.Minute+5*time.Minute)), at))
		want = append(want, id)
	}
	keys, err := revocationBuckets(ctx, s)
	require.NoError(t, err)
	assert.Len(t, keys, 10)
	for _, k := range keys {
		e, err := s.Get(ctx, revocationsPrefix+k)
		require.NoError(t, err)
		assert.Less(t, len(e.Value), 3000, "a bucket holds one minute's closed sessions")
	}

	ids, v300 := revocationIDs(t, b, s, now)
	assert.Equal(t, want, ids, "served oldest revocation first")
	assert.EqualValues(t, 300, v300, "the version grows with every change")

	// Listing a session again changes nothing.
	require.NoError(t, b.addRevocation(ctx, s, endedSession("s000", now, now.Add(5*time.Minute)), now))
	_, v := revocationIDs(t, b, s, now)
	assert.Equal(t, v300, v)

	// A node that reads storage afresh sees the same list and version.
	other := newTestBackendOn(t, s)
	ids, v = revocationIDs(t, other, s, now)
	assert.Equal(t, want, ids)
	assert.Equal(t, v300, v)

	// Eight minutes on, the sessions expiring at minutes 5, 6 and 7 are
	// past their grace minute: their buckets are deleted, and the version
	// grows, also for a node that reads afresh.
	later := now.Add(7*time.Minute + trust.RevocationGrace + time.Second)
	require.NoError(t, b.pruneRevocations(ctx, s, later))
	keys, err = s.List(ctx, revocationsPrefix)
	require.NoError(t, err)
	assert.Len(t, keys, 7+1, "7 buckets and the version")
	ids, v = revocationIDs(t, b, s, later)
	assert.Len(t, ids, 210)
	assert.Greater(t, v, v300)
	fresh := newTestBackendOn(t, s)
	_, fv := revocationIDs(t, fresh, s, later)
	assert.Equal(t, v, fv)

	// Adding after a prune goes on from there.
	require.NoError(t, b.addRevocation(ctx, s, endedSession("new", later, later.Add(time.Minute)), later))
	_, v2 := revocationIDs(t, b, s, later)
	assert.Equal(t, v+1, v2)
}

// TestRevocationsReadAfterAnotherNodeWrites: a node drops its copy of the
// list when Vault says another node changed it.
func TestRevocationsReadAfterAnotherNodeWrites(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	active, s := testBackend(t)
	standby := newTestBackendOn(t, s)
	ids, _ := revocationIDs(t, standby, s, now)
	assert.Empty(t, ids)
	require.NoError(t, active.addRevocation(ctx, s, endedSession("x", now, now.Add(time.Minute)), now))
	keys, err := revocationBuckets(ctx, s)
	require.NoError(t, err)
	require.Len(t, keys, 1)
	standby.invalidate(ctx, revocationsPrefix+keys[0])
	ids, _ = revocationIDs(t, standby, s, now)
	assert.Equal(t, []string{"x"}, ids)
}

// TestRevocationBucketsAreBounded: a burst of closed sessions expiring in the same
// minute (a role deleted with all its sessions) fills several buckets of
// bounded size, never one that grows with the burst.
func TestRevocationBucketsAreBounded(t *testing.T) {
	ctx := context.Background()
	b, s := testBackend(t)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for i := 0; i < 600; i++ {
		require.NoError(t, b.addRevocation(ctx, s, endedSession(fmt.Sprintf("s%03d", i), now, now.Add(time.Hour)), now))
	}
	keys, err := revocationBuckets(ctx, s)
	require.NoError(t, err)
	assert.Len(t, keys, 3)
	for _, k := range keys {
		var bucket trust.RevocationList
		_, err := getJSON(ctx, s, revocationsPrefix+k, &bucket)
		require.NoError(t, err)
		assert.LessOrEqual(t, len(bucket.Sessions), bucketSessions)
	}
	ids, v := revocationIDs(t, newTestBackendOn(t, s), s, now)
	assert.Len(t, ids, 600)
	assert.EqualValues(t, 600, v)
}

// TestRevocationsOutlastClockSkew: an entry stays listed for a minute past
// its last credential's expiry, longer than verifiers' 30s leeway.
func TestRevocationsOutlastClockSkew(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", map[string]interface{}{"step_ttl": "60s", "step_max_ttl": "60s"})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	mustDo(t, b, s, agentA, logical.UpdateOperation, "sessions/"+id+"/revoke", nil)
	start := time.Now()
	b.now = func() time.Time { return start.Add(60*time.Second + 45*time.Second) }
	rev := mustDo(t, b, s, caller{}, logical.ReadOperation, "revocations", nil)
	assert.Len(t, rev.Data["sessions"], 1, "still listed 45s past the last credential's expiry")
	b.now = func() time.Time { return start.Add(3 * time.Minute) }
	rev = mustDo(t, b, s, caller{}, logical.ReadOperation, "revocations", nil)
	assert.Empty(t, rev.Data["sessions"])
}

// revocationsQuery reads revocations as a resource server does, with the
// query's fields.
func revocationsQuery(t *testing.T, b *backend, s logical.Storage, data map[string]interface{}) (*logical.Response, error) {
	t.Helper()
	return do(t, b, s, caller{}, logical.ReadOperation, "revocations", data)
}

func sessionIDsOf(resp *logical.Response) []string {
	ids := []string{}
	for _, e := range resp.Data["sessions"].([]map[string]interface{}) {
		ids = append(ids, e["id"].(string))
	}
	return ids
}

// after= answers only what was added since that version; a version the
// list never had gets the whole list, marked complete.
func TestRevocationsDeltas(t *testing.T) {
	b, s := testBackend(t)
	ctx := context.Background()
	now := time.Now()
	b.now = func() time.Time { return now }
	for _, id := range []string{"a", "b", "c"} {
		require.NoError(t, b.addRevocation(ctx, s, endedSession(id, now, now.Add(time.Hour)), now))
	}
	full, err := revocationsQuery(t, b, s, nil)
	require.NoError(t, err)
	assert.EqualValues(t, 3, full.Data["version"])
	assert.Equal(t, true, full.Data["complete"])
	assert.ElementsMatch(t, []string{"a", "b", "c"}, sessionIDsOf(full))

	delta, err := revocationsQuery(t, b, s, map[string]interface{}{"after": 1})
	require.NoError(t, err)
	assert.EqualValues(t, 3, delta.Data["version"])
	assert.Equal(t, false, delta.Data["complete"])
	assert.ElementsMatch(t, []string{"b", "c"}, sessionIDsOf(delta))

	none, err := revocationsQuery(t, b, s, map[string]interface{}{"after": 3})
	require.NoError(t, err)
	assert.Empty(t, sessionIDsOf(none))
	assert.Equal(t, false, none.Data["complete"])

	unknown, err := revocationsQuery(t, b, s, map[string]interface{}{"after": 99})
	require.NoError(t, err)
	assert.Equal(t, true, unknown.Data["complete"], "a version this list never had (fresh storage after a restart)")
	assert.ElementsMatch(t, []string{"a", "b", "c"}, sessionIDsOf(unknown))

	for field, data := range map[string]map[string]interface{}{
		"after": {"after": -1},
		"wait":  {"after": 1, "wait": "61s"},
	} {
		_, err := revocationsQuery(t, b, s, data)
		require.Error(t, err, field)
		assert.Equal(t, field, refusalData(t, err)["field"])
	}
	_, err = revocationsQuery(t, b, s, map[string]interface{}{"wait": "5s"})
	assert.Equal(t, "wait", refusalData(t, err)["field"], "wait needs after")
}

// A blocking query is held until the list passes the version asked
// about, and a close answers it at once; it is also answered when the
// wait runs out or the client goes away, and never reads storage while it
// waits.
func TestRevocationsBlockingQuery(t *testing.T) {
	b, s := testBackend(t)
	ctx := context.Background()
	mustDo(t, b, s, operator, logical.CreateOperation, "roles/web", map[string]interface{}{
		"scopes": "read:secrets/web/*", "audiences": "secrets-api",
	})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	v0, err := revocationsQuery(t, b, s, nil)
	require.NoError(t, err)
	version := v0.Data["version"]

	counting := &countingStorage{Storage: s}
	answered := make(chan *logical.Response, 1)
	go func() {
		resp, _ := b.HandleRequest(ctx, &logical.Request{
			Operation: logical.ReadOperation, Path: "revocations", Storage: counting, MountPoint: "agent/",
			Data: map[string]interface{}{"after": version, "wait": "30s"},
		})
		answered <- resp
	}()
	require.Eventually(t, func() bool { return b.revWaiters.Load() == 1 }, 5*time.Second, time.Millisecond)
	readsWhileWaiting := counting.reads()
	select {
	case <-answered:
		t.Fatal("answered before anything changed")
	case <-time.After(100 * time.Millisecond):
	}
	assert.Equal(t, readsWhileWaiting, counting.reads(), "waiting reads no storage")

	mustDo(t, b, s, agentA, logical.UpdateOperation, "sessions/"+id+"/end", nil)
	var resp *logical.Response
	select {
	case resp = <-answered:
	case <-time.After(5 * time.Second):
		t.Fatal("the close did not answer the held query")
	}
	assert.Equal(t, []string{id}, sessionIDsOf(resp))
	assert.Greater(t, resp.Data["version"], version)
	assert.EqualValues(t, 0, b.revWaiters.Load())

	// Nothing changes: the wait runs out and the answer is empty.
	latest := resp.Data["version"]
	start := time.Now()
	resp, err = revocationsQuery(t, b, s, map[string]interface{}{"after": latest, "wait": "1s"})
	require.NoError(t, err)
	assert.Empty(t, sessionIDsOf(resp))
	assert.GreaterOrEqual(t, time.Since(start), time.Second)

	// The client goes away: the query ends.
	cctx, cancel := context.WithCancel(ctx)
	gone := make(chan struct{})
	go func() {
		_, _ = b.HandleRequest(cctx, &logical.Request{
			Operation: logical.ReadOperation, Path: "revocations", Storage: s, MountPoint: "agent/",
			Data: map[string]interface{}{"after": latest, "wait": "60s"},
		})
		close(gone)
	}()
	require.Eventually(t, func() bool { return b.revWaiters.Load() == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("a query whose client went away was still held")
	}
}

// Past maxRevocationWaiters held queries, a query is answered at once.
func TestRevocationsWaitersAreBounded(t *testing.T) {
	b, s := testBackend(t)
	b.revWaiters.Store(maxRevocationWaiters)
	done := make(chan struct{})
	go func() {
		_, _ = revocationsQuery(t, b, s, map[string]interface{}{"after": 0, "wait": "60s"})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a query past the bound was held")
	}
	assert.EqualValues(t, maxRevocationWaiters, b.revWaiters.Load())
}

// Another node's change (seen here as Vault's invalidation of a bucket)
// wakes a held query, which reads the list afresh.
func TestRevocationsBlockingQueryWakesOnInvalidation(t *testing.T) {
	s := &logical.InmemStorage{}
	b := newTestBackendOn(t, s)
	other := newTestBackendOn(t, s)
	ctx := context.Background()
	now := time.Now()
	answered := make(chan *logical.Response, 1)
	go func() {
		resp, _ := revocationsQuery(t, b, s, map[string]interface{}{"after": 0, "wait": "30s"})
		answered <- resp
	}()
	require.Eventually(t, func() bool { return b.revWaiters.Load() == 1 }, 5*time.Second, time.Millisecond)
	require.NoError(t, other.addRevocation(ctx, s, endedSession("x", now, now.Add(time.Hour)), now))
	keys, err := s.List(ctx, revocationsPrefix)
	require.NoError(t, err)
	for _, k := range keys {
		b.invalidate(ctx, revocationsPrefix+k)
	}
	select {
	case resp := <-answered:
		assert.Equal(t, []string{"x"}, sessionIDsOf(resp))
	case <-time.After(5 * time.Second):
		t.Fatal("the invalidation did not wake the held query")
	}
}

// revocationBuckets lists the revocation list's buckets (its storage
// entries but the version marker).
func revocationBuckets(ctx context.Context, s logical.Storage) ([]string, error) {
	keys, err := s.List(ctx, revocationsPrefix)
	return slices.DeleteFunc(keys, func(k string) bool { return revocationsPrefix+k == revocationsVersionKey }), err
}

// The list has an epoch from the mount's start, kept across restarts; a
// list that starts again on fresh storage has another, and a client that
// held the old one gets the whole new list, complete, whatever its version.
func TestRevocationsEpoch(t *testing.T) {
	s := &logical.InmemStorage{}
	b := newTestBackendOn(t, s)
	ctx := context.Background()
	now := time.Now()
	first, err := revocationsQuery(t, b, s, nil)
	require.NoError(t, err)
	epoch := first.Data["epoch"].(string)
	require.NotEmpty(t, epoch, "made when the mount started")
	for _, id := range []string{"a", "b"} {
		require.NoError(t, b.addRevocation(ctx, s, endedSession(id, now, now.Add(time.Hour)), now))
	}
	restarted := newTestBackendOn(t, s)
	same, err := revocationsQuery(t, restarted, s, map[string]interface{}{"after": 1, "epoch": epoch})
	require.NoError(t, err)
	assert.Equal(t, epoch, same.Data["epoch"], "a restart keeps the epoch")
	assert.Equal(t, false, same.Data["complete"])
	assert.Equal(t, []string{"b"}, sessionIDsOf(same))

	// Storage wiped: a new history, at a lower version.
	wiped := &logical.InmemStorage{}
	fresh := newTestBackendOn(t, wiped)
	require.NoError(t, fresh.addRevocation(ctx, wiped, endedSession("c", now, now.Add(time.Hour)), now))
	again, err := revocationsQuery(t, fresh, wiped, map[string]interface{}{"after": 1, "epoch": epoch})
	require.NoError(t, err)
	assert.NotEqual(t, epoch, again.Data["epoch"])
	assert.Equal(t, true, again.Data["complete"], "another epoch: the whole list, though version 1 is not above 1")
	assert.Equal(t, []string{"c"}, sessionIDsOf(again))
}
