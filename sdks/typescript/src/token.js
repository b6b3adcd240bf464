// Verification of step credentials, with the engine's rules (the Go
// package token), on top of jose for the JWS signature. The pre-checks
// here only ever refuse: a token jose alone would accept but a credential
// of the engine never is (a non-canonical encoding, a header member other
// than alg, kid and typ, duplicate JSON members, a high-S ES256 signature)
// is refused before jose sees it.

import * as jose from 'jose';
import { FOLD } from './casefold.js';

export const MAX_TOKEN_SIZE = 16 << 10;
export const DEFAULT_LEEWAY = 30;

/** The "typ" header of each credential format. */
export const TYPES = { txn_token: 'txntoken+jwt', access_token: 'at+jwt' };
export const ALGORITHMS = ['EdDSA', 'ES256'];

/**
 * A refused credential. `code` is stable: malformed, too_large, algorithm,
 * unknown_key, signature, type, issuer, audience, expired, not_yet_valid,
 * claims, lifetime, session_closed, proof_required, stale, scope,
 * no_credential. Messages never quote the credential.
 */
export class VerifierError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.name = 'VerifierError';
    this.code = code;
  }
}

const fail = (code, message) => {
  throw new VerifierError(code, message);
};

const B64URL = /^[A-Za-z0-9_-]*$/;

/** Decodes canonical unpadded base64url, or returns null. */
export function b64decode(seg) {
  if (!B64URL.test(seg) || seg.length % 4 === 1) return null;
  const b = Buffer.from(seg, 'base64url');
  // One spelling per byte string: no non-zero unused bits.
  return b.toString('base64url') === seg ? b : null;
}

// ---- strict JSON ----

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Decodes bytes as UTF-8, or returns '' (which no JSON reading accepts)
 * when they are not valid UTF-8: Go replaces each bad byte with U+FFFD,
 * which other decoders do not copy exactly, and the engine never signs
 * such bytes. A byte-order mark stays, and is refused as Go refuses it.
 */
export function utf8(bytes) {
  try {
    return UTF8.decode(bytes);
  } catch {
    return '';
  }
}

// fold maps a member name to a key two names share exactly when Go's
// strings.EqualFold says they are equal (Unicode simple case folding, rune
// by rune): the engine's strict JSON reading compares names so.
export const fold = (k) => {
  let out = '';
  for (const ch of k) {
    const cp = ch.codePointAt(0);
    if (cp >= 0xd800 && cp <= 0xdfff) {
      out += '\ufffd'; // a lone surrogate: Go reads it as U+FFFD
      continue;
    }
    const f = FOLD.get(cp);
    out += f === undefined ? ch : String.fromCodePoint(f);
  }
  return out;
};

/**
 * Parses text as one JSON object by the engine's strict rules: no
 * duplicate member and no two members differing only in case, at any
 * depth; and at the top level no member differing only in case from one of
 * `known`. Returns the object, or null.
 */
export function strictObject(text, known = []) {
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  if (!uniqueMembers(text)) return null;
  const knownFolds = new Map(known.map((k) => [fold(k), k]));
  for (const k of Object.keys(value)) {
    const want = knownFolds.get(fold(k));
    if (want !== undefined && want !== k) return null;
  }
  return value;
}

// uniqueMembers scans valid JSON text and reports whether no object has
// two member names equal, or equal but for case.
function uniqueMembers(text) {
  const stack = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '{') stack.push({ folds: new Set(), expectKey: true });
    else if (c === '[') stack.push(null);
    else if (c === '}' || c === ']') stack.pop();
    else if (c === ',') {
      const top = stack[stack.length - 1];
      if (top) top.expectKey = true;
    } else if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const top = stack[stack.length - 1];
      if (top && top.expectKey) {
        const key = fold(JSON.parse(text.slice(i, j + 1)));
        if (top.folds.has(key)) return false;
        top.folds.add(key);
        top.expectKey = false;
      }
      i = j;
    }
  }
  return true;
}

// numberLiterals scans valid JSON text of one object and returns, for each
// top-level member whose value is a number, the number as written.
export function numberLiterals(text) {
  const out = new Map();
  let depth = 0;
  let key = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
    else if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1) {
        // A member name is followed by ':'; a string value is not.
        let k = j + 1;
        while (' \t\r\n'.includes(text[k])) k++;
        key = text[k] === ':' ? JSON.parse(text.slice(i, j + 1)) : null;
      }
      i = j;
    } else if (depth === 1 && key !== null && (c === '-' || (c >= '0' && c <= '9'))) {
      let j = i;
      while (j < text.length && !',}] \t\r\n'.includes(text[j])) j++;
      out.set(key, text.slice(i, j));
      key = null;
      i = j - 1;
    }
  }
  return out;
}

