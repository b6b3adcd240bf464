package agent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/ssf"
)

// fastRetries makes a backend retry pushes within milliseconds.
func fastRetries(b *backend) {
	b.ssf.minBackoff = 5 * time.Millisecond
	b.ssf.maxBackoff = 20 * time.Millisecond
}

// waitUntil polls cond for up to 10 seconds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// closeThree ends, revokes and violates a session each, in that order,
// and returns their IDs.
func closeThree(t *testing.T, b *backend, s logical.Storage) []string {
	t.Helper()
	writeRole(t, b, s, "web", nil)
	a, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	mustDo(t, b, s, agentA, logical.UpdateOperation, "sessions/"+a+"/end", nil)
	c, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	mustDo(t, b, s, operator, logical.UpdateOperation, "sessions/"+c+"/revoke", nil)
	v, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web", "scopes": "read:secrets/web/x"})
	_, err := issue(t, b, s, agentA, v, map[string]interface{}{"scopes": "write:secrets/web/tmp/x", "audience": "secrets-api"})
	require.ErrorContains(t, err, "scope_outside_intent")
	return []string{a, c, v}
}

// TestPushDeliversInOrderWithRetries: a push stream POSTs each SET with
// RFC 8935's content type and the stream's Authorization header, retries
// one the receiver fails to take until it answers 202, and delivers the
// stream's SETs one at a time, in the order the sessions closed.
func TestPushDeliversInOrderWithRetries(t *testing.T) {
	b, s := testBackend(t)
	fastRetries(b)
	rcv := newSETReceiver(t, func(n int) (int, string) {
		switch n {
		case 0, 1:
			return http.StatusServiceUnavailable, "" // down for a while
		case 2:
			return http.StatusTooManyRequests, "" // busy: retried too
		case 4:
			return http.StatusOK, "" // any 2xx is taken
		}
		return http.StatusAccepted, ""
	})
	id := createStream(t, b, s, map[string]interface{}{
		"delivery_method": "push", "endpoint_url": rcv.URL + "/ssf", "audience": "rs", "authorization_header": "Bearer s3cret",
	})
	sessions := closeThree(t, b, s)
	waitUntil(t, "three SETs taken", func() bool { return len(rcv.accepted()) == 3 })

	for _, p := range rcv.received() {
		assert.Equal(t, "application/secevent+jwt", p.contentType)
		assert.Equal(t, "Bearer s3cret", p.authorization)
	}
	var order []string
	for _, raw := range rcv.accepted() {
		set := verifySET(t, b, s, raw, "rs")
		assert.Equal(t, sessionSETID(id, set.Txn), set.ID)
		order = append(order, set.Txn)
	}
	assert.Equal(t, sessions, order, "in the order the sessions closed")
	// The first SET was pushed four times (three failures), always the
	// same jti; nothing else was pushed before it was taken.
	var firsts int
	for _, p := range rcv.received()[:4] {
		if verifySET(t, b, s, p.set, "rs").Txn == sessions[0] {
			firsts++
		}
	}
	assert.Equal(t, 4, firsts)
	waitUntil(t, "an empty outbox", func() bool { return len(outbox(t, s, id)) == 0 })
	assert.EqualValues(t, 0, mustDo(t, b, s, operator, logical.ReadOperation, "ssf/streams/"+id, nil).Data["pending"])
	b.bg.wait()
}

// TestPushDropsASETTheReceiverRefuses: a 4xx (RFC 8935 §2.3) is final
// for that SET: it is logged at Debug with its error code, never with the
// SET, and the next SET goes.
func TestPushDropsASETTheReceiverRefuses(t *testing.T) {
	var logs logBuffer
	s := &logical.InmemStorage{}
	b := newTestBackendOn(t, s, withLog(&logs))
	fastRetries(b)
	rcv := newSETReceiver(t, func(n int) (int, string) {
		if n == 0 {
			return http.StatusBadRequest, `{"err":"invalid_audience","description":"not for us"}`
		}
		return http.StatusAccepted, ""
	})
	id := createStream(t, b, s, map[string]interface{}{"delivery_method": "push", "endpoint_url": rcv.URL, "audience": "rs"})
	sessions := closeThree(t, b, s)
	waitUntil(t, "two SETs taken", func() bool { return len(rcv.accepted()) == 2 })
	waitUntil(t, "an empty outbox", func() bool { return len(outbox(t, s, id)) == 0 })
	b.bg.wait()
	assert.Len(t, rcv.received(), 3, "the refused SET is not sent again")
	assert.Equal(t, sessions[1], verifySET(t, b, s, rcv.accepted()[0], "rs").Txn)
	assert.Contains(t, logs.String(), "invalid_audience")
	for _, p := range rcv.received() {
		assert.NotContains(t, logs.String(), p.set, "the SET is never logged")
	}
}

