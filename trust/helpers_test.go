package trust

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// t0 is the fixed "now" every test starts from; nothing reads the clock.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

const creator = "entity-a"

func ptr[T any](v T) *T { return &v }

// testRole is a valid role with two scopes and two audiences and every
// other field at its default.
func testRole() Role {
	r := DefaultRole()
	r.Scopes = []string{"read,list:secrets/web/*", "deploy:k8s/+/deployments/web"}
	r.Audiences = []string{"vault", "k8s"}
	return r
}

// newSession negotiates req against testRole (after mutate, if any) and
// starts a session at t0 with the negotiated TTL.
func newSession(t *testing.T, mutate func(*Role), req IntentRequest) *Session {
	t.Helper()
	r := testRole()
	if mutate != nil {
		mutate(&r)
	}
	require.NoError(t, r.Validate(Limits{}))
	if req.Purpose == "" {
		req.Purpose = "deploy the web frontend"
	}
	in, ttl, err := Negotiate("web", r, req, 0)
	require.NoError(t, err)
	return NewSession("sess-1", "web", creator, in, ttl, t0)
}

// requireFieldError asserts that err is a *FieldError (and nothing else)
// naming field, and returns it.
func requireFieldError(t *testing.T, err error, field string) *FieldError {
	t.Helper()
	require.Error(t, err)
	var fe *FieldError
	require.True(t, errors.As(err, &fe), "want *FieldError for %s, got %T: %v", field, err, err)
	require.Equal(t, field, fe.Field, "error: %v", err)
	require.True(t, strings.HasPrefix(err.Error(), field+": "), "message %q should start with the field", err.Error())
	var we *WiderError
	require.False(t, errors.As(err, &we), "a malformed value is not a wider intent")
	var v *Violation
	require.False(t, errors.As(err, &v), "a malformed value is not a violation")
	return fe
}

// requireWiderError asserts that err is a *WiderError naming field.
func requireWiderError(t *testing.T, err error, field string) *WiderError {
	t.Helper()
	require.Error(t, err)
	var we *WiderError
	require.True(t, errors.As(err, &we), "want *WiderError for %s, got %T: %v", field, err, err)
	require.Equal(t, field, we.Field, "error: %v", err)
	require.True(t, strings.HasPrefix(err.Error(), field+": "), "message %q should start with the field", err.Error())
	var fe *FieldError
	require.False(t, errors.As(err, &fe))
	return we
}

// requireViolation asserts that err is a *Violation of kind at now.
func requireViolation(t *testing.T, err error, kind ViolationKind, now time.Time) *Violation {
	t.Helper()
	require.Error(t, err)
	var v *Violation
	require.True(t, errors.As(err, &v), "want *Violation %s, got %T: %v", kind, err, err)
	require.Equal(t, kind, v.Kind, "error: %v", err)
	require.True(t, v.Time.Equal(now), "violation time %s, want %s", v.Time, now)
	require.True(t, strings.HasPrefix(err.Error(), "violation "+string(kind)+": "), "message %q should name the kind first", err.Error())
	return v
}

// countingLimiter is a RateLimiter that records how often it was asked
// and answers allow.
type countingLimiter struct {
	mu    sync.Mutex
	calls int
	allow bool
}

func (c *countingLimiter) AllowN(time.Time, int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	return c.allow
}

func (c *countingLimiter) Calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

func asFieldError(err error, fe **FieldError) bool { return errors.As(err, fe) }
func asWiderError(err error, we **WiderError) bool { return errors.As(err, we) }