// JSON's one spelling of an integer: Go reads only this into an integer
// claim (not 1.0, not 1e3).
const INTEGER_LITERAL = /^-?(0|[1-9][0-9]*)$/;

// ---- credentials ----

const CLAIMS = ['iss', 'sub', 'aud', 'client_id', 'iat', 'nbf', 'exp', 'jti', 'txn', 'scope', 'tctx', 'rctx', 'par', 'dep', 'act', 'cnf'];
const STRING_CLAIMS = ['iss', 'sub', 'aud', 'client_id', 'jti', 'txn', 'scope', 'par'];
const INT_CLAIMS = ['iat', 'nbf', 'exp', 'dep'];
const HEADER = ['alg', 'kid', 'typ'];
const REFUSED_HEADERS = ['crit', 'b64', 'jwk', 'jku', 'x5u', 'x5c', 'x5t', 'x5t#S256'];

// P-256's order, halved: the largest S of a low-S signature.
const P256_HALF_ORDER = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n >> 1n;

/**
 * Verifies a credential and returns its claims, with `format` set from
 * its "typ" header.
 *
 * @param {string} raw
 * @param {object} opts issuer and audience (required), keys (a Map of kid
 *   to {alg, key} with key a jose KeyLike), formats (default
 *   ['txn_token']), now (Unix seconds, default the clock), leeway (seconds,
 *   default 30, negative for none), maxLifetime (seconds, 0 for none).
 */
export async function verifyToken(raw, opts) {
  if (!opts.issuer || !opts.audience) throw new Error('verifyToken: issuer and audience are required');
  const formats = opts.formats ?? ['txn_token'];
  const types = formats.map((f) => TYPES[f]);
  if (types.includes(undefined)) throw new Error('verifyToken: unknown format');
  if (typeof raw !== 'string' || raw === '') fail('malformed', 'empty credential');
  if (Buffer.byteLength(raw) > MAX_TOKEN_SIZE) fail('too_large', `over ${MAX_TOKEN_SIZE} bytes`);
  const parts = raw.split('.');
  if (parts.length !== 3 || /[\r\n]/.test(raw)) fail('malformed', 'not a compact JWS');
  if (parts[0] === '') fail('malformed', 'empty header');
  const hb = b64decode(parts[0]);
  if (!hb) fail('malformed', 'header is not canonical base64url');
  if (!b64decode(parts[1])) fail('malformed', 'payload is not canonical base64url');
  const sig = b64decode(parts[2]);
  if (!sig) fail('malformed', 'signature is not canonical base64url');
  const header = strictObject(utf8(hb), HEADER);
  if (!header) fail('malformed', 'header is not a valid JWS header');
  for (const k of HEADER) {
    if (header[k] !== undefined && header[k] !== null && typeof header[k] !== 'string') fail('malformed', `header ${k} is not a string`);
  }
  const alg = header.alg ?? '';
  if (!ALGORITHMS.includes(alg) || (opts.algorithms && !opts.algorithms.includes(alg))) fail('algorithm', 'header alg not in allow-list');
  const extra = REFUSED_HEADERS.find((k) => k in header) ?? Object.keys(header).find((k) => !HEADER.includes(k));
  if (extra !== undefined) fail('malformed', 'header member not allowed (only alg, kid and typ are)');
  const typ = header.typ ?? '';
  if (!types.includes(typ)) fail('type', `typ must be ${types.join(' or ')}`);
  const kid = header.kid ?? '';
  if (kid === '') fail('malformed', 'missing kid');
  const key = opts.keys.get(kid);
  if (!key) fail('unknown_key', 'no key with that kid');
  if (key.alg !== alg) fail('algorithm', 'header alg does not match the key');
  if (alg === 'ES256' && (sig.length !== 64 || BigInt('0x' + sig.subarray(32).toString('hex')) > P256_HALF_ORDER)) {
    fail('signature', 'ES256 signature is not 64 bytes with a low S');
  }
  let payload;
  try {
    ({ payload } = await jose.compactVerify(raw, key.key, { algorithms: [alg] }));
  } catch {
    fail('signature', 'invalid signature');
  }
  // Only now, with the signature checked, is the payload looked at.
  const payloadText = utf8(payload);
  const c = strictObject(payloadText, CLAIMS);
  if (!c) fail('malformed', 'payload is not a claims object read by the strict rules');
  const literals = numberLiterals(payloadText);
  for (const k of INT_CLAIMS) {
    if (literals.has(k) && !INTEGER_LITERAL.test(literals.get(k))) fail('malformed', `${k} is not written as an integer`);
  }
  for (const k of STRING_CLAIMS) {
    if (c[k] === null) delete c[k];
    else if (c[k] !== undefined && typeof c[k] !== 'string') fail('malformed', `${k} is not a string`);
  }
  for (const k of INT_CLAIMS) {
    if (c[k] === null) delete c[k];
    else if (c[k] !== undefined && !Number.isSafeInteger(c[k])) fail('malformed', `${k} is not an integer`);
  }
  checkShapes(c);
  c.format = Object.keys(TYPES).find((f) => TYPES[f] === typ);
  checkRequired(c);
  if (c.iss !== opts.issuer) fail('issuer', 'issuer mismatch');
  if (c.aud !== opts.audience) fail('audience', 'audience mismatch');
  if (opts.maxLifetime > 0) {
    let start = c.iat;
    if (c.nbf && c.nbf < start) start = c.nbf;
    if (start < c.exp - opts.maxLifetime) fail('lifetime', 'lifetime too long');
  }
  const now = Math.floor(opts.now ?? Date.now() / 1000);
  let leeway = opts.leeway ?? DEFAULT_LEEWAY;
  if (leeway === 0) leeway = DEFAULT_LEEWAY;
  if (leeway < 0) leeway = 0;
  if (now - leeway >= c.exp) fail('expired', 'expired');
  if (c.nbf && now + leeway < c.nbf) fail('not_yet_valid', 'nbf in the future');
  if (now + leeway < c.iat) fail('not_yet_valid', 'iat in the future');
  return c;
}

