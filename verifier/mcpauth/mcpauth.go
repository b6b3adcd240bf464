// Package mcpauth protects an MCP server built on the official Go SDK
// (github.com/modelcontextprotocol/go-sdk) with the agent secrets engine,
// as the MCP authorization specification describes: the server is an OAuth
// 2.1 resource server, the engine its authorization server.
//
// A Guard checks every HTTP request to the server:
//
//   - The request must carry a step credential in the access-token format
//     (Authorization: Bearer, an RFC 9068 JWT access token, typ at+jwt)
//     whose audience is the server's canonical resource URI, signed by the
//     engine, for the engine's issuer, of a session that is still active
//     (package verifier: signature, aud, iss, lifetime, revocations, and a
//     fail-closed staleness limit). Otherwise the answer is 401 with
//     WWW-Authenticate: Bearer resource_metadata="..." (RFC 9728), and
//     error="invalid_token" when a credential came; or 503 when the
//     revocation list is stale.
//   - A JSON-RPC request that uses a tool, resource or prompt must be
//     allowed by the credential's scope, by the mapping of package
//     mcpscope (tools/call of T is call on tools/T, resources/read of U is
//     read on resources/<path of U>, prompts/get of P is get on prompts/P).
//     Otherwise the answer is 403 with WWW-Authenticate: Bearer
//     error="insufficient_scope", scope="<what was needed>", and the use is
//     reported to the engine, which holds it against the session
//     (reported_misuse, then the session's on_violation).
//   - With Config.Report, every call allowed is reported too, in the
//     background, so that the session's timeline and access-path graph show
//     the tool calls the agent actually made.
//
// A credential bound to a key (cnf.jkt) must come as "Authorization: DPoP"
// with a DPoP proof (RFC 9449) by that key for this request (401
// invalid_dpop_proof otherwise).
//
// Its Middleware, added to the SDK server as receiving middleware, is the
// authoritative check: it sees each request as the SDK decoded it for its
// handler, refuses (and reports) a call, read, get or completion outside
// the credential, refuses methods the mapping does not know, and shows in
// tools/list, prompts/list, resources/list and resources/templates/list
// only what the credential allows. Protect checks the same at the HTTP
// layer, first, to answer with the 403 challenge MCP clients understand;
// it reads the body by strict JSON rules so that it sees what the SDK
// sees. Install both. Its MetadataHandler serves the RFC 9728
// protected-resource metadata, naming the engine as the authorization
// server.
//
// A credential is checked when a request arrives: a stream opened before
// its session closes (a GET event stream, subscriptions/listen) is not cut
// when it does.
//
// Protecting a server takes a few lines:
//
//	guard, err := mcpauth.New(ctx, mcpauth.Config{
//		Resource: "https://tools.example.com/mcp",
//		Verifier: verifier.Config{VaultAddr: "https://vault.example.com:8200", Issuer: "https://vault.example.com:8200/v1/agent"},
//	})
//	if err != nil { ... }
//	defer guard.Close()
//	server := mcp.NewServer(&mcp.Implementation{Name: "tools"}, nil)
//	server.AddReceivingMiddleware(guard.Middleware)
//	mux := http.NewServeMux()
//	guard.Register(mux, mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil))
package mcpauth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/continuoustrust/vault-plugin-secrets-agent/dpop"
	"github.com/continuoustrust/vault-plugin-secrets-agent/mcpscope"
	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
	"github.com/continuoustrust/vault-plugin-secrets-agent/verifier"
)

// WellKnownPath is the path under which RFC 9728 protected-resource
// metadata is served; a resource with a path has its metadata at
// WellKnownPath followed by that path.
const WellKnownPath = "/.well-known/oauth-protected-resource"

