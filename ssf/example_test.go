package ssf_test

import (
	"fmt"
	"time"

	"github.com/continuoustrust/vault-plugin-secrets-agent/ssf"
	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

// The engine builds a session-revoked SET when a session closes; a
// receiver verifies it against the engine's JWKS.
func ExampleVerify() {
	key, err := token.GenerateKey(token.AlgEdDSA)
	if err != nil {
		panic(err)
	}
	raw, err := ssf.BuildSessionRevoked(key, ssf.Envelope{
		Issuer: "vault:agent", ID: "4f64e3f8-8016-6fb6-c5f9-8c8fd8d58d09", Audience: "https://docs.example.com",
	}, "5155ba46-a4be-8024-5519-a1b032c90016", time.Now(), ssf.InitiatingPolicy, "violation: scope_outside_intent")
	if err != nil {
		panic(err)
	}

	set, err := ssf.Verify(raw, token.StaticKeys(key.Public()), ssf.VerifyOptions{
		Issuer: "vault:agent", Audience: "https://docs.example.com",
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(set.Events.Type() == ssf.EventSessionRevoked)
	fmt.Println(set.SessionID())
	fmt.Println(set.Events.SessionRevoked.ReasonAdmin["en"])
	// Output:
	// true
	// 5155ba46-a4be-8024-5519-a1b032c90016
	// violation: scope_outside_intent
}
