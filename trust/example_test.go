package trust_test

import (
	"errors"
	"fmt"

	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

func ExampleNegotiate() {
	role := trust.DefaultRole()
	role.Scopes = []string{"read,list:secrets/web/*"}
	role.Audiences = []string{"https://api.example.com"}
	if err := role.Validate(trust.Limits{}); err != nil {
		panic(err)
	}

	// An intent wider than the role is refused, naming what was wider.
	_, _, err := trust.Negotiate("web-reader", role, trust.IntentRequest{
		Purpose: "rotate the web TLS certificate",
		Scopes:  []string{"read:secrets/*"},
	}, 0)
	var wider *trust.WiderError
	if errors.As(err, &wider) {
		fmt.Println("refused:", wider.Field)
		fmt.Println(err)
	}

	// A narrower one is granted; what it omits comes from the role.
	maxSteps := 10
	intent, ttl, err := trust.Negotiate("web-reader", role, trust.IntentRequest{
		Purpose:  "rotate the web TLS certificate",
		Scopes:   []string{"read:secrets/web/tls"},
		MaxSteps: &maxSteps,
	}, 0)
	if err != nil {
		panic(err)
	}
	fmt.Println(intent.Scopes, intent.Audiences, intent.MaxSteps, intent.MaxRate, ttl)
	// Output:
	// refused: scopes
	// scopes: read:secrets/* is wider than role "web-reader" allows (e.g. read on secrets/x is allowed by read:secrets/* but not by list,read:secrets/web/*)
	// [read:secrets/web/tls] [https://api.example.com] 10 60 15m0s
}
