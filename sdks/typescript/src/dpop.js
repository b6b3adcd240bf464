// DPoP proofs (RFC 9449) for credentials bound to a key (cnf.jkt), checked
// as the engine's Go package dpop checks them: jose verifies the proof
// with the key embedded in its header; the claims are read by the strict
// rules; htm, htu, iat, ath, the key's thumbprint and replays are checked
// here.

import * as jose from 'jose';
import { createHash } from 'node:crypto';
import { isIPv6 } from 'node:net';
import { strictObject, b64decode, VerifierError, numberLiterals, utf8 } from './token.js';

export const MAX_PROOF_SIZE = 4 << 10;
export const DEFAULT_WINDOW = 60;
const fail = (message) => {
  throw new VerifierError('proof_required', message);
};

/** base64url(SHA-256(token)): a proof's "ath" for a credential. */
export function accessTokenHash(token) {
  return createHash('sha256').update(token, 'ascii').digest('base64url');
}

/**
 * An htu, as compared (RFC 9449 section 4.3; as Go and Python compare it):
 * no query or fragment, lower-case scheme and host, no default port, an
 * empty path as "/", and the path otherwise as written (WHATWG's URL would
 * resolve dot segments and re-encode it, which Go does not). Only URLs
 * whose every reading agrees are taken: printable ASCII, no backslash, no
 * user information, a host of RFC 3986 name characters or a bracketed IPv6
 * address, and a path of characters Go keeps as written.
 */
export function normalizeURL(u) {
  const s = String(u);
  const m = URL_SHAPE.exec(s);
  if (!m || !/^[\x21-\x7e]*$/.test(s) || s.includes('\\') || /%(?![0-9A-Fa-f]{2})/.test(s)) throw new Error('not an absolute http(s) URL');
  const scheme = m[1].toLowerCase();
  if (scheme !== 'https' && scheme !== 'http') throw new Error('not an http(s) URL');
  const hp = AUTHORITY.exec(m[2]);
  if (!hp || (hp[1].startsWith('[') && !isIPv6(hp[1].slice(1, -1)))) throw new Error('not an absolute http(s) URL with a plain host');
  if (!PATH.test(m[3])) throw new Error('the URL path has characters that are read differently');
  const host = hp[1].toLowerCase();
  let port = hp[2] ?? '';
  if ((scheme === 'https' && port === '443') || (scheme === 'http' && port === '80')) port = '';
  return `${scheme}://${host}${port ? ':' + port : ''}${m[3] || '/'}`;
}

const URL_SHAPE = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)(?:\?[^#]*)?(?:#.*)?$/;
// A host (no user information) and an optional port.
const AUTHORITY = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=]+)(?::([0-9]*))?$/;
// Unreserved and sub-delimiter characters, ':', '@', '/' and escapes.
const PATH = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*$/;

/** Remembers the proofs seen until their window ends; refuses when full. */
export class ReplayCache {
  #seen = new Map();
  constructor(max = 100_000) {
    this.max = max;
  }

  check(key, until, now) {
    // An entry lives through its last instant (t >= now), as in Go.
    for (const [k, t] of this.#seen) {
      if (t >= now) break; // entries are in insertion order, close to expiry order
      this.#seen.delete(k);
    }
    const t = this.#seen.get(key);
    if (t !== undefined && t >= now) fail('the DPoP proof was replayed');
    if (this.#seen.size >= this.max) {
      for (const [k, t2] of this.#seen) if (t2 < now) this.#seen.delete(k);
      if (this.#seen.size >= this.max) throw new VerifierError('proof_required', 'too many proofs to remember; try again');
    }
    this.#seen.set(key, until);
  }
}

/**
 * Verifies proof for a request: {method, url, accessToken, jkt, now (Unix
 * seconds), window (seconds), replay (a ReplayCache)}. Throws a
 * VerifierError with code proof_required.
 */
export async function verifyProof(proof, o) {
  if (!proof) fail('the credential is bound to a key: a DPoP proof is needed');
  if (proof.length > MAX_PROOF_SIZE || proof.split('.').length !== 3) fail('the DPoP proof is not a compact JWS');
  const hb = b64decode(proof.split('.')[0]);
  if (!hb) fail('the DPoP proof header is not canonical base64url');
  const h = strictObject(utf8(hb), ['typ', 'alg', 'jwk']);
  if (!h || Object.keys(h).some((k) => !['typ', 'alg', 'jwk'].includes(k))) fail('the DPoP proof header holds only typ, alg and jwk');
  if (h.typ !== 'dpop+jwt') fail('the DPoP proof typ must be dpop+jwt');
  if (h.alg !== 'EdDSA' && h.alg !== 'ES256') fail('the DPoP proof alg must be EdDSA or ES256');
  if (!h.jwk || typeof h.jwk !== 'object' || 'd' in h.jwk) fail('the DPoP proof jwk must be a public key');
  let payload;
  try {
    ({ payload } = await jose.compactVerify(proof, jose.EmbeddedJWK, { algorithms: [h.alg] }));
  } catch {
    fail('the DPoP proof signature does not verify');
  }
  const text = utf8(payload);
  const c = strictObject(text, ['jti', 'htm', 'htu', 'iat', 'ath', 'nonce']);
  if (!c) fail('the DPoP proof claims are not a JSON object read by the strict rules');
  const now = Math.floor(o.now ?? Date.now() / 1000);
  const window = o.window ?? DEFAULT_WINDOW;
  let htu;
  try {
    if (typeof c.htu !== 'string') throw new Error('not a string');
    htu = normalizeURL(c.htu);
  } catch {
    fail('the DPoP proof htu is not a URL');
  }
  if (typeof c.jti !== 'string' || c.jti === '' || Buffer.byteLength(c.jti) > 128) fail('the DPoP proof jti must be 1 to 128 bytes');
  if (c.htm !== o.method) fail("the DPoP proof htm is not the request's method");
  let want;
  try {
    want = normalizeURL(o.url);
  } catch {
    fail("the request's URL is not one a proof can name");
  }
  if (htu !== want) fail("the DPoP proof htu is not the request's URL");
  // iat is an integer only as JSON spells one (not 1.0, not 1e9), as Go reads it.
  const iatLiteral = numberLiterals(text).get('iat');
  if (iatLiteral !== undefined && !/^-?(0|[1-9][0-9]*)$/.test(iatLiteral)) fail('the DPoP proof iat is not written as an integer');
  if (!Number.isSafeInteger(c.iat) || c.iat <= 0 || Math.abs(now - c.iat) > window) fail(`the DPoP proof iat is not within ${window}s of now`);
  if (c.nonce !== undefined) fail('nonces are not used here');
  if (o.accessToken ? c.ath !== accessTokenHash(o.accessToken) : c.ath !== undefined) fail('the DPoP proof ath is not the hash of the credential');
  const jkt = await jose.calculateJwkThumbprint(h.jwk, 'sha256');
  if (o.jkt && jkt !== o.jkt) fail("the DPoP proof is not by the credential's key");
  o.replay?.check(`${jkt}:${c.jti}`, c.iat + window, now);
  return { jkt, jti: c.jti, iat: c.iat };
}
