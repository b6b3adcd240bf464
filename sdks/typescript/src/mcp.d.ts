import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import type { OAuthTokenVerifier } from '@modelcontextprotocol/sdk/server/auth/provider.js';
import type { Verifier, VerifierConfig } from './index.js';

/** A verifier for an MCP server: access tokens only, audience = resource. */
export function createMcpVerifier(cfg: Omit<VerifierConfig, 'audience' | 'formats'> & { resource: string }): Promise<Verifier>;
/** An OAuthTokenVerifier for the SDK's requireBearerAuth. */
export function mcpTokenVerifier(verifier: Verifier): OAuthTokenVerifier;
/** Throws the SDK's InsufficientScopeError unless authInfo allows calling tool. */
export function requireTool(authInfo: AuthInfo | undefined, tool: string, prefix?: string): void;
