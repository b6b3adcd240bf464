package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests of the engine's cost in the number of sessions: the bounded
// cache of active sessions, the paged lists and the exact count behind
// max_sessions.

// TestSessionCacheIsBounded: however many sessions are active, the node
// keeps at most session_cache_size of them in memory, and a session read
// back from storage resumes with its exact budget: no step of a reserved
// block is lost, none is issued twice.
func TestSessionCacheIsBounded(t *testing.T) {
	b, s := testBackend(t)
	mustDo(t, b, s, caller{}, logical.UpdateOperation, "config", map[string]interface{}{"session_cache_size": minSessionCacheSize})
	// Blocks of 4 steps: storage runs ahead of the live counters.
	writeRole(t, b, s, "web", map[string]interface{}{"max_steps": 40, "max_rate": 100000})
	const sessions = 3 * minSessionCacheSize
	ids := make([]string, sessions)
	for i := range ids {
		ids[i], _ = startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	}
	// Three rounds of two steps through every session: each round evicts
	// every session before it is used again.
	for round := 0; round < 3; round++ {
		for _, id := range ids {
			for step := 0; step < 2; step++ {
				mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, stepRequest())
			}
			b.liveMu.Lock()
			n := b.cache.len()
			b.liveMu.Unlock()
			require.LessOrEqual(t, n, minSessionCacheSize)
		}
	}
	for _, id := range ids {
		sess := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id, nil)
		require.EqualValues(t, 6, sess.Data["steps_used"], "exact after every eviction")
	}
	// The rest of the budget, exactly: 34 more steps for one session.
	id := ids[0]
	for i := 0; i < 34; i++ {
		mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, stepRequest())
	}
	_, err := do(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, stepRequest())
	require.ErrorContains(t, err, "max_steps")
	// The timelines have no gaps and no steps_unaccounted: every step's
	// event is there, in order.
	b.writeBatches()
	for _, id := range ids[:3] {
		events := timelineEvents(t, b, s, id)
		issued := 0
		for i, e := range events {
			if i > 0 {
				assert.Equal(t, events[i-1]["seq"].(uint64)+1, e["seq"], "session %s", id)
			}
			assert.NotEqual(t, "steps_unaccounted", e["kind"])
			if e["kind"] == "credential_issued" {
				issued++
			}
		}
		if id == ids[0] {
			assert.Equal(t, 40, issued)
		} else {
			assert.Equal(t, 6, issued)
		}
	}
}

func stepRequest() map[string]interface{} {
	return map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"}
}

// TestEvictionWaitsForNoLock: making room never waits for a session's
// lock; a busy session stays cached until a later try.
func TestEvictionWaitsForNoLock(t *testing.T) {
	ctx := context.Background()
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	first, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	for i := 0; i < minSessionCacheSize+4; i++ {
		startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	}
	lock := b.sessionLock(first)
	lock.Lock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.makeRoom(ctx, s, minSessionCacheSize)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("making room waited for a busy session's lock")
	}
	b.liveMu.Lock()
	_, cached := b.cache.byID[first]
	n := b.cache.len()
	b.liveMu.Unlock()
	assert.True(t, cached, "a locked session is never evicted")
	assert.LessOrEqual(t, n, minSessionCacheSize+evictAttempts)
	// Unlocked, it is the oldest, and the first to go.
	lock.Unlock()
	b.makeRoom(ctx, s, n-1)
	b.liveMu.Lock()
	_, cached = b.cache.byID[first]
	b.liveMu.Unlock()
	assert.False(t, cached)
}

func TestSessionCacheSizeIsChecked(t *testing.T) {
	b, s := testBackend(t)
	for _, bad := range []int{-1, minSessionCacheSize - 1, maxSessionCacheSize + 1} {
		_, err := do(t, b, s, caller{}, logical.UpdateOperation, "config", map[string]interface{}{"session_cache_size": bad})
		assert.ErrorContains(t, err, "session_cache_size")
	}
}

// listPages pages through list with limit, and returns every ID in
// order and the number of pages.
func listPages(t *testing.T, b *backend, s logical.Storage, path string, data map[string]interface{}, limit int) ([]string, int) {
	t.Helper()
	var all []string
	after := ""
	for pages := 1; ; pages++ {
		req := map[string]interface{}{"limit": limit}
		for k, v := range data {
			req[k] = v
		}
		if after != "" {
			req["after"] = after
		}
		resp := mustDo(t, b, s, caller{}, logical.ListOperation, path, req)
		keys, _ := resp.Data["keys"].([]string)
		require.LessOrEqual(t, len(keys), limit)
		all = append(all, keys...)
		next, ok := resp.Data["next"].(string)
		if !ok {
			return all, pages
		}
		require.NotEqual(t, after, next)
		after = next
	}
}

