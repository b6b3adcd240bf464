package micro

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
	"github.com/continuoustrust/vault-plugin-secrets-agent/verifier"
)

// fixture is a credential issued by the engine, its keys, and a Verifier
// that fetched them from a stand-in for Vault serving the engine's own
// jwks answer.
type fixture struct {
	e      *engine
	sid    string
	raw    string
	keys   []token.PublicKey
	v      *verifier.Verifier
	opts   token.VerifyOptions
	pub    ed25519.PublicKey
	msg    []byte
	sig    []byte
	closer func()
}

func newFixture(b *testing.B) *fixture {
	b.Helper()
	e := newEngine(b)
	sid := e.startSession(b)
	raw, err := e.issue(sid)
	if err != nil {
		b.Fatal(err)
	}
	jwks := e.must(b, logical.ReadOperation, "jwks", nil).Data[logical.HTTPRawBody].([]byte)
	keys, err := token.ParseJWKS(jwks)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/agent/jwks":
			_, _ = w.Write(jwks)
		case "/v1/agent/revocations":
			_, _ = w.Write([]byte(`{"data":{"version":1,"sessions":[]}}`))
		default:
			http.NotFound(w, r)
		}
	}))
	v, err := verifier.New(context.Background(), verifier.Config{VaultAddr: srv.URL, Issuer: "vault:agent", Audience: "bench-api"})
	if err != nil {
		srv.Close()
		b.Fatal(err)
	}
	f := &fixture{e: e, sid: sid, raw: raw, keys: keys, v: v, opts: token.VerifyOptions{Issuer: "vault:agent", Audience: "bench-api"}}
	f.closer = func() { v.Close(); srv.Close() }
	dot := strings.LastIndexByte(raw, '.')
	f.msg = []byte(raw[:dot])
	if f.sig, err = base64.RawURLEncoding.DecodeString(raw[dot+1:]); err != nil {
		b.Fatal(err)
	}
	var ok bool
	if f.pub, ok = keys[0].Key.(ed25519.PublicKey); !ok {
		b.Fatalf("the engine signs with %s, not EdDSA", keys[0].Algorithm)
	}
	return f
}

// BenchmarkVerifyEngineCredential compares, on one engine-issued
// credential: raw ed25519.Verify over its signing input (the floor),
// token.Verify, and the resource-server package's Verify and Authorize.
func BenchmarkVerifyEngineCredential(b *testing.B) {
	f := newFixture(b)
	defer f.closer()
	lookup := token.StaticKeys(f.keys...)
	ctx := context.Background()
	b.Run("raw-ed25519", func(b *testing.B) {
		b.SetBytes(int64(len(f.raw)))
		b.ReportAllocs()
		for b.Loop() {
			if !ed25519.Verify(f.pub, f.msg, f.sig) {
				b.Fatal("bad signature")
			}
		}
	})
	b.Run("token.Verify", func(b *testing.B) {
		b.SetBytes(int64(len(f.raw)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := token.Verify(f.raw, lookup, f.opts); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verifier.Verify", func(b *testing.B) {
		b.SetBytes(int64(len(f.raw)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := f.v.Verify(ctx, f.raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verifier.Authorize", func(b *testing.B) {
		b.SetBytes(int64(len(f.raw)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := f.v.Authorize(ctx, f.raw, "read", "bench/data"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
