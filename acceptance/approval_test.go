//go:build acceptance

package acceptance

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// approvalSetup mounts the engine with a role under on_out_of_intent=approval
// and returns an agent token.
func approvalSetup(t *testing.T, v *vaultServer, roleArgs ...string) string {
	t.Helper()
	v.registerAndMount("agent")
	args := append([]string{"write", "agent/roles/release", "scopes=read,write:docs/notes/*", "audiences=docs-api",
		"on_out_of_intent=approval", "max_pending_approvals=2"}, roleArgs...)
	v.mustCLI(args...)
	require.NoError(t, writeFile(v.dir+"/agent.hcl", agentPolicy))
	v.mustCLI("policy", "write", "agent", v.dir+"/agent.hcl")
	// An agent that is an approver too: the engine itself refuses to let
	// it decide its own session's approvals.
	require.NoError(t, writeFile(v.dir+"/approver.hcl", approverPolicy))
	v.mustCLI("policy", "write", "approver", v.dir+"/approver.hcl")
	out := v.mustCLI("token", "create", "-policy=agent", "-policy=approver", "-field=token")
	return strings.TrimSpace(out)
}

// approverPolicy is the README's approver policy.
const approverPolicy = `
path "agent/approvals"           { capabilities = ["list"] }
path "agent/approvals/+"         { capabilities = ["read"] }
path "agent/approvals/+/approve" { capabilities = ["update"] }
path "agent/approvals/+/deny"    { capabilities = ["update"] }
`

// ask asks for a step outside the intent and returns the approval ID of
// the 202 answer.
func ask(t *testing.T, v *vaultServer, agent, id, sc string) string {
	t.Helper()
	out, err := v.cliAs(agent, "write", "-format=json", "agent/creds/"+id, "scopes="+sc, "audience=docs-api", "description=publish the notes")
	require.NoError(t, err, out)
	var s cliSecret
	require.NoError(t, json.Unmarshal([]byte(out), &s), out)
	require.Equal(t, "pending", s.Data["state"], out)
	require.NotEmpty(t, s.Warnings)
	return s.Data["approval_id"].(string)
}

// TestStepUpApproval: against a real Vault, a step outside the intent but
// inside the role answers 202 with an approval; the creator cannot approve
// it; an administrator's approval widens the intent by exactly what was
// asked; a denial refuses; an approval expires; a session killed with
// approvals pending takes them with it.
func TestStepUpApproval(t *testing.T) {
	v := startVault(t, devMode)
	agent := approvalSetup(t, v, "approval_ttl=3s")
	id := v.startSessionAs(t, agent, "role=release", "purpose=publish", "scopes=read:docs/notes/*")

	aid := ask(t, v, agent, id, "write:docs/notes/v2")
	st := v.sessionState(id)
	assert.Equal(t, "active", st["state"])
	assert.EqualValues(t, 0, st["steps_used"], "nothing was issued")
	list := v.mustCLI("list", "-format=json", "agent/approvals")
	assert.Contains(t, list, aid)
	read := v.mustJSONAs(v.token, "read", "agent/approvals/"+aid).Data
	assert.Equal(t, "publish the notes", read["description"])
	assert.NotEmpty(t, read["timeline"])

	// The creator cannot approve its own step.
	out, err := v.cliAs(agent, "write", "-f", "agent/approvals/"+aid+"/approve")
	require.Error(t, err)
	assert.Contains(t, out, "Code: 403")
	assert.Contains(t, out, "the session's creator cannot decide its own approvals")

	// An administrator approves: exactly what was asked is granted.
	v.mustCLI("write", "agent/approvals/"+aid+"/approve", "ttl=5m", "comment=release day")
	cred := v.mustJSONAs(agent, "write", "agent/creds/"+id, "scopes=write:docs/notes/v2", "audience=docs-api")
	assert.Equal(t, []interface{}{"write:docs/notes/v2"}, cred.Data["scopes"])
	assert.Equal(t, "pending", func() string {
		a := ask(t, v, agent, id, "write:docs/notes/v3")
		return v.mustJSONAs(v.token, "read", "agent/approvals/"+a).Data["state"].(string)
	}(), "a neighbour of what was granted waits again")

	// A denial refuses it.
	deny := ask(t, v, agent, id, "write:docs/notes/v4")
	out, err = v.cli("write", "-f", "agent/approvals/"+deny+"/deny")
	require.Error(t, err, "a denial needs a reason")
	assert.Contains(t, out, "reason")
	v.mustCLI("write", "agent/approvals/"+deny+"/deny", "reason=not during the freeze")
	assert.Equal(t, "denied", v.mustJSONAs(v.token, "read", "agent/approvals/"+deny).Data["state"])

	// The other pending one (v3) expires.
	time.Sleep(3500 * time.Millisecond)
	states, _ := v.cli("list", "-format=json", "agent/approvals")
	assert.NotContains(t, states, deny, "no approval is pending any more: %s", states)
	r := v.client.NewRequest("LIST", "/v1/agent/approvals")
	r.Params.Set("state", "expired")
	resp, err := v.client.RawRequest(r)
	require.NoError(t, err)
	expired, err := api.ParseSecret(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Len(t, expired.Data["keys"], 1, "an expired approval is listed under state=expired")
	var kinds []string
	for _, e := range v.mustJSONAs(v.token, "read", "agent/sessions/"+id+"/events").Data["events"].([]interface{}) {
		kinds = append(kinds, e.(map[string]interface{})["kind"].(string))
	}
	assert.Contains(t, strings.Join(kinds, " "), "approval_requested approval_approved credential_issued approval_requested approval_requested approval_denied")
	mermaid := v.mustJSONAs(v.token, "read", "agent/sessions/"+id+"/graph").Data["mermaid"].(string)
	assert.Contains(t, mermaid, "approved by")
	assert.Contains(t, mermaid, "denied by")

	// A session killed with an approval pending takes it with it.
	id2 := v.startSessionAs(t, agent, "role=release", "purpose=publish", "scopes=read:docs/notes/*")
	last := ask(t, v, agent, id2, "write:docs/notes/v9")
	v.mustCLI("write", "agent/sessions/"+id2+"/revoke", "reason=drill")
	assert.Equal(t, "canceled", v.mustJSONAs(v.token, "read", "agent/approvals/"+last).Data["state"])
	out, err = v.cli("write", "-f", "agent/approvals/"+last+"/approve")
	require.Error(t, err)
	assert.Contains(t, out, "canceled")
}

func (v *vaultServer) startSessionAs(t *testing.T, tok string, args ...string) string {
	t.Helper()
	return v.mustJSONAs(tok, append([]string{"write", "agent/session"}, args...)...).Data["session_id"].(string)
}
