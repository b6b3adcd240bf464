package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

// hostileValues are malformed values of every shape a client could send.
var hostileValues = []interface{}{
	"", " ", strings.Repeat("a", 70000), "..", "../..", "a/../b", "\x00", "\n\r\t", "ünï©ødé ✓",
	"\u202e", "*", "+", ":", ",", "{}", "[]", "null", -1, 0, 1 << 62, -1 << 62, 3.5, true,
	[]interface{}{}, []interface{}{1, 2}, []interface{}{nil}, map[string]interface{}{"a": []interface{}{1}},
	map[string]interface{}{}, nil,
}

// snapshot returns every storage key and value.
func snapshot(t *testing.T, s logical.Storage) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(prefix string)
	walk = func(prefix string) {
		keys, err := s.List(context.Background(), prefix)
		require.NoError(t, err)
		for _, k := range keys {
			if strings.HasSuffix(k, "/") {
				walk(prefix + k)
				continue
			}
			e, err := s.Get(context.Background(), prefix+k)
			require.NoError(t, err)
			if e != nil {
				out[prefix+k] = string(e.Value)
			}
		}
	}
	walk("")
	return out
}

// TestHostileInputNeverPanicsOrFails5xx sends every hostile value to
// every field of every path: each answer is a success or a 4xx, never a
// 5xx or a panic, and a refused request changes nothing in storage.
func TestHostileInputNeverPanicsOrFails5xx(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", nil)
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	tok := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/x", "audience": "secrets-api",
	}).Data["token"].(string)

	type target struct {
		op     logical.Operation
		path   string
		fields []string
		base   map[string]interface{}
	}
	targets := []target{
		{logical.UpdateOperation, "config", []string{"issuer", "signing_algorithm", "session_max_ttl", "step_max_ttl", "max_events", "session_retention"}, nil},
		{logical.CreateOperation, "roles/hostile", []string{"scopes", "audiences", "session_ttl", "session_max_ttl", "step_ttl", "step_max_ttl", "max_steps", "max_depth", "max_rate", "max_sessions", "on_violation", "violation_limit", "require_purpose"},
			map[string]interface{}{"scopes": "read:x", "audiences": "a"}},
		{logical.UpdateOperation, "session", []string{"role", "purpose", "scopes", "audiences", "ttl", "max_steps", "max_depth", "max_rate", "metadata"},
			map[string]interface{}{"role": "web", "purpose": "p"}},
		{logical.ListOperation, "sessions/", []string{"role", "state"}, nil},
		{logical.UpdateOperation, "introspect", []string{"token"}, nil},
		{logical.UpdateOperation, "report", []string{"token", "action", "resource", "outcome", "observed_at", "leeway"},
			map[string]interface{}{"token": tok, "action": "read", "resource": "secrets/web/x"}},
		{logical.ReadOperation, "sessions/" + id + "/events", []string{"after"}, nil},
		{logical.UpdateOperation, "sessions/" + id + "/revoke", []string{"reason"}, nil},
	}
	// creds: the malformed values must not be violations either, so they
	// go to a session under "deny" with a generous limit.
	writeRole(t, b, s, "tolerant", map[string]interface{}{"on_violation": "deny", "violation_limit": 1000, "max_rate": 100000, "max_steps": 100000})
	tolerant, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "tolerant"})
	targets = append(targets, target{logical.UpdateOperation, "creds/" + tolerant,
		[]string{"scopes", "audience", "ttl", "parent_token", "description", "actor", "cnf_jkt"},
		map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"}})

	for _, tg := range targets {
		for _, field := range tg.fields {
			for _, hv := range hostileValues {
				data := map[string]interface{}{}
				for k, v := range tg.base {
					data[k] = v
				}
				data[field] = hv
				b.bg.wait()
				before := snapshot(t, s)
				var resp *logical.Response
				var err error
				require.NotPanics(t, func() {
					resp, err = do(t, b, s, agentA, tg.op, tg.path, data)
				}, "%s %s=%#v", tg.path, field, hv)
				if err == nil {
					// An accepted value: put things back for the next one.
					switch tg.path {
					case "config":
						mustDo(t, b, s, agentA, logical.DeleteOperation, "config", nil)
					case "roles/hostile":
						mustDo(t, b, s, agentA, logical.DeleteOperation, "roles/hostile", nil)
					}
				}
				if err != nil {
					coded, ok := err.(logical.HTTPCodedError)
					if !ok || coded.Code() != http.StatusConflict {
						assert.Contains(t, err.Error(), field, "%s %s=%#v: the error must name the field", tg.path, field, hv)
					}
					// A refusal is a 4xx or an error response (a 400); a
					// bare error would be a 500.
					assert.False(t, internalError(resp, err), "%s %s=%#v: internal error %v", tg.path, field, hv, err)
					after := snapshot(t, s)
					if !strings.HasPrefix(tg.path, "creds/") && tg.path != "report" {
						assert.Equal(t, keysOf(before), keysOf(after), "%s %s=%#v was refused but changed storage", tg.path, field, hv)
					}
				}
			}
		}
	}
	// The hostile creds requests were bad requests, never violations.
	st := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+tolerant, nil)
	assert.Equal(t, "active", st.Data["state"])
}

