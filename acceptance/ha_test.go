//go:build acceptance

package acceptance

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

// startCluster starts an n-node Vault cluster on integrated raft storage on
// loopback, each node with the plugin in its plugin directory. Node 0 is
// initialised and becomes the leader; the others join it.
func startCluster(t *testing.T, n int) []*vaultServer {
	t.Helper()
	vaultBin := requireEnvFile(t, "VAULT_BIN")
	pluginBin := requireEnvFile(t, "PLUGIN_BIN")
	pluginBytes, err := os.ReadFile(pluginBin)
	require.NoError(t, err)
	sum := sha256.Sum256(pluginBytes)

	nodes := make([]*vaultServer, n)
	ports := make([][2]int, n)
	for i := range nodes {
		ports[i] = [2]int{freePort(t), freePort(t)}
	}
	for i := range nodes {
		dir := t.TempDir()
		pluginDir := filepath.Join(dir, "plugins")
		require.NoError(t, os.MkdirAll(pluginDir, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(pluginDir, pluginName), pluginBytes, 0o755))
		dataDir := filepath.Join(dir, "raft")
		require.NoError(t, os.MkdirAll(dataDir, 0o700))
		join := ""
		if i > 0 {
			join = fmt.Sprintf("  retry_join {\n    leader_api_addr = \"http://127.0.0.1:%d\"\n  }\n", ports[0][0])
		}
		cfg := fmt.Sprintf(`
plugin_directory = %q
disable_mlock    = true
api_addr         = "http://127.0.0.1:%d"
cluster_addr     = "https://127.0.0.1:%d"
storage "raft" {
  path    = %q
  node_id = "node%d"
%s}
listener "tcp" {
  address         = "127.0.0.1:%d"
  cluster_address = "127.0.0.1:%d"
  tls_disable     = true
}
`, pluginDir, ports[i][0], ports[i][1], dataDir, i, join, ports[i][0], ports[i][1])
		require.NoError(t, os.WriteFile(filepath.Join(dir, "config.hcl"), []byte(cfg), 0o600))

		v := &vaultServer{t: t, bin: vaultBin, dir: dir, mode: raftMode, pluginSHA: hex.EncodeToString(sum[:]),
			addr: fmt.Sprintf("http://127.0.0.1:%d", ports[i][0]), log: &lockedBuffer{}}
		v.start([]string{"server", "-config=" + filepath.Join(dir, "config.hcl")})
		t.Cleanup(v.stop)
		c := api.DefaultConfig()
		c.Address = v.addr
		v.client, err = api.NewClient(c)
		require.NoError(t, err)
		v.waitResponding()
		nodes[i] = v
	}

	leader := nodes[0]
	init, err := leader.client.Sys().Init(&api.InitRequest{SecretShares: 1, SecretThreshold: 1})
	require.NoError(t, err)
	for _, v := range nodes {
		v.token, v.unsealKey = init.RootToken, init.Keys[0]
		v.client.SetToken(v.token)
	}
	leader.unseal()
	leader.waitActive()
	for _, v := range nodes[1:] {
		// A joining node is unsealed once it has joined.
		waitFor(t, "a node to join the cluster", func() bool {
			st, err := v.client.Sys().SealStatus()
			return err == nil && st.Initialized
		})
		_, err := v.client.Sys().Unseal(v.unsealKey)
		require.NoError(t, err)
		waitFor(t, "a joining node to unseal", func() bool {
			st, err := v.client.Sys().SealStatus()
			return err == nil && !st.Sealed
		})
	}
	// Joiners start as non-voters; autopilot promotes them once stable.
	waitForWithin(t, 60*time.Second, "every node to be a raft voter", func() bool {
		s, err := leader.client.Logical().Read("sys/storage/raft/configuration")
		if err != nil || s == nil {
			return false
		}
		cfg, _ := s.Data["config"].(map[string]interface{})
		servers, _ := cfg["servers"].([]interface{})
		voters := 0
		for _, srv := range servers {
			if m, _ := srv.(map[string]interface{}); m["voter"] == true {
				voters++
			}
		}
		return voters == n
	})
	for _, v := range nodes[1:] {
		waitFor(t, "a standby to be ready", func() bool {
			h, err := v.client.Sys().Health()
			return err == nil && !h.Sealed && h.Standby
		})
	}
	return nodes
}

