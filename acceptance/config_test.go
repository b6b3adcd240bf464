//go:build acceptance

package acceptance

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPluginRegistersAndMounts walks an administrator's first steps on a
// dev server: register the plugin with its sha256 and version, enable it,
// see its running version, read its help, configure it.
func TestPluginRegistersAndMounts(t *testing.T) {
	v := startVault(t, devMode)
	v.registerAndMount("agent")

	// `vault secrets list -detailed` shows the plugin's running version.
	var mounts map[string]struct {
		Type           string `json:"type"`
		RunningVersion string `json:"running_plugin_version"`
		RunningSha256  string `json:"running_sha256"`
		PluginVersion  string `json:"plugin_version"`
	}
	out := v.mustCLI("secrets", "list", "-detailed", "-format=json")
	require.NoError(t, json.Unmarshal([]byte(out), &mounts), out)
	m, ok := mounts["agent/"]
	require.True(t, ok, "agent/ is not mounted: %s", out)
	assert.Equal(t, pluginName, m.Type)
	assert.Equal(t, pluginVersion(), m.RunningVersion)
	assert.Equal(t, pluginVersion(), m.PluginVersion)
	assert.Equal(t, v.pluginSHA, m.RunningSha256)

	table := v.mustCLI("secrets", "list", "-detailed")
	assert.Contains(t, table, pluginVersion())

	// path-help describes the path and every field.
	help := v.mustCLI("path-help", "agent/config")
	for _, want := range []string{"issuer", "signing_algorithm", "session_max_ttl", "step_max_ttl", "max_events", "EdDSA", "ES256"} {
		assert.Contains(t, help, want)
	}
	rootHelp := v.mustCLI("path-help", "agent/")
	assert.Contains(t, rootHelp, "continuous trust")

	testConfigLifecycle(t, v)
}

// TestConfigOnRaft runs the configuration lifecycle on integrated raft
// storage and checks it survives a restart of Vault.
func TestConfigOnRaft(t *testing.T) {
	v := startVault(t, raftMode)
	v.registerAndMount("agent")
	testConfigLifecycle(t, v)

	v.mustCLI("write", "agent/config", "issuer=https://vault.example.com/agent", "max_events=42")
	v.restart()
	cfg := readJSON(t, v, "agent/config")
	assert.Equal(t, "https://vault.example.com/agent", cfg["issuer"])
	assert.EqualValues(t, 42, cfg["max_events"])
}

func testConfigLifecycle(t *testing.T, v *vaultServer) {
	t.Helper()
	// Defaults, before any write.
	cfg := readJSON(t, v, "agent/config")
	assert.Equal(t, "vault:agent", cfg["issuer"])
	assert.Equal(t, "EdDSA", cfg["signing_algorithm"])
	assert.EqualValues(t, 86400, cfg["session_max_ttl"])
	assert.EqualValues(t, 3600, cfg["step_max_ttl"])
	assert.EqualValues(t, 1000, cfg["max_events"])

	// A write changes only what it names; durations take Vault's forms.
	v.mustCLI("write", "agent/config", "signing_algorithm=ES256", "step_max_ttl=10m")
	cfg = readJSON(t, v, "agent/config")
	assert.Equal(t, "ES256", cfg["signing_algorithm"])
	assert.EqualValues(t, 600, cfg["step_max_ttl"])
	assert.EqualValues(t, 86400, cfg["session_max_ttl"])

	// Bad values are refused with the field named, and change nothing.
	for _, tc := range []struct{ arg, field string }{
		{"signing_algorithm=RS256", "signing_algorithm"},
		{"step_max_ttl=-5", "step_max_ttl"},
		{"step_max_ttl=48h", "step_max_ttl"},
		{"max_events=0", "max_events"},
		{"session_max_ttl=soon", "session_max_ttl"},
	} {
		out, err := v.cli("write", "agent/config", tc.arg)
		require.Error(t, err, "vault write agent/config %s was accepted:\n%s", tc.arg, out)
		assert.Contains(t, out, "Code: 400", tc.arg)
		assert.Contains(t, out, tc.field, tc.arg)
	}
	after := readJSON(t, v, "agent/config")
	assert.Equal(t, cfg, after, "a refused write changed the config")

	// Delete resets to the defaults.
	v.mustCLI("delete", "agent/config")
	cfg = readJSON(t, v, "agent/config")
	assert.Equal(t, "EdDSA", cfg["signing_algorithm"])
	assert.EqualValues(t, 3600, cfg["step_max_ttl"])
}

// readJSON runs `vault read -format=json PATH` and returns its data.
func readJSON(t *testing.T, v *vaultServer, path string) map[string]interface{} {
	t.Helper()
	out := v.mustCLI("read", "-format=json", path)
	var secret struct {
		Data map[string]interface{} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &secret), out)
	return secret.Data
}
