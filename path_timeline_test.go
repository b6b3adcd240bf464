package agent

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTimelineRecordsEveryDecision(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	tok := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/x", "audience": "secrets-api", "description": "look",
	}).Data["token"].(string)
	_, err := issue(t, b, s, agentA, id, map[string]interface{}{"scopes": "read:secrets//x", "audience": "secrets-api"})
	require.Error(t, err)
	mustDo(t, b, s, agentB, logical.UpdateOperation, "report", map[string]interface{}{
		"token": tok, "action": "read", "resource": "secrets/web/x", "outcome": "allowed",
	})
	_, err = issue(t, b, s, agentA, id, map[string]interface{}{"scopes": "write:secrets/web/x", "audience": "secrets-api"})
	require.Error(t, err)

	assert.Equal(t, []string{
		"session_start", "credential_issued", "request_refused", "report", "violation", "session_revoke",
	}, eventKinds(t, b, s, id))

	resp := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id+"/events", nil)
	events := resp.Data["events"].([]map[string]interface{})
	assert.Equal(t, "look", events[1]["description"])
	assert.Equal(t, []string{"read:secrets/web/x"}, events[1]["scopes"])
	assert.Equal(t, "scope_outside_intent", events[4]["violation"])
	assert.Equal(t, "violation: scope_outside_intent", events[5]["detail"])
	for i, e := range events {
		assert.EqualValues(t, i+1, e["seq"])
	}

	// after= reads only newer events.
	resp = mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id+"/events", map[string]interface{}{"after": 4})
	assert.Len(t, resp.Data["events"], 2)
}

func TestTimelineIsBounded(t *testing.T) {
	b, s := testBackend(t)
	ctx := context.Background()
	mustDo(t, b, s, agentA, logical.UpdateOperation, "config", map[string]interface{}{"max_events": 5})
	writeRole(t, b, s, "web", map[string]interface{}{"max_rate": 1000, "max_steps": 500})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	for i := 0; i < 10; i++ {
		mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	}
	resp := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id+"/events", nil)
	assert.Len(t, resp.Data["events"], 5)
	assert.EqualValues(t, 6, resp.Data["dropped"])
	assert.EqualValues(t, 11, resp.Data["last_seq"])

	// The periodic tidy deletes whole chunks of dropped events, off the
	// request path: after 200 events with 195 dropped, chunks 0-11
	// (events 1-192) go, and chunk 12 stays.
	for i := 10; i < 199; i++ {
		mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
	}
	require.NoError(t, b.tidy(ctx, s))
	keys, err := s.List(ctx, eventsPrefix+id+"/")
	require.NoError(t, err)
	assert.Equal(t, []string{"000000000012"}, keys, "chunks of dropped events are deleted")
	resp = mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id+"/events", nil)
	events := resp.Data["events"].([]map[string]interface{})
	require.Len(t, events, 5)
	assert.EqualValues(t, 196, events[0]["seq"])
	assert.EqualValues(t, 200, events[4]["seq"])
	assert.EqualValues(t, 195, resp.Data["dropped"])
	graph := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id+"/graph", nil)
	assert.Equal(t, true, graph.Data["partial"])
}

func TestGraphShowsTheAccessPath(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	root := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read,list:secrets/web/*", "audience": "secrets-api", "description": "survey",
	}).Data["token"].(string)
	mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/tls", "audience": "secrets-api", "parent_token": root, "actor": "fetcher",
	})
	resp := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id+"/graph", nil)
	assert.Equal(t, 2, resp.Data["credentials_shown"])
	dot := resp.Data["dot"].(string)
	assert.Contains(t, dot, "digraph")
	assert.Contains(t, dot, "session -> c0;")
	assert.Contains(t, dot, "c0 -> c1;")
	assert.Contains(t, dot, "actor: fetcher")
	mermaid := resp.Data["mermaid"].(string)
	assert.True(t, strings.HasPrefix(mermaid, "flowchart LR"))
	assert.Contains(t, mermaid, "c0 --> c1")
}
