// A verifier for the official MCP TypeScript SDK's bearer-auth middleware
// (@modelcontextprotocol/sdk's requireBearerAuth): an MCP server takes the
// engine's access tokens (format access_token, typ at+jwt) whose audience
// is its canonical URI, and checks each tool call against the token's
// scope with the engine's own grammar: call on tools/<name>.

import { InvalidTokenError, InsufficientScopeError } from '@modelcontextprotocol/sdk/server/auth/errors.js';
import { createVerifier } from './verifier.js';
import { parseSpaceSeparated } from './scope.js';

/**
 * Creates the verifier for an MCP server at resource (its canonical URI):
 * access tokens only, audience = resource. cfg as createVerifier's.
 */
export async function createMcpVerifier(cfg) {
  if (!cfg.resource) throw new Error('createMcpVerifier: resource (the server canonical URI) is required');
  return createVerifier({ ...cfg, audience: cfg.resource, formats: ['access_token'] });
}

/**
 * An OAuthTokenVerifier for requireBearerAuth({ verifier, resourceMetadataUrl }).
 * verifyAccessToken resolves to the SDK's AuthInfo: token, clientId
 * (client_id), scopes, expiresAt, resource (the audience) and extra.claims;
 * it throws InvalidTokenError for any refused credential (401).
 */
export function mcpTokenVerifier(verifier) {
  return {
    async verifyAccessToken(token) {
      let claims;
      try {
        claims = await verifier.verify(token);
      } catch (e) {
        throw new InvalidTokenError(e.message);
      }
      return {
        token,
        clientId: claims.client_id,
        scopes: claims.scope.split(' '),
        expiresAt: claims.exp,
        resource: new URL(claims.aud),
        extra: { claims },
      };
    },
  };
}

/** Throws InsufficientScopeError unless authInfo allows calling tool. */
export function requireTool(authInfo, tool, prefix = 'tools') {
  const set = parseSpaceSeparated(authInfo?.extra?.claims?.scope ?? '');
  if (!set.match('call', `${prefix}/${tool}`)) throw new InsufficientScopeError(`call:${prefix}/${tool} is needed`);
}
