package agent

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

// eventKinds reads a session's timeline and returns the kinds in order.
func eventKinds(t *testing.T, b *backend, s logical.Storage, id string) []string {
	t.Helper()
	resp := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id+"/events", nil)
	var kinds []string
	for _, e := range resp.Data["events"].([]map[string]interface{}) {
		kinds = append(kinds, e["kind"].(string))
	}
	return kinds
}

// timelineEvents reads a session's whole timeline.
func timelineEvents(t *testing.T, b *backend, s logical.Storage, id string) []map[string]interface{} {
	t.Helper()
	resp := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id+"/events", nil)
	return resp.Data["events"].([]map[string]interface{})
}

func TestTimelineRecordsEveryDecision(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	tok := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/x", "audience": "secrets-api", "description": "look",
	}).Data["token"].(string)
	_, err := issue(t, b, s, agentA, id, map[string]interface{}{"scopes": "read:secrets//x", "audience": "secrets-api"})
	require.Error(t, err)
	mustDo(t, b, s, agentB, logical.UpdateOperation, "report", map[string]interface{}{
		"token": tok, "action": "read", "resource": "secrets/web/x", "outcome": "allowed",
	})
	_, err = issue(t, b, s, agentA, id, map[string]interface{}{"scopes": "write:secrets/web/x", "audience": "secrets-api"})
	require.Error(t, err)

	assert.Equal(t, []string{
		"session_start", "credential_issued", "request_refused", "report", "violation", "session_revoke",
	}, eventKinds(t, b, s, id))

	resp := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id+"/events", nil)
	events := resp.Data["events"].([]map[string]interface{})
	assert.Equal(t, "look", events[1]["description"])
	assert.Equal(t, []string{"read:secrets/web/x"}, events[1]["scopes"])
	assert.Equal(t, "scope_outside_intent", events[4]["violation"])
	assert.Equal(t, "violation: scope_outside_intent", events[5]["detail"])
	for i, e := range events {
		assert.EqualValues(t, i+1, e["seq"])
	}

	// after= reads only newer events.
	resp = mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id+"/events", map[string]interface{}{"after": 4})
	assert.Len(t, resp.Data["events"], 2)
}

func TestTimelineIsBounded(t *testing.T) {
	b, s := testBackend(t)
	ctx := context.Background()
	mustDo(t, b, s, agentA, logical.UpdateOperation, "config", map[string]interface{}{"max_events": 5})
	writeRole(t, b, s, "web", map[string]interface{}{"max_rate": 1000, "max_steps": 500})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	for i := 0; i < 10; i++ {
		mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	}
	resp := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id+"/events", nil)
	assert.Len(t, resp.Data["events"], 5)
	assert.EqualValues(t, 6, resp.Data["dropped"])
	assert.EqualValues(t, 11, resp.Data["last_seq"])

	// The periodic tidy deletes whole chunks of dropped events, off the
	// request path: after 200 events with 195 dropped, chunks 0-11
	// (events 1-192) go, and chunk 12 stays.
	for i := 10; i < 199; i++ {
		mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	}
	require.NoError(t, b.tidy(ctx, s))
	keys, err := s.List(ctx, eventsPrefix+id+"/")
	require.NoError(t, err)
	assert.Equal(t, []string{"000000000012"}, keys, "chunks of dropped events are deleted")
	resp = mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id+"/events", nil)
	events := resp.Data["events"].([]map[string]interface{})
	require.Len(t, events, 5)
	assert.EqualValues(t, 196, events[0]["seq"])
	assert.EqualValues(t, 200, events[4]["seq"])
	assert.EqualValues(t, 195, resp.Data["dropped"])
	graph := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id+"/graph", nil)
	assert.Equal(t, true, graph.Data["partial"])
}

