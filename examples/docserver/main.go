// Command docserver is an example resource server: a small HTTP API over
// documents, protected by step credentials of the agent secrets engine.
//
//	GET  /docs/<name>   needs a credential allowing read:docs/<name>
//	PUT  /docs/<name>   needs a credential allowing write:docs/<name>
//
// It verifies credentials offline against the engine's JWKS, polls the
// revocation list, and reports every use back to the engine.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/continuoustrust/vault-plugin-secrets-agent/verifier"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:8300", "address to serve on")
	vaultAddr := flag.String("vault-addr", os.Getenv("VAULT_ADDR"), "Vault's address")
	audience := flag.String("audience", "docs-api", "this server's audience")
	issuer := flag.String("issuer", "vault:agent", "the engine's issuer")
	poll := flag.Duration("poll", 5*time.Second, "how often to poll the revocation list")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	v, err := verifier.New(ctx, verifier.Config{
		VaultAddr:      *vaultAddr,
		Issuer:         *issuer,
		Audience:       *audience,
		RevocationPoll: *poll,
		VaultToken:     os.Getenv("VAULT_TOKEN"), // a resource-server token: introspect, report
		Report:         true,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	store := &docs{m: map[string]string{
		"q3-plan": "Q3: ship continuous trust for agents; retire long-lived API keys.",
	}}
	mapper := func(r *http.Request) (string, string, error) {
		name := strings.TrimPrefix(r.URL.Path, "/docs/")
		if name == "" || strings.Contains(name, "/") {
			return "", "", fmt.Errorf("no such document path %q", r.URL.Path)
		}
		return verifier.MethodAction(r), "docs/" + name, nil
	}
	mux := http.NewServeMux()
	mux.Handle("/docs/", v.Middleware(mapper, store))
	srv := &http.Server{Addr: *addr, Handler: logRequests(mux), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Printf("docserver: serving on %s for audience %q", *addr, *audience)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

// docs is an in-memory document store.
type docs struct {
	mu sync.Mutex
	m  map[string]string
}

func (d *docs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/docs/")
	claims := verifier.ClaimsFrom(r.Context())
	d.mu.Lock()
	defer d.mu.Unlock()
	switch r.Method {
	case http.MethodGet:
		body, ok := d.m[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, body)
	case http.MethodPut:
		b, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		d.m[name] = string(b)
		fmt.Fprintf(w, "stored docs/%s for session %s\n", name, claims.Txn)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		log.Printf("docserver: %s %s -> %d", r.Method, r.URL.Path, rec.code)
	})
}
