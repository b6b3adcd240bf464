package agent

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

// The active sessions of each role that has a max_sessions, as the
// active node counts them: session start checks the count without
// listing anything. A role's count is loaded once, the first time a start
// needs it, from the role's index of active sessions
// (role-sessions/<role>/); from then on starts, closes and renewals keep
// it exact, and a session whose lease ran out stops counting at once,
// whether or not the tidy has marked it expired yet. Its memory is
// bounded by the roles' max_sessions.

// activeSessions counts the active sessions of roles.
type activeSessions struct {
	mu    sync.Mutex
	roles map[string]map[string]time.Time // role -> session ID -> expires at
}

// takePlace counts sess among its role's active sessions if the role has
// fewer than limit at now, and reports whether it did: the count and the
// place are one step, so concurrent starts never exceed limit.
func (b *backend) takePlace(ctx context.Context, s logical.Storage, sess *trust.Session, limit int, now time.Time) (bool, error) {
	a := &b.active
	a.mu.Lock()
	defer a.mu.Unlock()
	live, err := b.activeOfLocked(ctx, s, sess.Role, now)
	if err != nil {
		return false, err
	}
	if len(live) >= limit {
		// Only at the limit is it worth looking for leases that ran out.
		for id, exp := range live {
			if !now.Before(exp) {
				delete(live, id)
			}
		}
	}
	if len(live) >= limit {
		return false, nil
	}
	live[sess.ID] = sess.ExpiresAt
	return true, nil
}

// activeOfLocked returns the active sessions of role, loading them the
// first time; b.active.mu must be held.
func (b *backend) activeOfLocked(ctx context.Context, s logical.Storage, role string, now time.Time) (map[string]time.Time, error) {
	a := &b.active
	if live, ok := a.roles[role]; ok {
		return live, nil
	}
	ids, err := s.List(ctx, roleSessionsPrefix+role+"/")
	if err != nil {
		return nil, err
	}
	live := make(map[string]time.Time, len(ids))
	for _, id := range ids {
		sess, err := b.getSession(ctx, s, id)
		if err != nil {
			return nil, err
		}
		if sess != nil && sess.Role == role && sess.StateAt(now) == trust.StateActive {
			live[id] = sess.ExpiresAt
		}
	}
	if a.roles == nil {
		a.roles = map[string]map[string]time.Time{}
	}
	a.roles[role] = live
	return live, nil
}

// countActive returns how many sessions of role are active at now.
func (b *backend) countActive(ctx context.Context, s logical.Storage, role string, now time.Time) (int, error) {
	b.active.mu.Lock()
	defer b.active.mu.Unlock()
	live, err := b.activeOfLocked(ctx, s, role, now)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, exp := range live {
		if now.Before(exp) {
			n++
		}
	}
	return n, nil
}

// countRenewal moves the end of a counted session's lease.
func (b *backend) countRenewal(sess *trust.Session) {
	b.active.mu.Lock()
	defer b.active.mu.Unlock()
	if live, ok := b.active.roles[sess.Role]; ok {
		// Even if a start at the limit just dropped it as run out: the
		// renewal came first.
		live[sess.ID] = sess.ExpiresAt
	}
}

// countClose stops counting a session that is no longer active.
func (b *backend) countClose(sess *trust.Session) {
	b.active.mu.Lock()
	defer b.active.mu.Unlock()
	delete(b.active.roles[sess.Role], sess.ID)
}

// dropCount forgets a role's count (the role is deleted); a role of the
// same name made later counts afresh.
func (b *backend) dropCount(role string) {
	b.active.mu.Lock()
	defer b.active.mu.Unlock()
	delete(b.active.roles, role)
}