func TestSessionsListPages(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	writeRole(t, b, s, "ops", nil)
	// More than two index pages, in two roles; every third one ended.
	const n = 2*indexPageSize + 37
	var all, web, ended []string
	for i := 0; i < n; i++ {
		role := "web"
		if i%2 == 1 {
			role = "ops"
		}
		id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": role})
		all = append(all, id)
		if role == "web" {
			web = append(web, id)
		}
		if i%3 == 0 {
			mustDo(t, b, s, agentA, logical.UpdateOperation, "sessions/"+id+"/end", nil)
			ended = append(ended, id)
		}
	}
	// In the order they started, by page of indexPageSize; sorted within.
	order := func(ids []string) []string {
		out := append([]string(nil), ids...)
		place := map[string]int{}
		for i, id := range all {
			place[id] = (i + 1) / indexPageSize
		}
		sort.SliceStable(out, func(i, j int) bool {
			if place[out[i]] != place[out[j]] {
				return place[out[i]] < place[out[j]]
			}
			return out[i] < out[j]
		})
		return out
	}

	whole := mustDo(t, b, s, caller{}, logical.ListOperation, "sessions/", nil)
	assert.Equal(t, order(all), whole.Data["keys"])
	assert.NotContains(t, whole.Data, "next")

	got, pages := listPages(t, b, s, "sessions/", nil, 100)
	assert.Equal(t, order(all), got)
	assert.Equal(t, (n+99)/100+btoi(n%100 == 0), pages)

	got, _ = listPages(t, b, s, "sessions/", map[string]interface{}{"role": "web"}, 50)
	assert.Equal(t, order(web), got)
	got, _ = listPages(t, b, s, "sessions/", map[string]interface{}{"state": "ended"}, 7)
	assert.Equal(t, order(ended), got)

	_, err := do(t, b, s, caller{}, logical.ListOperation, "sessions/", map[string]interface{}{"after": "no-such-session"})
	assert.ErrorContains(t, err, "after")
	for _, bad := range []int{-1, maxListLimit + 1} {
		_, err = do(t, b, s, caller{}, logical.ListOperation, "sessions/", map[string]interface{}{"limit": bad})
		assert.ErrorContains(t, err, "limit")
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestListPageReadsOneIndexPage: an unfiltered page reads the index page
// it needs, never the sessions, whatever their number.
func TestListPageReadsOneIndexPage(t *testing.T) {
	cs := &countingStorage{Storage: &logical.InmemStorage{}}
	b := newTestBackendOn(t, cs)
	writeRole(t, b, cs, "web", nil)
	var ids []string
	for i := 0; i < 3*indexPageSize; i++ {
		id, _ := startSession(t, b, cs, agentA, map[string]interface{}{"role": "web"})
		ids = append(ids, id)
	}
	// A page lists its sessions in ID order and goes on into the next
	// page when its own run out: the after session is the least ID well
	// inside the second page, so that ten follow it there.
	after := ids[indexPageSize+2]
	for _, id := range ids[indexPageSize+2 : 2*indexPageSize-2] {
		after = min(after, id)
	}
	b.forget(after)
	counts := func() (int, int) {
		cs.mu.Lock()
		defer cs.mu.Unlock()
		return cs.gets, cs.lists
	}
	gets, lists := counts()
	resp := mustDo(t, b, cs, caller{}, logical.ListOperation, "sessions/", map[string]interface{}{"limit": 10, "after": after})
	assert.Len(t, resp.Data["keys"], 10)
	gets2, lists2 := counts()
	assert.Equal(t, 1, lists2-lists, "one index page")
	assert.LessOrEqual(t, gets2-gets, 1, "the after session, read from storage")
}

// TestTidyAdvancesPastEmptyPages: once the tidy deleted the sessions of
// the first pages, lists start past them.
func TestTidyAdvancesPastEmptyPages(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	var kept string
	for i := 0; i < indexPageSize+3; i++ {
		id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
		if i < indexPageSize {
			mustDo(t, b, s, agentA, logical.UpdateOperation, "sessions/"+id+"/end", nil)
		} else if kept == "" {
			kept = id
		}
	}
	b.now = func() time.Time { return time.Now().Add(48 * time.Hour) }
	require.NoError(t, b.tidy(context.Background(), s))
	first, _, err := b.index.bounds(context.Background(), s)
	require.NoError(t, err)
	assert.EqualValues(t, 0, first, "page 0 held sessions until this walk")
	require.NoError(t, b.tidy(context.Background(), s))
	first, _, err = b.index.bounds(context.Background(), s)
	require.NoError(t, err)
	assert.EqualValues(t, 1, first)
	head, ok, err := readIndexHead(context.Background(), s)
	require.NoError(t, err)
	require.True(t, ok)
	assert.EqualValues(t, 1, head.FirstPage, "stored")
}

// TestTidyWalkGoesOnWhereItStopped: a walk longer than one periodic
// call's budget goes on from where it stopped at the next call, and moves
// the first page once complete.
func TestTidyWalkGoesOnWhereItStopped(t *testing.T) {
	budget := tidyBudget
	tidyBudget = 0 // one page per call
	t.Cleanup(func() { tidyBudget = budget })
	ctx := context.Background()
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	for i := 0; i < 2*indexPageSize; i++ {
		id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
		mustDo(t, b, s, agentA, logical.UpdateOperation, "sessions/"+id+"/end", nil)
	}
	b.now = func() time.Time { return time.Now().Add(48 * time.Hour) }
	count := func() int {
		keys, _ := listPages(t, b, s, "sessions/", nil, 1000)
		return len(keys)
	}
	require.NoError(t, b.tidy(ctx, s))
	assert.Equal(t, 2*indexPageSize-(indexPageSize-1), count(), "page 0 (255 sessions) in the first call")
	require.NoError(t, b.tidy(ctx, s))
	assert.Equal(t, 1, count(), "page 1 in the second")
	require.NoError(t, b.tidy(ctx, s))
	assert.Equal(t, 0, count(), "page 2 in the third, which ends the walk")
	// The walk that emptied the pages found none empty; the next one
	// (empty pages cost no budget) does, and moves the first page up to
	// the page still being filled.
	require.NoError(t, b.tidy(ctx, s))
	require.NoError(t, b.tidy(ctx, s))
	first, _, err := b.index.bounds(ctx, s)
	require.NoError(t, err)
	assert.EqualValues(t, 2, first)
}

// TestMaxSessionsIsExact: only active sessions count: not ended ones, not
// ones whose lease ran out before the tidy saw them, not dangling index
// entries; and the count survives a restart.
func TestMaxSessionsIsExact(t *testing.T) {
	ctx := context.Background()
	b, s := testBackend(t)
	writeRole(t, b, s, "web", map[string]interface{}{"max_sessions": 3})
	short, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web", "ttl": "1m"})
	ended, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	_, err := do(t, b, s, agentA, logical.UpdateOperation, "session", map[string]interface{}{"role": "web", "purpose": "x"})
	require.ErrorContains(t, err, "max_sessions")

	mustDo(t, b, s, agentA, logical.UpdateOperation, "sessions/"+ended+"/end", nil)
	startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	_, err = do(t, b, s, agentA, logical.UpdateOperation, "session", map[string]interface{}{"role": "web", "purpose": "x"})
	require.ErrorContains(t, err, "max_sessions")

	// The short session's lease runs out: it stops counting at once.
	later := time.Now().Add(2 * time.Minute)
	b.now = func() time.Time { return later }
	startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	_, err = do(t, b, s, agentA, logical.UpdateOperation, "session", map[string]interface{}{"role": "web", "purpose": "x"})
	require.ErrorContains(t, err, "max_sessions")
	_ = short

	// After a restart the count is loaded from the role's index, and a
	// dangling entry in it does not count.
	require.NoError(t, s.Put(ctx, &logical.StorageEntry{Key: roleSessionKey("web", "ghost"), Value: []byte("{}")}))
	restarted := newTestBackendOn(t, s)
	restarted.now = b.now
	n, err := restarted.countActive(ctx, s, "web", later)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	_, err = do(t, restarted, s, agentA, logical.UpdateOperation, "session", map[string]interface{}{"role": "web", "purpose": "x"})
	require.ErrorContains(t, err, "max_sessions")
}

// TestMaxSessionsCountSurvivesFailuresAndChanges: a start that fails
// after taking its place gives it back; a change of the role's
// max_sessions counts again, the sessions started without a limit too.
func TestMaxSessionsCountSurvivesFailuresAndChanges(t *testing.T) {
	b, _ := testBackend(t)
	s := &failingStorage{Storage: &logical.InmemStorage{}, prefix: sessionsPrefix}
	writeRole(t, b, s, "web", map[string]interface{}{"max_sessions": 1})
	s.arm(true)
	_, err := do(t, b, s, agentA, logical.UpdateOperation, "session", map[string]interface{}{"role": "web", "purpose": "x"})
	require.Error(t, err)
	s.arm(false)
	startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})

	writeRole(t, b, s, "web", map[string]interface{}{"max_sessions": 0})
	startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	writeRole(t, b, s, "web", map[string]interface{}{"max_sessions": 3})
	_, err = do(t, b, s, agentA, logical.UpdateOperation, "session", map[string]interface{}{"role": "web", "purpose": "x"})
	require.ErrorContains(t, err, "max_sessions", "three are active")
}