func keysOf(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestForgedTokensAreNeverAccepted: introspect answers active=false, and a
// forged parent_token is a bad_parent, for every kind of forgery.
func TestForgedTokensAreNeverAccepted(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", map[string]interface{}{"on_violation": "deny", "violation_limit": 1000})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	good := mustDo(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{
		"scopes": "read:secrets/web/x", "audience": "secrets-api",
	}).Data["token"].(string)
	parts := strings.Split(good, ".")
	enc := base64.RawURLEncoding
	var claims map[string]interface{}
	raw, _ := enc.DecodeString(parts[1])
	require.NoError(t, json.Unmarshal(raw, &claims))
	header, _ := enc.DecodeString(parts[0])
	var hdr map[string]interface{}
	require.NoError(t, json.Unmarshal(header, &hdr))

	withClaims := func(edit func(map[string]interface{})) string {
		c := map[string]interface{}{}
		for k, v := range claims {
			c[k] = v
		}
		edit(c)
		p, _ := json.Marshal(c)
		return parts[0] + "." + enc.EncodeToString(p) + "." + parts[2]
	}
	withHeader := func(h map[string]interface{}, sign func(input string) string) string {
		hb, _ := json.Marshal(h)
		input := enc.EncodeToString(hb) + "." + parts[1]
		return input + "." + sign(input)
	}
	keys := jwksKeys(t, b, s)
	pub := keys[0].Key
	hs := func(input string) string {
		m := hmac.New(sha256.New, []byte(pub.(ed25519.PublicKey)))
		m.Write([]byte(input))
		return enc.EncodeToString(m.Sum(nil))
	}
	now := time.Now().Unix()
	forged := map[string]string{
		"alg none":            withHeader(map[string]interface{}{"alg": "none", "kid": hdr["kid"], "typ": "txntoken+jwt"}, func(string) string { return "" }),
		"HS256 w/ public key": withHeader(map[string]interface{}{"alg": "HS256", "kid": hdr["kid"], "typ": "txntoken+jwt"}, hs),
		"unknown kid":         withHeader(map[string]interface{}{"alg": "EdDSA", "kid": "nope", "typ": "txntoken+jwt"}, func(string) string { return parts[2] }),
		"wrong typ":           withHeader(map[string]interface{}{"alg": "EdDSA", "kid": hdr["kid"], "typ": "JWT"}, func(string) string { return parts[2] }),
		"altered scope":       withClaims(func(c map[string]interface{}) { c["scope"] = "*:*" }),
		"altered txn":         withClaims(func(c map[string]interface{}) { c["txn"] = "other" }),
		"expired":             withClaims(func(c map[string]interface{}) { c["exp"] = now - 10 }),
		"nbf in the future":   withClaims(func(c map[string]interface{}) { c["nbf"] = now + 3600 }),
		"wrong iss":           withClaims(func(c map[string]interface{}) { c["iss"] = "vault:other" }),
		"truncated":           good[:len(good)/2],
		"no signature":        parts[0] + "." + parts[1] + ".",
		"oversized":           good + strings.Repeat("A", 20000),
		"empty parts":         "..",
		"json serialisation":  `{"payload":"` + parts[1] + `","signatures":[]}`,
	}
	for name, tok := range forged {
		in := mustDo(t, b, s, agentB, logical.UpdateOperation, "introspect", map[string]interface{}{"token": tok})
		assert.Equal(t, map[string]interface{}{"active": false}, in.Data, name)

		_, err := issue(t, b, s, agentA, id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api", "parent_token": tok})
		require.Error(t, err, name)
		if name != "oversized" {
			assert.Contains(t, err.Error(), "violation bad_parent", name)
		}
		assert.NotContains(t, err.Error(), tok, "%s: an error must not echo the token", name)
	}
	in := mustDo(t, b, s, agentB, logical.UpdateOperation, "introspect", map[string]interface{}{"token": good})
	assert.Equal(t, true, in.Data["active"])
}