// Config configures a Guard.
type Config struct {
	// Resource is the MCP server's canonical resource URI, such as
	// "https://tools.example.com/mcp": the audience every credential must
	// carry. It is canonicalised as the engine canonicalises audiences
	// (scheme and host in lower case, no default port). Required.
	Resource string
	// Verifier configures the verification of credentials: VaultAddr,
	// Mount, Issuer, the revocation sync and its staleness limit, and
	// VaultToken for reports. New sets Audience (to Resource) and Formats
	// (access tokens only).
	Verifier verifier.Config
	// AuthorizationServer is the engine's issuer identifier as listed in
	// the metadata (RFC 8414: where its authorization-server metadata is).
	// Default: Verifier.Issuer when it is an http(s) URL, else
	// "<VaultAddr>/v1/<Mount>". For MCP clients that discover, set the
	// engine's config issuer to "https://<vault>/v1/<mount>".
	AuthorizationServer string
	// ResourceName is the human-readable name in the metadata.
	ResourceName string
	// ScopesSupported is listed in the metadata, when set.
	ScopesSupported []string
	// Mapping is the MCP-to-scope mapping; the zero value is
	// mcpscope.Default. Agents must use the same.
	Mapping mcpscope.Mapping
	// Report sends every tool call, resource read and prompt get the
	// server allowed to the engine's report path, in the background, with
	// the time it arrived (needs Verifier.VaultToken). Refused ones are
	// reported whenever Verifier.VaultToken is set.
	Report bool
}

// Guard protects an MCP server. It is safe for concurrent use.
type Guard struct {
	cfg         Config
	v           *verifier.Verifier
	metadata    *oauthex.ProtectedResourceMetadata
	metadataURL string
	bearer      func(http.Handler) http.Handler
}

// New checks cfg, starts a verifier (fetching the engine's keys and
// revocation list) and returns the Guard. Close stops it.
func New(ctx context.Context, cfg Config) (*Guard, error) {
	res, err := canonicalResource(cfg.Resource)
	if err != nil {
		return nil, err
	}
	cfg.Resource = res
	if err := cfg.Mapping.Check(); err != nil {
		return nil, err
	}
	if cfg.Report && cfg.Verifier.VaultToken == "" {
		return nil, errors.New("mcpauth: Config.Report needs Config.Verifier.VaultToken (a token allowed to update <mount>/report)")
	}
	vc := cfg.Verifier
	if vc.Audience != "" {
		if a, err := canonicalResource(vc.Audience); err != nil || a != cfg.Resource {
			return nil, fmt.Errorf("mcpauth: Config.Verifier.Audience (%q) is not Config.Resource; leave it empty", vc.Audience)
		}
	}
	vc.Audience = cfg.Resource
	vc.Formats = []token.Format{token.FormatAccessToken}
	vc.Report = false // the guard reports what it maps, not HTTP requests
	if cfg.AuthorizationServer == "" {
		cfg.AuthorizationServer = defaultAuthorizationServer(vc)
	}
	v, err := verifier.New(ctx, vc)
	if err != nil {
		return nil, err
	}
	g := &Guard{cfg: cfg, v: v, metadataURL: MetadataURL(cfg.Resource)}
	g.metadata = &oauthex.ProtectedResourceMetadata{
		Resource:               cfg.Resource,
		AuthorizationServers:   []string{cfg.AuthorizationServer},
		ScopesSupported:        cfg.ScopesSupported,
		BearerMethodsSupported: []string{"header"},
		ResourceName:           cfg.ResourceName,
	}
	g.bearer = auth.RequireBearerToken(g.TokenVerifier(), &auth.RequireBearerTokenOptions{ResourceMetadataURL: g.metadataURL})
	return g, nil
}

// Close stops the verifier's background work.
func (g *Guard) Close() { g.v.Close() }

// Verifier returns the verifier the guard checks credentials with.
func (g *Guard) Verifier() *verifier.Verifier { return g.v }

// Resource returns the canonical resource URI the guard protects.
func (g *Guard) Resource() string { return g.cfg.Resource }

// ResourceMetadataURL returns the URL of the protected-resource metadata,
// as sent in the WWW-Authenticate challenges.
func (g *Guard) ResourceMetadataURL() string { return g.metadataURL }