// TestMaxSessionsUnderConcurrency: starts racing for the last places get
// exactly max_sessions of them.
func TestMaxSessionsUnderConcurrency(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", map[string]interface{}{"max_sessions": 5})
	var wg sync.WaitGroup
	var mu sync.Mutex
	started := 0
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := do(t, b, s, agentA, logical.UpdateOperation, "session", map[string]interface{}{"role": "web", "purpose": "x"})
			if err == nil {
				mu.Lock()
				started++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, 5, started)
}

// TestSessionsStoredBeforeTheIndex: sessions written by a release without
// the index get their places when the mount starts, once.
func TestSessionsStoredBeforeTheIndex(t *testing.T) {
	ctx := context.Background()
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	var ids []string
	for i := 0; i < 5; i++ {
		id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
		ids = append(ids, id)
	}
	// Make storage look as the previous release left it.
	for _, id := range ids {
		sess, err := readSession(ctx, s, id)
		require.NoError(t, err)
		require.NoError(t, s.Delete(ctx, indexEntryKey(sess.IndexSeq, id)))
		sess.IndexSeq = 0
		require.NoError(t, putSession(ctx, s, sess))
	}
	require.NoError(t, s.Delete(ctx, sessionIndexHeadKey))

	restarted := newTestBackendOn(t, s)
	require.NoError(t, restarted.Initialize(ctx, &logical.InitializationRequest{Storage: s}))
	got := mustDo(t, restarted, s, caller{}, logical.ListOperation, "sessions/", nil)
	assert.ElementsMatch(t, ids, got.Data["keys"])
	for _, id := range ids {
		sess, err := readSession(ctx, s, id)
		require.NoError(t, err)
		assert.NotZero(t, sess.IndexSeq, id)
	}
	// Sessions still work.
	mustDo(t, restarted, s, agentA, logical.UpdateOperation, "creds/"+ids[0], stepRequest())
}