// TestPushSurvivesARestart: SETs queued while the receiver is down are
// in storage; a new backend on the same storage (a restarted Vault, or a
// new active node) delivers them, once its first request arrives.
func TestPushSurvivesARestart(t *testing.T) {
	s := &logical.InmemStorage{}
	b1 := newTestBackendOn(t, s)
	fastRetries(b1)
	var mu sync.Mutex
	up := false
	rcv := newSETReceiver(t, func(int) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		if !up {
			return http.StatusBadGateway, ""
		}
		return http.StatusAccepted, ""
	})
	id := createStream(t, b1, s, map[string]interface{}{"delivery_method": "push", "endpoint_url": rcv.URL, "audience": "rs"})
	sessions := closeThree(t, b1, s)
	waitUntil(t, "a first attempt", func() bool { return len(rcv.received()) > 0 })
	b1.Cleanup(context.Background())   // the plugin stops
	time.Sleep(100 * time.Millisecond) // a push in flight lands
	require.Len(t, outbox(t, s, id), 3)
	mu.Lock()
	up = true
	mu.Unlock()

	b2 := newTestBackendOn(t, s)
	fastRetries(b2)
	mustDo(t, b2, s, operator, logical.ReadOperation, "config", nil)
	waitUntil(t, "the SETs delivered after the restart", func() bool { return len(rcv.accepted()) == 3 })
	var order []string
	for _, raw := range rcv.accepted() {
		order = append(order, verifySET(t, b2, s, raw, "rs").Txn)
	}
	assert.Equal(t, sessions, order)
	waitUntil(t, "an empty outbox", func() bool { return len(outbox(t, s, id)) == 0 })
	b2.bg.wait()
}

// TestNothingIsDeliveredOnAPerformanceStandby: a performance standby
// holds the same storage but never pushes: neither on its periodic
// function, nor on a request; the active node does.
func TestNothingIsDeliveredOnAPerformanceStandby(t *testing.T) {
	s := &logical.InmemStorage{}
	b1 := newTestBackendOn(t, s)
	rcv := newSETReceiver(t, func(int) (int, string) { return http.StatusServiceUnavailable, "" })
	id := createStream(t, b1, s, map[string]interface{}{"delivery_method": "push", "endpoint_url": rcv.URL, "audience": "rs"})
	closeThree(t, b1, s)
	b1.Cleanup(context.Background())
	time.Sleep(100 * time.Millisecond) // a push in flight lands
	attempts := len(rcv.received())
	rcv.mu.Lock()
	rcv.answer = nil // the receiver is up now
	rcv.mu.Unlock()

	standby := newTestBackendOn(t, s, func(conf *logical.BackendConfig) {
		conf.System.(*logical.StaticSystemView).ReplicationStateVal = consts.ReplicationPerformanceStandby
	})
	fastRetries(standby)
	mustDo(t, standby, s, operator, logical.ReadOperation, "ssf/streams/"+id, nil)
	require.NoError(t, standby.periodic(context.Background(), &logical.Request{Storage: s}))
	standby.ssfKick(s)
	standby.ssfWake(s, standby.ssf.state(id))
	time.Sleep(100 * time.Millisecond)
	standby.bg.wait()
	assert.Len(t, rcv.received(), attempts, "the standby pushed nothing")
	assert.Len(t, outbox(t, s, id), 3)

	active := newTestBackendOn(t, s)
	require.NoError(t, active.periodic(context.Background(), &logical.Request{Storage: s}))
	waitUntil(t, "the active node's deliveries", func() bool { return len(rcv.accepted()) == 3 })
	active.bg.wait()
}