func TestGraphShowsTheAccessPath(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	root := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read,list:secrets/web/*", "audience": "secrets-api", "description": "survey",
	}).Data["token"].(string)
	mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/tls", "audience": "secrets-api", "parent_token": root, "actor": "fetcher",
	})
	resp := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id+"/graph", nil)
	assert.Equal(t, 2, resp.Data["credentials_shown"])
	dot := resp.Data["dot"].(string)
	assert.Contains(t, dot, "digraph")
	assert.Contains(t, dot, "session -> c0;")
	assert.Contains(t, dot, "c0 -> c1;")
	assert.Contains(t, dot, "actor: fetcher")
	mermaid := resp.Data["mermaid"].(string)
	assert.True(t, strings.HasPrefix(mermaid, "flowchart LR"))
	assert.Contains(t, mermaid, "c0 --> c1")
}

// TestEveryViolationKindInDenyMode: each kind is refused with a 4xx naming
// it, counted, and the session is revoked only past violation_limit.
func TestEveryViolationKindInDenyMode(t *testing.T) {
	b, s := testBackend(t)
	now := time.Now()
	b.now = func() time.Time { return now }
	writeRole(t, b, s, "web", map[string]interface{}{
		"on_violation": "deny", "violation_limit": 6, "max_depth": 2, "max_rate": 6,
	})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web", "max_steps": 10})
	step := map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"}
	tok := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, step).Data["token"].(string)
	child := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/x", "audience": "secrets-api", "parent_token": tok,
	}).Data["token"].(string)

	other, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	otherTok := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+other, step).Data["token"].(string)

	expectViolation := func(kind string, code int, c caller, data map[string]interface{}) {
		t.Helper()
		_, err := issue(t, b, s, c, id, data)
		require.Error(t, err, kind)
		assert.Contains(t, err.Error(), "violation "+kind)
		coded, ok := err.(logical.HTTPCodedError)
		require.True(t, ok)
		assert.Equal(t, code, coded.Code(), kind)
	}
	expectViolation("scope_outside_intent", http.StatusForbidden, agentA, map[string]interface{}{"scopes": "write:secrets/web/x", "audience": "secrets-api"})
	expectViolation("audience_outside_intent", http.StatusForbidden, agentA, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "billing"})
	expectViolation("depth_exceeded", http.StatusForbidden, agentA, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api", "parent_token": child})
	expectViolation("bad_parent", http.StatusForbidden, agentA, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api", "parent_token": otherTok})
	// Another caller is refused, and it is no violation of the session.
	_, err := issue(t, b, s, agentB, id, step)
	require.ErrorContains(t, err, "belongs to another caller")

	// Reported misuse: the report succeeds; the session is charged.
	rep := mustDo(t, b, s, agentB, logical.UpdateOperation, "report", map[string]interface{}{
		"token": tok, "action": "delete", "resource": "secrets/web/x",
	})
	assert.Equal(t, "reported_misuse", rep.Data["violation"])
	assert.Equal(t, false, rep.Data["session_revoked"])

	// Rate: 6 per minute, 2 already spent in this minute.
	for i := 0; i < 4; i++ {
		mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, step)
	}
	expectViolation("rate_exceeded", http.StatusTooManyRequests, agentA, step)

	// Budget: 10 steps; a minute later the bucket is full again.
	now = now.Add(time.Minute)
	for i := 0; i < 4; i++ {
		mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, step)
	}
	sess := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id, nil)
	require.Equal(t, 10, sess.Data["steps_used"])
	assert.Equal(t, 6, sess.Data["violation_count"])
	assert.Equal(t, "active", sess.Data["state"], "6 violations are tolerated")
	expectViolation("budget_exhausted", http.StatusForbidden, agentA, step)

	sess = mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id, nil)
	assert.Equal(t, "revoked", sess.Data["state"])
	assert.Equal(t, "violation: budget_exhausted", sess.Data["revoked_reason"])
	kinds := map[string]bool{}
	for _, v := range sess.Data["violations"].([]map[string]interface{}) {
		kinds[v["kind"].(string)] = true
	}
	assert.Len(t, kinds, 7, "every violation kind was recorded: %v", kinds)
}

func TestReport(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	tok := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/*", "audience": "secrets-api",
	}).Data["token"].(string)

	// In scope: recorded, no violation.
	rep := mustDo(t, b, s, agentB, logical.UpdateOperation, "report", map[string]interface{}{
		"token": tok, "action": "read", "resource": "secrets/web/tls", "outcome": "allowed",
	})
	assert.Equal(t, "", rep.Data["violation"])
	assert.Equal(t, "active", rep.Data["session_state"])

	// Malformed reports are 400s naming the field, and record nothing.
	for field, data := range map[string]map[string]interface{}{
		"token":    {"action": "read", "resource": "x"},
		"action":   {"token": tok, "action": "READ", "resource": "x"},
		"resource": {"token": tok, "action": "read", "resource": "a/../b"},
		"outcome":  {"token": tok, "action": "read", "resource": "x", "outcome": strings.Repeat("o", 100)},
	} {
		_, err := do(t, b, s, agentB, logical.UpdateOperation, "report", data)
		require.Error(t, err, field)
		assert.True(t, strings.HasPrefix(err.Error(), field+":"), "%s: %v", field, err)
	}
	_, err := do(t, b, s, agentB, logical.UpdateOperation, "report", map[string]interface{}{
		"token": tok[:len(tok)-3] + "abc", "action": "read", "resource": "x",
	})
	assert.ErrorContains(t, err, "token: not a step credential of this engine")

	// Outside the scope: reported_misuse revokes the session (revoke mode).
	rep = mustDo(t, b, s, agentB, logical.UpdateOperation, "report", map[string]interface{}{
		"token": tok, "action": "write", "resource": "secrets/web/tls", "outcome": "denied",
	})
	assert.Equal(t, "reported_misuse", rep.Data["violation"])
	assert.Equal(t, true, rep.Data["session_revoked"])
	assert.Equal(t, "revoked", rep.Data["session_state"])

	// Once the session is closed, so is its history: a later report is
	// only counted.
	rep = mustDo(t, b, s, agentB, logical.UpdateOperation, "report", map[string]interface{}{
		"token": tok, "action": "read", "resource": "secrets/web/tls",
	})
	assert.Equal(t, false, rep.Data["recorded"])
	assert.Equal(t, "", rep.Data["violation"])
	sess := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id, nil)
	assert.Equal(t, 1, sess.Data["violation_count"])
	assert.EqualValues(t, 1, sess.Data["inactive_calls"].(map[string]interface{})["count"])
}

// observed_at must be believable: not in the future, not before the
// credential existed, not older than its lifetime.
func TestReportObservedAtIsChecked(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	tok := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/*", "audience": "secrets-api", "ttl": "60s",
	}).Data["token"].(string)
	now := time.Now()
	for name, at := range map[string]time.Time{
		"in the future":           now.Add(2 * time.Minute),
		"before issuance":         now.Add(-2 * time.Minute),
		"older than the lifetime": now.Add(-time.Hour),
	} {
		_, err := do(t, b, s, agentB, logical.UpdateOperation, "report", map[string]interface{}{
			"token": tok, "action": "read", "resource": "secrets/web/tls", "observed_at": at.Format(time.RFC3339),
		})
		require.Error(t, err, name)
		assert.True(t, strings.HasPrefix(err.Error(), "observed_at:"), "%s: %v", name, err)
	}
	_, err := do(t, b, s, agentB, logical.UpdateOperation, "report", map[string]interface{}{
		"token": tok, "action": "read", "resource": "secrets/web/tls", "leeway": "2m",
	})
	require.ErrorContains(t, err, "leeway:")
	sess := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id, nil)
	assert.Equal(t, "active", sess.Data["state"])
	assert.Equal(t, 0, sess.Data["violation_count"])
}

// A use the resource server accepted inside its leeway, or saw before a
// normal end, is judged as of when it was seen: no misuse.
func TestReportJudgesTheUseNotTheArrival(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	start := time.Now()
	clock := start
	b.now = func() time.Time { return clock }
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	tok := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/*", "audience": "secrets-api", "ttl": "10s",
	}).Data["token"].(string)

	// Seen 5s after exp, inside the SDK's 30s leeway, reported at once.
	clock = start.Add(15 * time.Second)
	rep := mustDo(t, b, s, agentB, logical.UpdateOperation, "report", map[string]interface{}{
		"token": tok, "action": "read", "resource": "secrets/web/tls", "observed_at": clock.Format(time.RFC3339Nano),
	})
	assert.Equal(t, "", rep.Data["violation"])
	assert.Equal(t, true, rep.Data["recorded"])

	// The same with a verifier that tolerates no skew: misuse.
	rep = mustDo(t, b, s, agentB, logical.UpdateOperation, "report", map[string]interface{}{
		"token": tok, "action": "read", "resource": "secrets/web/tls", "observed_at": clock.Format(time.RFC3339Nano), "leeway": 0,
	})
	assert.Equal(t, "reported_misuse", rep.Data["violation"])
	assert.Contains(t, rep.Data["detail"], "expired")

	// A use seen before a normal end and reported after it changes
	// nothing: the session ended cleanly.
	clock = start
	id2, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	tok2 := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id2, map[string]interface{}{
		"scopes": "read:secrets/web/*", "audience": "secrets-api",
	}).Data["token"].(string)
	seen := start.Add(time.Second)
	clock = start.Add(2 * time.Second)
	mustDo(t, b, s, agentA, logical.UpdateOperation, "sessions/"+id2+"/end", nil)
	clock = start.Add(3 * time.Second)
	rep = mustDo(t, b, s, agentB, logical.UpdateOperation, "report", map[string]interface{}{
		"token": tok2, "action": "read", "resource": "secrets/web/tls", "observed_at": seen.Format(time.RFC3339Nano),
	})
	assert.Equal(t, "", rep.Data["violation"])
	sess := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id2, nil)
	assert.Equal(t, "ended", sess.Data["state"])
	assert.Equal(t, 0, sess.Data["violation_count"])
}

func TestReportOfAnExpiredCredential(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	tok := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/*", "audience": "secrets-api", "ttl": "10s",
	}).Data["token"].(string)
	// 10s past exp plus the default 30s leeway.
	b.now = func() time.Time { return time.Now().Add(50 * time.Second) }
	rep := mustDo(t, b, s, agentB, logical.UpdateOperation, "report", map[string]interface{}{
		"token": tok, "action": "read", "resource": "secrets/web/tls",
	})
	assert.Equal(t, "reported_misuse", rep.Data["violation"])
	assert.Contains(t, rep.Data["detail"], "expired")
}

// recordingSender is a logical.EventSender that records what it is sent,
// and can be made to block.
type recordingSender struct {
	mu     sync.Mutex
	types  []string
	block  chan struct{}
	called chan struct{}
}

func (r *recordingSender) SendEvent(ctx context.Context, eventType logical.EventType, ev *logical.EventData) error {
	if r.block != nil {
		select {
		case r.called <- struct{}{}:
		default:
		}
		select {
		case <-r.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.types = append(r.types, string(eventType)+" "+ev.Metadata.Fields["session_id"].GetStringValue())
	return nil
}

func (r *recordingSender) sent() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.types...)
}

func backendWithSender(t *testing.T, sender logical.EventSender) (*backend, logical.Storage) {
	t.Helper()
	conf := logical.TestBackendConfig()
	conf.StorageView = &logical.InmemStorage{}
	conf.Logger = hclog.NewNullLogger()
	conf.EventsSender = sender
	raw, err := Factory(context.Background(), conf)
	require.NoError(t, err)
	b := raw.(*backend)
	t.Cleanup(func() { b.clean(context.Background()) })
	return b, conf.StorageView
}

func TestNotificationsAreSent(t *testing.T) {
	sender := &recordingSender{}
	b, s := backendWithSender(t, sender)
	writeRole(t, b, s, "web", nil)
	a, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	mustDo(t, b, s, agentA, logical.UpdateOperation, "sessions/"+a+"/end", nil)
	c, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	_, err := issue(t, b, s, agentA, c, map[string]interface{}{"scopes": "write:x/y", "audience": "secrets-api"})
	require.Error(t, err)

	want := []string{
		"agent/session-start " + a, "agent/session-end " + a,
		"agent/session-start " + c, "agent/violation " + c, "agent/session-revoke " + c,
	}
	require.Eventually(t, func() bool { return len(sender.sent()) == len(want) }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, want, sender.sent())
}

// TestBlockedNotificationSenderNeverSlowsRequests: a sender that hangs forever
// does not hold up a single request, and a full queue drops notifications.
func TestBlockedNotificationSenderNeverSlowsRequests(t *testing.T) {
	sender := &recordingSender{block: make(chan struct{}), called: make(chan struct{}, 1)}
	b, s := backendWithSender(t, sender)
	defer close(sender.block)
	writeRole(t, b, s, "web", map[string]interface{}{"max_sessions": 0})
	for i := 0; i < notifierQueueSize+50; i++ {
		id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
		_ = id
	}
	assert.Greater(t, b.notifier.dropped.Load(), uint64(0))
}

func TestTidyExpiresAndDeletesSessions(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web", "ttl": "1m"})
	ended, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+ended, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	mustDo(t, b, s, agentA, logical.UpdateOperation, "sessions/"+ended+"/end", nil)
	ctx := context.Background()

	// Two minutes on: the first session's lease ran out.
	b.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	require.NoError(t, b.tidy(ctx, s))
	sess := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id, nil)
	assert.Equal(t, "expired", sess.Data["state"])
	assert.Contains(t, eventKinds(t, b, s, id), "session_expire")

	// A day and more on: both are past retention and deleted, timelines too.
	b.now = func() time.Time { return time.Now().Add(25 * time.Hour) }
	require.NoError(t, b.tidy(ctx, s))
	for _, gone := range []string{id, ended} {
		resp, err := do(t, b, s, agentA, logical.ReadOperation, "sessions/"+gone, nil)
		require.NoError(t, err)
		assert.Nil(t, resp)
		keys, err := s.List(ctx, eventsPrefix+gone+"/")
		require.NoError(t, err)
		assert.Empty(t, keys)
	}
	rev := mustDo(t, b, s, caller{}, logical.ReadOperation, "revocations", nil)
	assert.Empty(t, rev.Data["sessions"])

	// A dangling role index entry (a crash between a session's first
	// writes) is dropped.
	require.NoError(t, s.Put(ctx, &logical.StorageEntry{Key: roleSessionsPrefix + "web/ghost", Value: []byte("{}")}))
	require.NoError(t, b.tidy(ctx, s))
	idx, err := s.List(ctx, roleSessionsPrefix+"web/")
	require.NoError(t, err)
	assert.Empty(t, idx)
}

func TestPeriodicSkipsNodesThatDoNotOwnStorage(t *testing.T) {
	for _, tc := range []struct {
		name  string
		state consts.ReplicationState
		local bool
		skip  bool
	}{
		{"performance standby", consts.ReplicationPerformanceStandby, false, true},
		{"DR secondary", consts.ReplicationDRSecondary, false, true},
		{"performance secondary, replicated mount", consts.ReplicationPerformanceSecondary, false, true},
		{"performance secondary, local mount", consts.ReplicationPerformanceSecondary, true, false},
		{"performance primary", consts.ReplicationPerformancePrimary, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := logical.TestBackendConfig()
			conf.StorageView = &logical.InmemStorage{}
			conf.Logger = hclog.NewNullLogger()
			sys := logical.TestSystemView()
			sys.ReplicationStateVal = tc.state
			sys.LocalMountVal = tc.local
			conf.System = sys
			raw, err := Factory(context.Background(), conf)
			require.NoError(t, err)
			b := raw.(*backend)
			assert.Equal(t, !tc.skip, b.ownsStorage())
			s := &countingStorage{Storage: conf.StorageView}
			// A session whose lease ran out: the tidy would write it.
			require.NoError(t, putSession(context.Background(), s, trust.NewSession("old", "web", "x", trust.Intent{}, time.Second, time.Now().Add(-time.Hour))))
			before := s.writes()
			require.NoError(t, b.periodic(context.Background(), &logical.Request{Storage: s}))
			if tc.skip {
				assert.Equal(t, before, s.writes())
			} else {
				assert.Greater(t, s.writes(), before)
			}
		})
	}
}

// The WAL prefix is local storage, as in Vault's own plugins.
func TestWALIsLocalStorage(t *testing.T) {
	b, _ := testBackend(t)
	assert.Contains(t, b.PathsSpecial.LocalStorage, framework.WALPrefix)
}

// Every operation that writes replicated storage (or spends a session's
// budget) is declared to run on the active node of the primary, so a
// performance standby or secondary forwards it before doing anything;
// reads and unauthenticated paths are served where they arrive.
func TestWriteOperationsForwardToTheActiveNode(t *testing.T) {
	b, _ := testBackend(t)
	forwarded := map[string][]logical.Operation{
		"config$": {logical.UpdateOperation, logical.DeleteOperation},
		"roles/" + framework.GenericNameRegex("name"): {logical.CreateOperation, logical.UpdateOperation, logical.DeleteOperation},
		"session$": {logical.UpdateOperation},
		"sessions/" + framework.GenericNameRegex("session_id") + "/end$":    {logical.UpdateOperation},
		"sessions/" + framework.GenericNameRegex("session_id") + "/revoke$": {logical.UpdateOperation},
		"creds/" + framework.GenericNameRegex("session_id") + "$":           {logical.ReadOperation, logical.UpdateOperation},
		"report$":      {logical.UpdateOperation},
		"keys/rotate$": {logical.UpdateOperation},
	}
	seen := map[string]bool{}
	for _, p := range b.Paths {
		want := map[logical.Operation]bool{}
		for _, op := range forwarded[p.Pattern] {
			want[op] = true
		}
		if len(want) > 0 {
			seen[p.Pattern] = true
		}
		for op, h := range p.Operations {
			po := h.(*framework.PathOperation)
			assert.Equal(t, want[op], po.ForwardPerformanceStandby, "%s %s: ForwardPerformanceStandby", op, p.Pattern)
			assert.Equal(t, want[op], po.ForwardPerformanceSecondary, "%s %s: ForwardPerformanceSecondary", op, p.Pattern)
		}
	}
	assert.Len(t, seen, len(forwarded), "every listed path exists")
}

// Every refusal says what it is in its data, for programs: the reason, and
// the field, the violation kind and the session's state where they apply.
func TestRefusalsCarryTheirReasonAsData(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", map[string]interface{}{"on_violation": "deny", "violation_limit": 1})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})

	_, err := issue(t, b, s, agentA, id, map[string]interface{}{"scopes": "read:secrets//x", "audience": "secrets-api"})
	assert.Equal(t, map[string]interface{}{"reason": "malformed", "field": "scopes"}, refusalData(t, err))

	_, err = issue(t, b, s, agentA, id, map[string]interface{}{"scopes": "write:secrets/web/x", "audience": "secrets-api"})
	assert.Equal(t, http.StatusForbidden, err.(*refused).Code())
	assert.Equal(t, map[string]interface{}{
		"reason": "violation", "violation": "scope_outside_intent", "session_id": id, "session_state": "active",
	}, refusalData(t, err), "deny tolerates one violation")

	_, err = issue(t, b, s, agentB, id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	assert.Equal(t, map[string]interface{}{"reason": "foreign_caller", "session_id": id}, refusalData(t, err))

	_, err = issue(t, b, s, agentA, id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "billing"})
	assert.Equal(t, map[string]interface{}{
		"reason": "violation", "violation": "audience_outside_intent", "session_id": id, "session_state": "revoked",
	}, refusalData(t, err), "the second violation revoked it")

	_, err = issue(t, b, s, agentA, id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	assert.Equal(t, map[string]interface{}{"reason": "session_closed", "session_id": id, "session_state": "revoked"}, refusalData(t, err))
	_, err = do(t, b, s, agentA, logical.UpdateOperation, "sessions/"+id+"/end", nil)
	assert.Equal(t, http.StatusConflict, err.(*refused).Code())
	assert.Equal(t, "session_closed", refusalData(t, err)["reason"])

	_, err = issue(t, b, s, agentA, "no-such-session", map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	assert.Equal(t, http.StatusNotFound, err.(*refused).Code())
	assert.Equal(t, map[string]interface{}{"reason": "not_found", "field": "session_id"}, refusalData(t, err))

	_, err = do(t, b, s, operator, logical.UpdateOperation, "config", map[string]interface{}{"max_events": 0})
	assert.Equal(t, map[string]interface{}{"reason": "malformed", "field": "max_events"}, refusalData(t, err))
}

// A misspelt field on a write that sets ceilings or budgets is refused,
// never ignored: it would silently keep the default.
func TestUnknownFieldsAreRefused(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	for _, tc := range []struct {
		path  string
		data  map[string]interface{}
		field string
	}{
		{"config", map[string]interface{}{"sesion_max_ttl": "5m"}, "sesion_max_ttl"},
		{"roles/web", map[string]interface{}{"scopes": "read:x", "audiences": "a", "max_step": 5}, "max_step"},
		{"session", map[string]interface{}{"role": "web", "purpose": "p", "max_step": 5}, "max_step"},
		{"creds/" + id, map[string]interface{}{"scope": "read:secrets/web/x", "audience": "secrets-api"}, "scope"},
	} {
		_, err := do(t, b, s, agentA, logical.UpdateOperation, tc.path, tc.data)
		require.Error(t, err, tc.path)
		assert.Equal(t, http.StatusBadRequest, err.(*refused).Code(), tc.path)
		assert.Equal(t, tc.field, refusalData(t, err)["field"], tc.path)
		assert.Contains(t, err.Error(), "unknown field", tc.path)
	}
	role := mustDo(t, b, s, operator, logical.ReadOperation, "roles/web", nil)
	assert.Equal(t, 100, role.Data["max_steps"], "the role is unchanged")
	sess := mustDo(t, b, s, agentA, logical.ReadOperation, "session/"+id, nil)
	assert.Equal(t, 0, sess.Data["steps_used"], "no credential was issued")
}
