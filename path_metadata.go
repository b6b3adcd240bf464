package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/continuoustrust/vault-plugin-secrets-agent/dpop"
)

// Authorization-server metadata (RFC 8414), served for OAuth and MCP
// clients that discover where a credential's keys are: the engine is the
// authorization server that MCP servers name in their protected-resource
// metadata (RFC 9728).
const (
	wellKnownOAuth  = ".well-known/oauth-authorization-server"
	wellKnownOpenID = ".well-known/openid-configuration"
)

func pathMetadata(b *backend) []*framework.Path {
	path := func(p, suffix, what string) *framework.Path {
		return &framework.Path{
			Pattern: strings.ReplaceAll(p, ".", `\.`) + "$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix, OperationVerb: "read", OperationSuffix: suffix,
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:  b.pathMetadataRead,
					Summary:   what + " (no Vault token needed).",
					Responses: metadataResponses(),
				},
			},
			HelpSynopsis:    pathMetadataHelpSyn,
			HelpDescription: pathMetadataHelpDesc,
		}
	}
	return []*framework.Path{
		path(wellKnownOAuth, "authorization-server-metadata", "OAuth authorization-server metadata (RFC 8414)"),
		path(wellKnownOpenID, "openid-configuration", "The same metadata where OpenID Connect clients look for it"),
	}
}

// issuerURL checks that the engine's issuer is the URL its metadata is
// served under, https://<vault>/v1/<mount> (http for a loopback Vault),
// and returns it parsed; otherwise it says why not.
func issuerURL(issuer, mountPoint string) (*url.URL, string) {
	u, err := url.Parse(issuer)
	mount := "/v1/" + strings.Trim(mountPoint, "/")
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return nil, "the issuer " + issuer + " is not a URL"
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		return nil, "the issuer " + issuer + " is not https"
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(issuer, "#"):
		return nil, "the issuer " + issuer + " has a query or a fragment"
	case strings.TrimSuffix(u.Path, "/") != mount:
		return nil, "the issuer " + issuer + " does not end in " + mount
	}
	return u, ""
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// issuerWarning is the warning config answers with when its issuer cannot
// be served as authorization-server metadata, or "".
func issuerWarning(issuer, mountPoint string) string {
	if _, why := issuerURL(issuer, mountPoint); why != "" {
		return why + ": OAuth and MCP clients cannot discover this engine's keys " +
			"(.well-known/oauth-authorization-server); set issuer to https://<vault address>/v1/" +
			strings.Trim(mountPoint, "/") + " if they need to"
	}
	return ""
}

func (b *backend) pathMetadataRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	cfg, err := b.loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	issuer := cfg.issuerFor(req.MountPoint)
	u, why := issuerURL(issuer, req.MountPoint)
	if u == nil {
		return nil, &refusal{status: http.StatusNotFound, msg: why + ": this engine serves no authorization-server metadata until config's issuer is the URL of this mount",
			data: map[string]interface{}{"reason": reasonNotFound, "field": "issuer"}}
	}
	base := strings.TrimSuffix(issuer, "/")
	body, err := json.Marshal(map[string]interface{}{
		"issuer":   issuer,
		"jwks_uri": base + "/jwks",
		// Credentials are issued to Vault-authenticated agents at creds/,
		// and exchanged at token (RFC 8693), where the subject token is
		// the authority: no authorization endpoint, no response type, no
		// client authentication.
		"token_endpoint":                        base + "/token",
		"response_types_supported":              []string{},
		"grant_types_supported":                 []string{grantTokenExchange},
		"token_endpoint_auth_methods_supported": []string{"none"},
		"dpop_signing_alg_values_supported":     dpop.Algorithms,
	})
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{
		logical.HTTPStatusCode:  http.StatusOK,
		logical.HTTPContentType: "application/json",
		logical.HTTPRawBody:     body,
	}}, nil
}

func metadataResponses() map[int][]framework.Response {
	return map[int][]framework.Response{
		http.StatusOK: {{
			Description: `OK: RFC 8414 authorization-server metadata as the raw response body, not wrapped in Vault's "data".`,
			MediaType:   "application/json",
			Fields: map[string]*framework.FieldSchema{
				"issuer":                                required(framework.TypeString, "The engine's issuer: the URL of this mount."),
				"jwks_uri":                              required(framework.TypeString, "Where the signing keys are: <issuer>/jwks."),
				"token_endpoint":                        required(framework.TypeString, "Where credentials are exchanged (RFC 8693): <issuer>/token."),
				"response_types_supported":              required(framework.TypeStringSlice, "None: credentials are not issued through an authorization endpoint."),
				"grant_types_supported":                 required(framework.TypeStringSlice, "The OAuth grants served: token exchange."),
				"token_endpoint_auth_methods_supported": required(framework.TypeStringSlice, `"none": the subject token is the authority.`),
				"dpop_signing_alg_values_supported":     required(framework.TypeStringSlice, "The DPoP proof algorithms accepted (RFC 9449): EdDSA and ES256."),
			},
		}},
	}
}

const pathMetadataHelpSyn = `Authorization-server metadata (RFC 8414) for OAuth and MCP clients.`

const pathMetadataHelpDesc = `
An MCP server (an OAuth 2.1 resource server) names this engine as its
authorization server; clients then read this metadata to find the keys
that sign the credentials they will be given. No Vault token is needed.
The same document is served at .well-known/oauth-authorization-server and
.well-known/openid-configuration, where different clients look.

The metadata is valid only when the engine's issuer is the URL it is
served under, so it is served only then:

  vault write agent/config issuer=https://vault.example.com:8200/v1/agent
  curl https://vault.example.com:8200/v1/agent/.well-known/oauth-authorization-server

config answers with a warning while the issuer is not such a URL.
`
