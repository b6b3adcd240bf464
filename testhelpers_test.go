package agent

// The one set of helpers the root package's tests share: backends, callers
// and requests, readers of what a request left, and storage wrappers that
// count or fail writes.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/ssf"
	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

// testBackend returns a backend mounted at agent/ on in-memory storage.
func testBackend(t testing.TB) (*backend, logical.Storage) {
	t.Helper()
	s := &logical.InmemStorage{}
	return newTestBackendOn(t, s), s
}

// newTestBackendOn returns a backend on existing storage: a restarted
// plugin, or a node that just became active. configure, if given, changes
// the configuration Vault would pass (its system view, its event sender).
func newTestBackendOn(t testing.TB, s logical.Storage, configure ...func(*logical.BackendConfig)) *backend {
	t.Helper()
	conf := logical.TestBackendConfig()
	conf.StorageView = s
	conf.Logger = hclog.NewNullLogger()
	conf.System = &logical.StaticSystemView{
		DefaultLeaseTTLVal: 24 * time.Hour,
		MaxLeaseTTLVal:     32 * 24 * time.Hour,
	}
	for _, c := range configure {
		c(conf)
	}
	raw, err := Factory(context.Background(), conf)
	require.NoError(t, err)
	b := raw.(*backend)
	t.Cleanup(func() { b.Cleanup(context.Background()) })
	// As Vault does when the mount starts on the active node.
	require.NoError(t, b.Initialize(context.Background(), &logical.InitializationRequest{Storage: s}))
	return b
}

// caller is who sends a request: an entity, or a token without one.
type caller struct {
	entity   string
	accessor string
}

var (
	agentA = caller{entity: "entity-a", accessor: "acc-a"}
	agentB = caller{entity: "entity-b", accessor: "acc-b"}
	// operator is an administrator (policies are Vault's business, not
	// the backend's: any caller reaches every path here).
	operator = caller{entity: "entity-operator", accessor: "acc-operator"}
)

// do sends a request as c and returns the response and error, with error
// responses turned into errors that carry their message.
func do(t testing.TB, b *backend, s logical.Storage, c caller, op logical.Operation, path string, data map[string]interface{}) (*logical.Response, error) {
	t.Helper()
	req := &logical.Request{
		Operation:           op,
		Path:                path,
		Data:                data,
		Storage:             s,
		MountPoint:          "agent/",
		EntityID:            c.entity,
		ClientTokenAccessor: c.accessor,
		Connection:          &logical.Connection{RemoteAddr: "192.0.2.10"},
	}
	resp, err := b.HandleRequest(context.Background(), req)
	if err == nil && resp != nil && resp.IsError() {
		err = resp.Error()
	}
	if err == nil && resp != nil {
		// A refusal: turn it back into an error with its status and data.
		if code, ok := resp.Data[logical.HTTPStatusCode].(int); ok && code >= 400 {
			var body struct {
				Errors []string
				Data   map[string]interface{}
			}
			require.NoError(t, json.Unmarshal(resp.Data[logical.HTTPRawBody].([]byte), &body))
			require.Len(t, body.Errors, 1)
			err = &refused{code: code, msg: body.Errors[0], data: body.Data}
		}
	}
	return resp, err
}

func mustDo(t testing.TB, b *backend, s logical.Storage, c caller, op logical.Operation, path string, data map[string]interface{}) *logical.Response {
	t.Helper()
	resp, err := do(t, b, s, c, op, path, data)
	require.NoError(t, err, "%s %s", op, path)
	return resp
}

// refused is a refusal as a client sees it: the status, the message and
// the data. It is a logical.HTTPCodedError.
type refused struct {
	code int
	msg  string
	data map[string]interface{}
}

func (r *refused) Error() string { return r.msg }
func (r *refused) Code() int     { return r.code }

// refusalData returns the data of a refusal error from do.
func refusalData(t testing.TB, err error) map[string]interface{} {
	t.Helper()
	r, ok := err.(*refused)
	require.True(t, ok, "not a refusal: %v", err)
	return r.data
}

// internalError reports whether an answer from do is the engine's own
// failure (a 5xx, or an error that is neither coded nor an error
// response) rather than a success or a refusal of the request (a 4xx).
func internalError(resp *logical.Response, err error) bool {
	if err == nil {
		return false
	}
	if coded, ok := err.(logical.HTTPCodedError); ok {
		return coded.Code() >= 500
	}
	return resp == nil || !resp.IsError()
}