// TestHAFailover runs a three-node raft cluster: sessions start on the
// leader, credentials are issued through standbys (forwarded to the
// leader), and the leader is killed under load. Afterwards no revoked
// session is active again, no budget was exceeded, and the new leader
// serves everything.
func TestHAFailover(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := nodes[0]
	agent1, _ := setupJourney(t, leader, "max_steps=100000", "max_rate=100000", "on_violation=deny", "violation_limit=1000")
	// Every event kept: the timeline is checked against the budget below.
	leader.mustCLI("write", "agent/config", "max_events=100000")

	// A session revoked before the failover.
	revokedID := leader.startSession(agent1).Data["session_id"].(string)
	revokedTok := leader.mustJSONAs(agent1, "read", "agent/creds/"+revokedID, "scopes=read:secrets/web/x", "audience=secrets-api").Data["token"].(string)
	leader.mustCLI("write", "agent/sessions/"+revokedID+"/revoke", "reason=before failover")

	// A session with a small budget, hammered through both standbys.
	const budget = 3000
	live := leader.startSession(agent1, fmt.Sprintf("max_steps=%d", budget)).Data["session_id"].(string)
	var mu sync.Mutex
	var tokens []string
	killed, afterKill := false, 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		via := nodes[1+w%2]
		c := via.agentClient(agent1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				s, err := c.Logical().Write("agent/creds/"+live, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
				if err == nil {
					mu.Lock()
					tokens = append(tokens, s.Data["token"].(string))
					if killed {
						afterKill++
					}
					mu.Unlock()
				} else if strings.Contains(err.Error(), "budget_exhausted") {
					return
				} else {
					time.Sleep(50 * time.Millisecond) // during the election
				}
			}
		}()
	}
	time.Sleep(700 * time.Millisecond)
	mu.Lock()
	killed = true
	mu.Unlock()
	leader.stopHard()
	t.Log("killed the leader")

	var newLeader *vaultServer
	waitFor(t, "a new leader", func() bool {
		for _, v := range nodes[1:] {
			if h, err := v.client.Sys().Health(); err == nil && !h.Standby && !h.Sealed {
				newLeader = v
				return true
			}
		}
		return false
	})
	time.Sleep(3 * time.Second) // load continues on the new leader
	close(stop)
	wg.Wait()

	st := newLeader.sessionState(live)
	used := int(st["steps_used"].(float64))
	t.Logf("received %d credentials through standbys, %d after the failover; steps_used=%d of %d", len(tokens), afterKill, used, budget)
	assert.Positive(t, afterKill, "issuance continued on the new leader")
	assert.LessOrEqual(t, len(tokens), budget, "the budget was never exceeded")
	assert.LessOrEqual(t, used, budget)
	assert.GreaterOrEqual(t, used, len(tokens), "every credential received was counted")
	// Every step has its event, or is counted by the new leader's
	// steps_unaccounted event (the old leader's batch died with it).
	issued, unaccounted, markers := accountFor(t, newLeader, live)
	t.Logf("timeline: %d credential_issued events, %d steps unaccounted in %d events", issued, unaccounted, markers)
	assert.Equal(t, used, issued+unaccounted, "every step has its event or is accounted for")
	assert.LessOrEqual(t, markers, 1)

	// The revoked session stays closed on the new leader.
	assert.Equal(t, "revoked", newLeader.sessionState(revokedID)["state"])
	assert.Equal(t, false, newLeader.introspect(revokedTok)["active"])
	_, revoked := newLeader.revocations()
	assert.Contains(t, revoked, revokedID)

	// The new leader serves everything: keys, credentials, introspection.
	keys := token.StaticKeys(newLeader.jwks()...)
	for _, tok := range tokens {
		_, err := token.Verify(tok, keys, token.VerifyOptions{Issuer: "vault:agent", Audience: "secrets-api"})
		require.NoError(t, err)
	}
	fresh := newLeader.startSession(agent1).Data["session_id"].(string)
	tok := newLeader.mustJSONAs(agent1, "read", "agent/creds/"+fresh, "scopes=read:secrets/web/x", "audience=secrets-api").Data["token"].(string)
	assert.Equal(t, true, newLeader.introspect(tok)["active"])
	newLeader.mustCLI2(agent1, "write", "-f", "agent/sessions/"+fresh+"/end")
	assert.Equal(t, false, newLeader.introspect(tok)["active"])
}
