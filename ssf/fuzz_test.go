package ssf_test

import (
	"testing"
	"time"

	"github.com/continuoustrust/vault-plugin-secrets-agent/ssf"
	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

// FuzzVerify: whatever it is given, Verify never panics, and whatever it
// accepts holds exactly one known event, for the expected issuer and
// audience.
func FuzzVerify(f *testing.F) {
	k, err := token.GenerateKey(token.AlgEdDSA)
	if err != nil {
		f.Fatal(err)
	}
	good, err := ssf.BuildSessionRevoked(k, env("j"), session, time.Unix(1796059385, 0), ssf.InitiatingUser, "ended by its agent")
	if err != nil {
		f.Fatal(err)
	}
	verification, err := ssf.BuildVerification(k, env("v"), "stream-1", "s")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(verification)
	f.Add("e30.e30.")
	f.Add(good[:len(good)-3])
	keys := token.StaticKeys(k.Public())
	f.Fuzz(func(t *testing.T, raw string) {
		set, err := ssf.Verify(raw, keys, opts())
		if err != nil {
			return
		}
		if set.Issuer != issuer || set.Events.Type() == "" {
			t.Fatalf("accepted %+v", set)
		}
	})
}
