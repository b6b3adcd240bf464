package agent

import (
	"testing"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFactoryReportsRunningVersion(t *testing.T) {
	b, _ := testBackend(t)
	require.Equal(t, Version, b.PluginVersion().Version)
	require.Equal(t, logical.TypeLogical, b.Type())
}

func TestUnauthenticatedPaths(t *testing.T) {
	b, _ := testBackend(t)
	for _, p := range []string{"jwks", "revocations", wellKnownOAuth, wellKnownOpenID, wellKnownSSF} {
		assert.Contains(t, b.PathsSpecial.Unauthenticated, p)
	}
	for _, p := range b.PathsSpecial.Unauthenticated {
		assert.NotContains(t, p, "*", "no prefix is opened wholesale")
	}
	assert.Contains(t, b.PathsSpecial.SealWrapStorage, "keys/")
	assert.Contains(t, b.PathsSpecial.SealWrapStorage, "ssf/auth/", "push streams' Authorization headers")
}

// Every operation that writes replicated storage (or spends a session's
// budget) is declared to run on the active node of the primary, so a
// performance standby or secondary forwards it before doing anything;
// reads and unauthenticated paths are served where they arrive.
func TestWriteOperationsForwardToTheActiveNode(t *testing.T) {
	b, _ := testBackend(t)
	forwarded := map[string][]logical.Operation{
		"config$": {logical.UpdateOperation, logical.DeleteOperation},
		"roles/" + framework.GenericNameRegex("name"): {logical.CreateOperation, logical.UpdateOperation, logical.DeleteOperation},
		"session$": {logical.UpdateOperation},
		"sessions/" + framework.GenericNameRegex("session_id") + "/end$":    {logical.UpdateOperation},
		"sessions/" + framework.GenericNameRegex("session_id") + "/revoke$": {logical.UpdateOperation},
		"creds/" + framework.GenericNameRegex("session_id") + "$":           {logical.ReadOperation, logical.UpdateOperation},
		"report$": {logical.UpdateOperation},
		"token$":  {logical.UpdateOperation},
		"approvals/" + framework.GenericNameRegex("approval_id") + "/approve$": {logical.UpdateOperation},
		"approvals/" + framework.GenericNameRegex("approval_id") + "/deny$":    {logical.UpdateOperation},
		"keys/rotate$":   {logical.UpdateOperation},
		"ssf/streams/?$": {logical.UpdateOperation},
		"ssf/streams/" + framework.GenericNameRegex("stream_id") + "$":        {logical.UpdateOperation, logical.DeleteOperation},
		"ssf/streams/" + framework.GenericNameRegex("stream_id") + "/verify$": {logical.UpdateOperation},
		"ssf/streams/" + framework.GenericNameRegex("stream_id") + "/poll$":   {logical.UpdateOperation},
	}
	seen := map[string]bool{}
	for _, p := range b.Paths {
		want := map[logical.Operation]bool{}
		for _, op := range forwarded[p.Pattern] {
			want[op] = true
		}
		if len(want) > 0 {
			seen[p.Pattern] = true
		}
		for op, h := range p.Operations {
			po := h.(*framework.PathOperation)
			assert.Equal(t, want[op], po.ForwardPerformanceStandby, "%s %s: ForwardPerformanceStandby", op, p.Pattern)
			assert.Equal(t, want[op], po.ForwardPerformanceSecondary, "%s %s: ForwardPerformanceSecondary", op, p.Pattern)
		}
	}
	assert.Len(t, seen, len(forwarded), "every listed path exists")
}
