package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/ssf"
)

// TestStreamLifecycle: an administrator creates, lists, reads, updates and
// deletes streams; the answers name every setting but the Authorization
// header, of which they say only whether there is one, and which storage
// keeps apart, under the seal-wrapped prefix.
func TestStreamLifecycle(t *testing.T) {
	b, s := testBackend(t)
	ctx := context.Background()
	created := mustDo(t, b, s, operator, logical.UpdateOperation, "ssf/streams", map[string]interface{}{
		"delivery_method": "push", "endpoint_url": "https://rs.example.com/ssf/events", "audience": "https://rs.example.com",
		"authorization_header": "Bearer s3cret",
	})
	id := created.Data["stream_id"].(string)
	require.NotEmpty(t, id)
	assert.Equal(t, map[string]interface{}{
		"stream_id": id, "delivery_method": "push", "endpoint_url": "https://rs.example.com/ssf/events",
		"audience": "https://rs.example.com", "events_requested": []string{ssf.EventSessionRevoked},
		"authorization_header_set": true, "created_at": created.Data["created_at"], "pending": 0, "dropped": uint64(0),
	}, created.Data)

	// The header is in storage only under ssf/auth/, which is seal-wrapped.
	snap := snapshot(t, s)
	for key, value := range snap {
		if strings.Contains(value, "s3cret") {
			assert.Equal(t, ssfAuthPrefix+id, key, "only the seal-wrapped entry holds the header")
		}
	}
	require.Contains(t, snap, ssfAuthPrefix+id)
	assert.Contains(t, b.PathsSpecial.SealWrapStorage, ssfAuthPrefix)

	read := mustDo(t, b, s, operator, logical.ReadOperation, "ssf/streams/"+id, nil)
	assert.Equal(t, created.Data, read.Data)
	raw, _ := json.Marshal(read.Data)
	assert.NotContains(t, string(raw), "s3cret", "the header is never read back")
	assert.NotContains(t, string(raw), "authorization_header\"", "only authorization_header_set is answered")

	poll := createStream(t, b, s, map[string]interface{}{"delivery_method": ssf.DeliveryPoll, "audience": "rs-2"})
	assert.Equal(t, "poll", mustDo(t, b, s, operator, logical.ReadOperation, "ssf/streams/"+poll, nil).Data["delivery_method"],
		"the URN is accepted and answered as its short word")
	list := mustDo(t, b, s, operator, logical.ListOperation, "ssf/streams/", nil)
	assert.ElementsMatch(t, []string{id, poll}, list.Data["keys"])

	// An update changes only what it names.
	updated := mustDo(t, b, s, operator, logical.UpdateOperation, "ssf/streams/"+id, map[string]interface{}{"audience": "rs-1"})
	assert.Equal(t, "rs-1", updated.Data["audience"])
	assert.Equal(t, "https://rs.example.com/ssf/events", updated.Data["endpoint_url"])
	assert.Equal(t, true, updated.Data["authorization_header_set"])
	// An empty header removes it.
	updated = mustDo(t, b, s, operator, logical.UpdateOperation, "ssf/streams/"+id, map[string]interface{}{"authorization_header": ""})
	assert.Equal(t, false, updated.Data["authorization_header_set"])
	assert.NotContains(t, snapshot(t, s), ssfAuthPrefix+id)
	// A stream made poll loses what only push streams have.
	mustDo(t, b, s, operator, logical.UpdateOperation, "ssf/streams/"+id, map[string]interface{}{"authorization_header": "Bearer again"})
	updated = mustDo(t, b, s, operator, logical.UpdateOperation, "ssf/streams/"+id, map[string]interface{}{"delivery_method": "poll"})
	assert.Equal(t, "poll", updated.Data["delivery_method"])
	assert.NotContains(t, updated.Data, "endpoint_url")
	assert.Equal(t, false, updated.Data["authorization_header_set"])
	assert.NotContains(t, snapshot(t, s), ssfAuthPrefix+id)

	// Deleted, a stream is gone with everything it had.
	mustDo(t, b, s, operator, logical.DeleteOperation, "ssf/streams/"+id, nil)
	resp, err := do(t, b, s, operator, logical.ReadOperation, "ssf/streams/"+id, nil)
	require.NoError(t, err)
	assert.Nil(t, resp, "404")
	_, err = do(t, b, s, operator, logical.UpdateOperation, "ssf/streams/"+id, map[string]interface{}{"audience": "x"})
	require.Error(t, err)
	assert.Equal(t, http.StatusNotFound, err.(*refused).code)
	assert.Equal(t, "stream_id", refusalData(t, err)["field"])
	for key := range snapshot(t, s) {
		assert.NotContains(t, key, id)
	}
	mustDo(t, b, s, operator, logical.DeleteOperation, "ssf/streams/"+poll, nil)
	keys, err := s.List(ctx, "ssf/")
	require.NoError(t, err)
	for _, k := range keys {
		sub, err := s.List(ctx, "ssf/"+k)
		require.NoError(t, err)
		assert.Empty(t, sub, "ssf/%s", k)
	}
}

