package agent

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/hashicorp/vault/sdk/helper/salt"
	"github.com/hashicorp/vault/sdk/logical"
)

// saltStoragePath holds the mount's salt for hashing token accessors.
const saltStoragePath = salt.DefaultLocation

// errNoCaller refuses a request that carries neither an entity ID nor a
// token accessor: nothing to bind a session to or to check against.
var errNoCaller = errors.New("the request carries neither an entity ID nor a token accessor to identify its caller")

// callerID is who is acting: the caller's entity ID, or, where there is
// none (a root or orphan token), an HMAC of its token accessor under the
// mount's salt, "hmac-sha256:<hex>", as Vault's audit devices write them.
// A raw accessor is a handle on a Vault token and goes into no credential,
// record or log.
func (b *backend) callerID(ctx context.Context, req *logical.Request) (string, error) {
	if req.EntityID != "" {
		return req.EntityID, nil
	}
	if req.ClientTokenAccessor == "" {
		return "", errNoCaller
	}
	s, err := b.salt(ctx, req.Storage)
	if err != nil {
		if errors.Is(err, logical.ErrReadOnly) {
			// A node that cannot write (a performance standby) before the
			// active node ever made the salt: no session can be bound to
			// an accessor yet, so this caller is nobody's creator.
			return "", errNoSalt
		}
		return "", err
	}
	return s.GetIdentifiedHMAC(req.ClientTokenAccessor), nil
}

// errNoSalt: the mount has no salt yet and this node cannot create one.
var errNoSalt = errors.New("no session is bound to a token accessor on this mount yet")

// salt returns the mount's salt, creating and storing it on first use.
func (b *backend) salt(ctx context.Context, s logical.Storage) (*salt.Salt, error) {
	return loadCached(&b.saltLock, &b.saltCache, func() (*salt.Salt, error) {
		created, err := salt.NewSalt(ctx, s, &salt.Config{HashFunc: salt.SHA256Hash, Location: saltStoragePath})
		if err != nil {
			return nil, fmt.Errorf("loading the mount's salt: %w", err)
		}
		return created, nil
	})
}

// forgetSalt drops the cached salt (another node wrote it).
func (b *backend) forgetSalt() {
	b.saltLock.Lock()
	b.saltCache = nil
	b.saltLock.Unlock()
}

// requestSource is the remote address a request came from, as Vault saw
// it ("" when it does not say).
func requestSource(req *logical.Request) string {
	if req.Connection != nil {
		return req.Connection.RemoteAddr
	}
	return ""
}

// remoteIP is the host part of a remote address.
func remoteIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