const THUMBPRINT = /^[A-Za-z0-9_-]{43}$/;
const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

// shape checks an object claim: an object whose known members have the
// right types and exact names (a case variant is refused, as in Go).
function shape(name, v, members) {
  if (!isObject(v)) fail('malformed', `${name} is not an object`);
  const folds = new Map(Object.keys(members).map((k) => [fold(k), k]));
  for (const [k, val] of Object.entries(v)) {
    const want = folds.get(fold(k));
    if (want !== undefined && want !== k) fail('malformed', `${name} has a member differing only in case from ${want}`);
    if (want !== undefined && val !== null && !members[want](val)) fail('malformed', `${name}.${k} has the wrong type`);
  }
}

// checkShapes checks the object claims as Go decodes them: cnf, tctx,
// rctx, act; null is absent.
function checkShapes(c) {
  const str = (v) => typeof v === 'string';
  for (const k of ['cnf', 'tctx', 'rctx', 'act']) if (c[k] === null) delete c[k];
  if (c.cnf !== undefined) {
    shape('cnf', c.cnf, { jkt: str });
    if (!THUMBPRINT.test(c.cnf.jkt ?? '')) fail('claims', 'cnf.jkt is not a SHA-256 JWK thumbprint');
  }
  if (c.tctx !== undefined) shape('tctx', c.tctx, { role: str, purpose: str });
  if (c.rctx !== undefined) shape('rctx', c.rctx, { description: str, req_ip: str });
  for (let a = c.act, depth = 0; a !== undefined && a !== null; a = a.act, depth++) {
    if (depth > 32) fail('malformed', 'act is nested too deep');
    shape('act', a, { sub: str, act: isObject });
    if (!a.sub) fail('claims', 'an actor has no sub');
  }
}

function checkRequired(c) {
  if (c.format === 'access_token') {
    if (!c.sub) fail('claims', 'missing sub');
    if (!c.aud) fail('claims', 'missing aud');
    if (!c.client_id) fail('claims', 'missing client_id');
  }
  if (!c.jti) fail('claims', 'missing jti');
  if (!c.txn) fail('claims', 'missing txn');
  if (!c.scope) fail('claims', 'missing scope');
  if (!(c.iat > 0)) fail('claims', 'missing iat');
  if (!(c.exp > 0)) fail('claims', 'missing exp');
  if (c.exp <= c.iat) fail('claims', 'exp not after iat');
  if (!(c.dep >= 1)) fail('claims', 'dep must be at least 1');
}

/**
 * Reads a JWK Set (the engine's jwks answer) into the key map verifyToken
 * takes: kid -> {alg, key}. Keys of other algorithms are skipped.
 */
export async function importJWKS(jwks) {
  const keys = new Map();
  for (const jwk of jwks.keys ?? []) {
    if (!ALGORITHMS.includes(jwk.alg) || typeof jwk.kid !== 'string' || 'd' in jwk) continue;
    keys.set(jwk.kid, { alg: jwk.alg, key: await jose.importJWK(jwk, jwk.alg) });
  }
  return keys;
}
