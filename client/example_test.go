package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/hashicorp/vault/api"

	"github.com/continuoustrust/vault-plugin-secrets-agent/client"
)

// fakeVault stands in for Vault with the engine mounted at "agent": it
// starts session sess-1 and answers step requests, refusing any scope
// but read:secrets/web/tls as a violation that revokes the session.
func fakeVault() *httptest.Server {
	reply := func(w http.ResponseWriter, code int, body any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(body)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/agent/session", func(w http.ResponseWriter, _ *http.Request) {
		reply(w, http.StatusOK, map[string]any{
			"lease_id": "agent/session/l1", "renewable": true, "lease_duration": 3600,
			"data": map[string]any{
				"session_id": "sess-1", "expires_at": "2026-11-26T01:00:00Z",
				"scopes": []string{"read,list:secrets/web/*"}, "audiences": []string{"secrets-api"}, "max_steps": 10,
			},
		})
	})
	mux.HandleFunc("GET /v1/agent/creds/sess-1", func(w http.ResponseWriter, r *http.Request) {
		// A step is a read: its fields are query parameters.
		req := struct {
			Scopes   []string
			Audience string
		}{r.URL.Query()["scopes"], r.URL.Query().Get("audience")}
		if len(req.Scopes) != 1 || req.Scopes[0] != "read:secrets/web/tls" {
			reply(w, http.StatusForbidden, map[string]any{
				"errors": []string{"violation scope_outside_intent: " + req.Scopes[0] + " is not inside the session's intent" +
					"; the session is revoked and all its credentials are revoked with it"},
				"data": map[string]any{"reason": "violation", "violation": "scope_outside_intent",
					"session_id": "sess-1", "session_state": "revoked"},
			})
			return
		}
		reply(w, http.StatusOK, map[string]any{"data": map[string]any{
			"token": "eyJhbGciOiJFZERTQSJ9.e30.c2ln", "credential_id": "cred-1",
			"scopes": req.Scopes, "audience": req.Audience, "depth": 1, "expires_at": "2026-11-26T00:05:00Z",
		}})
	})
	return httptest.NewServer(mux)
}

func ExampleSession_Step() {
	vault := fakeVault()
	defer vault.Close()
	cfg := api.DefaultConfig()
	cfg.Address = vault.URL
	vc, err := api.NewClient(cfg)
	if err != nil {
		panic(err)
	}
	vc.SetToken("agent-token")

	ctx := context.Background()
	sess, err := client.New(vc, "agent").Start(ctx, client.Intent{
		Role:    "deployer",
		Purpose: "rotate the web TLS certificate",
		Scopes:  []string{"read,list:secrets/web/*"},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("session", sess.ID, "until", sess.ExpiresAt().Format("15:04"))

	cred, err := sess.Step(ctx, client.StepRequest{
		Scopes: []string{"read:secrets/web/tls"}, Audience: "secrets-api", Description: "fetch the cert",
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("credential", cred.ID, cred.Scopes, "for", cred.Audience, "depth", cred.Depth)

	// Asking for more than the intent is a violation; here it revokes the
	// session.
	_, err = sess.Step(ctx, client.StepRequest{Scopes: []string{"write:secrets/web/tls"}, Audience: "secrets-api"})
	var e *client.Error
	if errors.As(err, &e) {
		fmt.Println("refused:", e.StatusCode, e.Kind)
	}
	fmt.Println("scope outside intent:", errors.Is(err, client.ErrScopeOutsideIntent))
	fmt.Println("session closed:", errors.Is(err, client.ErrSessionClosed))
	// Output:
	// session sess-1 until 01:00
	// credential cred-1 [read:secrets/web/tls] for secrets-api depth 1
	// refused: 403 scope_outside_intent
	// scope outside intent: true
	// session closed: true
}
