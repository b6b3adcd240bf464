// Command mcpserver is an example MCP server protected by the agent secrets
// engine: a tiny document store over the streamable HTTP transport at
// http://<listen>/mcp, with three tools: search (read-only), read_doc and
// delete_doc.
//
// Every request must carry an access token of the engine for this server's
// resource URI (format=access_token, aud http://<listen>/mcp), of a session
// that is still active; each tool call must be inside the token's scope
// (call:tools/<name>), and tools/list shows only the tools it allows. A
// call outside the scope is refused with 403 insufficient_scope and
// reported to the engine, which holds it against the session. With a Vault
// token in VAULT_TOKEN (a policy allowing update on <mount>/report), every
// call is reported, so the session's timeline and access-path graph show
// the tool calls the agent made.
//
// It prints one line when it is ready to serve.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/continuoustrust/vault-plugin-secrets-agent/verifier"
	"github.com/continuoustrust/vault-plugin-secrets-agent/verifier/mcpauth"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8400", "the address to listen on")
	vaultAddr := flag.String("vault-addr", os.Getenv("VAULT_ADDR"), "Vault's address")
	mount := flag.String("mount", "agent", "the engine's mount path")
	issuer := flag.String("issuer", "", `the engine's issuer (default "<vault-addr>/v1/<mount>")`)
	resource := flag.String("resource", "", `this server's canonical resource URI (default "http://<listen>/mcp")`)
	flag.Parse()
	if *vaultAddr == "" {
		log.Fatal("mcpserver: set -vault-addr or VAULT_ADDR")
	}
	if *issuer == "" {
		*issuer = strings.TrimRight(*vaultAddr, "/") + "/v1/" + strings.Trim(*mount, "/")
	}
	if *resource == "" {
		*resource = "http://" + *listen + "/mcp"
	}
	if err := run(*listen, *vaultAddr, *mount, *issuer, *resource); err != nil {
		log.Fatalf("mcpserver: %v", err)
	}
}

func run(listen, vaultAddr, mount, issuer, resource string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	token := os.Getenv("VAULT_TOKEN")
	guard, err := mcpauth.New(ctx, mcpauth.Config{
		Resource: resource,
		Verifier: verifier.Config{
			VaultAddr: vaultAddr, Mount: mount, Issuer: issuer, VaultToken: token,
			// A step credential lives a minute: nothing longer is accepted.
			MaxLifetime: 5 * time.Minute,
		},
		ResourceName: "example document tools",
		Report:       token != "",
	})
	if err != nil {
		return err
	}
	defer guard.Close()

	docs := newStore()
	server := mcp.NewServer(&mcp.Implementation{Name: "docs", Version: "v0.1.0"}, nil)
	mcp.AddTool(server, &mcp.Tool{
		Name: "search", Description: "Find documents whose name or text contains a word.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
	}, func(ctx context.Context, req *mcp.CallToolRequest, in struct {
		Query string `json:"query" jsonschema:"the word to look for"`
	}) (*mcp.CallToolResult, any, error) {
		logCall(req, "search "+in.Query)
		return text(strings.Join(docs.search(in.Query), "\n")), nil, nil
	})
	mcp.AddTool(server, &mcp.Tool{
		Name: "read_doc", Description: "Read a document.", Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
	}, func(ctx context.Context, req *mcp.CallToolRequest, in struct {
		Name string `json:"name" jsonschema:"the document's name"`
	}) (*mcp.CallToolResult, any, error) {
		logCall(req, "read_doc "+in.Name)
		body, ok := docs.read(in.Name)
		if !ok {
			return nil, nil, fmt.Errorf("no document %q", in.Name)
		}
		return text(body), nil, nil
	})
	mcp.AddTool(server, &mcp.Tool{
		Name: "delete_doc", Description: "Delete a document.", Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(true)},
	}, func(ctx context.Context, req *mcp.CallToolRequest, in struct {
		Name string `json:"name" jsonschema:"the document's name"`
	}) (*mcp.CallToolResult, any, error) {
		logCall(req, "delete_doc "+in.Name)
		if !docs.remove(in.Name) {
			return nil, nil, fmt.Errorf("no document %q", in.Name)
		}
		return text("deleted " + in.Name), nil, nil
	})
	server.AddReceivingMiddleware(guard.Middleware)

	mux := http.NewServeMux()
	guard.Register(mux, mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil))
	srv := &http.Server{Addr: listen, Handler: logRefusals(mux), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-time.After(100 * time.Millisecond):
	}
	fmt.Printf("mcpserver: serving %s (metadata %s, authorization server %s)\n", resource, guard.ResourceMetadataURL(), issuer)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

func text(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

func ptr[T any](v T) *T { return &v }

// logCall prints each tool call with the credential that made it.
func logCall(req *mcp.CallToolRequest, what string) {
	if c := mcpauth.Claims(req.Extra.TokenInfo); c != nil {
		log.Printf("call %s: session %s, credential %s, scope %q", what, c.Txn, c.ID, c.Scope)
	}
}

// logRefusals prints every request the guard refused.
func logRefusals(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		if rec.status == http.StatusUnauthorized || rec.status == http.StatusForbidden {
			log.Printf("refused %s %s: %d %s", r.Method, r.URL.Path, rec.status, w.Header().Get("WWW-Authenticate"))
		}
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) { s.status = code; s.ResponseWriter.WriteHeader(code) }

// Flush keeps server-sent events streaming through the recorder.
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// store is an in-memory document store.
type store struct {
	mu   sync.Mutex
	docs map[string]string
}

func newStore() *store {
	return &store{docs: map[string]string{
		"q3-plan":     "Q3 plan: ship the MCP integration, then the token exchange.",
		"q3-budget":   "Q3 budget: two engineers, one reviewer.",
		"onboarding":  "Onboarding: read the README, run make dev.",
		"postmortems": "Postmortems: none this quarter.",
	}}
}

func (s *store) search(q string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for name, body := range s.docs {
		if strings.Contains(name, q) || strings.Contains(strings.ToLower(body), strings.ToLower(q)) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func (s *store) read(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.docs[name]
	return b, ok
}

func (s *store) remove(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.docs[name]
	delete(s.docs, name)
	return ok
}