func TestApprovalsListPages(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "appr", map[string]interface{}{
		"scopes": "read:secrets/*", "audiences": "secrets-api", "on_out_of_intent": "approval", "max_pending_approvals": 3,
	})
	var want []string
	for i := 0; i < 7; i++ {
		id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "appr", "scopes": "read:secrets/web/*", "audiences": "secrets-api"})
		code, data := askOutside(t, b, s, id, fmt.Sprintf("read:secrets/db/%d", i), "secrets-api")
		require.Equal(t, http.StatusAccepted, code)
		want = append(want, data["approval_id"].(string))
	}
	got, pages := listPages(t, b, s, "approvals/", nil, 3)
	assert.ElementsMatch(t, want, got)
	assert.Len(t, got, 7)
	assert.Equal(t, 3, pages)
	_, err := do(t, b, s, caller{}, logical.ListOperation, "approvals/", map[string]interface{}{"after": "nope"})
	assert.ErrorContains(t, err, "after")
}

// BenchmarkRevocationsSustainedKills: 10,000 kills a minute, sustained
// for 10 minutes on a simulated clock (issue 20), through the engine's
// own paths: each killed session took one credential (of a role whose
// credentials live a minute) and was ended; the tidy runs once a minute.
// It reports the most sessions the revocation list held, the largest
// whole answer, the answer of one kill as a delta, and the heap after the
// first minute and after the last (storage included: it is in process):
// all bounded by kills in a credential lifetime, not by kills in all.
func BenchmarkRevocationsSustainedKills(b *testing.B) {
	const (
		perMinute = 10000
		minutes   = 10
	)
	for b.Loop() {
		be, s := testBackend(b)
		ctx := context.Background()
		clock := time.Now()
		be.now = func() time.Time { return clock }
		writeRole(b, be, s, "web", map[string]interface{}{"step_ttl": "1m", "step_max_ttl": "1m", "max_rate": 100000})
		// The storage is in this process (logical.InmemStorage), so the
		// heap holds it too: closed sessions are deleted as soon as their
		// credentials expired, so that it measures what stays.
		mustDo(b, be, s, caller{}, logical.UpdateOperation, "config", map[string]interface{}{"session_retention": 0})
		var maxListed, maxBytes, deltaBytes int
		var heapFirst, heapLast uint64
		heap := func() uint64 {
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			return m.HeapAlloc
		}
		for minute := 0; minute < minutes; minute++ {
			for k := 0; k < perMinute; k++ {
				clock = clock.Add(time.Minute / perMinute)
				id, _ := startSession(b, be, s, agentA, map[string]interface{}{"role": "web"})
				mustDo(b, be, s, agentA, logical.UpdateOperation, "creds/"+id, stepRequest())
				mustDo(b, be, s, agentA, logical.UpdateOperation, "sessions/"+id+"/end", nil)
			}
			if err := be.tidy(ctx, s); err != nil {
				b.Fatal(err)
			}
			whole := mustDo(b, be, s, caller{}, logical.ReadOperation, "revocations", nil)
			raw, err := json.Marshal(whole.Data)
			if err != nil {
				b.Fatal(err)
			}
			maxBytes = max(maxBytes, len(raw))
			maxListed = max(maxListed, len(whole.Data["sessions"].([]map[string]interface{})))
			version := whole.Data["version"]
			id, _ := startSession(b, be, s, agentA, map[string]interface{}{"role": "web"})
			mustDo(b, be, s, agentA, logical.UpdateOperation, "creds/"+id, stepRequest())
			mustDo(b, be, s, agentA, logical.UpdateOperation, "sessions/"+id+"/end", nil)
			delta := mustDo(b, be, s, caller{}, logical.ReadOperation, "revocations", map[string]interface{}{"after": version})
			if raw, err = json.Marshal(delta.Data); err != nil {
				b.Fatal(err)
			}
			deltaBytes = max(deltaBytes, len(raw))
			switch minute {
			case 0:
				heapFirst = heap()
			case minutes - 1:
				heapLast = heap()
			}
		}
		b.ReportMetric(float64(maxListed), "max-listed")
		b.ReportMetric(float64(maxBytes), "max-answer-B")
		b.ReportMetric(float64(deltaBytes), "delta-B")
		b.ReportMetric(float64(heapFirst)/(1<<20), "heap-1min-MiB")
		b.ReportMetric(float64(heapLast)/(1<<20), "heap-10min-MiB")
	}
}

// TestStorageFromANewerReleaseIsRefused: a mount whose storage a newer
// release wrote does not start, says why, and writes nothing; storage of
// this version or older starts and records this release.
func TestStorageFromANewerReleaseIsRefused(t *testing.T) {
	ctx := context.Background()
	b, s := testBackend(t)
	require.NoError(t, b.Initialize(ctx, &logical.InitializationRequest{Storage: s}))
	var v storedVersion
	_, err := getJSON(ctx, s, storageVersionKey, &v)
	require.NoError(t, err)
	assert.Equal(t, storedVersion{Version: storageVersion, Release: Version}, v)

	require.NoError(t, putJSON(ctx, s, storageVersionKey, storedVersion{Version: storageVersion + 1, Release: "v9.0.0"}))
	cs := &countingStorage{Storage: s}
	conf := logical.TestBackendConfig()
	conf.StorageView = cs
	raw, err := Factory(ctx, conf)
	require.NoError(t, err)
	t.Cleanup(func() { raw.Cleanup(ctx) })
	err = raw.Initialize(ctx, &logical.InitializationRequest{Storage: cs})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "v9.0.0")
	assert.Contains(t, err.Error(), "-plugin-version")
	assert.Zero(t, cs.writes())
}
