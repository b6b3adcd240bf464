// Command mcpagent is an example agent that reaches its tools through the
// Model Context Protocol, with a credential of the agent secrets engine
// per tool call. It drives the mcpserver example with the official Go
// SDK's client over client.MCPTransport: every JSON-RPC request goes out
// with a fresh access token whose audience is the server's resource URI
// and whose scope is exactly what that request needs (call:tools/search
// for a search), so a credential stolen from a call is good for that one
// tool for a minute, not for the server.
//
// It declares an intent that allows search and read_doc only, lists the
// tools, searches, reads a document, then tries delete_doc: the engine
// refuses that credential as a violation and kills the session, and every
// later call fails. It prints a narrative and exits 0 only if every
// expected outcome happened. VAULT_ADDR and VAULT_TOKEN (an agent token)
// come from the environment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/continuoustrust/vault-plugin-secrets-agent/client"
)

func main() {
	server := flag.String("server", "http://127.0.0.1:8400/mcp", "the MCP server's resource URI (its endpoint)")
	mount := flag.String("mount", "agent", "the engine's mount path")
	role := flag.String("role", "docs-agent", "the role to start the session under")
	settle := flag.Duration("settle", time.Second, "how long to give the server's background reports before going rogue")
	flag.Parse()
	if err := run(*server, *mount, *role, *settle); err != nil {
		fmt.Printf("\nFAILED: %v\n", err)
		os.Exit(1)
	}
	fmt.Println("\nEvery expected outcome happened.")
}

func say(format string, args ...any) { fmt.Printf(format+"\n", args...) }

func run(server, mount, role string, settle time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	vc, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		return err
	}

	say("1. The agent starts a session whose intent allows two tools of the MCP server: search and read_doc.")
	sess, err := client.New(vc, mount).Start(ctx, client.Intent{
		Role:      role,
		Purpose:   "answer a question from the team's documents",
		Scopes:    []string{"call:tools/search", "call:tools/read_doc"},
		Audiences: []string{server},
		MaxSteps:  20,
	})
	if err != nil {
		return fmt.Errorf("starting the session: %w", err)
	}
	say("   session %s, scopes %v, audience %v", sess.ID, sess.Scopes, sess.Audiences)

	transport := &client.MCPTransport{Session: sess, Resource: server, TTL: time.Minute}
	mcpClient := mcp.NewClient(&mcp.Implementation{Name: "mcpagent", Version: "v0.1.0"}, nil)
	cs, err := mcpClient.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint: server, HTTPClient: &http.Client{Transport: transport}, DisableStandaloneSSE: true, MaxRetries: -1,
	}, nil)
	if err != nil {
		return fmt.Errorf("connecting to the MCP server: %w", err)
	}
	defer cs.Close()

	say("\n2. It lists the tools: the server shows only those its credential allows.")
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		return fmt.Errorf("listing tools: %w", err)
	}
	var names []string
	for _, t := range tools.Tools {
		names = append(names, t.Name)
	}
	say("   tools: %s", strings.Join(names, ", "))
	if len(names) != 2 {
		return fmt.Errorf("the server listed %v, want search and read_doc", names)
	}

	say("\n3. It searches, with a credential for call:tools/search only.")
	out, err := callText(ctx, cs, "search", map[string]any{"query": "q3"})
	if err != nil {
		return fmt.Errorf("search: %w", err)
	}
	say("   found: %s", strings.ReplaceAll(out, "\n", ", "))

	say("\n4. It reads a document, with a credential for call:tools/read_doc only.")
	out, err = callText(ctx, cs, "read_doc", map[string]any{"name": "q3-plan"})
	if err != nil {
		return fmt.Errorf("read_doc: %w", err)
	}
	say("   q3-plan: %s", out)
	// The server reports each call to the engine in the background, so
	// the session's access path shows it; give the reports a moment.
	time.Sleep(settle)

	say("\n5. It goes rogue: it calls delete_doc, which its intent does not allow.")
	_, err = callText(ctx, cs, "delete_doc", map[string]any{"name": "q3-budget"})
	if err == nil {
		return errors.New("delete_doc was allowed")
	}
	if !errors.Is(err, client.ErrViolation) {
		return fmt.Errorf("delete_doc failed, but not as a violation: %w", err)
	}
	say("   refused by the engine: %v", err)

	say("\n6. The session is dead: every later call fails, even one that was allowed.")
	if _, err := callText(ctx, cs, "search", map[string]any{"query": "plan"}); err == nil {
		return errors.New("search still works after the session was revoked")
	} else if !errors.Is(err, client.ErrSessionClosed) {
		return fmt.Errorf("search failed, but not because the session is closed: %w", err)
	} else {
		say("   search: %v", err)
	}
	st, err := sess.Status(ctx)
	if err != nil {
		return fmt.Errorf("reading the session: %w", err)
	}
	say("   session state: %s (%s)", st.State, st.RevokedReason)
	if st.State != "revoked" {
		return fmt.Errorf("session state %q, want revoked", st.State)
	}
	return nil
}

// callText calls a tool and returns its text, or the error that stopped
// it (from the transport, the server, or the tool).
func callText(ctx context.Context, cs *mcp.ClientSession, tool string, args map[string]any) (string, error) {
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		return "", err
	}
	var parts []string
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, t.Text)
		}
	}
	if res.IsError {
		return "", fmt.Errorf("tool error: %s", strings.Join(parts, " "))
	}
	return strings.Join(parts, "\n"), nil
}