// MetadataURL returns where RFC 9728 puts the protected-resource metadata
// of resource: WellKnownPath inserted between its host and its path
// ("https://h/mcp" gives "https://h/.well-known/oauth-protected-resource/mcp").
func MetadataURL(resource string) string {
	u, err := url.Parse(resource)
	if err != nil {
		return ""
	}
	path := strings.TrimSuffix(u.Path, "/")
	u.Path = WellKnownPath + path
	u.RawPath = ""
	return u.String()
}

// Register mounts, on mux, mcpHandler behind Protect at the resource's
// path (or "/" when it has none), and the metadata at WellKnownPath and at
// WellKnownPath followed by the resource's path.
func (g *Guard) Register(mux *http.ServeMux, mcpHandler http.Handler) {
	u, _ := url.Parse(g.cfg.Resource)
	path := strings.TrimSuffix(u.Path, "/")
	if path == "" {
		mux.Handle("/", g.Protect(mcpHandler))
	} else {
		mux.Handle(path, g.Protect(mcpHandler))
		mux.Handle(WellKnownPath+path, g.MetadataHandler())
	}
	mux.Handle(WellKnownPath, g.MetadataHandler())
}

// MetadataHandler serves the RFC 9728 protected-resource metadata: the
// resource, the engine as its authorization server, header bearer tokens.
func (g *Guard) MetadataHandler() http.Handler {
	return auth.ProtectedResourceMetadataHandler(g.metadata)
}

// verifiedKey carries, from Protect to TokenVerifier, the credential
// Protect verified, so that it is verified once per request.
type verifiedKey struct{}

type verified struct {
	raw    string
	claims *token.Claims
	seen   time.Time
}

// credential is what a TokenInfo carries in its Extra; its printed form
// never shows the token.
type credential struct {
	claims *token.Claims
	raw    string
}

func (c *credential) String() string   { return "credential " + c.claims.ID }
func (c *credential) GoString() string { return c.String() }

// extraKey is the TokenInfo.Extra member holding the credential.
const extraKey = "agent_credential"

// Claims returns the verified claims of the credential behind ti (from
// req.Extra.TokenInfo in a tool handler, or auth.TokenInfoFromContext), or
// nil when ti did not come from a Guard.
func Claims(ti *auth.TokenInfo) *token.Claims {
	if c := credentialOf(ti); c != nil {
		return c.claims
	}
	return nil
}

func credentialOf(ti *auth.TokenInfo) *credential {
	if ti == nil {
		return nil
	}
	c, _ := ti.Extra[extraKey].(*credential)
	return c
}

func tokenInfo(c *token.Claims, raw string) *auth.TokenInfo {
	return &auth.TokenInfo{
		Scopes:     strings.Fields(c.Scope),
		Expiration: time.Unix(c.Expiry, 0),
		// The SDK binds an MCP session to its first UserID: to the agent's
		// session (txn), not only to its creator (sub), whom all the
		// creator's sessions share.
		UserID: c.Subject + " " + c.Txn,
		Extra:  map[string]any{extraKey: &credential{claims: c, raw: raw}},
	}
}

// TokenVerifier returns a verifier for the SDK's auth.RequireBearerToken:
// it checks the credential with the guard's verifier (an access token for
// the resource, of an active session) and returns its TokenInfo: Scopes
// from "scope", Expiration from "exp", UserID from "sub", and the claims
// for Claims. Its errors wrap auth.ErrInvalidToken. Protect uses it, so a
// server that uses Protect need not.
func (g *Guard) TokenVerifier() auth.TokenVerifier {
	return func(ctx context.Context, raw string, _ *http.Request) (*auth.TokenInfo, error) {
		if pv, ok := ctx.Value(verifiedKey{}).(*verified); ok && pv.raw == raw {
			return tokenInfo(pv.claims, raw), nil
		}
		// Without Protect, only a bearer token: Verify refuses a
		// credential bound to a key, whose proof only Protect checks.
		c, err := g.v.Verify(ctx, raw)
		if err != nil {
			return nil, fmt.Errorf("%w: %s", auth.ErrInvalidToken, describe(err))
		}
		return tokenInfo(c, raw), nil
	}
}

