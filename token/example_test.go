package token_test

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

func ExampleMint() {
	key, err := token.GenerateKey(token.AlgEdDSA)
	if err != nil {
		panic(err)
	}
	now := time.Now()
	raw, err := token.Mint(key, &token.Claims{
		Issuer:    "https://vault.example/v1/agent",
		Subject:   "entity-1234",
		Audience:  "https://api.example",
		IssuedAt:  now.Unix(),
		NotBefore: now.Unix(),
		Expiry:    now.Add(5 * time.Minute).Unix(),
		ID:        "cred-1",
		Txn:       "sess-1",
		Scope:     "repo:read",
		Tctx:      &token.TxnContext{Role: "triage"},
		Depth:     1,
	})
	if err != nil {
		panic(err)
	}
	kid, _ := token.PeekKeyID(raw)
	fmt.Println("parts:", len(strings.Split(raw, ".")))
	fmt.Println("kid is the key's thumbprint:", kid == key.ID && token.ValidThumbprint(kid))
	// Output:
	// parts: 3
	// kid is the key's thumbprint: true
}

func ExampleVerify() {
	key, err := token.GenerateKey(token.AlgES256)
	if err != nil {
		panic(err)
	}
	issued := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	raw, err := token.Mint(key, &token.Claims{
		Issuer:    "https://vault.example/v1/agent",
		Subject:   "entity-1234",
		Audience:  "https://api.example",
		IssuedAt:  issued.Unix(),
		NotBefore: issued.Unix(),
		Expiry:    issued.Add(5 * time.Minute).Unix(),
		ID:        "cred-2",
		Txn:       "sess-1",
		Scope:     "repo:read issues:write",
		Parent:    "cred-1",
		Depth:     2,
		Act:       token.PushActor(token.PushActor(nil, "planner"), "worker"),
	})
	if err != nil {
		panic(err)
	}

	// A resource server would build the lookup from the engine's JWKS with
	// token.ParseJWKS.
	claims, err := token.Verify(raw, token.StaticKeys(key.Public()), token.VerifyOptions{
		Issuer:   "https://vault.example/v1/agent",
		Audience: "https://api.example",
		Now:      issued.Add(time.Minute),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("txn:", claims.Txn)
	fmt.Println("scope:", claims.Scope)
	fmt.Println("depth:", claims.Depth, "parent:", claims.Parent)
	fmt.Println("actors:", claims.Act.Chain())

	_, err = token.Verify(raw, token.StaticKeys(key.Public()), token.VerifyOptions{
		Issuer:   "https://vault.example/v1/agent",
		Audience: "https://other.example",
		Now:      issued.Add(time.Minute),
	})
	fmt.Println(err)

	// Verify refuses to run without an expected issuer and audience.
	_, err = token.Verify(raw, token.StaticKeys(key.Public()), token.VerifyOptions{
		Issuer: "https://vault.example/v1/agent",
		Now:    issued.Add(time.Minute),
	})
	fmt.Println(errors.Is(err, token.ErrOptions))
	// Output:
	// txn: sess-1
	// scope: repo:read issues:write
	// depth: 2 parent: cred-1
	// actors: [worker planner]
	// token: audience mismatch
	// true
}
