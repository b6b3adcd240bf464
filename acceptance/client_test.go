//go:build acceptance

package acceptance

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/client"
)

// TestGoClientStepsByReadThroughVault: with the README's agent policy the
// Go client takes a step by read (the request Vault sends the plugin with
// no existence check first) and derives by write, parent_token in the
// body; Vault's file audit device, which records each request's
// operation, says so. With a policy that grants update alone, the
// client's steps still work: Vault's permission denied to the read makes
// it take them by write.
func TestGoClientStepsByReadThroughVault(t *testing.T) {
	v := startVault(t, devMode)
	agentToken, _ := setupJourney(t, v)
	auditLog := filepath.Join(v.dir, "audit.log")
	v.mustCLI("audit", "enable", "file", "file_path="+auditLog)

	agentClient := func(tok string) *client.Client {
		c, err := v.client.Clone()
		require.NoError(t, err)
		c.SetToken(tok)
		return client.New(c, "agent")
	}
	ctx := context.Background()
	intent := client.Intent{Role: "deployer", Purpose: "rotate the web TLS certificate",
		Scopes: []string{"read,list:secrets/web/*"}, Audiences: []string{"secrets-api"}}

	sess, err := agentClient(agentToken).Start(ctx, intent)
	require.NoError(t, err)
	cred, err := sess.Step(ctx, client.StepRequest{Scopes: []string{"read,list:secrets/web/*"}, Audience: "secrets-api"})
	require.NoError(t, err)
	child, err := sess.Derive(ctx, cred, client.StepRequest{Scopes: []string{"read:secrets/web/tls"}, Audience: "secrets-api", Actor: "checker"})
	require.NoError(t, err)
	assert.Equal(t, 2, child.Depth)
	assert.Equal(t, []string{"read", "update"}, credsOperations(t, auditLog, sess.ID))

	// The same client against a policy without read on creds.
	updateOnly := `
path "agent/session"   { capabilities = ["update"] }
path "agent/creds/*"   { capabilities = ["update"] }
`
	policyFile := filepath.Join(v.dir, "update-only.hcl")
	require.NoError(t, writeFile(policyFile, updateOnly))
	v.mustCLI("policy", "write", "agent-update-only", policyFile)
	legacy := agentClient(v.newToken("agent-update-only"))
	sess2, err := legacy.Start(ctx, intent)
	require.NoError(t, err)
	for range 3 {
		_, err := sess2.Step(ctx, client.StepRequest{Scopes: []string{"read:secrets/web/tls"}, Audience: "secrets-api"})
		require.NoError(t, err)
	}
	// One read refused by Vault's policy (never reaching the engine), then
	// only writes.
	assert.Equal(t, []string{"read", "update", "update", "update"}, credsOperations(t, auditLog, sess2.ID))
	steps := v.mustJSONAs(v.token, "read", "agent/sessions/"+sess2.ID).Data["steps_used"]
	assert.EqualValues(t, 3, steps, "the refused read spent nothing")
}

// credsOperations lists, in order, the operations of the requests to
// agent/creds/<session> in Vault's file audit log.
func credsOperations(t *testing.T, auditLog, session string) []string {
	t.Helper()
	f, err := os.Open(auditLog)
	require.NoError(t, err)
	defer f.Close()
	var ops []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var entry struct {
			Type    string `json:"type"`
			Request struct {
				Operation string `json:"operation"`
				Path      string `json:"path"`
			} `json:"request"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &entry))
		if entry.Type == "request" && entry.Request.Path == "agent/creds/"+session {
			ops = append(ops, entry.Request.Operation)
		}
	}
	require.NoError(t, sc.Err())
	return ops
}
