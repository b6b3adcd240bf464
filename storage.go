package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

// Storage layout of a mount:
//
//	config                       engine configuration
//	roles/<name>                 a role
//	sessions/<id>                a session: state, intent, counters, violations
//	role-sessions/<role>/<id>    index of a role's active sessions (empty entries)
//	revocations                  the revocation list
//	keys/ring                    signing keys (seal-wrapped)
//
// Ending or revoking a session writes sessions/<id> and revocations and
// deletes its role-sessions entry: three operations, whatever the number of
// credentials the session issued.
const (
	rolesPrefix        = "roles/"
	sessionsPrefix     = "sessions/"
	roleSessionsPrefix = "role-sessions/"
	revocationsPath    = "revocations"
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

func getSession(ctx context.Context, s logical.Storage, id string) (*trust.Session, error) {
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

// finishSession persists a session that just left the active state: the
// session itself, its entry in the revocation list, and the removal from
// its role's index. It is the whole cost of killing a session.
func (b *backend) finishSession(ctx context.Context, s logical.Storage, sess *trust.Session, now time.Time) error {
	if err := putSession(ctx, s, sess); err != nil {
		return err
	}
	if sess.State != trust.StateExpired {
		if err := b.addRevocation(ctx, s, sess, now); err != nil {
			return err
		}
	}
	if err := s.Delete(ctx, roleSessionsPrefix+sess.Role+"/"+sess.ID); err != nil {
		return fmt.Errorf("deleting role index of session %s: %w", sess.ID, err)
	}
	b.rates.Forget(sess.ID)
	return nil
}

func (b *backend) addRevocation(ctx context.Context, s logical.Storage, sess *trust.Session, now time.Time) error {
	b.revocationsLock.Lock()
	defer b.revocationsLock.Unlock()
	var list trust.RevocationList
	if _, err := getJSON(ctx, s, revocationsPath, &list); err != nil {
		return err
	}
	if !list.Add(sess, now) {
		return nil
	}
	return putJSON(ctx, s, revocationsPath, &list)
}
