package agent

import (
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

const mcpResource = "https://tools.example.com/mcp"

// An access token (format=access_token) is an RFC 9068 JWT access token
// for an MCP server's canonical URI, under every rule of a step credential.
func TestCredsAccessTokenFormat(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "mcp", map[string]interface{}{
		"scopes":    "call:tools/*,read:secrets/web/*",
		"audiences": "HTTPS://Tools.Example.COM:443/mcp,secrets-api",
	})
	id, start := startSession(t, b, s, agentA, map[string]interface{}{
		"role": "mcp", "scopes": "call:tools/search,call:tools/read_doc", "audiences": mcpResource,
	})
	assert.Equal(t, []string{mcpResource}, start.Data["audiences"], "the audience is kept in its canonical form")

	resp := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "call:tools/search", "audience": "https://TOOLS.example.com/mcp", "format": "access_token",
	})
	assert.Equal(t, "access_token", resp.Data["format"])
	assert.Equal(t, mcpResource, resp.Data["audience"])
	raw := resp.Data["token"].(string)
	keys := token.StaticKeys(jwksKeys(t, b, s)...)

	// A transaction-token verifier refuses it; an access-token one takes it.
	_, err := token.Verify(raw, keys, token.VerifyOptions{Issuer: "vault:agent", Audience: mcpResource})
	require.ErrorIs(t, err, token.ErrType)
	c, err := token.Verify(raw, keys, token.VerifyOptions{Issuer: "vault:agent", Audience: mcpResource, Formats: []token.Format{token.FormatAccessToken}})
	require.NoError(t, err)
	assert.Equal(t, token.FormatAccessToken, c.Format)
	assert.Equal(t, "entity-a", c.Subject)
	assert.Equal(t, c.Subject, c.ClientID)
	assert.Equal(t, "call:tools/search", c.Scope)
	assert.Equal(t, id, c.Txn)
	assert.Equal(t, 1, c.Depth)

	// Introspection knows it.
	in := mustDo(t, b, s, caller{}, logical.UpdateOperation, "introspect", map[string]interface{}{"token": raw})
	assert.Equal(t, true, in.Data["active"])
	assert.Equal(t, "at+jwt", in.Data["token_type"])
	assert.Equal(t, "access_token", in.Data["format"])
	assert.Equal(t, "entity-a", in.Data["client_id"])

	// It is a parent like any credential: a child narrows it, in either format.
	child := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "call:tools/search", "audience": mcpResource, "parent_token": raw, "actor": "sub-agent",
	})
	cc, err := token.Verify(child.Data["token"].(string), keys, token.VerifyOptions{Issuer: "vault:agent", Audience: mcpResource})
	require.NoError(t, err)
	assert.Equal(t, 2, cc.Depth)
	assert.Equal(t, c.ID, cc.Parent)
	assert.Empty(t, cc.ClientID, "a transaction token carries no client_id")

	// The timeline names the format of an access token.
	var formats []string
	for _, e := range timelineEvents(t, b, s, id) {
		if e["kind"] == "credential_issued" {
			f, _ := e["format"].(string)
			formats = append(formats, f)
		}
	}
	assert.Equal(t, []string{"access_token", ""}, formats)

	// Widening is the same violation in this format: another tool is
	// outside the intent, and kills the session under on_violation=revoke.
	_, err = issue(t, b, s, agentA, id, map[string]interface{}{
		"scopes": "call:tools/delete_doc", "audience": mcpResource, "format": "access_token",
	})
	require.Error(t, err)
	assert.Equal(t, "scope_outside_intent", refusalData(t, err)["violation"])
	st := mustDo(t, b, s, agentA, logical.ReadOperation, "session/"+id, nil)
	assert.Equal(t, "revoked", st.Data["state"])
	in = mustDo(t, b, s, caller{}, logical.UpdateOperation, "introspect", map[string]interface{}{"token": raw})
	assert.Equal(t, false, in.Data["active"])
}

func TestCredsFormatRefusedWhenUnknown(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	_, err := issue(t, b, s, agentA, id, map[string]interface{}{
		"scopes": "read:secrets/web/tls", "audience": "secrets-api", "format": "at+jwt",
	})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "format")
	data := refusalData(t, err)
	assert.Equal(t, "format", data["field"])
	st := mustDo(t, b, s, agentA, logical.ReadOperation, "session/"+id, nil)
	assert.Equal(t, 0, st.Data["steps_used"], "a bad format spends nothing")
	assert.Equal(t, "active", st.Data["state"])
}
