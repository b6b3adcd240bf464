package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/dpop"
	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

func TestExchangerSendsTheRFC8693Form(t *testing.T) {
	key, err := dpop.GenerateKey("EdDSA")
	require.NoError(t, err)
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, r.ParseForm())
		got = r
		w.Header().Set("Content-Type", "application/json")
		if r.PostForm.Get("scope") == "write:docs/*" {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_scope",
				"error_description": "violation scope_outside_intent: write:docs/* is not inside the parent's scope; the session is revoked and all its credentials with it"})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]interface{}{
			"access_token": "child", "issued_token_type": tokenTypeAccess, "token_type": "DPoP", "expires_in": 30, "scope": "read:docs/q3",
		})
	}))
	defer srv.Close()
	x := &Exchanger{TokenEndpoint: srv.URL + "/v1/agent/token", Key: key}
	cred, err := x.Exchange(context.Background(), ExchangeRequest{
		SubjectToken: "parent", Scopes: []string{"read:docs/q3"}, Audience: "docs-api", Actor: "summariser", Format: token.FormatAccessToken,
	})
	require.NoError(t, err)
	assert.Equal(t, "child", cred.Token)
	assert.Equal(t, token.FormatAccessToken, cred.Format)
	assert.Equal(t, []string{"read:docs/q3"}, cred.Scopes)
	f := got.PostForm
	assert.Equal(t, grantTokenExchange, f.Get("grant_type"))
	assert.Equal(t, "parent", f.Get("subject_token"))
	assert.Equal(t, tokenTypeJWT, f.Get("subject_token_type"))
	assert.Equal(t, tokenTypeAccess, f.Get("requested_token_type"))
	assert.Equal(t, "summariser", f.Get("actor"))
	assert.Equal(t, "docs-api", f.Get("audience"))
	p, err := dpop.Verify(got.Header.Get("DPoP"), dpop.Options{Method: "POST", URL: x.TokenEndpoint, AccessToken: "parent", JKT: key.Thumbprint()})
	require.NoError(t, err, "the exchange carries a proof by the key, for the subject token")
	assert.Equal(t, key.Thumbprint(), p.JKT)

	_, err = x.Exchange(context.Background(), ExchangeRequest{SubjectToken: "parent", Scopes: []string{"write:docs/*"}})
	var ee *ExchangeError
	require.True(t, errors.As(err, &ee), "%v", err)
	assert.Equal(t, "invalid_scope", ee.Code)
	assert.ErrorIs(t, err, ErrViolation)
	assert.ErrorIs(t, err, ErrScopeOutsideIntent)
	assert.ErrorIs(t, err, ErrSessionClosed)
	assert.NotErrorIs(t, err, ErrBudgetExhausted)
}
