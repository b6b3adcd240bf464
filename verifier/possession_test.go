package verifier

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/dpop"
	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

// A credential bound to a key is refused at the resource server without a
// valid proof by that key, and accepted with a fresh one.
func TestMiddlewareChecksProofOfPossession(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	c := newClock(time.Now())
	cfg := testConfig(f, c)
	v := newVerifier(t, cfg)
	key, err := dpop.GenerateKey("EdDSA")
	require.NoError(t, err)
	other, err := dpop.GenerateKey("ES256")
	require.NoError(t, err)
	now := c.Now()
	mintAt := func(edit func(*token.Claims)) string {
		return mint(t, k, func(cl *token.Claims) {
			cl.IssuedAt, cl.NotBefore, cl.Expiry = now.Unix()-1, now.Unix()-1, now.Add(time.Minute).Unix()
			if edit != nil {
				edit(cl)
			}
		})
	}
	bound := mintAt(func(cl *token.Claims) { cl.Cnf = &token.Confirmation{JKT: key.Thumbprint()} })
	unbound := mintAt(nil)

	srv := httptest.NewServer(v.Middleware(func(r *http.Request) (string, string, error) {
		return MethodAction(r), strings.TrimPrefix(r.URL.Path, "/"), nil
	}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })))
	defer srv.Close()
	url := srv.URL + "/docs/plan"
	send := func(scheme, tok, proof, target string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, target, nil)
		req.Header.Set("Authorization", scheme+" "+tok)
		if proof != "" {
			req.Header.Set("DPoP", proof)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	proof := func(k *dpop.Key, method, u, tok string, at time.Time) string {
		p, err := k.Proof(method, u, tok, at)
		require.NoError(t, err)
		return p
	}

	good := proof(key, "GET", url, bound, now)
	for name, r := range map[string]*http.Response{
		"bound, sent as Bearer":    send("Bearer", bound, good, url),
		"bound, no proof":          send("DPoP", bound, "", url),
		"another key's proof":      send("DPoP", bound, proof(other, "GET", url, bound, now), url),
		"a proof for another URL":  send("DPoP", bound, proof(key, "GET", srv.URL+"/docs/other", bound, now), url),
		"a proof for another verb": send("DPoP", bound, proof(key, "DELETE", url, bound, now), url),
		"a proof of another token": send("DPoP", bound, proof(key, "GET", url, unbound, now), url),
		"an old proof":             send("DPoP", bound, proof(key, "GET", url, bound, now.Add(-2*time.Minute)), url),
		"unbound, sent as DPoP":    send("DPoP", unbound, proof(key, "GET", url, unbound, now), url),
	} {
		assert.Equal(t, http.StatusUnauthorized, r.StatusCode, name)
		assert.Equal(t, `DPoP error="invalid_dpop_proof", algs="EdDSA ES256"`, r.Header.Get("WWW-Authenticate"), name)
	}
	// The right proof works once; the same proof again is a replay.
	assert.Equal(t, http.StatusOK, send("DPoP", bound, good, url).StatusCode)
	assert.Equal(t, http.StatusUnauthorized, send("DPoP", bound, good, url).StatusCode, "a replayed proof")
	assert.Equal(t, http.StatusOK, send("DPoP", bound, proof(key, "GET", url+"?q=1", bound, now), url+"?q=1").StatusCode, "the query is not part of htu")
	assert.Equal(t, http.StatusOK, send("Bearer", unbound, "", url).StatusCode)

	// VerifyRequest says why.
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+bound)
	_, _, err = v.VerifyRequest(req.Context(), req)
	assert.True(t, errors.Is(err, ErrProof), "%v", err)
	req.Header.Set("Authorization", "DPoP "+bound)
	_, _, err = v.VerifyRequest(req.Context(), req)
	assert.True(t, errors.Is(err, dpop.ErrMissing), "%v", err)
}
