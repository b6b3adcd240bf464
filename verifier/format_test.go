package verifier

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

// A verifier accepts the formats it is configured for, and only those.
func TestVerifierFormats(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	c := newClock(t0)
	txn := mint(t, k, nil)
	at := mint(t, k, func(cl *token.Claims) {
		cl.Format = token.FormatAccessToken
		cl.ClientID = cl.Subject
	})

	def := newVerifier(t, testConfig(f, c))
	_, err := def.Verify(context.Background(), txn)
	require.NoError(t, err)
	_, err = def.Verify(context.Background(), at)
	require.ErrorIs(t, err, token.ErrType, "an access token where transaction tokens are expected")

	cfg := testConfig(f, c)
	cfg.Formats = []token.Format{token.FormatAccessToken}
	rs := newVerifier(t, cfg)
	got, err := rs.Authorize(context.Background(), at, "read", "docs/plan")
	require.NoError(t, err)
	assert.Equal(t, token.FormatAccessToken, got.Format)
	assert.Equal(t, "entity-1", got.ClientID)
	_, err = rs.Verify(context.Background(), txn)
	require.ErrorIs(t, err, token.ErrType, "a transaction token where access tokens are expected")

	cfg.Formats = []token.Format{"jwt"}
	_, err = New(context.Background(), cfg)
	require.ErrorContains(t, err, "Config.Formats")
}