// TestStreamRefusesBadFields: every malformed field is a 400 naming it,
// and nothing is stored.
func TestStreamRefusesBadFields(t *testing.T) {
	b, s := testBackend(t)
	push := func(extra map[string]interface{}) map[string]interface{} {
		m := map[string]interface{}{"delivery_method": "push", "endpoint_url": "https://rs.example.com/ssf", "audience": "rs"}
		for k, v := range extra {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	for _, tc := range []struct {
		name  string
		data  map[string]interface{}
		field string
	}{
		{"no delivery method", push(map[string]interface{}{"delivery_method": nil}), "delivery_method"},
		{"an unknown delivery method", push(map[string]interface{}{"delivery_method": "smoke"}), "delivery_method"},
		{"push without endpoint", push(map[string]interface{}{"endpoint_url": nil}), "endpoint_url"},
		{"ftp endpoint", push(map[string]interface{}{"endpoint_url": "ftp://rs.example.com/x"}), "endpoint_url"},
		{"relative endpoint", push(map[string]interface{}{"endpoint_url": "/ssf"}), "endpoint_url"},
		{"endpoint without host", push(map[string]interface{}{"endpoint_url": "https:///ssf"}), "endpoint_url"},
		{"endpoint with credentials", push(map[string]interface{}{"endpoint_url": "https://u:p@rs.example.com/ssf"}), "endpoint_url"},
		{"endpoint with a fragment", push(map[string]interface{}{"endpoint_url": "https://rs.example.com/ssf#x"}), "endpoint_url"},
		{"endpoint with a space", push(map[string]interface{}{"endpoint_url": "https://rs.example.com/a b"}), "endpoint_url"},
		{"endpoint too long", push(map[string]interface{}{"endpoint_url": "https://rs.example.com/" + strings.Repeat("a", 3000)}), "endpoint_url"},
		{"a header with a newline", push(map[string]interface{}{"authorization_header": "Bearer x\r\nX-Evil: 1"}), "authorization_header"},
		{"a header too long", push(map[string]interface{}{"authorization_header": strings.Repeat("a", 5000)}), "authorization_header"},
		{"no audience", push(map[string]interface{}{"audience": nil}), "audience"},
		{"an empty audience", push(map[string]interface{}{"audience": " "}), "audience"},
		{"an audience with a space", push(map[string]interface{}{"audience": "a b"}), "audience"},
		{"an unknown event type", push(map[string]interface{}{"events_requested": "https://schemas.openid.net/secevent/caep/event-type/credential-change"}), "events_requested"},
		{"no event type", push(map[string]interface{}{"events_requested": []interface{}{}}), "events_requested"},
		{"a poll stream with an endpoint", map[string]interface{}{"delivery_method": "poll", "audience": "rs", "endpoint_url": "https://rs.example.com/ssf"}, "endpoint_url"},
		{"a poll stream with a header", map[string]interface{}{"delivery_method": "poll", "audience": "rs", "authorization_header": "Bearer x"}, "authorization_header"},
		{"a misspelt field", push(map[string]interface{}{"endpoint": "https://rs.example.com/ssf"}), "endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, s)
			_, err := do(t, b, s, operator, logical.UpdateOperation, "ssf/streams", tc.data)
			require.Error(t, err)
			assert.Equal(t, http.StatusBadRequest, err.(*refused).code, err.Error())
			assert.Equal(t, tc.field, refusalData(t, err)["field"], err.Error())
			assert.True(t, strings.HasPrefix(err.Error(), tc.field+": "), err.Error())
			assert.Equal(t, before, snapshot(t, s), "nothing stored")
		})
	}

	// An update is checked the same way, and changes nothing when refused.
	id := createStream(t, b, s, push(nil))
	before := snapshot(t, s)
	_, err := do(t, b, s, operator, logical.UpdateOperation, "ssf/streams/"+id, map[string]interface{}{"endpoint_url": "gopher://x"})
	require.Error(t, err)
	assert.Equal(t, "endpoint_url", refusalData(t, err)["field"])
	_, err = do(t, b, s, operator, logical.UpdateOperation, "ssf/streams/"+id, map[string]interface{}{"endpoint_url": ""})
	require.Error(t, err, "a push stream keeps an endpoint")
	assert.Equal(t, "endpoint_url", refusalData(t, err)["field"])
	assert.Equal(t, before, snapshot(t, s))
}

// TestStreamPathsTakeHostileInput: every hostile value in every field of
// the stream paths is a success or a 4xx, never a 5xx or a panic, and a
// refused request changes nothing.
func TestStreamPathsTakeHostileInput(t *testing.T) {
	b, s := testBackend(t)
	push := createStream(t, b, s, map[string]interface{}{"delivery_method": "push", "endpoint_url": "http://127.0.0.1:9/ssf", "audience": "rs"})
	poll := createStream(t, b, s, map[string]interface{}{"delivery_method": "poll", "audience": "rs"})
	b.ssf.pollWait = 1 // a poll with nothing pending answers at once
	streamFields := []string{"delivery_method", "endpoint_url", "authorization_header", "audience", "events_requested"}
	targets := []struct {
		path   string
		fields []string
		base   map[string]interface{}
	}{
		{"ssf/streams", streamFields, map[string]interface{}{"delivery_method": "push", "endpoint_url": "http://127.0.0.1:9/ssf", "audience": "rs"}},
		{"ssf/streams/" + push, streamFields, nil},
		{"ssf/streams/" + poll + "/verify", []string{"state"}, nil},
		{"ssf/streams/" + poll + "/poll", []string{"maxEvents", "returnImmediately", "ack", "setErrs"}, map[string]interface{}{"returnImmediately": true}},
	}
	for _, tg := range targets {
		for _, field := range tg.fields {
			for _, hv := range hostileValues {
				data := map[string]interface{}{}
				for k, v := range tg.base {
					data[k] = v
				}
				data[field] = hv
				before := snapshot(t, s)
				var resp *logical.Response
				var err error
				require.NotPanics(t, func() {
					resp, err = do(t, b, s, operator, logical.UpdateOperation, tg.path, data)
				}, "%s %s=%#v", tg.path, field, hv)
				require.False(t, internalError(resp, err), "%s %s=%#v: %v", tg.path, field, hv, err)
				if err != nil {
					require.Equal(t, before, snapshot(t, s), "%s %s=%#v was refused but changed storage", tg.path, field, hv)
					continue
				}
				// Accepted: put things back.
				switch {
				case tg.path == "ssf/streams":
					mustDo(t, b, s, operator, logical.DeleteOperation, "ssf/streams/"+resp.Data["stream_id"].(string), nil)
				case tg.path == "ssf/streams/"+push:
					mustDo(t, b, s, operator, logical.DeleteOperation, "ssf/streams/"+push, nil)
					push = createStream(t, b, s, map[string]interface{}{"delivery_method": "push", "endpoint_url": "http://127.0.0.1:9/ssf", "audience": "rs"})
					tg.path = "ssf/streams/" + push
				}
			}
		}
	}
}

// TestSSFConfiguration: the transmitter metadata is raw JSON, without a
// token; its URLs are paths relative to Vault until the issuer is this
// mount's URL, and built from it then.
func TestSSFConfiguration(t *testing.T) {
	b, s := testBackend(t)
	assert.Contains(t, b.PathsSpecial.Unauthenticated, ".well-known/ssf-configuration")
	read := func() map[string]interface{} {
		resp := mustDo(t, b, s, caller{}, logical.ReadOperation, ".well-known/ssf-configuration", nil)
		require.Equal(t, http.StatusOK, resp.Data[logical.HTTPStatusCode])
		require.Equal(t, "application/json", resp.Data[logical.HTTPContentType])
		var m map[string]interface{}
		require.NoError(t, json.Unmarshal(resp.Data[logical.HTTPRawBody].([]byte), &m))
		return m
	}
	assert.Equal(t, map[string]interface{}{
		"spec_version":               "1_0",
		"issuer":                     "vault:agent",
		"jwks_uri":                   "/v1/agent/jwks",
		"delivery_methods_supported": []interface{}{"urn:ietf:rfc:8935", "urn:ietf:rfc:8936"},
		"configuration_endpoint":     "/v1/agent/ssf/streams",
	}, read())

	mustDo(t, b, s, operator, logical.UpdateOperation, "config", map[string]interface{}{"issuer": "https://vault.example.com:8200/v1/agent"})
	m := read()
	assert.Equal(t, "https://vault.example.com:8200/v1/agent", m["issuer"])
	assert.Equal(t, "https://vault.example.com:8200/v1/agent/jwks", m["jwks_uri"])
	assert.Equal(t, "https://vault.example.com:8200/v1/agent/ssf/streams", m["configuration_endpoint"])
}

// TestVerificationEvent: a verification SET is queued on the stream,
// echoes the state, names the stream in sub_id, and is served like the
// others.
func TestVerificationEvent(t *testing.T) {
	b, s := testBackend(t)
	id := createStream(t, b, s, map[string]interface{}{"delivery_method": "poll", "audience": "rs"})
	jti := mustDo(t, b, s, operator, logical.UpdateOperation, "ssf/streams/"+id+"/verify", map[string]interface{}{"state": "c3RhdGU="}).Data["jti"].(string)
	answer := poll(t, b, s, id, map[string]interface{}{"returnImmediately": true})
	require.Len(t, answer.Sets, 1)
	set := verifySET(t, b, s, answer.Sets[jti], "rs")
	assert.Equal(t, ssf.EventVerification, set.Events.Type())
	assert.Equal(t, "c3RhdGU=", set.Events.Verification.State)
	assert.Equal(t, &ssf.SubjectID{Format: "opaque", ID: id}, set.Subject)

	_, err := do(t, b, s, operator, logical.UpdateOperation, "ssf/streams/nope/verify", nil)
	require.Error(t, err)
	assert.Equal(t, http.StatusNotFound, err.(*refused).code)
	_, err = do(t, b, s, operator, logical.UpdateOperation, "ssf/streams/"+id+"/verify", map[string]interface{}{"state": "a\nb"})
	require.Error(t, err)
	assert.Equal(t, "state", refusalData(t, err)["field"])
}

// poll polls a poll stream and decodes RFC 8936's raw answer.
func poll(t testing.TB, b *backend, s logical.Storage, id string, data map[string]interface{}) pollAnswer {
	t.Helper()
	resp := mustDo(t, b, s, operator, logical.UpdateOperation, "ssf/streams/"+id+"/poll", data)
	require.Equal(t, "application/json", resp.Data[logical.HTTPContentType])
	var answer pollAnswer
	require.NoError(t, json.Unmarshal(resp.Data[logical.HTTPRawBody].([]byte), &answer))
	return answer
}
