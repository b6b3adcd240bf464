package client

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStepWaitsForApproval(t *testing.T) {
	f := newFakeVault(t)
	f.on(http.MethodPut, "agent/session", http.StatusOK, sessionReply())
	f.on(http.MethodGet, "agent/creds/"+testSession, http.StatusAccepted, map[string]interface{}{
		"data": map[string]interface{}{
			"approval_id": "appr-1", "session_id": testSession, "state": "pending", "scopes": []string{"read:secrets/db/creds"},
			"audience": "secrets-api", "expires_at": "2026-11-30T20:30:00Z", "detail": "outside the intent",
		},
		"warnings": []string{"retry once approved"},
	})
	sess, err := New(f.vaultClient(), "agent").Start(context.Background(), Intent{Role: "deployer"})
	require.NoError(t, err)
	_, err = sess.Step(context.Background(), StepRequest{Scopes: []string{"read:secrets/db/creds"}, Audience: "secrets-api"})
	require.ErrorIs(t, err, ErrApprovalPending)
	var pending *ApprovalPendingError
	require.True(t, errors.As(err, &pending))
	assert.Equal(t, "appr-1", pending.ID)
	assert.Equal(t, []string{"read:secrets/db/creds"}, pending.Scopes)

	// Pending, then granted.
	reads := 0
	f.hook(http.MethodGet, "agent/session/"+testSession, func(request) {
		reads++
		if reads == 2 {
			f.on(http.MethodGet, "agent/session/"+testSession, http.StatusOK, map[string]interface{}{"data": map[string]interface{}{
				"state": "active", "pending_approvals": []interface{}{},
				"grants": []interface{}{map[string]interface{}{"approval_id": "appr-1"}},
			}})
		}
	})
	f.on(http.MethodGet, "agent/session/"+testSession, http.StatusOK, map[string]interface{}{"data": map[string]interface{}{
		"state": "active", "pending_approvals": []interface{}{map[string]interface{}{"approval_id": "appr-1"}}, "grants": []interface{}{},
	}})
	require.NoError(t, sess.WaitForApproval(context.Background(), "appr-1", 10*time.Millisecond))

	// Neither pending nor granted: denied (or expired).
	require.ErrorIs(t, sess.WaitForApproval(context.Background(), "appr-2", 10*time.Millisecond), ErrApprovalDenied)
	// The context ends the wait.
	f.on(http.MethodGet, "agent/session/"+testSession, http.StatusOK, map[string]interface{}{"data": map[string]interface{}{
		"state": "active", "pending_approvals": []interface{}{map[string]interface{}{"approval_id": "appr-3"}},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, sess.WaitForApproval(ctx, "appr-3", 10*time.Millisecond), context.DeadlineExceeded)
}
