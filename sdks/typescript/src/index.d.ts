// Types of @continuoustrust/agent-verifier.

/** The claims of a verified step credential. */
export interface Claims {
  iss: string;
  sub?: string;
  aud: string;
  client_id?: string;
  iat: number;
  nbf?: number;
  exp: number;
  jti: string;
  txn: string;
  scope: string;
  dep: number;
  par?: string;
  tctx?: { role: string; purpose?: string };
  rctx?: { description?: string; req_ip?: string };
  act?: { sub: string; act?: unknown };
  cnf?: { jkt: string };
  /** The credential's format, from its typ header. */
  format: 'txn_token' | 'access_token';
  [claim: string]: unknown;
}

/** Stable refusal codes. */
export type ErrorCode =
  | 'malformed' | 'too_large' | 'algorithm' | 'unknown_key' | 'signature' | 'type' | 'issuer' | 'audience'
  | 'expired' | 'not_yet_valid' | 'claims' | 'lifetime' | 'session_closed' | 'proof_required' | 'stale'
  | 'scope' | 'no_credential';

export class VerifierError extends Error {
  code: ErrorCode;
}

export interface VerifierConfig {
  vaultAddr: string;
  issuer: string;
  audience: string;
  mount?: string;
  formats?: Array<'txn_token' | 'access_token'>;
  algorithms?: Array<'EdDSA' | 'ES256'>;
  /** Seconds of clock skew; at most 60. Default 30. */
  leeway?: number;
  /** Longest exp - iat accepted, seconds. Default 3600. */
  maxLifetime?: number;
  /** Seconds a blocking revocations query may be held; -1 polls instead. Default 30. */
  revocationWait?: number;
  revocationPoll?: number;
  /** Past this many seconds without a sync, every credential is refused (code stale). */
  maxStaleness?: number;
  failOpen?: boolean;
  jwksRefreshFloor?: number;
  /** The scheme and host clients reach this server at, for DPoP proofs' htu. */
  publicURL?: string;
  dpopWindow?: number;
  dpopReplayCache?: number;
  /** A Vault token that may update <mount>/report. */
  vaultToken?: string;
  fetch?: typeof fetch;
  /** The clock, in Unix seconds. */
  now?: () => number;
}

export interface RequestLike {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined> | { get(name: string): string | null };
}

export class Verifier {
  readonly cfg: Required<Pick<VerifierConfig, 'now'>> & VerifierConfig;
  readonly lastRevocationSync: number;
  sessionClosed(id: string): boolean;
  /** Verifies a bearer credential (a bound one is refused: proof_required). */
  verify(token: string): Promise<Claims>;
  authorize(token: string, action: string, resource: string): Promise<Claims>;
  /** Verifies the credential of a request: Bearer, or DPoP with its proof. */
  verifyRequest(req: RequestLike): Promise<{ token: string; claims: Claims }>;
  authorizeRequest(req: RequestLike, action: string, resource: string): Promise<{ token: string; claims: Claims }>;
  report(token: string, action: string, resource: string, outcome: string, observedAt?: number): Promise<void>;
  refreshKeys(): Promise<void>;
  pollRevocations(): Promise<void>;
  close(): void;
}

/** Creates a verifier and waits for its first JWKS and revocation list. */
export function createVerifier(cfg: VerifierConfig): Promise<Verifier>;
export function credentialOf(req: RequestLike): { token?: string; scheme?: 'Bearer' | 'DPoP' };

export const MAX_TOKEN_SIZE: number;
export const TYPES: { txn_token: string; access_token: string };
export interface KeyEntry { alg: 'EdDSA' | 'ES256'; key: unknown }
export function importJWKS(jwks: { keys: object[] }): Promise<Map<string, KeyEntry>>;
export function verifyToken(raw: string, opts: {
  keys: { get(kid: string): KeyEntry | undefined };
  issuer: string; audience: string; formats?: string[]; algorithms?: string[];
  now?: number; leeway?: number; maxLifetime?: number;
}): Promise<Claims>;

export class RevocationList {
  version: number;
  epoch: string;
  synced: boolean;
  apply(body: string | object, now: number): boolean;
  closed(id: string): boolean;
  sessions(): string[];
}
export const REVOCATION_GRACE: number;

export class ScopeError extends Error {
  code: 'scope';
  /** Byte offset (UTF-8) of the first offending byte. */
  offset: number;
}
export class Scope {
  readonly actions: string;
  readonly resource: string;
  match(action: string, resource: string): boolean;
  toString(): string;
}
export class ScopeSet {
  readonly scopes: Scope[];
  match(action: string, resource: string): boolean;
  containsSet(inner: ScopeSet): boolean;
}
export function parse(scope: string): Scope;
export function parseSet(scopes: string[]): ScopeSet;
export function parseSpaceSeparated(claim: string): ScopeSet;
export function contains(outer: Scope, inner: Scope): boolean;
export function validAction(a: string): boolean;
export function validResource(r: string): boolean;

export class ReplayCache {
  constructor(max?: number);
}
export function verifyProof(proof: string | undefined, opts: {
  method: string; url: string; accessToken?: string; jkt?: string; now?: number; window?: number; replay?: ReplayCache;
}): Promise<{ jkt: string; jti: string; iat: number }>;
export function accessTokenHash(token: string): string;
export function normalizeURL(url: string): string;

export type Mapper = (req: RequestLike) => { action: string; resource: string };
export function middleware(verifier: Verifier, mapper: Mapper, options?: { report?: boolean }):
  (req: any, res: any, next?: () => void) => Promise<void>;
export function methodAction(req: { method: string }): string;
export function refusal(err: unknown): { status: number; challenge?: string };
