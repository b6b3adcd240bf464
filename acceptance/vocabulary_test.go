//go:build acceptance

package acceptance

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOpenAPIAndHelpShowTheVocabulary: Vault's generated OpenAPI document
// and `vault path-help` describe the engine with its one vocabulary.
func TestOpenAPIAndHelpShowTheVocabulary(t *testing.T) {
	v := startVault(t, devMode)
	v.registerAndMount("agent")

	out := v.mustCLI("read", "-format=json", "sys/internal/specs/openapi")
	var doc struct {
		Data struct {
			Paths      map[string]json.RawMessage `json:"paths"`
			Components struct {
				Schemas map[string]json.RawMessage `json:"schemas"`
			} `json:"components"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &doc))
	for _, p := range []string{
		"/agent/config", "/agent/roles/{name}", "/agent/session", "/agent/session/{session_id}",
		"/agent/sessions/{session_id}", "/agent/sessions/{session_id}/end", "/agent/creds/{session_id}",
		"/agent/revocations", "/agent/report",
	} {
		require.Contains(t, doc.Data.Paths, p)
	}
	schema := func(name string) string {
		t.Helper()
		s, ok := doc.Data.Components.Schemas[name]
		require.True(t, ok, "no schema %s", name)
		return string(s)
	}
	config := schema("AgentConfigureRequest")
	for _, f := range []string{`"session_max_ttl"`, `"step_max_ttl"`} {
		assert.Contains(t, config, f)
	}
	assert.NotContains(t, config, "max_session_ttl")
	assert.Contains(t, schema("AgentReadConfigurationResponse"), `"session_max_ttl"`)
	creds := schema("AgentIssueStepCredentialRequest")
	assert.Contains(t, creds, `"scopes"`)
	assert.Contains(t, creds, `"description"`)
	assert.NotContains(t, creds, `"scope"`)
	assert.Contains(t, schema("AgentIssueStepCredentialResponse"), `"steps_left"`)
	assert.Contains(t, schema("AgentReadRevocationsResponse"), `"complete"`)

	help := v.mustCLI("path-help", "agent/creds/x")
	assert.Contains(t, help, "scopes")
	assert.Contains(t, help, "description")
	help = v.mustCLI("path-help", "agent/config")
	assert.Contains(t, help, "session_max_ttl")
}

// TestMisspeltFieldsAreRefusedThroughTheCLI: a misspelt ceiling on a role
// or the config is refused, naming the field, and changes nothing.
func TestMisspeltFieldsAreRefusedThroughTheCLI(t *testing.T) {
	v := startVault(t, devMode)
	v.registerAndMount("agent")
	v.mustCLI("write", "agent/roles/web", "scopes=read:x/*", "audiences=api", "max_steps=20")

	for _, args := range [][]string{
		{"write", "agent/roles/web", "scopes=read:x/*", "audiences=api", "max_step=5"},
		{"write", "agent/config", "sesion_ttl=5m"},
	} {
		out, err := v.cli(args...)
		require.Error(t, err, out)
		assert.Contains(t, out, "Code: 400", out)
		bad := strings.SplitN(args[len(args)-1], "=", 2)[0]
		assert.Contains(t, out, "* "+bad+": unknown field", out)
		assert.NotContains(t, out, "Success!")
	}
	assert.Contains(t, v.mustCLI("read", "-field=max_steps", "agent/roles/web"), "20")
	assert.Contains(t, v.mustCLI("read", "-field=session_max_ttl", "agent/config"), "86400", "the default, 24h")
}