// writeRole creates a role with the given fields on top of sensible ones.
func writeRole(t testing.TB, b *backend, s logical.Storage, name string, fields map[string]interface{}) {
	t.Helper()
	data := map[string]interface{}{
		"scopes":    "read,list:secrets/web/*,write:secrets/web/tmp/*",
		"audiences": "secrets-api,docs-api",
	}
	for k, v := range fields {
		data[k] = v
	}
	mustDo(t, b, s, agentA, logical.CreateOperation, "roles/"+name, data)
}

// startSession starts a session as c and returns its ID and the response.
func startSession(t testing.TB, b *backend, s logical.Storage, c caller, data map[string]interface{}) (string, *logical.Response) {
	t.Helper()
	if _, ok := data["purpose"]; !ok {
		data["purpose"] = "unit test"
	}
	resp := mustDo(t, b, s, c, logical.UpdateOperation, "session", data)
	require.NotNil(t, resp.Secret)
	return resp.Data["session_id"].(string), resp
}

func issue(t testing.TB, b *backend, s logical.Storage, c caller, id string, data map[string]interface{}) (*logical.Response, error) {
	t.Helper()
	return do(t, b, s, c, logical.UpdateOperation, "creds/"+id, data)
}

// jwksKeys fetches the mount's jwks the way a resource server would.
func jwksKeys(t testing.TB, b *backend, s logical.Storage) []token.PublicKey {
	t.Helper()
	resp := mustDo(t, b, s, caller{}, logical.ReadOperation, "jwks", nil)
	require.Equal(t, "application/json", resp.Data[logical.HTTPContentType])
	keys, err := token.ParseJWKS(resp.Data[logical.HTTPRawBody].([]byte))
	require.NoError(t, err)
	return keys
}

// eventKinds reads a session's timeline and returns the kinds in order.
func eventKinds(t testing.TB, b *backend, s logical.Storage, id string) []string {
	t.Helper()
	var kinds []string
	for _, e := range timelineEvents(t, b, s, id) {
		kinds = append(kinds, e["kind"].(string))
	}
	return kinds
}

// timelineEvents reads a session's whole timeline.
func timelineEvents(t testing.TB, b *backend, s logical.Storage, id string) []map[string]interface{} {
	t.Helper()
	resp := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id+"/events", nil)
	return resp.Data["events"].([]map[string]interface{})
}

// requireCloseCompleted checks that the close of session id, of role,
// went through: the session alone is listed in revocations, and its
// role's index is empty.
func requireCloseCompleted(t testing.TB, b *backend, s logical.Storage, role, id string) {
	t.Helper()
	rev := mustDo(t, b, s, caller{}, logical.ReadOperation, "revocations", nil)
	listed := rev.Data["sessions"].([]map[string]interface{})
	require.Len(t, listed, 1)
	require.Equal(t, id, listed[0]["id"])
	idx, err := s.List(context.Background(), roleSessionKey(role, ""))
	require.NoError(t, err)
	require.Empty(t, idx)
}

// leaseRequest builds the renew or revoke request Vault's expiration
// manager sends for a session lease, with the internal data passed through
// JSON as Vault stores it.
func leaseRequest(t testing.TB, s logical.Storage, op logical.Operation, start *logical.Response) *logical.Request {
	t.Helper()
	raw, err := json.Marshal(start.Secret.InternalData)
	require.NoError(t, err)
	var internal map[string]interface{}
	require.NoError(t, json.Unmarshal(raw, &internal))
	secret := *start.Secret
	secret.InternalData = internal
	secret.IssueTime = time.Now()
	return &logical.Request{Operation: op, Storage: s, Secret: &secret, MountPoint: "agent/"}
}

// countingStorage counts the operations that reach storage.
type countingStorage struct {
	logical.Storage
	mu      sync.Mutex
	puts    int
	deletes int
	gets    int
	lists   int
}

func (c *countingStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	c.mu.Lock()
	c.gets++
	c.mu.Unlock()
	return c.Storage.Get(ctx, key)
}

func (c *countingStorage) List(ctx context.Context, prefix string) ([]string, error) {
	c.mu.Lock()
	c.lists++
	c.mu.Unlock()
	return c.Storage.List(ctx, prefix)
}

