//go:build acceptance

package acceptance

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// agentClient is a vault/api client acting with tok.
func (v *vaultServer) agentClient(tok string) *api.Client {
	v.t.Helper()
	c, err := v.client.Clone()
	require.NoError(v.t, err)
	c.SetToken(tok)
	// Vault's client retries a 429 by default; each retry would be
	// another rate_exceeded violation.
	c.SetMaxRetries(0)
	return c
}

// TestEveryViolationKindInBothModes drives each violation kind over HTTP
// against a real Vault, under on_violation=revoke (the first revokes the
// session) and on_violation=deny with violation_limit=1 (refused and
// counted; the second revokes it).
func TestEveryViolationKindInBothModes(t *testing.T) {
	v := startVault(t, devMode)
	agent1, _ := setupJourney(t, v)
	reporterPolicy := `path "agent/report" { capabilities = ["update"] }`
	require.NoError(t, writeFile(v.dir+"/rs.hcl", reporterPolicy))
	v.mustCLI("policy", "write", "resource-server", v.dir+"/rs.hcl")
	reporter := v.agentClient(v.newToken("resource-server"))
	c1 := v.agentClient(agent1)

	v.mustCLI("write", "agent/roles/strict", "scopes=read:secrets/web/*", "audiences=secrets-api",
		"on_violation=revoke", "max_depth=1", "max_rate=10", "max_steps=4")
	v.mustCLI("write", "agent/roles/lenient", "scopes=read:secrets/web/*", "audiences=secrets-api",
		"on_violation=deny", "violation_limit=1", "max_depth=1", "max_rate=10", "max_steps=4")

	step := map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"}
	type attempt func(id, tok string) error
	creds := func(c *api.Client, data map[string]interface{}) attempt {
		return func(id, tok string) error {
			d := map[string]interface{}{}
			for k, v := range data {
				d[k] = v
			}
			if d["parent_token"] == "$TOKEN" {
				d["parent_token"] = tok
			}
			_, err := c.Logical().Write("agent/creds/"+id, d)
			return err
		}
	}
	kinds := []struct {
		kind string
		code int
		try  attempt
		// spend prepares the session so that the attempt violates (for
		// budget and rate).
		spend int
		// session holds extra intent fields.
		session map[string]interface{}
	}{
		{"scope_outside_intent", 403, creds(c1, map[string]interface{}{"scopes": "list:secrets/web/x", "audience": "secrets-api"}), 0, nil},
		{"audience_outside_intent", 403, creds(c1, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "billing"}), 0, nil},
		{"depth_exceeded", 403, creds(c1, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api", "parent_token": "$TOKEN"}), 0, nil},
		{"bad_parent", 403, creds(c1, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api", "parent_token": "eyJhbGciOiJFZERTQSJ9.e30.AAAA"}), 0, nil},
		{"rate_exceeded", 429, creds(c1, step), 1, map[string]interface{}{"max_rate": 2}},
		{"budget_exhausted", 403, creds(c1, step), 3, nil},
		{"reported_misuse", 0, func(id, tok string) error {
			s, err := reporter.Logical().Write("agent/report", map[string]interface{}{
				"token": tok, "action": "delete", "resource": "secrets/web/x", "outcome": "denied",
			})
			if err == nil && s.Data["violation"] != "reported_misuse" {
				return fmt.Errorf("report answered %v", s.Data)
			}
			return err
		}, 0, nil},
	}
	for _, mode := range []string{"strict", "lenient"} {
		for _, k := range kinds {
			t.Run(mode+"/"+k.kind, func(t *testing.T) {
				intent := map[string]interface{}{"role": mode, "purpose": "violation " + k.kind}
				for f, val := range k.session {
					intent[f] = val
				}
				start, err := c1.Logical().Write("agent/session", intent)
				require.NoError(t, err)
				id := start.Data["session_id"].(string)
				first, err := c1.Logical().Write("agent/creds/"+id, step)
				require.NoError(t, err)
				tok := first.Data["token"].(string)
				for i := 0; i < k.spend; i++ {
					_, err := c1.Logical().Write("agent/creds/"+id, step)
					require.NoError(t, err)
				}

				err = k.try(id, tok)
				if k.code != 0 {
					require.Error(t, err)
					re, ok := err.(*api.ResponseError)
					require.True(t, ok, "%T %v", err, err)
					assert.Equal(t, k.code, re.StatusCode)
					assert.Contains(t, err.Error(), "violation "+k.kind)
				} else {
					require.NoError(t, err)
				}
				st := v.sessionState(id)
				assert.EqualValues(t, 1, st["violation_count"])
				if mode == "strict" {
					assert.Equal(t, "revoked", st["state"])
					assert.Equal(t, "violation: "+k.kind, st["revoked_reason"])
					assert.Equal(t, false, v.introspect(tok)["active"], "every credential is revoked with the session")
					_, revoked := v.revocations()
					assert.Contains(t, revoked, id)
					return
				}
				assert.Equal(t, "active", st["state"], "deny tolerates violation_limit=1")
				assert.Equal(t, true, v.introspect(tok)["active"])
				// The second violation passes the limit.
				err = k.try(id, tok)
				if k.code != 0 {
					require.Error(t, err)
				}
				st = v.sessionState(id)
				assert.Equal(t, "revoked", st["state"])
				assert.Equal(t, false, v.introspect(tok)["active"])
			})
		}
	}
}

// TestTimelineGraphAndRoleDeletion: the timeline tells what happened, the
// graph draws it (and Graphviz renders it), deleting a role revokes its live
// sessions, and an in-scope report is recorded.
func TestTimelineGraphAndRoleDeletion(t *testing.T) {
	dot, err := exec.LookPath("dot")
	require.NoError(t, err, "Graphviz's dot is needed: apt-get install graphviz (.ci/run installs it)")

	v := startVault(t, devMode)
	agent1, _ := setupJourney(t, v)
	rsPolicy := `path "agent/report" { capabilities = ["update"] }
path "agent/introspect" { capabilities = ["update"] }`
	require.NoError(t, writeFile(v.dir+"/rs.hcl", rsPolicy))
	v.mustCLI("policy", "write", "resource-server", v.dir+"/rs.hcl")
	rsToken := v.newToken("resource-server")

	id := v.startSession(agent1).Data["session_id"].(string)
	root := v.mustJSONAs(agent1, "read", "agent/creds/"+id, "scopes=read,list:secrets/web/*", "audience=secrets-api", "description=survey").Data["token"].(string)
	child := v.mustJSONAs(agent1, "write", "agent/creds/"+id, "scopes=read:secrets/web/tls", "audience=docs-api",
		"parent_token="+root, "actor=summariser", "description=read the cert").Data["token"].(string)
	rep := v.mustJSONAs(rsToken, "write", "agent/report", "token="+child, "action=read", "resource=secrets/web/tls", "outcome=allowed")
	assert.Equal(t, "", rep.Data["violation"])

	// A resource-server token cannot start sessions.
	_, out, err := v.jsonAs(rsToken, "write", "agent/session", "role=deployer", "purpose=x")
	require.Error(t, err)
	assert.Contains(t, out, "permission denied")

	// Deleting the role revokes its live session.
	out = v.mustCLI("delete", "agent/roles/deployer")
	assert.Contains(t, out, "1 live session was revoked")
	st := v.sessionState(id)
	assert.Equal(t, "revoked", st["state"])
	assert.Equal(t, "role deleted", st["revoked_reason"])

	events := v.mustJSONAs(v.token, "read", "agent/sessions/"+id+"/events").Data["events"].([]interface{})
	var kinds []string
	for _, e := range events {
		kinds = append(kinds, e.(map[string]interface{})["kind"].(string))
	}
	assert.Equal(t, []string{"session_start", "credential_issued", "credential_issued", "report", "session_revoke"}, kinds)

	graph := v.mustJSONAs(v.token, "read", "agent/sessions/"+id+"/graph").Data
	assert.EqualValues(t, 2, graph["credentials_shown"])
	mermaid := graph["mermaid"].(string)
	assert.Contains(t, mermaid, "c0 --> c1")

	cmd := exec.Command(dot, "-Tsvg")
	cmd.Stdin = strings.NewReader(graph["dot"].(string))
	var svg, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &svg, &stderr
	require.NoError(t, cmd.Run(), "dot -Tsvg: %s\n%s", stderr.String(), graph["dot"])
	assert.Contains(t, svg.String(), "<svg")
	assert.Contains(t, svg.String(), "summariser")
	assert.Contains(t, svg.String(), "read:secrets/web/tls")
}
