package client

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wait bounds how long a test waits for KeepAlive to return; it is a
// deadline against hangs, not a timing assertion.
const wait = 10 * time.Second

func keepAlive(ctx context.Context, s *Session) <-chan error {
	done := make(chan error, 1)
	go func() { done <- s.KeepAlive(ctx) }()
	return done
}

func waitFor(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(wait):
		t.Fatal("KeepAlive did not return")
		return nil
	}
}

func renewReply(leaseDuration int) map[string]interface{} {
	return map[string]interface{}{"lease_id": testLease, "renewable": true, "lease_duration": leaseDuration}
}

func TestKeepAliveRenewsUntilCancelled(t *testing.T) {
	f, s := started(t)
	f.on(http.MethodPut, "sys/leases/renew", http.StatusOK, renewReply(3600))
	renewed := make(chan request, 16)
	f.hook(http.MethodPut, "sys/leases/renew", func(r request) { renewed <- r })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := keepAlive(ctx, s)

	select {
	case r := <-renewed:
		assert.Equal(t, testToken, r.Token)
		assert.Equal(t, testLease, r.Body["lease_id"])
	case <-time.After(wait):
		t.Fatal("the lease was not renewed")
	}
	cancel()
	require.NoError(t, waitFor(t, done))
}

func TestKeepAliveCancelledBeforeStart(t *testing.T) {
	f, s := started(t)
	f.on(http.MethodPut, "sys/leases/renew", http.StatusOK, renewReply(3600))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, waitFor(t, keepAlive(ctx, s)))
}

func TestKeepAliveRenewalFails(t *testing.T) {
	f, s := started(t)
	// The session was ended: its lease cannot be renewed.
	f.onError(http.MethodPut, "sys/leases/renew", http.StatusBadRequest, "lease not found")
	err := waitFor(t, keepAlive(context.Background(), s))
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrBadRequest)
	assert.Contains(t, err.Error(), "lease not found")
	assert.Len(t, f.received(http.MethodPut, "sys/leases/renew"), 1)
}

func TestKeepAliveMaxTTLReached(t *testing.T) {
	f, s := started(t)
	// The renewal is capped at session_max_ttl: almost nothing is left.
	f.on(http.MethodPut, "sys/leases/renew", http.StatusOK, renewReply(1))
	require.NoError(t, waitFor(t, keepAlive(context.Background(), s)))
}