// Protect returns next behind the guard: the credential checked (401,
// 503), then every JSON-RPC request's need against its scope (403), then
// next, with the SDK's TokenInfo in the request's context (so the
// streamable handler binds MCP sessions to the agent, and tool handlers
// read req.Extra.TokenInfo).
func (g *Guard) Protect(next http.Handler) http.Handler {
	inner := g.bearer(g.authorize(next))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen := time.Now()
		if raw, _ := verifier.Credential(r); raw == "" {
			// RFC 6750 section 3.1: no error code when no credential came.
			g.challenge(w, http.StatusUnauthorized, "", "", "this MCP server needs an access token of the agent secrets engine")
			return
		}
		// The credential, and for one bound to a key its DPoP proof.
		raw, c, err := g.v.VerifyRequest(r.Context(), r)
		if errors.Is(err, verifier.ErrStale) {
			w.Header().Set("Retry-After", "5")
			http.Error(w, "the revocation list is stale: credentials cannot be checked", http.StatusServiceUnavailable)
			return
		}
		if errors.Is(err, verifier.ErrProof) {
			g.challengeDPoP(w, describe(err))
			return
		}
		if err != nil {
			g.challenge(w, http.StatusUnauthorized, "invalid_token", "", describe(err))
			return
		}
		ctx := context.WithValue(r.Context(), verifiedKey{}, &verified{raw: raw, claims: c, seen: seen})
		r = r.WithContext(ctx)
		if r.Header.Get(dpop.HeaderName) != "" || !strings.HasPrefix(strings.ToLower(r.Header.Get("Authorization")), "bearer ") {
			// The SDK's bearer middleware reads "Bearer" only: hand it the
			// credential checked above that way (its proof is checked).
			r.Header = r.Header.Clone()
			r.Header.Set("Authorization", "Bearer "+raw)
			r.Header.Del(dpop.HeaderName)
		}
		inner.ServeHTTP(w, r)
	})
}

// authorize checks each JSON-RPC request of a POST against the
// credential's scope, and reports what it allowed or refused.
func (g *Guard) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pv, _ := r.Context().Value(verifiedKey{}).(*verified)
		if r.Method != http.MethodPost || pv == nil {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, mcpscope.MaxMessageSize+1))
		_ = r.Body.Close()
		if err != nil {
			http.Error(w, "cannot read the request body", http.StatusBadRequest)
			return
		}
		if len(body) > mcpscope.MaxMessageSize {
			http.Error(w, "the request body is too large", http.StatusRequestEntityTooLarge)
			return
		}
		msgs, err := mcpscope.Messages(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var allowed []mcpscope.Need
		for _, m := range msgs {
			needs, err := g.cfg.Mapping.Needs(m)
			if err != nil {
				g.challenge(w, http.StatusBadRequest, "invalid_request", "", err.Error())
				return
			}
			for _, n := range needs {
				if mcpscope.Allowed(pv.claims.Scope, n) {
					allowed = append(allowed, n)
					continue
				}
				if g.cfg.Verifier.VaultToken != "" {
					g.v.ReportLater(pv.raw, n.Action, n.Resource, "denied", pv.seen)
				}
				g.challenge(w, http.StatusForbidden, "insufficient_scope", n.Scope(),
					fmt.Sprintf("the credential does not allow %s on %s", n.Action, n.Resource))
				return
			}
		}
		if g.cfg.Report {
			for _, n := range allowed {
				g.v.ReportLater(pv.raw, n.Action, n.Resource, "allowed", pv.seen)
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		next.ServeHTTP(w, r)
	})
}

// challengeDPoP answers 401 for a missing or bad proof of possession
// (RFC 9449 section 7.1).
func (g *Guard) challengeDPoP(w http.ResponseWriter, description string) {
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`DPoP error="invalid_dpop_proof", algs="EdDSA ES256", resource_metadata=%q, error_description=%q`,
		g.metadataURL, headerSafe(description)))
	http.Error(w, description, http.StatusUnauthorized)
}

