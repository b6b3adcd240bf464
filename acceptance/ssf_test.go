//go:build acceptance

package acceptance

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/ssf"
	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
	"github.com/continuoustrust/vault-plugin-secrets-agent/verifier"
)

// receiver is a real RFC 8935 receiver on 127.0.0.1: the verifier
// package's SETReceiver, behind a recorder of every push it takes.
type receiver struct {
	t        *testing.T
	addr     string
	srv      *http.Server
	verifier *verifier.Verifier

	mu   sync.Mutex
	sets map[string]*ssf.SET // accepted, by jti
	raws map[string]string
	seen []string // the jti of every accepted push, duplicates included
}

const streamAudience = "https://rs.acceptance.test"

// newReceiver makes a receiver that will listen on addr
// ("127.0.0.1:<port>"), checking SETs with a verifier of v.
func newReceiver(t *testing.T, v *vaultServer, addr string) *receiver {
	t.Helper()
	ver, err := verifier.New(context.Background(), verifier.Config{
		VaultAddr: v.addr, Issuer: "vault:agent", Audience: "secrets-api",
	})
	require.NoError(t, err)
	t.Cleanup(ver.Close)
	r := &receiver{t: t, addr: addr, verifier: ver, sets: map[string]*ssf.SET{}, raws: map[string]string{}}
	// The engine pushes one SET at a time; the handler holds serve while
	// it checks one, and OnSET reads current under it.
	var serve sync.Mutex
	var current string
	inner := ver.SETReceiver(verifier.SETReceiverConfig{
		Audience: streamAudience, Authorization: "Bearer s3cret",
		OnSET: func(s *ssf.SET) {
			r.mu.Lock()
			r.sets[s.ID], r.raws[s.ID] = s, current
			r.seen = append(r.seen, s.ID)
			r.mu.Unlock()
		},
	})
	mux := http.NewServeMux()
	mux.Handle("/ssf/events", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		serve.Lock()
		defer serve.Unlock()
		current = string(body)
		inner.ServeHTTP(w, req)
	}))
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return r
}

// start listens and serves until the test ends.
func (r *receiver) start() {
	r.t.Helper()
	l, err := net.Listen("tcp", r.addr)
	require.NoError(r.t, err)
	go func() { _ = r.srv.Serve(l) }()
	r.t.Cleanup(func() { _ = r.srv.Close() })
}

func (r *receiver) url() string { return "http://" + r.addr + "/ssf/events" }

// bySession returns the session-revoked SETs accepted, by session.
func (r *receiver) bySession() map[string]*ssf.SET {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]*ssf.SET{}
	for _, s := range r.sets {
		if s.Events.SessionRevoked != nil {
			out[s.SessionID()] = s
		}
	}
	return out
}

// createPushStream subscribes r and returns the stream's ID.
func (v *vaultServer) createPushStream(r *receiver) string {
	v.t.Helper()
	s := v.mustJSONAs(v.token, "write", "agent/ssf/streams", "delivery_method=push", "endpoint_url="+r.url(),
		"audience="+streamAudience, "authorization_header=Bearer s3cret")
	return s.Data["stream_id"].(string)
}

