package agent

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

func TestAccessorBoundSession(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	root := caller{accessor: "root-accessor"}
	id, _ := startSession(t, b, s, root, map[string]interface{}{"role": "web"})
	resp := mustDo(t, b, s, root, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	c, err := token.Verify(resp.Data["token"].(string), token.StaticKeys(jwksKeys(t, b, s)...), token.VerifyOptions{Issuer: "vault:agent", Audience: "secrets-api"})
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(c.Subject, "hmac-sha256:"), "sub is a salted hash: %s", c.Subject)
	assert.NotContains(t, c.Subject, "root-accessor", "never the raw accessor")
	sess := mustDo(t, b, s, root, logical.ReadOperation, "session/"+id, nil)
	assert.Equal(t, "active", sess.Data["state"])

	// The same accessor hashes the same on every request (the salt is
	// stored), and differently on another mount.
	b2, s2 := testBackend(t)
	writeRole(t, b2, s2, "web", nil)
	id2, _ := startSession(t, b2, s2, root, map[string]interface{}{"role": "web"})
	resp2 := mustDo(t, b2, s2, root, logical.UpdateOperation, "creds/"+id2, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	c2, err := token.Verify(resp2.Data["token"].(string), token.StaticKeys(jwksKeys(t, b2, s2)...), token.VerifyOptions{Issuer: "vault:agent", Audience: "secrets-api"})
	require.NoError(t, err)
	assert.NotEqual(t, c.Subject, c2.Subject)
}

// The salt is stored: a restarted plugin (a new backend on the same
// storage) names the same accessor the same way, so an accessor-bound
// session keeps its creator.
func TestAccessorBindingSurvivesARestart(t *testing.T) {
	s := &logical.InmemStorage{}
	b := newTestBackendOn(t, s)
	writeRole(t, b, s, "web", nil)
	root := caller{accessor: "root-accessor"}
	id, _ := startSession(t, b, s, root, map[string]interface{}{"role": "web"})

	restarted := newTestBackendOn(t, s)
	mustDo(t, restarted, s, root, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	assert.Equal(t, "active", mustDo(t, restarted, s, root, logical.ReadOperation, "session/"+id, nil).Data["state"])
	_, err := do(t, restarted, s, caller{accessor: "another-accessor"}, logical.ReadOperation, "session/"+id, nil)
	assert.Equal(t, "foreign_caller", refusalData(t, err)["reason"])
}

// readOnlyStorage refuses writes as a performance standby's does.
type readOnlyStorage struct{ logical.Storage }

func (readOnlyStorage) Put(context.Context, *logical.StorageEntry) error { return logical.ErrReadOnly }

// On a node that cannot write, before any salt exists, a caller without
// an entity reading a session is refused as another caller (403), not
// failed with a 500: no session can be bound to an accessor yet.
func TestNoSaltOnAReadOnlyNode(t *testing.T) {
	s := &logical.InmemStorage{}
	b := newTestBackendOn(t, s)
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"}) // entity-bound: no salt made
	standby := newTestBackendOn(t, s)
	_, err := do(t, standby, readOnlyStorage{s}, caller{accessor: "orphan"}, logical.ReadOperation, "session/"+id, nil)
	require.Error(t, err)
	assert.Equal(t, http.StatusForbidden, err.(*refused).Code())
	assert.Equal(t, "foreign_caller", refusalData(t, err)["reason"])
}
