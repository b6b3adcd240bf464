package ssf_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/ssf"
	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

const (
	issuer   = "https://vault.example.com:8200/v1/agent"
	audience = "https://rs.example.com/ssf"
	session  = "5155ba46-a4be-8024-5519-a1b032c90016"
)

func key(t *testing.T, alg string) *token.Key {
	t.Helper()
	k, err := token.GenerateKey(alg)
	require.NoError(t, err)
	return k
}

func env(jti string) ssf.Envelope {
	return ssf.Envelope{Issuer: issuer, ID: jti, Audience: audience, IssuedAt: time.Unix(1796059384, 0)}
}

func opts() ssf.VerifyOptions {
	return ssf.VerifyOptions{Issuer: issuer, Audience: audience, Now: time.Unix(1796059400, 0)}
}

// decodeSegment reads one segment of a compact JWS, for the assertions.
func decodeSegment(t *testing.T, raw string, i int) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[i])
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

func TestSessionRevokedRoundTrip(t *testing.T) {
	for _, alg := range []string{token.AlgEdDSA, token.AlgES256} {
		t.Run(alg, func(t *testing.T) {
			k := key(t, alg)
			at := time.Unix(1796059385, 0)
			raw, err := ssf.BuildSessionRevoked(k, env("jti-1"), session, at, ssf.InitiatingPolicy, "violation: scope_outside_intent")
			require.NoError(t, err)

			header := decodeSegment(t, raw, 0)
			assert.Equal(t, map[string]any{"alg": alg, "kid": k.ID, "typ": "secevent+jwt"}, header)
			claims := decodeSegment(t, raw, 1)
			assert.Equal(t, issuer, claims["iss"])
			assert.Equal(t, "jti-1", claims["jti"])
			assert.Equal(t, audience, claims["aud"], "a single audience is a string")
			assert.EqualValues(t, 1796059384, claims["iat"])
			assert.Equal(t, session, claims["txn"])
			assert.Equal(t, map[string]any{"format": "opaque", "id": session}, claims["sub_id"])
			assert.Equal(t, map[string]any{ssf.EventSessionRevoked: map[string]any{
				"event_timestamp":   float64(1796059385),
				"initiating_entity": "policy",
				"reason_admin":      map[string]any{"en": "violation: scope_outside_intent"},
			}}, claims["events"])

			set, err := ssf.Verify(raw, token.StaticKeys(k.Public()), opts())
			require.NoError(t, err)
			assert.Equal(t, session, set.SessionID())
			assert.Equal(t, ssf.EventSessionRevoked, set.Events.Type())
			assert.Equal(t, "violation: scope_outside_intent", set.Events.SessionRevoked.ReasonAdmin["en"])
			assert.EqualValues(t, 1796059385, set.Events.SessionRevoked.EventTimestamp)
		})
	}
}

func TestVerificationRoundTrip(t *testing.T) {
	k := key(t, token.AlgEdDSA)
	raw, err := ssf.BuildVerification(k, env("jti-v"), "stream-1", "c3RhdGU")
	require.NoError(t, err)
	set, err := ssf.Verify(raw, token.StaticKeys(k.Public()), opts())
	require.NoError(t, err)
	assert.Equal(t, ssf.EventVerification, set.Events.Type())
	assert.Equal(t, "c3RhdGU", set.Events.Verification.State)
	assert.Equal(t, &ssf.SubjectID{Format: "opaque", ID: "stream-1"}, set.Subject)
	assert.Empty(t, set.Txn)

	// Without state, the event is an empty object, still one event.
	raw, err = ssf.BuildVerification(k, env("jti-v2"), "stream-1", "")
	require.NoError(t, err)
	assert.Equal(t, map[string]any{ssf.EventVerification: map[string]any{}}, decodeSegment(t, raw, 1)["events"])
	_, err = ssf.Verify(raw, token.StaticKeys(k.Public()), opts())
	require.NoError(t, err)

	// A receiver that accepts only session-revoked refuses it.
	o := opts()
	o.EventTypes = []string{ssf.EventSessionRevoked}
	_, err = ssf.Verify(raw, token.StaticKeys(k.Public()), o)
	assert.ErrorIs(t, err, ssf.ErrEventType)
}

func TestBuildRefusesIncompleteSETs(t *testing.T) {
	k := key(t, token.AlgEdDSA)
	at := time.Unix(1796059385, 0)
	for name, e := range map[string]ssf.Envelope{
		"no issuer":   {ID: "j", Audience: audience},
		"no jti":      {Issuer: issuer, Audience: audience},
		"no audience": {Issuer: issuer, ID: "j"},
	} {
		_, err := ssf.BuildSessionRevoked(k, e, session, at, "", "")
		assert.ErrorIs(t, err, token.ErrClaims, name)
	}
	_, err := ssf.BuildSessionRevoked(k, env("j"), "", at, "", "")
	assert.ErrorIs(t, err, token.ErrClaims)
	_, err = ssf.BuildSessionRevoked(k, env("j"), session, time.Time{}, "", "")
	assert.ErrorIs(t, err, token.ErrClaims, "no event_timestamp")
	_, err = ssf.BuildVerification(k, env("j"), "", "")
	assert.ErrorIs(t, err, token.ErrClaims)
}

// signPayload signs arbitrary claims as a SET would be signed, to forge
// the SETs Build never writes.
func signPayload(t *testing.T, k *token.Key, typ string, claims map[string]any) string {
	t.Helper()
	b, err := json.Marshal(claims)
	require.NoError(t, err)
	raw, err := token.SignJWS(k, typ, b)
	require.NoError(t, err)
	return raw
}

