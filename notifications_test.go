package agent

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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

// backendWithSender returns a backend that sends its notifications to
// sender.
func backendWithSender(t *testing.T, sender logical.EventSender) (*backend, logical.Storage) {
	t.Helper()
	s := &logical.InmemStorage{}
	return newTestBackendOn(t, s, func(c *logical.BackendConfig) { c.EventsSender = sender }), s
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
