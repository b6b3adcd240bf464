package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/continuoustrust/vault-plugin-secrets-agent/mcpscope"
	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

// DefaultMCPCredentialTTL is the lifetime MCPTransport asks for when its
// TTL is zero.
const DefaultMCPCredentialTTL = time.Minute

// MCPTransport is an http.RoundTripper for an MCP client over the
// streamable HTTP transport, such as the official Go SDK's
// mcp.StreamableClientTransport (set it as the Transport of its
// HTTPClient). It sends every request with a credential of the session
// (Authorization: Bearer), an access token (format access_token) whose
// audience is the MCP server's resource URI:
//
//   - A JSON-RPC request that uses one tool, resource or prompt (tools/call,
//     resources/read, prompts/get, ...) gets a fresh credential with exactly
//     the scope it needs, by the mapping of package mcpscope: a call of
//     tool T carries only "call:tools/T". A credential stolen from it is
//     good for that one tool, for TTL (a minute by default), not for the
//     server.
//   - Everything else (initialize, notifications, the lists, the event
//     stream's GET, the closing DELETE) shares one credential whose scope
//     is SessionScopes (by default every scope of the session on this
//     server: the server lists what it allows), taken again once a third of
//     its life is left. A credential stolen from one of these requests is
//     good for the session's tools on this server for its lifetime; where
//     that matters more than listing, declare a scope no call uses (such as
//     "list:tools") in the intent and set SessionScopes to it.
//   - A request to any other URL than Resource is refused: credentials are
//     never sent elsewhere, by a redirect or by a shared http.Client.
//   - With a session DPoP key (Intent.DPoP), every credential is bound to
//     it and every request carries a fresh proof (Authorization: DPoP).
//
// When the engine refuses a credential (a tool outside the session's
// intent is a violation; a closed session refuses everything), RoundTrip
// fails with the engine's error and sends nothing, so the MCP call fails
// with it. Each credential is one step of the session, counted against
// its max_steps and max_rate.
//
// An MCPTransport is safe for concurrent use; its fields must not change
// once it is in use.
type MCPTransport struct {
	// Session gives the credentials. Required.
	Session *Session
	// Resource is the MCP server's canonical resource URI, such as
	// "https://tools.example.com/mcp": the credentials' audience, which
	// must be one of the session's audiences. Required.
	Resource string
	// Mapping is the MCP-to-scope mapping; the zero value is
	// mcpscope.Default. It must be the server's.
	Mapping mcpscope.Mapping
	// TTL is the lifetime asked for each credential; zero means
	// DefaultMCPCredentialTTL. The engine clamps it to the role's
	// step_max_ttl and the session's remaining life.
	TTL time.Duration
	// SessionScopes is the scope of the shared credential for requests
	// that use no tool, resource or prompt; empty means the part of the
	// session's scopes under the mapping's prefixes
	// (mcpscope.Mapping.Under). A server lists only what this scope
	// allows.
	SessionScopes []string
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper

	mu     sync.Mutex
	shared *Credential
	// sharedIssued is when shared was taken.
	sharedIssued time.Time
}

// RoundTrip implements http.RoundTripper.
func (t *MCPTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.Session == nil || t.Resource == "" {
		closeBody(req)
		return nil, errors.New("client: MCPTransport needs a Session and a Resource")
	}
	// Credentials go to the resource they are for, and nowhere else (not
	// to a host a redirect names, nor through a client shared with other
	// calls).
	if err := sameResource(req.URL, t.Resource); err != nil {
		closeBody(req)
		return nil, err
	}
	ctx := req.Context()
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(io.LimitReader(req.Body, mcpscope.MaxMessageSize+1))
		closeBody(req)
		if err != nil {
			return nil, fmt.Errorf("client: reading the MCP request: %w", err)
		}
		if len(b) > mcpscope.MaxMessageSize {
			return nil, fmt.Errorf("client: an MCP request over %d bytes is not sent", mcpscope.MaxMessageSize)
		}
		body = b
	}
	cred, err := t.credentialFor(ctx, req.Method, body)
	if err != nil {
		return nil, err
	}
	out := req.Clone(ctx)
	if body != nil {
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		out.ContentLength = int64(len(body))
	}
	if key := t.Session.DPoPKey; key != nil {
		if err := SignRequest(out, key, cred.Token); err != nil {
			return nil, err
		}
	} else {
		out.Header.Set("Authorization", "Bearer "+cred.Token)
	}
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(out)
}

