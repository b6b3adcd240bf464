package verifier_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
	"github.com/continuoustrust/vault-plugin-secrets-agent/verifier"
)

// fakeEngine serves the two unauthenticated paths of the engine that a
// verifier reads, for the keys given, with an empty revocation list.
func fakeEngine(keys ...token.PublicKey) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/agent/jwks", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(token.JWKS(keys...))
	})
	mux.HandleFunc("GET /v1/agent/revocations", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"data": {"version": 1, "sessions": []}}`)
	})
	return httptest.NewServer(mux)
}

func ExampleVerifier_Middleware() {
	// The engine's signing key, and a stand-in for the engine serving it.
	key, err := token.GenerateKey(token.AlgEdDSA)
	if err != nil {
		panic(err)
	}
	engine := fakeEngine(key.Public())
	defer engine.Close()

	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	v, err := verifier.New(context.Background(), verifier.Config{
		VaultAddr: engine.URL,
		Issuer:    "vault:agent",
		Audience:  "docs-api",
		Now:       func() time.Time { return now },
	})
	if err != nil {
		panic(err)
	}
	defer v.Close()

	// GET /docs/plan is ("read", "docs/plan").
	docs := v.Middleware(func(r *http.Request) (string, string, error) {
		return verifier.MethodAction(r), strings.TrimPrefix(r.URL.Path, "/"), nil
	}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := verifier.ClaimsFrom(r.Context())
		fmt.Fprintf(w, "%s for session %s", r.URL.Path, c.Txn)
	}))

	// A step credential as the engine would mint it for an agent.
	cred, err := token.Mint(key, &token.Claims{
		Issuer: "vault:agent", Subject: "entity-1", Audience: "docs-api",
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: now.Add(5 * time.Minute).Unix(),
		ID: "cred-1", Txn: "sess-1", Scope: "read:docs/*", Depth: 1,
	})
	if err != nil {
		panic(err)
	}

	for _, tc := range []struct{ method, path, bearer string }{
		{http.MethodGet, "/docs/plan", ""},
		{http.MethodGet, "/docs/plan", "not-a-token"},
		{http.MethodDelete, "/docs/plan", cred},
		{http.MethodGet, "/docs/plan", cred},
	} {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		if tc.bearer != "" {
			req.Header.Set("Authorization", "Bearer "+tc.bearer)
		}
		rec := httptest.NewRecorder()
		docs.ServeHTTP(rec, req)
		fmt.Println(tc.method, tc.path, rec.Code, strings.TrimSpace(rec.Body.String()))
	}
	// Output:
	// GET /docs/plan 401 {"error":"verifier: no credential"}
	// GET /docs/plan 401 {"error":"token: malformed: not a compact JWS (too few parts)"}
	// DELETE /docs/plan 403 {"error":"verifier: the credential's scope does not allow this request: delete on docs/plan"}
	// GET /docs/plan 200 /docs/plan for session sess-1
}