// closeEveryWay closes a session in each way a session can close and
// returns the sessions' IDs with the reason each SET must give. Every
// session has a credential, to check that the verifier refuses it.
func closeEveryWay(t *testing.T, v *vaultServer, agent string) (map[string]string, map[string]string) {
	t.Helper()
	v.mustCLI("write", "agent/roles/doomed", "scopes=read:secrets/*", "audiences=secrets-api")
	start := func(tok string, args ...string) (string, cliSecret, string) {
		s := v.startSession(tok, args...)
		id := s.Data["session_id"].(string)
		cred := v.mustJSONAs(tok, "read", "agent/creds/"+id, "scopes=read:secrets/web/x", "audience=secrets-api").Data["token"].(string)
		return id, s, cred
	}
	reasons, creds := map[string]string{}, map[string]string{}

	id, _, cred := start(agent)
	v.mustCLI2(agent, "write", "-f", "agent/sessions/"+id+"/end")
	reasons[id], creds[id] = "ended by its agent", cred

	id, _, cred = start(agent)
	v.mustCLI("write", "agent/sessions/"+id+"/revoke", "reason=incident 42")
	reasons[id], creds[id] = "operator: incident 42", cred

	id, _, cred = start(agent, "scopes=read:secrets/web/*")
	_, out, err := v.jsonAs(agent, "read", "agent/creds/"+id, "scopes=write:secrets/web/tmp/x", "audience=secrets-api")
	require.Error(t, err)
	require.Contains(t, out, "scope_outside_intent")
	reasons[id], creds[id] = "violation: scope_outside_intent", cred

	id, s, cred := start(agent)
	v.mustCLI("lease", "revoke", s.LeaseID)
	reasons[id], creds[id] = "lease revoked", cred

	creator := v.newToken("agent")
	id, _, cred = start(creator)
	v.mustCLI("token", "revoke", creator)
	reasons[id], creds[id] = "lease revoked", cred

	doomed := v.mustJSONAs(agent, "write", "agent/session", "role=doomed", "purpose=doomed").Data["session_id"].(string)
	dcred := v.mustJSONAs(agent, "read", "agent/creds/"+doomed, "scopes=read:secrets/x", "audience=secrets-api").Data["token"].(string)
	v.mustCLI("delete", "agent/roles/doomed")
	reasons[doomed], creds[doomed] = "role deleted", dcred

	id, _, cred = start(agent, "ttl=3s")
	reasons[id], creds[id] = "expired: its lease ran out", cred
	waitFor(t, "the short session to expire", func() bool { return v.sessionState(id)["state"] == "expired" })
	return reasons, creds
}

// TestSSFPushReceivesEveryClose: a receiver subscribed with a push
// stream gets a verifiable CAEP session-revoked SET for each way a session
// can close, with the reason; the verifier behind it refuses the session's
// credentials at once.
func TestSSFPushReceivesEveryClose(t *testing.T) {
	v := startVault(t, devMode)
	agent, _ := setupJourney(t, v)
	r := newReceiver(t, v, "127.0.0.1:"+itoa(freePort(t)))
	r.start()
	stream := v.createPushStream(r)

	read := v.mustJSONAs(v.token, "read", "agent/ssf/streams/"+stream).Data
	assert.Equal(t, true, read["authorization_header_set"])
	assert.Equal(t, "push", read["delivery_method"])
	out := v.mustCLI("read", "-format=json", "agent/ssf/streams/"+stream)
	assert.NotContains(t, out, "s3cret", "the Authorization header is never read back")

	// The verification event goes first.
	v.mustJSONAs(v.token, "write", "agent/ssf/streams/"+stream+"/verify", "state=hello")

	reasons, creds := closeEveryWay(t, v, agent)
	waitFor(t, "a SET for every close", func() bool { return len(r.bySession()) == len(reasons) })

	keys := token.StaticKeys(v.jwks()...)
	got := r.bySession()
	for id, reason := range reasons {
		set := got[id]
		require.NotNil(t, set, reason)
		assert.Equal(t, map[string]string{"en": reason}, set.Events.SessionRevoked.ReasonAdmin, id)
		assert.Equal(t, id, set.Txn)
		assert.Equal(t, &ssf.SubjectID{Format: "opaque", ID: id}, set.Subject)
		r.mu.Lock()
		raw := r.raws[set.ID]
		r.mu.Unlock()
		// Verifiable by anyone with the engine's jwks.
		again, err := ssf.Verify(raw, keys, ssf.VerifyOptions{Issuer: "vault:agent", Audience: streamAudience})
		require.NoError(t, err, reason)
		assert.Equal(t, set.ID, again.ID)
		_, err = r.verifier.Verify(context.Background(), creds[id])
		assert.Error(t, err, "the credential of a closed session (%s) is refused", reason)
	}
	r.mu.Lock()
	first := r.sets[r.seen[0]]
	r.mu.Unlock()
	require.NotNil(t, first.Events.Verification, "the verification SET came first")
	assert.Equal(t, "hello", first.Events.Verification.State)
	waitFor(t, "an empty outbox", func() bool {
		return v.mustJSONAs(v.token, "read", "agent/ssf/streams/"+stream).Data["pending"] == 0.0
	})
	assertNoSecretsInLogs(t, v, "s3cret")
}