// credentialFor returns the credential for a request with this method and
// body: a fresh one for what the messages need, or the shared one.
func (t *MCPTransport) credentialFor(ctx context.Context, method string, body []byte) (*Credential, error) {
	var scopes, what []string
	if method == http.MethodPost && len(body) > 0 {
		// A body the mapping cannot read goes with the shared
		// credential: the server refuses it, and no scope is asked for.
		msgs, err := mcpscope.Messages(body)
		if err == nil {
			for _, m := range msgs {
				needs, err := t.Mapping.Needs(m)
				if err != nil {
					return nil, fmt.Errorf("client: MCP %s: %w", m.Method, err)
				}
				for _, n := range needs {
					if !slices.Contains(scopes, n.Scope()) {
						scopes = append(scopes, n.Scope())
						what = append(what, m.Method+" "+strings.TrimPrefix(n.Resource, resourcePrefix(t.Mapping, m.Method)))
					}
				}
			}
		}
	}
	if len(scopes) == 0 {
		return t.sharedCredential(ctx)
	}
	cred, err := t.Session.Step(ctx, StepRequest{
		Scopes: scopes, Audience: t.Resource, TTL: t.ttl(), Format: token.FormatAccessToken,
		Description: clipDescription("mcp " + strings.Join(what, ", ")),
		Bind:        t.Session.DPoPKey != nil,
	})
	if err != nil {
		return nil, fmt.Errorf("client: no credential for MCP %s: %w", strings.Join(what, ", "), err)
	}
	return cred, nil
}

// sharedCredential returns the credential for requests that use nothing
// in particular, taking a new one once a third of its life is left.
func (t *MCPTransport) sharedCredential(ctx context.Context) (*Credential, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	// Taken again once a third of its life, as the engine granted it
	// (it may clamp the TTL asked for), is left.
	if c := t.shared; c != nil && time.Until(c.ExpiresAt) > c.ExpiresAt.Sub(t.sharedIssued)/3 {
		return c, nil
	}
	scopes := t.SessionScopes
	if len(scopes) == 0 {
		scopes = t.Mapping.Under(t.Session.Scopes)
	}
	if len(scopes) == 0 {
		return nil, fmt.Errorf("client: MCPTransport: no scope of the session lies under %s; set SessionScopes",
			strings.Join(t.Mapping.Prefixes(), ", "))
	}
	issued := time.Now()
	c, err := t.Session.Step(ctx, StepRequest{
		Scopes: scopes, Audience: t.Resource, TTL: t.ttl(), Format: token.FormatAccessToken,
		Description: "mcp session", Bind: t.Session.DPoPKey != nil,
	})
	if err != nil {
		return nil, fmt.Errorf("client: no credential for the MCP session: %w", err)
	}
	t.shared, t.sharedIssued = c, issued
	return c, nil
}

func (t *MCPTransport) ttl() time.Duration {
	if t.TTL > 0 {
		return t.TTL
	}
	return DefaultMCPCredentialTTL
}

// sameResource refuses a request URL other than resource's: another
// scheme, host, port or path (the query may differ).
func sameResource(u *url.URL, resource string) error {
	want, ferr := trust.CanonicalAudience(resource)
	if ferr != nil {
		return fmt.Errorf("client: MCPTransport.Resource: %v", ferr)
	}
	got := *u
	got.RawQuery, got.ForceQuery, got.Fragment, got.RawFragment = "", false, "", ""
	have, ferr := trust.CanonicalAudience(got.String())
	if ferr != nil || have != want {
		return fmt.Errorf("client: MCPTransport sends credentials for %s only, not to %s", want, got.Redacted())
	}
	return nil
}

// resourcePrefix is the prefix (with its "/") of the resources a method
// names, to describe a step by the name alone.
func resourcePrefix(m mcpscope.Mapping, method string) string {
	p := m.Prefixes()
	switch method {
	case mcpscope.MethodCallTool:
		return p[0] + "/"
	case mcpscope.MethodGetPrompt:
		return p[2] + "/"
	}
	return p[1] + "/"
}

// clipDescription keeps a step description within the engine's 256 bytes.
func clipDescription(s string) string {
	const max = 256
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max-3], "") + "..."
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}
