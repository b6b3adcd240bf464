package micro

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/continuoustrust/vault-plugin-secrets-agent/dpop"
)

// BenchmarkVerifyRequestDPoP compares, at a resource server, the check of
// a request carrying a bearer credential with the check of one carrying a
// credential bound to a key with its DPoP proof (RFC 9449): the proof's
// signature by its embedded key, its claims, the thumbprint, the replay
// cache. Both go through verifier.VerifyRequest, on engine-issued
// credentials. The proofs are signed before the timer starts: a proof is
// the client's cost.
func BenchmarkVerifyRequestDPoP(b *testing.B) {
	f := newFixture(b)
	defer f.closer()
	e, sid := f.e, f.sid
	key, err := dpop.GenerateKey("EdDSA")
	if err != nil {
		b.Fatal(err)
	}
	bearer, err := e.issue(sid)
	if err != nil {
		b.Fatal(err)
	}
	data := map[string]interface{}{"cnf_jkt": key.Thumbprint()}
	for k, v := range credRequest {
		data[k] = v
	}
	resp, err := e.do(logical.UpdateOperation, "creds/"+sid, data)
	if err != nil {
		b.Fatal(err)
	}
	bound := resp.Data["token"].(string)
	ctx := context.Background()
	const target = "https://bench.example/bench/data"

	b.Run("bearer", func(b *testing.B) {
		b.SetBytes(int64(len(bearer)))
		b.ReportAllocs()
		req := httptest.NewRequest(http.MethodGet, target, nil)
		req.Header.Set("Authorization", "Bearer "+bearer)
		for b.Loop() {
			if _, _, err := f.v.VerifyRequest(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("dpop", func(b *testing.B) {
		b.SetBytes(int64(len(bound)))
		b.ReportAllocs()
		// One request per iteration, each with a fresh proof (a replayed
		// one is refused), signed before the timer runs.
		reqs := make([]*http.Request, 0, 1024)
		next := 0
		refill := func() {
			b.StopTimer()
			reqs = reqs[:0]
			for range cap(reqs) {
				p, err := key.Proof(http.MethodGet, target, bound, time.Time{})
				if err != nil {
					b.Fatal(err)
				}
				r := httptest.NewRequest(http.MethodGet, target, nil)
				r.Header.Set("Authorization", "DPoP "+bound)
				r.Header.Set("DPoP", p)
				reqs = append(reqs, r)
			}
			next = 0
			b.StartTimer()
		}
		refill()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if next == len(reqs) {
				refill()
			}
			if _, _, err := f.v.VerifyRequest(ctx, reqs[next]); err != nil {
				b.Fatal(err)
			}
			next++
		}
	})
}