// challenge answers with status and an RFC 6750 WWW-Authenticate
// challenge naming the metadata (RFC 9728 section 5.1).
func (g *Guard) challenge(w http.ResponseWriter, status int, code, scope, description string) {
	params := []string{}
	if code != "" {
		params = append(params, fmt.Sprintf("error=%q", code))
	}
	if scope != "" {
		params = append(params, fmt.Sprintf("scope=%q", scope))
	}
	params = append(params, fmt.Sprintf("resource_metadata=%q", g.metadataURL))
	if code != "" && description != "" {
		params = append(params, fmt.Sprintf("error_description=%q", headerSafe(description)))
	}
	w.Header().Set("WWW-Authenticate", "Bearer "+strings.Join(params, ", "))
	http.Error(w, description, status)
}

// headerSafe keeps printable ASCII but quotes and backslashes (RFC 6750
// section 3: error_description is %x20-21 / %x23-5B / %x5D-7E).
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '\''
		}
		return r
	}, s)
}

// describe says why a credential was refused, without quoting it.
func describe(err error) string {
	switch {
	case errors.Is(err, verifier.ErrSessionClosed):
		return "the credential's session is closed"
	case errors.Is(err, token.ErrExpired):
		return "the credential has expired"
	case errors.Is(err, token.ErrNotYetValid):
		return "the credential is not yet valid"
	case errors.Is(err, token.ErrAudience):
		return "the credential is for another resource"
	case errors.Is(err, token.ErrIssuer):
		return "the credential is from another issuer"
	case errors.Is(err, token.ErrType):
		return "the credential is not an access token (typ at+jwt)"
	case errors.Is(err, token.ErrUnknownKey), errors.Is(err, token.ErrSignature), errors.Is(err, token.ErrAlgorithm):
		return "the credential's signature does not verify"
	case errors.Is(err, token.ErrLifetime):
		return "the credential's lifetime is too long"
	case errors.Is(err, verifier.ErrStale):
		return "the revocation list is stale"
	case errors.Is(err, dpop.ErrReplay):
		return "the DPoP proof was replayed"
	case errors.Is(err, dpop.ErrKey):
		return "the DPoP proof is not by the credential's key"
	case errors.Is(err, dpop.ErrMissing):
		return "the credential is bound to a key: a DPoP proof is needed"
	case errors.Is(err, verifier.ErrProof):
		return "no valid DPoP proof for this request"
	}
	return "the credential is not valid"
}

// Middleware is receiving middleware for the SDK server
// (server.AddReceivingMiddleware(guard.Middleware)), and the authoritative
// check: it sees each request exactly as the SDK decoded it for its
// handler. A call, read, get or completion outside the request's
// credential is refused with an error (and reported to the engine as
// denied when Protect did not refuse it first), and so is a method the
// mapping does not know; tools/list, prompts/list, resources/list and
// resources/templates/list show only what the credential allows (nothing
// without one).
func (g *Guard) Middleware(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		var cred *credential
		if extra := req.GetExtra(); extra != nil {
			cred = credentialOf(extra.TokenInfo)
		}
		granted := ""
		if cred != nil {
			granted = cred.claims.Scope
		}
		needs, err := g.cfg.Mapping.Needs(messageOf(method, req))
		if err != nil {
			return nil, fmt.Errorf("mcpauth: %w", err)
		}
		for _, n := range needs {
			if cred == nil || !mcpscope.Allowed(granted, n) {
				if cred != nil && g.cfg.Verifier.VaultToken != "" {
					g.v.ReportLater(cred.raw, n.Action, n.Resource, "denied", time.Time{})
				}
				return nil, fmt.Errorf("mcpauth: insufficient scope: %s is needed", n.Scope())
			}
		}
		res, err := next(ctx, method, req)
		if err != nil || res == nil {
			return res, err
		}
		allows := func(n mcpscope.Need, err error) bool {
			return err == nil && cred != nil && mcpscope.Allowed(granted, n)
		}
		switch r := res.(type) {
		case *mcp.ListToolsResult:
			kept := r.Tools[:0:0]
			for _, t := range r.Tools {
				if allows(g.cfg.Mapping.Tool(t.Name)) {
					kept = append(kept, t)
				}
			}
			r.Tools = kept
		case *mcp.ListPromptsResult:
			kept := r.Prompts[:0:0]
			for _, p := range r.Prompts {
				if allows(g.cfg.Mapping.Prompt(p.Name)) {
					kept = append(kept, p)
				}
			}
			r.Prompts = kept
		case *mcp.ListResourcesResult:
			kept := r.Resources[:0:0]
			for _, rs := range r.Resources {
				if allows(g.cfg.Mapping.Resource(rs.URI)) {
					kept = append(kept, rs)
				}
			}
			r.Resources = kept
		case *mcp.ListResourceTemplatesResult:
			// A template is shown when the credential could read an
			// instance of it: its variables filled with "x".
			kept := r.ResourceTemplates[:0:0]
			for _, rt := range r.ResourceTemplates {
				if allows(g.cfg.Mapping.Resource(templateInstance(rt.URITemplate))) {
					kept = append(kept, rt)
				}
			}
			r.ResourceTemplates = kept
		}
		return res, nil
	}
}

