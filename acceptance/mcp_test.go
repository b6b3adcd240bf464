//go:build acceptance

package acceptance

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

// buildExample builds the example in examples/<name> (a module of its
// own) into the test's directory.
func buildExample(t *testing.T, name string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = filepath.Join("..", "examples", name)
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, "building %s: %s", name, msg)
	return out
}

// startMCPServer runs the mcpserver example against v until the test ends and
// returns its resource URI and its log.
func startMCPServer(t *testing.T, v *vaultServer, bin, reporterToken string) (string, *lockedBuffer) {
	t.Helper()
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin, "-listen", listen, "-vault-addr", v.addr)
	cmd.Env = append(os.Environ(), "VAULT_TOKEN="+reporterToken)
	logs := &lockedBuffer{}
	cmd.Stderr = logs
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-ready:
		require.Contains(t, line, "mcpserver: serving http://"+listen+"/mcp", "logs: %s", logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("the MCP server did not start: %s", logs.String())
	}
	return "http://" + listen + "/mcp", logs
}

// prepareMCP mounts the engine with its issuer at the URL it is served
// under, as MCP clients expect, and returns a token for the MCP server
// that may report uses.
func prepareMCP(t *testing.T, v *vaultServer) (reporter string) {
	t.Helper()
	v.registerAndMount("agent")
	v.mustCLI("write", "agent/config", "issuer="+v.addr+"/v1/agent")
	require.NoError(t, writeFile(v.dir+"/reporter.hcl", `path "agent/report" { capabilities = ["update"] }`))
	v.mustCLI("policy", "write", "mcp-server", v.dir+"/reporter.hcl")
	return v.newToken("mcp-server")
}

// mcpRole writes a role whose agents may call every tool of the server at
// resource, and returns an agent token.
func mcpRole(t *testing.T, v *vaultServer, resource string) (agent string) {
	t.Helper()
	v.mustCLI("write", "agent/roles/docs-agent", "scopes=call:tools/*", "audiences="+resource,
		"max_steps=20", "on_violation=revoke")
	require.NoError(t, writeFile(v.dir+"/agent.hcl", agentPolicy))
	v.mustCLI("policy", "write", "agent", v.dir+"/agent.hcl")
	return v.newToken("agent")
}

// TestMCPAgentAndServer: the mcpagent example drives the mcpserver
// example through the Go SDK's client over client.MCPTransport, against a
// real Vault: a credential per tool call, tools/list filtered, a tool
// outside the intent kills the session, and the access path shows the
// calls the server reported.
func TestMCPAgentAndServer(t *testing.T) {
	server, agentBin := buildExample(t, "mcpserver"), buildExample(t, "mcpagent")
	v := startVault(t, devMode)
	resource, serverLog := startMCPServer(t, v, server, prepareMCP(t, v))
	agent := mcpRole(t, v, resource)

	cmd := exec.Command(agentBin, "-server", resource)
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+v.addr, "VAULT_TOKEN="+agent)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "mcpagent:\n%s\nmcpserver:\n%s", out, serverLog.String())
	for _, want := range []string{
		"tools: read_doc, search",
		"found: q3-budget, q3-plan",
		"violation scope_outside_intent",
		"is revoked: it is closed and issues no more credentials",
		"session state: revoked (violation: scope_outside_intent)",
		"Every expected outcome happened.",
	} {
		assert.Contains(t, string(out), want)
	}

	listOut := v.mustCLI("list", "-format=json", "agent/sessions")
	var sessions []string
	require.NoError(t, json.Unmarshal([]byte(listOut), &sessions))
	require.Len(t, sessions, 1)
	graph := v.mustJSONAs(v.token, "read", "agent/sessions/"+sessions[0]+"/graph").Data
	mermaid := graph["mermaid"].(string)
	for _, want := range []string{
		"call:tools/search<br/>aud: " + resource, "used: call tools/search (allowed)",
		"used: call tools/read_doc (allowed)", "refused: scope_outside_intent",
	} {
		assert.Contains(t, mermaid, want)
	}
	// Every credential the transport took is an access token for the
	// server, and each call carried only its tool.
	events := v.mustJSONAs(v.token, "read", "agent/sessions/"+sessions[0]+"/events").Data["events"].([]interface{})
	var callScopes []string
	for _, e := range events {
		ev := e.(map[string]interface{})
		if ev["kind"] != "credential_issued" {
			continue
		}
		assert.Equal(t, "access_token", ev["format"])
		assert.Equal(t, resource, ev["audience"])
		if strings.HasPrefix(fmt.Sprint(ev["description"]), "mcp tools/call") {
			callScopes = append(callScopes, fmt.Sprint(ev["scopes"]))
		}
	}
	assert.Equal(t, []string{"[call:tools/search]", "[call:tools/read_doc]"}, callScopes)
}