// reads counts the Gets and Lists.
func (c *countingStorage) reads() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gets + c.lists
}

func (c *countingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	c.mu.Lock()
	c.puts++
	c.mu.Unlock()
	return c.Storage.Put(ctx, e)
}

func (c *countingStorage) Delete(ctx context.Context, key string) error {
	c.mu.Lock()
	c.deletes++
	c.mu.Unlock()
	return c.Storage.Delete(ctx, key)
}

func (c *countingStorage) reset() {
	c.mu.Lock()
	c.puts, c.deletes = 0, 0
	c.mu.Unlock()
}

func (c *countingStorage) writes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.puts + c.deletes
}

// failingStorage fails every Put whose key has the prefix, while armed.
type failingStorage struct {
	logical.Storage
	mu     sync.Mutex
	prefix string
	armed  bool
}

func (f *failingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	f.mu.Lock()
	fail := f.armed && strings.HasPrefix(e.Key, f.prefix)
	f.mu.Unlock()
	if fail {
		return errors.New("injected storage failure")
	}
	return f.Storage.Put(ctx, e)
}

func (f *failingStorage) arm(on bool) {
	f.mu.Lock()
	f.armed = on
	f.mu.Unlock()
}

// createStream creates a Shared Signals stream as an operator and returns
// its ID.
func createStream(t testing.TB, b *backend, s logical.Storage, data map[string]interface{}) string {
	t.Helper()
	resp := mustDo(t, b, s, operator, logical.UpdateOperation, "ssf/streams", data)
	return resp.Data["stream_id"].(string)
}

// outbox reads a stream's outbox from storage, in order.
func outbox(t testing.TB, s logical.Storage, stream string) []outboxEntry {
	t.Helper()
	ctx := context.Background()
	names, err := s.List(ctx, ssfOutboxPrefix+stream+"/")
	require.NoError(t, err)
	sort.Strings(names)
	out := make([]outboxEntry, 0, len(names))
	for _, name := range names {
		var e outboxEntry
		ok, err := getJSON(ctx, s, outboxKey(stream, name), &e)
		require.NoError(t, err)
		require.True(t, ok)
		out = append(out, e)
	}
	return out
}

// verifySET checks a SET as a receiver would: against the mount's jwks,
// for the default issuer and audience.
func verifySET(t testing.TB, b *backend, s logical.Storage, raw, audience string) *ssf.SET {
	t.Helper()
	set, err := ssf.Verify(raw, token.StaticKeys(jwksKeys(t, b, s)...), ssf.VerifyOptions{Issuer: "vault:agent", Audience: audience})
	require.NoError(t, err)
	return set
}

// setReceiver is an RFC 8935 receiver for tests: it records every push,
// and answers each with what answer says (202 when answer is nil).
type setReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	pushes []receivedPush
	answer func(n int) (int, string) // n counts pushes from 0
}

type receivedPush struct {
	set, contentType, authorization string
	status                          int
}

func newSETReceiver(t testing.TB, answer func(n int) (int, string)) *setReceiver {
	t.Helper()
	r := &setReceiver{answer: answer}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		n := len(r.pushes)
		status, msg := http.StatusAccepted, ""
		if r.answer != nil {
			status, msg = r.answer(n)
		}
		r.pushes = append(r.pushes, receivedPush{
			set: string(body), contentType: req.Header.Get("Content-Type"),
			authorization: req.Header.Get("Authorization"), status: status,
		})
		r.mu.Unlock()
		w.WriteHeader(status)
		_, _ = io.WriteString(w, msg)
	}))
	t.Cleanup(r.Close)
	return r
}

// received returns the pushes so far.
func (r *setReceiver) received() []receivedPush {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]receivedPush(nil), r.pushes...)
}

// accepted returns the SETs the receiver took (2xx), in order.
func (r *setReceiver) accepted() []string {
	var out []string
	for _, p := range r.received() {
		if p.status/100 == 2 {
			out = append(out, p.set)
		}
	}
	return out
}

// logBuffer is a logger writing into a buffer, safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// withLog makes a backend log at Debug into buf.
func withLog(buf *logBuffer) func(*logical.BackendConfig) {
	return func(conf *logical.BackendConfig) {
		conf.Logger = hclog.New(&hclog.LoggerOptions{Output: buf, Level: hclog.Debug})
	}
}
