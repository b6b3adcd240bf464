//go:build acceptance

// Package acceptance holds the tests that run against a real Vault server
// built from source (scripts/build-vault.sh), with the plugin registered
// through the plugin catalog and mounted like a user would. `make test-acc`
// sets VAULT_BIN and PLUGIN_BIN; without them every test fails, loudly.
package acceptance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"
)

const (
	pluginName = "vault-plugin-secrets-agent"
	rootToken  = "root"
)

// pluginVersion is the version the plugin binary was built with.
func pluginVersion() string {
	if v := os.Getenv("PLUGIN_VERSION"); v != "" {
		return v
	}
	return "v0.1.0"
}

// storageMode says how a test Vault keeps its data.
type storageMode int

const (
	// devMode is `vault server -dev`: in-memory storage, unsealed, root token "root".
	devMode storageMode = iota
	// raftMode is a single-node server on integrated raft storage,
	// initialised and unsealed by the harness.
	raftMode
)

// vaultServer is one real Vault process started for a test.
type vaultServer struct {
	t         *testing.T
	bin       string
	dir       string
	addr      string
	token     string
	unsealKey string
	mode      storageMode
	cmd       *exec.Cmd
	log       *lockedBuffer
	client    *api.Client
	pluginSHA string
	done      chan struct{}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func requireEnvFile(t *testing.T, name string) string {
	t.Helper()
	p := os.Getenv(name)
	if p == "" {
		t.Fatalf("%s is not set: run the acceptance tests through `make test-acc`, which builds Vault and the plugin", name)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s=%s: %v", name, p, err)
	}
	return p
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startVault starts a Vault server with the plugin binary in its plugin
// directory (not yet registered) and returns once it is unsealed and
// answering. The server is stopped when the test ends.
func startVault(t *testing.T, mode storageMode) *vaultServer {
	t.Helper()
	vaultBin := requireEnvFile(t, "VAULT_BIN")
	pluginBin := requireEnvFile(t, "PLUGIN_BIN")

	dir := t.TempDir()
	pluginDir := filepath.Join(dir, "plugins")
	require.NoError(t, os.MkdirAll(pluginDir, 0o755))
	pluginBytes, err := os.ReadFile(pluginBin)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(pluginDir, pluginName), pluginBytes, 0o755))
	sum := sha256.Sum256(pluginBytes)

	v := &vaultServer{
		t:         t,
		bin:       vaultBin,
		dir:       dir,
		mode:      mode,
		pluginSHA: hex.EncodeToString(sum[:]),
	}

	port := freePort(t)
	v.addr = fmt.Sprintf("http://127.0.0.1:%d", port)
	var args []string
	switch mode {
	case devMode:
		cfg := fmt.Sprintf("plugin_directory = %q\n", pluginDir)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "config.hcl"), []byte(cfg), 0o600))
		args = []string{"server", "-dev", "-dev-root-token-id=" + rootToken,
			fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", port),
			"-config=" + filepath.Join(dir, "config.hcl")}
		v.token = rootToken
	case raftMode:
		clusterPort := freePort(t)
		dataDir := filepath.Join(dir, "raft")
		require.NoError(t, os.MkdirAll(dataDir, 0o700))
		cfg := fmt.Sprintf(`
plugin_directory = %q
disable_mlock    = true
api_addr         = "http://127.0.0.1:%d"
cluster_addr     = "http://127.0.0.1:%d"
storage "raft" {
  path    = %q
  node_id = "node1"
}
listener "tcp" {
  address         = "127.0.0.1:%d"
  cluster_address = "127.0.0.1:%d"
  tls_disable     = true
}
`, pluginDir, port, clusterPort, dataDir, port, clusterPort)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "config.hcl"), []byte(cfg), 0o600))
		args = []string{"server", "-config=" + filepath.Join(dir, "config.hcl")}
	}

	v.log = &lockedBuffer{}
	v.start(args)
	t.Cleanup(v.stop)

	cfg := api.DefaultConfig()
	cfg.Address = v.addr
	client, err := api.NewClient(cfg)
	require.NoError(t, err)
	v.client = client
	v.waitResponding()

	if mode == raftMode {
		init, err := client.Sys().Init(&api.InitRequest{SecretShares: 1, SecretThreshold: 1})
		require.NoError(t, err, "vault operator init")
		v.token = init.RootToken
		v.unsealKey = init.Keys[0]
		v.unseal()
	}
	client.SetToken(v.token)
	v.waitActive()
	return v
}