// TestMCPServerRefusesAndReports: what the mcpserver example answers to
// credentials of a real engine, by the MCP authorization spec: 401 with
// the metadata's URL, 403 insufficient_scope naming the scope, reported to
// the engine as misuse, which revokes the session; and the metadata of both
// sides.
func TestMCPServerRefusesAndReports(t *testing.T) {
	serverBin := buildExample(t, "mcpserver")
	v := startVault(t, devMode)
	resource, serverLog := startMCPServer(t, v, serverBin, prepareMCP(t, v))
	agent := mcpRole(t, v, resource)
	base := strings.TrimSuffix(resource, "/mcp")
	metaURL := base + "/.well-known/oauth-protected-resource/mcp"

	// Metadata: the server names the engine, the engine describes itself.
	var prm map[string]interface{}
	getJSON(t, metaURL, &prm)
	assert.Equal(t, resource, prm["resource"])
	assert.Equal(t, []interface{}{v.addr + "/v1/agent"}, prm["authorization_servers"])
	for _, p := range []string{"oauth-authorization-server", "openid-configuration"} {
		var asm map[string]interface{}
		getJSON(t, v.addr+"/v1/agent/.well-known/"+p, &asm)
		assert.Equal(t, v.addr+"/v1/agent", asm["issuer"], p)
		assert.Equal(t, v.addr+"/v1/agent/jwks", asm["jwks_uri"], p)
	}

	id := v.mustJSONAs(agent, "write", "agent/session", "role=docs-agent", "purpose=acceptance",
		"scopes=call:tools/search", "audiences="+resource).Data["session_id"].(string)
	creds := func(args ...string) string {
		return v.mustJSONAs(agent, append([]string{"read", "agent/creds/" + id, "audience=" + resource}, args...)...).Data["token"].(string)
	}
	search := creds("scopes=call:tools/search", "format=access_token")
	txn := creds("scopes=call:tools/search")

	// The access token verifies offline by the RFC 9068 rules.
	c, err := token.Verify(search, token.StaticKeys(v.jwks()...), token.VerifyOptions{
		Issuer: v.addr + "/v1/agent", Audience: resource, Formats: []token.Format{token.FormatAccessToken},
	})
	require.NoError(t, err)
	assert.Equal(t, c.Subject, c.ClientID)

	call := func(tok, tool string) *http.Response {
		body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `","arguments":{"name":"q3-plan"}}}`
		req, _ := http.NewRequest(http.MethodPost, resource, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	r := call("", "search")
	assert.Equal(t, 401, r.StatusCode)
	assert.Equal(t, `Bearer resource_metadata="`+metaURL+`"`, r.Header.Get("WWW-Authenticate"))
	r = call(txn, "search")
	assert.Equal(t, 401, r.StatusCode, "a transaction token is not an access token")
	assert.Contains(t, r.Header.Get("WWW-Authenticate"), `error="invalid_token"`)

	// A credential for search, used for delete_doc: refused, reported,
	// and the engine revokes the session (on_violation=revoke).
	r = call(search, "delete_doc")
	assert.Equal(t, 403, r.StatusCode)
	assert.Equal(t, `Bearer error="insufficient_scope", scope="call:tools/delete_doc", resource_metadata="`+metaURL+
		`", error_description="the credential does not allow call on tools/delete_doc"`, r.Header.Get("WWW-Authenticate"))
	waitFor(t, "the reported misuse to revoke the session", func() bool {
		return v.sessionState(id)["state"] == "revoked"
	})
	st := v.sessionState(id)
	assert.Equal(t, "violation: reported_misuse", st["revoked_reason"])
	// The server learns of the kill by its blocking revocations query.
	waitFor(t, "the server to refuse the revoked session's credential", func() bool {
		r := call(search, "search")
		return r.StatusCode == 401 && strings.Contains(r.Header.Get("WWW-Authenticate"), "session is closed")
	})
	assert.Contains(t, serverLog.String(), "refused POST /mcp: 403")
}

func getJSON(t *testing.T, url string, into interface{}) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode, url)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(into), url)
}