// TestSSFPushSurvivesARestart: on raft, SETs queued while the receiver is
// down stay in the outbox across a restart of Vault; once the receiver is
// up, it gets every one of them, each at least once (duplicates are
// dropped by jti), together with those queued after the restart.
func TestSSFPushSurvivesARestart(t *testing.T) {
	v := startVault(t, raftMode)
	agent, _ := setupJourney(t, v)
	addr := "127.0.0.1:" + itoa(freePort(t)) // nothing listens there yet
	r := newReceiver(t, v, addr)
	stream := v.createPushStream(r)

	var before []string
	for i := range 3 {
		id := v.startSession(agent).Data["session_id"].(string)
		if i == 1 {
			v.mustCLI("write", "agent/sessions/"+id+"/revoke", "reason=restart drill")
		} else {
			v.mustCLI2(agent, "write", "-f", "agent/sessions/"+id+"/end")
		}
		before = append(before, id)
	}
	assert.EqualValues(t, 3, v.mustJSONAs(v.token, "read", "agent/ssf/streams/"+stream).Data["pending"])

	v.restart()
	after := v.startSession(agent).Data["session_id"].(string)
	v.mustCLI2(agent, "write", "-f", "agent/sessions/"+after+"/end")

	r.start()
	waitForWithin(t, 90*time.Second, "every SET after the restart", func() bool {
		return len(r.bySession()) == 4
	})
	got := r.bySession()
	for _, id := range append(before, after) {
		assert.NotNil(t, got[id], id)
	}
	waitFor(t, "an empty outbox", func() bool {
		return v.mustJSONAs(v.token, "read", "agent/ssf/streams/"+stream).Data["pending"] == 0.0
	})
}

// TestSSFPushSurvivesAFailover: on a three-node raft cluster, SETs
// queued on the leader while the receiver is down are delivered by the new
// leader after the old one is killed.
func TestSSFPushSurvivesAFailover(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := nodes[0]
	agent, _ := setupJourney(t, leader)
	addr := "127.0.0.1:" + itoa(freePort(t)) // nothing listens there yet
	stream := leader.mustJSONAs(leader.token, "write", "agent/ssf/streams", "delivery_method=push",
		"endpoint_url=http://"+addr+"/ssf/events", "audience="+streamAudience, "authorization_header=Bearer s3cret").Data["stream_id"].(string)
	var ids []string
	for range 2 {
		id := leader.startSession(agent).Data["session_id"].(string)
		leader.mustCLI2(agent, "write", "-f", "agent/sessions/"+id+"/end")
		ids = append(ids, id)
	}
	assert.EqualValues(t, 2, leader.mustJSONAs(leader.token, "read", "agent/ssf/streams/"+stream).Data["pending"])
	leader.stopHard()

	var newLeader *vaultServer
	waitForWithin(t, 60*time.Second, "a new leader", func() bool {
		for _, v := range nodes[1:] {
			if h, err := v.client.Sys().Health(); err == nil && !h.Standby && !h.Sealed {
				newLeader = v
				return true
			}
		}
		return false
	})
	r := newReceiver(t, newLeader, addr)
	r.start()
	waitForWithin(t, 90*time.Second, "the SETs from the new leader", func() bool {
		// Requests reach the new leader's plugin, which starts delivering.
		_, _ = newLeader.cli("read", "agent/ssf/streams/"+stream)
		return len(r.bySession()) == 2
	})
	for _, id := range ids {
		assert.NotNil(t, r.bySession()[id], id)
	}
}

// pollAnswer is RFC 8936's answer.
type pollAnswer struct {
	Sets          map[string]string `json:"sets"`
	MoreAvailable bool              `json:"moreAvailable"`
}

