package micro

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	agent "github.com/continuoustrust/vault-plugin-secrets-agent"
)

// countingStorage counts the storage calls that reach it, and the bytes
// written.
type countingStorage struct {
	logical.Storage
	gets, puts, deletes, lists atomic.Int64
	putBytes                   atomic.Int64
}

func (c *countingStorage) Get(ctx context.Context, k string) (*logical.StorageEntry, error) {
	c.gets.Add(1)
	return c.Storage.Get(ctx, k)
}

func (c *countingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	c.puts.Add(1)
	c.putBytes.Add(int64(len(e.Key) + len(e.Value)))
	return c.Storage.Put(ctx, e)
}

func (c *countingStorage) Delete(ctx context.Context, k string) error {
	c.deletes.Add(1)
	return c.Storage.Delete(ctx, k)
}

func (c *countingStorage) List(ctx context.Context, prefix string) ([]string, error) {
	c.lists.Add(1)
	return c.Storage.List(ctx, prefix)
}

type counts struct{ gets, puts, deletes, lists, putBytes int64 }

func (c *countingStorage) snapshot() counts {
	return counts{c.gets.Load(), c.puts.Load(), c.deletes.Load(), c.lists.Load(), c.putBytes.Load()}
}

// keptBytes is the sum of every key and value held.
func keptBytes(tb testing.TB, s logical.Storage) int64 {
	tb.Helper()
	ctx := context.Background()
	keys, err := logical.CollectKeys(ctx, s)
	if err != nil {
		tb.Fatal(err)
	}
	var n int64
	for _, k := range keys {
		e, err := s.Get(ctx, k)
		if err != nil {
			tb.Fatal(err)
		}
		if e != nil {
			n += int64(len(k) + len(e.Value))
		}
	}
	return n
}

// engine is one mount of the engine on counted in-memory storage.
type engine struct {
	b logical.Backend
	s *countingStorage
}

func newEngine(tb testing.TB) *engine {
	tb.Helper()
	s := &countingStorage{Storage: &logical.InmemStorage{}}
	conf := logical.TestBackendConfig()
	conf.StorageView = s
	conf.Logger = hclog.NewNullLogger()
	conf.System = &logical.StaticSystemView{DefaultLeaseTTLVal: 24 * time.Hour, MaxLeaseTTLVal: 32 * 24 * time.Hour}
	b, err := agent.Factory(context.Background(), conf)
	if err != nil {
		tb.Fatal(err)
	}
	e := &engine{b: b, s: s}
	e.must(tb, logical.CreateOperation, "roles/bench", map[string]interface{}{
		"scopes": "read:bench/*", "audiences": "bench-api",
		"max_steps": 1000000, "max_rate": 100000, "on_violation": "deny", "violation_limit": 1000,
		"session_ttl": "2h", "session_max_ttl": "2h",
	})
	return e
}

func (e *engine) do(op logical.Operation, path string, data map[string]interface{}) (*logical.Response, error) {
	req := &logical.Request{
		Operation: op, Path: path, Data: data, Storage: e.s, MountPoint: "agent/",
		EntityID: "bench-entity", ClientTokenAccessor: "bench-accessor",
		Connection: &logical.Connection{RemoteAddr: "127.0.0.1"},
	}
	resp, err := e.b.HandleRequest(context.Background(), req)
	if err == nil && resp != nil && resp.IsError() {
		err = resp.Error()
	}
	if err == nil && resp != nil {
		if code, ok := resp.Data[logical.HTTPStatusCode].(int); ok && code >= 400 {
			var body struct{ Errors []string }
			_ = json.Unmarshal(resp.Data[logical.HTTPRawBody].([]byte), &body)
			err = fmt.Errorf("%d: %v", code, body.Errors)
		}
	}
	return resp, err
}

func (e *engine) must(tb testing.TB, op logical.Operation, path string, data map[string]interface{}) *logical.Response {
	tb.Helper()
	resp, err := e.do(op, path, data)
	if err != nil {
		tb.Fatalf("%s %s: %v", op, path, err)
	}
	return resp
}

func (e *engine) startSession(tb testing.TB) string {
	tb.Helper()
	resp := e.must(tb, logical.UpdateOperation, "session", map[string]interface{}{
		"role": "bench", "purpose": "micro-benchmark", "scopes": "read:bench/*", "audiences": "bench-api",
	})
	return resp.Data["session_id"].(string)
}

var credRequest = map[string]interface{}{"scopes": "read:bench/data", "audience": "bench-api", "description": "benchmark step"}

func (e *engine) issue(sid string) (string, error) {
	data := make(map[string]interface{}, len(credRequest))
	for k, v := range credRequest {
		data[k] = v
	}
	resp, err := e.do(logical.UpdateOperation, "creds/"+sid, data)
	if err != nil {
		return "", err
	}
	return resp.Data["token"].(string), nil
}