// messageOf is what the mapping reads of an SDK request.
func messageOf(method string, req mcp.Request) mcpscope.Message {
	m := mcpscope.Message{Method: method}
	switch p := req.GetParams().(type) {
	case *mcp.CallToolParamsRaw:
		m.Name = p.Name
	case *mcp.GetPromptParams:
		m.Name = p.Name
	case *mcp.ReadResourceParams:
		m.URI = p.URI
	case *mcp.SubscribeParams:
		m.URI = p.URI
	case *mcp.UnsubscribeParams:
		m.URI = p.URI
	case *mcp.CompleteParams:
		if p.Ref != nil {
			m.RefType, m.RefName, m.RefURI = p.Ref.Type, p.Ref.Name, p.Ref.URI
		}
	case *mcp.SubscriptionsListenParams:
		if p.Notifications != nil {
			m.URIs = p.Notifications.ResourceSubscriptions
		}
	}
	return m
}

// templateInstance fills each {variable} of an RFC 6570 template with "x".
func templateInstance(t string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(t, '{')
		if i < 0 {
			b.WriteString(t)
			return b.String()
		}
		j := strings.IndexByte(t[i:], '}')
		if j < 0 {
			b.WriteString(t)
			return b.String()
		}
		b.WriteString(t[:i] + "x")
		t = t[i+j+1:]
	}
}

// canonicalResource checks an absolute http(s) URI without fragment or
// user information and returns it canonicalised as the engine
// canonicalises audiences.
func canonicalResource(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (!strings.EqualFold(u.Scheme, "https") && !strings.EqualFold(u.Scheme, "http")) || u.Host == "" {
		return "", fmt.Errorf("mcpauth: Config.Resource %q must be an absolute http(s) URI", s)
	}
	if u.Fragment != "" || strings.Contains(s, "#") || u.User != nil || u.RawQuery != "" || u.ForceQuery {
		return "", fmt.Errorf("mcpauth: Config.Resource %q must have no query, no fragment and no user information", s)
	}
	if len(u.Path) > 1 && strings.HasSuffix(u.Path, "/") {
		return "", fmt.Errorf("mcpauth: Config.Resource %q: write it without a trailing slash, as MCP clients do", s)
	}
	c, ferr := trust.CanonicalAudience(s)
	if ferr != nil {
		return "", fmt.Errorf("mcpauth: Config.Resource: %v", ferr)
	}
	return c, nil
}

// defaultAuthorizationServer is the engine's issuer when it is a URL, or
// where the engine's metadata is served.
func defaultAuthorizationServer(vc verifier.Config) string {
	if strings.HasPrefix(vc.Issuer, "https://") || strings.HasPrefix(vc.Issuer, "http://") {
		return vc.Issuer
	}
	mount := strings.Trim(vc.Mount, "/")
	if mount == "" {
		mount = "agent"
	}
	return strings.TrimRight(vc.VaultAddr, "/") + "/v1/" + mount
}