func (v *vaultServer) start(args []string) {
	t := v.t
	cmd := exec.Command(v.bin, args...)
	cmd.Env = append(os.Environ(), "VAULT_LOG_LEVEL=debug")
	cmd.Stdout = v.log
	cmd.Stderr = v.log
	require.NoError(t, cmd.Start())
	v.cmd = cmd
	v.done = make(chan struct{})
	go func(done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(v.done)
}

func (v *vaultServer) stop() {
	if v.cmd == nil || v.cmd.Process == nil {
		return
	}
	select {
	case <-v.done:
	default:
		_ = v.cmd.Process.Signal(os.Interrupt)
		select {
		case <-v.done:
		case <-time.After(15 * time.Second):
			_ = v.cmd.Process.Kill()
			<-v.done
		}
	}
	if v.t.Failed() {
		v.t.Logf("Vault log (last 8 KiB):\n%s", tail(v.log.String(), 8192))
	}
	v.cmd = nil
}

// restart stops Vault and starts it again on the same storage, unsealing it
// when it keeps its data on raft.
func (v *vaultServer) restart() {
	v.t.Helper()
	require.Equal(v.t, raftMode, v.mode, "only a raft-backed Vault keeps its data across a restart")
	args := v.cmd.Args[1:]
	v.stop()
	v.start(args)
	v.waitResponding()
	v.unseal()
	v.waitActive()
}

func (v *vaultServer) unseal() {
	v.t.Helper()
	status, err := v.client.Sys().Unseal(v.unsealKey)
	require.NoError(v.t, err, "vault operator unseal")
	require.False(v.t, status.Sealed)
}

func (v *vaultServer) waitResponding() {
	v.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-v.done:
			v.t.Fatalf("Vault exited while starting:\n%s", tail(v.log.String(), 8192))
		default:
		}
		if _, err := v.client.Sys().SealStatus(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			v.t.Fatalf("Vault did not answer within 60s:\n%s", tail(v.log.String(), 8192))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitActive waits until this node is the active node and serves requests.
func (v *vaultServer) waitActive() {
	v.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := v.client.Sys().Health()
		if err == nil && !resp.Sealed && !resp.Standby && resp.Initialized {
			if _, err := v.client.Sys().ListMounts(); err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			v.t.Fatalf("Vault did not become active within 60s (last error %v):\n%s", err, tail(v.log.String(), 8192))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// registerAndMount registers the plugin in the catalog with its sha256 and
// version and enables it at path, the way an administrator does, through
// the vault CLI.
func (v *vaultServer) registerAndMount(path string) {
	v.t.Helper()
	v.mustCLI("plugin", "register", "-sha256="+v.pluginSHA, "-version="+pluginVersion(),
		"-command="+pluginName, "secret", pluginName)
	v.mustCLI("secrets", "enable", "-path="+path, "-plugin-version="+pluginVersion(), pluginName)
}

// cli runs the vault CLI against this server as the given token and
// returns its combined output.
func (v *vaultServer) cliAs(token string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, v.bin, args...)
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+v.addr, "VAULT_TOKEN="+token, "VAULT_FORMAT=", "NO_COLOR=1")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.String(), err
}

func (v *vaultServer) cli(args ...string) (string, error) {
	return v.cliAs(v.token, args...)
}

func (v *vaultServer) mustCLI(args ...string) string {
	v.t.Helper()
	out, err := v.cli(args...)
	require.NoError(v.t, err, "vault %s:\n%s", strings.Join(args, " "), out)
	return out
}

// logs returns everything Vault (and the plugin, through it) logged so far.
func (v *vaultServer) logs() string { return v.log.String() }

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "...\n" + s[len(s)-n:]
}

var _ io.Writer = (*lockedBuffer)(nil)

func writeFile(path, content string) error {
	return os.WriteFile(path, []byte(content), 0o600)
}

// stopHard kills Vault with SIGKILL, as a crash would.
func (v *vaultServer) stopHard() {
	if v.cmd != nil && v.cmd.Process != nil {
		_ = v.cmd.Process.Kill()
		<-v.done
		v.cmd = nil
	}
}