// TestEndDuringIssuance: a session ended while credentials are being
// issued never issues after its end, and every credential issued is revoked
// afterwards.
func TestEndDuringIssuance(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", map[string]interface{}{"max_rate": 100000, "max_steps": 100000, "on_violation": "deny", "violation_limit": 1000})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	var mu sync.Mutex
	var tokens []string
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				resp, err := do(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
				if err != nil {
					return
				}
				mu.Lock()
				tokens = append(tokens, resp.Data["token"].(string))
				mu.Unlock()
			}
		}()
	}
	time.Sleep(5 * time.Millisecond)
	mustDo(t, b, s, agentA, logical.UpdateOperation, "sessions/"+id+"/end", nil)
	wg.Wait()
	st := mustDo(t, b, s, agentA, logical.ReadOperation, "sessions/"+id, nil)
	assert.Equal(t, "ended", st.Data["state"])
	assert.Equal(t, len(tokens), st.Data["steps_used"], "every issued credential was counted, none issued after the end")
	for _, tok := range tokens {
		in := mustDo(t, b, s, agentB, logical.UpdateOperation, "introspect", map[string]interface{}{"token": tok})
		require.Equal(t, false, in.Data["active"])
	}
}

// TestRotateDuringIssuance: rotating keys while credentials are issued
// leaves every credential verifiable through jwks.
func TestRotateDuringIssuance(t *testing.T) {
	b, s := testBackend(t)
	writeRole(t, b, s, "web", map[string]interface{}{"max_rate": 100000, "max_steps": 100000})
	id, _ := startSession(t, b, s, agentA, map[string]interface{}{"role": "web"})
	var mu sync.Mutex
	var tokens []string
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 30; i++ {
				resp, err := do(t, b, s, agentA, logical.UpdateOperation, "creds/"+id, map[string]interface{}{"scopes": "read:secrets/web/x", "audience": "secrets-api"})
				if !assert.NoError(t, err) {
					return
				}
				mu.Lock()
				tokens = append(tokens, resp.Data["token"].(string))
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < 5; i++ {
		mustDo(t, b, s, agentA, logical.UpdateOperation, "keys/rotate", nil)
	}
	wg.Wait()
	keys := token.StaticKeys(jwksKeys(t, b, s)...)
	for _, tok := range tokens {
		_, err := token.Verify(tok, keys, token.VerifyOptions{Issuer: "vault:agent", Audience: "secrets-api"})
		require.NoError(t, err)
	}
}
