package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/continuoustrust/vault-plugin-secrets-agent/timeline"
	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

// secretTypeSession is the lease type of a session.
const secretTypeSession = "agent_session"

func secretSession(b *backend) *framework.Secret {
	return &framework.Secret{
		Type: secretTypeSession,
		Fields: map[string]*framework.FieldSchema{
			"session_id": {Type: framework.TypeString, Description: "The session ID."},
		},
		Renew:  b.secretSessionRenew,
		Revoke: b.secretSessionRevoke,
	}
}

// leaseSessionID reads the session ID from a lease's internal data. It
// survives Vault's JSON round trip because it is a plain string.
func leaseSessionID(req *logical.Request) (string, error) {
	if req.Secret == nil {
		return "", fmt.Errorf("the request carries no lease")
	}
	id, ok := req.Secret.InternalData["session_id"].(string)
	if !ok || id == "" {
		return "", fmt.Errorf("the lease carries no session_id")
	}
	return id, nil
}

func (b *backend) secretSessionRenew(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	id, err := leaseSessionID(req)
	if err != nil {
		return nil, err
	}
	cfg, err := b.loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	sess, unlock, err := b.lockSession(ctx, req.Storage, id)
	if isNoSession(err) {
		return logical.ErrorResponse("session %s no longer exists and cannot be renewed", id), nil
	}
	if err != nil {
		return nil, err
	}
	defer unlock()
	now := b.now()
	increment := sess.Intent.SessionTTL
	if req.Secret.Increment > 0 {
		increment = req.Secret.Increment
	}
	ttl, err := sess.Renew(increment, now)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	renewed := stage(sess, now, timeline.Event{Kind: timeline.SessionRenew, Detail: "lease renewed until " + sess.ExpiresAt.UTC().Format(time.RFC3339)})
	if err := b.save(ctx, req.Storage, cfg, sess, renewed, true); err != nil {
		return nil, err
	}
	b.countRenewal(sess)
	resp := &logical.Response{Secret: req.Secret}
	resp.Secret.TTL = ttl
	resp.Secret.MaxTTL = sess.Intent.SessionMaxTTL
	return resp, nil
}

// secretSessionRevoke runs when the session's lease is revoked: by `vault
// lease revoke`, a revoke-prefix, the revocation of the creator's token, or
// the lease's expiry. It closes the session (revoked, or expired when the
// lease ran out) unless it is already closed.
func (b *backend) secretSessionRevoke(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	id, err := leaseSessionID(req)
	if err != nil {
		return nil, err
	}
	cfg, err := b.loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	err = b.withSession(ctx, req.Storage, cfg, id, func(sess *trust.Session, now time.Time) (bool, error) {
		// Vault revokes an expired lease a moment after its expiry; a
		// revocation within a second of it is the expiry itself.
		if !now.Add(time.Second).Before(sess.ExpiresAt) {
			if sess.Expire(now) {
				b.Logger().Debug("session expired", "session_id", sess.ID)
				return true, nil
			}
			return false, nil
		}
		if sess.Revoke("lease revoked", now) {
			b.Logger().Debug("session revoked", "session_id", sess.ID, "reason", "lease revoked")
			return true, nil
		}
		return false, nil
	})
	if isNoSession(err) {
		return nil, nil // nothing left to close
	}
	return nil, err
}