// TestPollServesAndAcknowledges: a poll stream serves its SETs oldest
// first, as RFC 8936's raw JSON, again until they are acknowledged; a
// poll without returnImmediately waits for the next SET; errors reported
// by the receiver count as acknowledgements.
func TestPollServesAndAcknowledges(t *testing.T) {
	b, s := testBackend(t)
	id := createStream(t, b, s, map[string]interface{}{"delivery_method": "poll", "audience": "rs"})
	sessions := closeThree(t, b, s)
	jti := func(i int) string { return sessionSETID(id, sessions[i]) }

	first := poll(t, b, s, id, map[string]interface{}{"maxEvents": 2, "returnImmediately": true})
	assert.True(t, first.MoreAvailable)
	require.Len(t, first.Sets, 2)
	for i := range 2 {
		assert.Equal(t, sessions[i], verifySET(t, b, s, first.Sets[jti(i)], "rs").Txn, "oldest first")
	}
	again := poll(t, b, s, id, map[string]interface{}{"maxEvents": 2, "returnImmediately": true})
	assert.ElementsMatch(t, []string{jti(0), jti(1)}, keysOf(again.Sets), "served again until acknowledged")

	rest := poll(t, b, s, id, map[string]interface{}{"ack": []interface{}{jti(0), jti(1)}, "returnImmediately": true})
	assert.Equal(t, []string{jti(2)}, keysOf(rest.Sets))
	assert.False(t, rest.MoreAvailable)
	done := poll(t, b, s, id, map[string]interface{}{"setErrs": map[string]interface{}{
		jti(2): map[string]interface{}{"err": "invalid_key", "description": "no such key"},
	}, "maxEvents": 0})
	assert.Empty(t, done.Sets)
	assert.False(t, done.MoreAvailable)
	assert.Empty(t, outbox(t, s, id))

	// A long poll waits for the next SET.
	b.ssf.pollWait = 10 * time.Second
	got := make(chan pollAnswer, 1)
	go func() { got <- poll(t, b, s, id, map[string]interface{}{}) }()
	time.Sleep(50 * time.Millisecond)
	writeRole(t, b, s, "late", nil)
	late, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "late"})
	mustDo(t, b, s, agentA, logical.UpdateOperation, "sessions/"+late+"/end", nil)
	select {
	case a := <-got:
		assert.Equal(t, []string{sessionSETID(id, late)}, keysOf(a.Sets))
	case <-time.After(5 * time.Second):
		t.Fatal("the long poll did not wake up")
	}

	// A push stream is not polled; a bad maxEvents is refused.
	push := createStream(t, b, s, map[string]interface{}{"delivery_method": "push", "endpoint_url": "http://127.0.0.1:9/x", "audience": "rs"})
	_, err := do(t, b, s, operator, logical.UpdateOperation, "ssf/streams/"+push+"/poll", map[string]interface{}{"returnImmediately": true})
	require.Error(t, err)
	assert.Equal(t, http.StatusBadRequest, err.(*refused).code)
	_, err = do(t, b, s, operator, logical.UpdateOperation, "ssf/streams/"+id+"/poll", map[string]interface{}{"maxEvents": -1})
	require.Error(t, err)
	assert.Equal(t, "maxEvents", refusalData(t, err)["field"])
}

// TestPushDeliversTheVerificationEvent: a verification SET is pushed like
// any other, in the stream's order.
func TestPushDeliversTheVerificationEvent(t *testing.T) {
	b, s := testBackend(t)
	rcv := newSETReceiver(t, nil)
	id := createStream(t, b, s, map[string]interface{}{"delivery_method": "push", "endpoint_url": rcv.URL, "audience": "rs"})
	jti := mustDo(t, b, s, operator, logical.UpdateOperation, "ssf/streams/"+id+"/verify", map[string]interface{}{"state": "xyz"}).Data["jti"].(string)
	waitUntil(t, "the verification SET", func() bool { return len(rcv.accepted()) == 1 })
	set := verifySET(t, b, s, rcv.accepted()[0], "rs")
	assert.Equal(t, jti, set.ID)
	assert.Equal(t, ssf.EventVerification, set.Events.Type())
	assert.Equal(t, "xyz", set.Events.Verification.State)
	b.bg.wait()
}

// TestPushUsesTheCurrentKeyAndIssuer: a SET is signed when it is
// delivered, with the key current then, under the issuer of the mount.
func TestPushUsesTheCurrentKeyAndIssuer(t *testing.T) {
	b, s := testBackend(t)
	id := createStream(t, b, s, map[string]interface{}{"delivery_method": "poll", "audience": "rs"})
	closeThree(t, b, s)
	rotated := mustDo(t, b, s, operator, logical.UpdateOperation, "keys/rotate", nil).Data["kid"].(string)
	answer := poll(t, b, s, id, map[string]interface{}{"returnImmediately": true})
	for _, raw := range answer.Sets {
		set := verifySET(t, b, s, raw, "rs")
		assert.Equal(t, "vault:agent", set.Issuer)
		header := decodeJOSEHeader(t, raw)
		assert.Equal(t, rotated, header["kid"])
		assert.Equal(t, "secevent+jwt", header["typ"])
	}
}

// decodeJOSEHeader reads the protected header of a compact JWS.
func decodeJOSEHeader(t *testing.T, raw string) map[string]interface{} {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	require.NoError(t, err)
	var h map[string]interface{}
	require.NoError(t, json.Unmarshal(b, &h))
	return h
}