func goodClaims() map[string]any {
	return map[string]any{
		"iss": issuer, "jti": "j", "iat": 1796059384, "aud": audience, "txn": session,
		"sub_id": map[string]any{"format": "opaque", "id": session},
		"events": map[string]any{ssf.EventSessionRevoked: map[string]any{"event_timestamp": 1796059385}},
	}
}

func TestVerifyRefusesBadSETs(t *testing.T) {
	k := key(t, token.AlgEdDSA)
	other := key(t, token.AlgEdDSA)
	keys := token.StaticKeys(k.Public())
	good, err := ssf.BuildSessionRevoked(k, env("j"), session, time.Unix(1796059385, 0), "", "")
	require.NoError(t, err)
	_, err = ssf.Verify(good, keys, opts())
	require.NoError(t, err)

	with := func(change func(map[string]any)) map[string]any {
		c := goodClaims()
		change(c)
		return c
	}
	// A step credential is no SET, even though the same key signed it.
	cred, err := token.Mint(k, &token.Claims{
		Issuer: issuer, Audience: audience, IssuedAt: 1796059384, Expiry: 1796059684,
		ID: "c", Txn: session, Scope: "read:x", Depth: 1,
	})
	require.NoError(t, err)
	parts := strings.Split(good, ".")
	// Another base64url character: still canonical, no longer the
	// signature (a bit flip could leave the alphabet, a malformed token).
	sig := []byte(parts[2])
	if sig[3] == 'A' {
		sig[3] = 'B'
	} else {
		sig[3] = 'A'
	}
	tampered := parts[0] + "." + parts[1] + "." + string(sig)
	otherKid, err := ssf.BuildSessionRevoked(other, env("j"), session, time.Unix(1796059385, 0), "", "")
	require.NoError(t, err)
	// A SET signed by another key under this key's kid.
	forged := signPayload(t, other, ssf.Type, goodClaims())
	forgedParts := strings.Split(forged, ".")
	header, _ := json.Marshal(map[string]string{"alg": "EdDSA", "kid": k.ID, "typ": ssf.Type})
	forged = base64.RawURLEncoding.EncodeToString(header) + "." + forgedParts[1] + "." + forgedParts[2]

	for _, tc := range []struct {
		name string
		raw  string
		want error
	}{
		{"a step credential (typ txntoken+jwt)", cred, token.ErrType},
		{"typ JWT", signPayload(t, k, "JWT", goodClaims()), token.ErrType},
		{"tampered signature", tampered, token.ErrSignature},
		{"another key's signature under this kid", forged, token.ErrSignature},
		{"unknown key", otherKid, token.ErrUnknownKey},
		{"not a JWS", "not.a.set", token.ErrMalformed},
		{"wrong issuer", signPayload(t, k, ssf.Type, with(func(c map[string]any) { c["iss"] = "vault:other" })), token.ErrIssuer},
		{"wrong audience", signPayload(t, k, ssf.Type, with(func(c map[string]any) { c["aud"] = "someone-else" })), token.ErrAudience},
		{"audience list without ours", signPayload(t, k, ssf.Type, with(func(c map[string]any) { c["aud"] = []string{"a", "b"} })), token.ErrAudience},
		{"no jti", signPayload(t, k, ssf.Type, with(func(c map[string]any) { delete(c, "jti") })), token.ErrClaims},
		{"no iat", signPayload(t, k, ssf.Type, with(func(c map[string]any) { delete(c, "iat") })), token.ErrClaims},
		{"iat in the future", signPayload(t, k, ssf.Type, with(func(c map[string]any) { c["iat"] = 1796059400 + 3600 })), token.ErrNotYetValid},
		{"txn and sub_id differ", signPayload(t, k, ssf.Type, with(func(c map[string]any) { c["txn"] = "other" })), token.ErrClaims},
		{"no session", signPayload(t, k, ssf.Type, with(func(c map[string]any) { delete(c, "txn"); delete(c, "sub_id") })), token.ErrClaims},
		{"no events", signPayload(t, k, ssf.Type, with(func(c map[string]any) { delete(c, "events") })), ssf.ErrEventType},
		{"an unknown event", signPayload(t, k, ssf.Type, with(func(c map[string]any) {
			c["events"] = map[string]any{"https://schemas.openid.net/secevent/caep/event-type/credential-change": map[string]any{}}
		})), ssf.ErrEventType},
		{"two events", signPayload(t, k, ssf.Type, with(func(c map[string]any) {
			c["events"] = map[string]any{
				ssf.EventSessionRevoked: map[string]any{"event_timestamp": 1},
				ssf.EventVerification:   map[string]any{},
			}
		})), ssf.ErrEventType},
		{"a case variant of a claim", signPayload(t, k, ssf.Type, with(func(c map[string]any) { c["ISS"] = "vault:other" })), token.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ssf.Verify(tc.raw, keys, opts())
			require.Error(t, err)
			assert.ErrorIs(t, err, tc.want)
			assert.NotContains(t, err.Error(), session, "errors never quote the input")
		})
	}

	_, err = ssf.Verify(good, keys, ssf.VerifyOptions{Issuer: issuer})
	assert.ErrorIs(t, err, token.ErrOptions, "an audience is required")
}

// A duplicate member is refused, as go-jose's JSON package refuses it.
func TestVerifyRefusesDuplicateMembers(t *testing.T) {
	k := key(t, token.AlgEdDSA)
	payload := `{"iss":"` + issuer + `","iss":"vault:other","jti":"j","iat":1796059384,"aud":"` + audience +
		`","txn":"` + session + `","events":{"` + ssf.EventSessionRevoked + `":{"event_timestamp":1}}}`
	raw, err := token.SignJWS(k, ssf.Type, []byte(payload))
	require.NoError(t, err)
	_, err = ssf.Verify(raw, token.StaticKeys(k.Public()), opts())
	assert.ErrorIs(t, err, token.ErrMalformed)
}
