//go:build acceptance

package acceptance

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

// buildRelease builds the plugin stamped with version into dir, named as
// make release names it, and returns the file's name and sha256.
func buildRelease(t *testing.T, dir, version string) (string, string) {
	t.Helper()
	name := pluginName + "_" + version
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false",
		"-ldflags", "-s -w -buildid= -X github.com/continuoustrust/vault-plugin-secrets-agent.Version="+version,
		"-o", filepath.Join(dir, name), "../cmd/"+pluginName)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	b, err := os.ReadFile(filepath.Join(dir, name))
	require.NoError(t, err)
	sum := sha256.Sum256(b)
	return name, hex.EncodeToString(sum[:])
}

func (v *vaultServer) runningVersion(path string) string {
	v.t.Helper()
	var mounts map[string]struct {
		RunningVersion string `json:"running_plugin_version"`
	}
	require.NoError(v.t, json.Unmarshal([]byte(v.mustCLI("secrets", "list", "-format=json")), &mounts))
	return mounts[path].RunningVersion
}

// TestUpgradeWithLiveSessions registers two releases of the plugin, runs
// sessions on the first, moves the mount to the second (tune and reload,
// Vault's own upgrade workflow) and back: live sessions stay active and
// issue within their exact budgets, ended sessions stay ended, credentials
// issued before verify after, and the revocation list is intact.
func TestUpgradeWithLiveSessions(t *testing.T) {
	v := startVault(t, raftMode)
	plugins := filepath.Join(v.dir, "plugins")
	oldName, oldSHA := buildRelease(t, plugins, "v0.1.0")
	newName, newSHA := buildRelease(t, plugins, "v0.2.0")
	require.NotEqual(t, oldSHA, newSHA)
	v.mustCLI("plugin", "register", "-sha256="+oldSHA, "-version=v0.1.0", "-command="+oldName, "secret", pluginName)
	v.mustCLI("plugin", "register", "-sha256="+newSHA, "-version=v0.2.0", "-command="+newName, "secret", pluginName)
	v.mustCLI("secrets", "enable", "-path=agent", "-plugin-version=v0.1.0", pluginName)
	require.Equal(t, "v0.1.0", v.runningVersion("agent/"))

	v.mustCLI("write", "agent/roles/deployer", "scopes=read:secrets/web/*", "audiences=secrets-api", "max_steps=100", "max_rate=100000")
	policyFile := v.dir + "/agent-policy.hcl"
	require.NoError(t, writeFile(policyFile, agentPolicy))
	v.mustCLI("policy", "write", "agent", policyFile)
	agent := v.newToken("agent")

	live := v.startSession(agent).Data["session_id"].(string)
	var tokens []string
	for i := 0; i < 3; i++ {
		tokens = append(tokens, v.mustJSONAs(agent, "read", "agent/creds/"+live, "scopes=read:secrets/web/x", "audience=secrets-api").Data["token"].(string))
	}
	ended := v.startSession(agent).Data["session_id"].(string)
	endedTok := v.mustJSONAs(agent, "read", "agent/creds/"+ended, "scopes=read:secrets/web/x", "audience=secrets-api").Data["token"].(string)
	v.mustCLI2(agent, "write", "-f", "agent/sessions/"+ended+"/end")
	_, revokedBefore := v.revocations()
	require.Contains(t, revokedBefore, ended)

	check := func(release string, stepsUsed int) {
		t.Helper()
		assert.Equal(t, release, v.runningVersion("agent/"))
		st := v.sessionState(live)
		assert.Equal(t, "active", st["state"])
		// The plugin stopped cleanly: the exact count, nothing forfeited.
		assert.EqualValues(t, stepsUsed, st["steps_used"])
		assert.Equal(t, "ended", v.sessionState(ended)["state"])
		_, revoked := v.revocations()
		assert.Contains(t, revoked, ended)
		keys := token.StaticKeys(v.jwks()...)
		for _, tok := range tokens {
			_, err := token.Verify(tok, keys, token.VerifyOptions{Issuer: "vault:agent", Audience: "secrets-api"})
			require.NoError(t, err)
			assert.Equal(t, true, v.introspect(tok)["active"])
		}
		assert.Equal(t, false, v.introspect(endedTok)["active"])
		issued, unaccounted, _ := accountFor(t, v, live)
		assert.Equal(t, stepsUsed, issued, "every step's event is in the timeline")
		assert.Zero(t, unaccounted)
	}

	// moveTo tunes the mount to version and reloads the plugin, as an
	// administrator does, then checks the sessions before and after one
	// more step.
	moveTo := func(version string, steps int) {
		v.mustCLI("secrets", "tune", "-plugin-version="+version, "agent/")
		v.mustCLI("plugin", "reload", "-plugin="+pluginName)
		waitFor(t, "the mount to run "+version, func() bool { return v.runningVersion("agent/") == version })
		check(version, steps)
		tokens = append(tokens, v.mustJSONAs(agent, "read", "agent/creds/"+live, "scopes=read:secrets/web/x", "audience=secrets-api").Data["token"].(string))
		check(version, steps+1)
	}
	moveTo("v0.2.0", 3) // the upgrade
	moveTo("v0.1.0", 4) // the downgrade to a release of the same storage version works too
}
