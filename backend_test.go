package agent

import (
	"context"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// testBackend returns a backend mounted at agent/ on in-memory storage.
func testBackend(t *testing.T) (*backend, logical.Storage) {
	t.Helper()
	s := &logical.InmemStorage{}
	return newTestBackendOn(t, s), s
}

// newTestBackendOn returns a backend on existing storage: a restarted
// plugin, or a node that just became active.
func newTestBackendOn(t *testing.T, s logical.Storage) *backend {
	t.Helper()
	conf := logical.TestBackendConfig()
	conf.StorageView = s
	conf.Logger = hclog.NewNullLogger()
	conf.System = &logical.StaticSystemView{
		DefaultLeaseTTLVal: 24 * time.Hour,
		MaxLeaseTTLVal:     32 * 24 * time.Hour,
	}
	raw, err := Factory(context.Background(), conf)
	require.NoError(t, err)
	b := raw.(*backend)
	t.Cleanup(func() { b.Cleanup(context.Background()) })
	return b
}

func TestFactoryReportsRunningVersion(t *testing.T) {
	b, _ := testBackend(t)
	require.Equal(t, Version, b.PluginVersion().Version)
	require.Equal(t, logical.TypeLogical, b.Type())
}