// poll POSTs an RFC 8936 poll request with the Vault token tok.
func (v *vaultServer) poll(tok, stream string, body map[string]interface{}) pollAnswer {
	v.t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, v.addr+"/v1/agent/ssf/streams/"+stream+"/poll", bytes.NewReader(b))
	require.NoError(v.t, err)
	req.Header.Set("X-Vault-Token", tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(v.t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	require.Equal(v.t, http.StatusOK, resp.StatusCode, string(raw))
	require.Equal(v.t, "application/json", resp.Header.Get("Content-Type"))
	var a pollAnswer
	require.NoError(v.t, json.Unmarshal(raw, &a), string(raw))
	require.NotNil(v.t, a.Sets, string(raw))
	return a
}

// TestSSFPollStreamServesAndAcknowledges: a poll stream's receiver, with a
// Vault token allowed only to poll, gets the SETs as RFC 8936's raw JSON,
// in order, again until it acknowledges them. The transmitter metadata is
// served without a token.
func TestSSFPollStreamServesAndAcknowledges(t *testing.T) {
	v := startVault(t, devMode)
	agent, _ := setupJourney(t, v)
	stream := v.mustJSONAs(v.token, "write", "agent/ssf/streams", "delivery_method=poll", "audience="+streamAudience).Data["stream_id"].(string)
	policy := v.dir + "/ssf-poller.hcl"
	require.NoError(t, writeFile(policy, `path "agent/ssf/streams/+/poll" { capabilities = ["update"] }`))
	v.mustCLI("policy", "write", "ssf-poller", policy)
	poller := v.newToken("ssf-poller")

	var ids []string
	for range 3 {
		id := v.startSession(agent).Data["session_id"].(string)
		v.mustCLI2(agent, "write", "-f", "agent/sessions/"+id+"/end")
		ids = append(ids, id)
	}
	keys := token.StaticKeys(v.jwks()...)
	check := func(raw string) *ssf.SET {
		set, err := ssf.Verify(raw, keys, ssf.VerifyOptions{Issuer: "vault:agent", Audience: streamAudience})
		require.NoError(t, err)
		return set
	}

	a := v.poll(poller, stream, map[string]interface{}{"maxEvents": 2, "returnImmediately": true})
	require.Len(t, a.Sets, 2)
	assert.True(t, a.MoreAvailable)
	var acks []string
	served := map[string]bool{}
	for jti, raw := range a.Sets {
		served[check(raw).Txn] = true
		acks = append(acks, jti)
	}
	assert.Equal(t, map[string]bool{ids[0]: true, ids[1]: true}, served, "oldest first")
	again := v.poll(poller, stream, map[string]interface{}{"maxEvents": 2, "returnImmediately": true})
	assert.Len(t, again.Sets, 2, "served again until acknowledged")

	rest := v.poll(poller, stream, map[string]interface{}{"ack": acks, "returnImmediately": true})
	require.Len(t, rest.Sets, 1)
	assert.False(t, rest.MoreAvailable)
	for jti, raw := range rest.Sets {
		assert.Equal(t, ids[2], check(raw).Txn)
		acks = []string{jti}
	}
	done := v.poll(poller, stream, map[string]interface{}{"ack": acks, "maxEvents": 0})
	assert.Empty(t, done.Sets)
	assert.EqualValues(t, 0, v.mustJSONAs(v.token, "read", "agent/ssf/streams/"+stream).Data["pending"])

	// The poller may do nothing else.
	_, err := v.cliAs(poller, "read", "agent/ssf/streams/"+stream)
	require.Error(t, err)

	code, ctype, body := v.unauthenticated("agent/.well-known/ssf-configuration")
	require.Equal(t, http.StatusOK, code, string(body))
	assert.Equal(t, "application/json", ctype)
	var meta map[string]interface{}
	require.NoError(t, json.Unmarshal(body, &meta))
	assert.Equal(t, "vault:agent", meta["issuer"])
	assert.Equal(t, []interface{}{"urn:ietf:rfc:8935", "urn:ietf:rfc:8936"}, meta["delivery_methods_supported"])
	assert.Equal(t, "/v1/agent/jwks", meta["jwks_uri"])
	v.mustCLI("write", "agent/config", "issuer="+v.addr+"/v1/agent")
	_, _, body = v.unauthenticated("agent/.well-known/ssf-configuration")
	require.NoError(t, json.Unmarshal(body, &meta))
	assert.Equal(t, v.addr+"/v1/agent/jwks", meta["jwks_uri"])
	assert.Equal(t, v.addr+"/v1/agent/ssf/streams", meta["configuration_endpoint"])
	assert.True(t, strings.HasPrefix(meta["issuer"].(string), "http://127.0.0.1:"))
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
