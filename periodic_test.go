package agent

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

// TestTidyListsACloseThatLostItsWAL: a session whose record says revoked
// but whose close went no further (the plugin died as the record landed,
// before its WAL entry) is listed in revocations by the tidy.
func TestTidyListsACloseThatLostItsWAL(t *testing.T) {
	ctx := context.Background()
	b, s := testBackend(t)
	writeRole(t, b, s, "web", map[string]interface{}{"max_rate": 100000})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	sess, err := b.getSession(ctx, s, id)
	require.NoError(t, err)
	require.True(t, sess.Revoke("operator", time.Now()))
	sess.Reserve()
	require.NoError(t, putSession(ctx, s, sess))
	b.forget(id)

	require.NoError(t, b.tidy(ctx, s))
	requireCloseCompleted(t, b, s, "web", id)
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

	// Dangling index entries (a crash between a session's first writes)
	// are dropped by the next run's tidy, not by this one's: here a start
	// may be between its entries and its record.
	ghost := indexEntryKey(3, "ghost")
	require.NoError(t, s.Put(ctx, &logical.StorageEntry{Key: roleSessionsPrefix + "web/ghost", Value: []byte("{}")}))
	require.NoError(t, s.Put(ctx, &logical.StorageEntry{Key: ghost, Value: []byte("{}")}))
	require.NoError(t, b.tidy(ctx, s))
	entry, err := s.Get(ctx, ghost)
	require.NoError(t, err)
	assert.NotNil(t, entry, "an entry this run may be writing")

	restarted := newTestBackendOn(t, s)
	restarted.now = b.now
	require.NoError(t, restarted.tidy(ctx, s))
	idx, err := s.List(ctx, roleSessionsPrefix+"web/")
	require.NoError(t, err)
	assert.Empty(t, idx)
	entry, err = s.Get(ctx, ghost)
	require.NoError(t, err)
	assert.Nil(t, entry)
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
			s := &countingStorage{Storage: &logical.InmemStorage{}}
			b := newTestBackendOn(t, s, func(c *logical.BackendConfig) {
				sys := logical.TestSystemView()
				sys.ReplicationStateVal = tc.state
				sys.LocalMountVal = tc.local
				c.System = sys
			})
			assert.Equal(t, !tc.skip, b.ownsStorage())
			// A session whose lease ran out: the tidy would write it.
			old := trust.NewSession("old", "web", "x", trust.Intent{}, time.Second, time.Now().Add(-time.Hour))
			old.IndexSeq = 1
			require.NoError(t, putSession(context.Background(), s, old))
			require.NoError(t, s.Put(context.Background(), &logical.StorageEntry{Key: indexEntryKey(1, "old")}))
			require.NoError(t, putJSON(context.Background(), s, sessionIndexHeadKey, indexHead{Reserved: 2}))
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
