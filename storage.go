package agent

import (
	"context"
	"fmt"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

// Storage layout of a mount:
//
//	config                       engine configuration (see config.go)
//	roles/<name>                 a role
//	sessions/<id>                a session: state, intent, counters, violations
//	role-sessions/<role>/<id>    index of a role's active sessions (empty entries)
//	session-index/<page>/<id>    every session, in start order, 256 a page
//	                             (empty entries; see session_index.go)
//	session-index-head           the index's counter and first page
//	events/<id>/<chunk>          a session's timeline, 16 events per entry,
//	                             compressed (see storage_timeline.go)
//	revocations/<minute>-<n>     the revocation list, bucketed by the minute its
//	                             sessions' last credentials expire (see revocations.go)
//	revocations/version          the list's version at its last prune
//	keys/ring                    signing keys (seal-wrapped; see keys.go)
//	ssf/streams/<id>             a Shared Signals stream (see storage_ssf.go)
//	ssf/auth/<id>                its push Authorization header (seal-wrapped)
//	ssf/outbox/<id>/<seq>-<sub>  one SET it has still to deliver
//	wal/...                      Vault's write-ahead log entries of closes in
//	                             progress (see wal.go)
//
// Issuing a step credential writes nothing on its request path: its event
// waits for the session's batch (see events_batch.go), and the session
// record is written once per reserved block of steps (see session.go). Ending or revoking a session writes a WAL entry, then
// sessions/<id>, then at once its closing event, one revocations bucket,
// the role-sessions deletion and, per Shared Signals stream, one outbox
// entry and the stream's counter, and deletes the WAL entry after
// answering: a constant number of operations, whatever the number of
// credentials the session issued.
const (
	configStoragePath  = "config"
	rolesPrefix        = "roles/"
	sessionsPrefix     = "sessions/"
	roleSessionsPrefix = "role-sessions/"
	eventsPrefix       = "events/"
	revocationsPrefix  = "revocations/"
	keysStoragePrefix  = "keys/"
	approvalsPrefix    = "approvals/"
	keyringPath        = keysStoragePrefix + "ring"
)

func getJSON(ctx context.Context, s logical.Storage, key string, v interface{}) (bool, error) {
	entry, err := s.Get(ctx, key)
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", key, err)
	}
	if entry == nil {
		return false, nil
	}
	if err := entry.DecodeJSON(v); err != nil {
		return false, fmt.Errorf("decoding %s: %w", key, err)
	}
	return true, nil
}

func putJSON(ctx context.Context, s logical.Storage, key string, v interface{}) error {
	entry, err := logical.StorageEntryJSON(key, v)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", key, err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("writing %s: %w", key, err)
	}
	return nil
}

func getRole(ctx context.Context, s logical.Storage, name string) (*trust.Role, error) {
	var r trust.Role
	ok, err := getJSON(ctx, s, rolesPrefix+name, &r)
	if err != nil || !ok {
		return nil, err
	}
	return &r, nil
}

// readSession reads a session record as stored: its counters are the
// reservations, not the live use (see session.go's getSession).
func readSession(ctx context.Context, s logical.Storage, id string) (*trust.Session, error) {
	var sess trust.Session
	ok, err := getJSON(ctx, s, sessionsPrefix+id, &sess)
	if err != nil || !ok {
		return nil, err
	}
	return &sess, nil
}

func putSession(ctx context.Context, s logical.Storage, sess *trust.Session) error {
	return putJSON(ctx, s, sessionsPrefix+sess.ID, sess)
}

// roleSessionKey is the role index entry of a session.
func roleSessionKey(role, id string) string {
	return roleSessionsPrefix + role + "/" + id
}

func listRoles(ctx context.Context, s logical.Storage) ([]string, error) {
	return s.List(ctx, rolesPrefix)
}

// updateRole applies change to role name (a role of the defaults when
// there is none yet) and stores the result, under the role's lock. When
// change fails, nothing is stored.
func (b *backend) updateRole(ctx context.Context, s logical.Storage, name string, change func(*trust.Role) error) error {
	lock := b.roleLock(name)
	lock.Lock()
	defer lock.Unlock()

	role := trust.DefaultRole()
	existing, err := getRole(ctx, s, name)
	if err != nil {
		return err
	}
	if existing != nil {
		role = *existing
	}
	if err := change(&role); err != nil {
		return err
	}
	b.forgetRole(name)
	// Its max_sessions may change: the count is loaded again when a start
	// needs it (sessions started while the role had none were not
	// counted).
	b.dropCount(name)
	return putJSON(ctx, s, rolesPrefix+name, &role)
}

// role returns role name, from memory once read: every session start
// needs it. Writes and deletions of the role (here, or on another node,
// see invalidate) drop the copy. The caller must not change the role.
func (b *backend) role(ctx context.Context, s logical.Storage, name string) (*trust.Role, error) {
	b.rolesMu.Lock()
	r, ok := b.roles[name]
	b.rolesMu.Unlock()
	if ok {
		return r, nil
	}
	r, err := getRole(ctx, s, name)
	if err != nil || r == nil {
		return r, err
	}
	b.rolesMu.Lock()
	if b.roles == nil {
		b.roles = map[string]*trust.Role{}
	}
	b.roles[name] = r
	b.rolesMu.Unlock()
	return r, nil
}

func (b *backend) forgetRole(name string) {
	b.rolesMu.Lock()
	delete(b.roles, name)
	b.rolesMu.Unlock()
}
