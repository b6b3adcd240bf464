// A verifier for resource servers: the engine's JWKS, cached with a
// refetch floor; the revocation list, kept current by blocking queries
// (revocations?after=<version>&wait=<seconds>) and failing closed past a
// staleness limit; credentials checked by verifyToken, then against the
// list, then, for a credential bound to a key, its DPoP proof.

import { verifyToken, importJWKS, VerifierError } from './token.js';
import { RevocationList, REVOCATION_GRACE } from './revocations.js';
import { parseSpaceSeparated } from './scope.js';
import { verifyProof, ReplayCache } from './dpop.js';

const nowSeconds = () => Math.floor(Date.now() / 1000);
const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });

/**
 * Creates a verifier and waits for its first JWKS and revocation list.
 *
 * @param {object} cfg vaultAddr, issuer, audience (required); mount
 *   ('agent'); formats (['txn_token']; an MCP server sets ['access_token']);
 *   leeway (30 s, at most 60); maxLifetime (3600 s); revocationWait (30 s,
 *   at most 60; -1 polls the whole list every revocationPoll instead);
 *   revocationPoll (5 s); maxStaleness (60 s, or more to cover the wait);
 *   failOpen (false); jwksRefreshFloor (10 s); publicURL (the scheme and
 *   host clients reach this server at, for DPoP proofs); dpopWindow (60 s);
 *   vaultToken (for report); fetch (globalThis.fetch); now (a function
 *   returning Unix seconds).
 */
export async function createVerifier(cfg) {
  const v = new Verifier(cfg);
  try {
    await v.refreshKeys();
    await v.pollRevocations();
  } catch (e) {
    v.close();
    throw e;
  }
  v.start();
  return v;
}

export class Verifier {
  #keys = new Map();
  #lastFetch = 0;
  #keyFetch = null;
  #list = new RevocationList();
  #lastSync = 0;
  #abort = new AbortController();
  #replay;

  constructor(cfg) {
    if (!cfg.vaultAddr || !cfg.issuer || !cfg.audience) throw new Error('createVerifier: vaultAddr, issuer and audience are required');
    this.cfg = {
      mount: 'agent', formats: ['txn_token'], leeway: 30, maxLifetime: 3600, revocationWait: 30, revocationPoll: 5,
      failOpen: false, jwksRefreshFloor: 10, dpopWindow: 60, fetch: globalThis.fetch, now: nowSeconds, ...cfg,
    };
    const c = this.cfg;
    if (c.leeway > REVOCATION_GRACE) throw new Error(`createVerifier: leeway must not exceed ${REVOCATION_GRACE}s`);
    if (c.revocationWait > 60) throw new Error('createVerifier: revocationWait must be at most 60s');
    c.maxStaleness ??= Math.max(60, 2 * c.revocationPoll, c.revocationWait + 30);
    if (c.maxStaleness <= c.revocationWait) throw new Error('createVerifier: maxStaleness must be longer than revocationWait');
    this.base = `${c.vaultAddr.replace(/\/+$/, '')}/v1/${c.mount.replace(/^\/+|\/+$/g, '')}`;
    this.#replay = new ReplayCache(c.dpopReplayCache);
  }

  /** When (Unix seconds) the revocation list was last synced. */
  get lastRevocationSync() {
    return this.#lastSync;
  }

  /** Whether session id is in the revocation list held. */
  sessionClosed(id) {
    return this.#list.closed(id);
  }

  async #get(path, timeoutMs) {
    const res = await this.cfg.fetch(this.base + path, {
      signal: AbortSignal.any([this.#abort.signal, AbortSignal.timeout(timeoutMs)]),
    });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`GET ${path}: HTTP ${res.status}`);
    return text;
  }

  /** Fetches the JWKS now (at most once at a time). */
  async refreshKeys() {
    this.#keyFetch ??= (async () => {
      try {
        this.#keys = await importJWKS(JSON.parse(await this.#get('/jwks', 10_000)));
        this.#lastFetch = this.cfg.now();
      } finally {
        this.#keyFetch = null;
      }
    })();
    return this.#keyFetch;
  }

  /** Fetches the whole revocation list now. */
  async pollRevocations() {
    const body = await this.#get('/revocations', 10_000);
    this.#list.apply(body, this.cfg.now());
    this.#lastSync = this.cfg.now();
  }

  // One blocking query: held by the engine until the list changes.
  async #waitRevocations() {
    const wait = this.cfg.revocationWait;
    let path = '/revocations';
    if (this.#list.synced) {
      path += `?after=${this.#list.version}&wait=${wait}`;
      if (this.#list.epoch) path += `&epoch=${encodeURIComponent(this.#list.epoch)}`;
    }
    const body = await this.#get(path, (wait + 10) * 1000);
    const changed = this.#list.apply(body, this.cfg.now());
    this.#lastSync = this.cfg.now();
    return changed;
  }

  /** Starts the background revocation sync (createVerifier does). */
  start() {
    const signal = this.#abort.signal;
    (async () => {
      let backoff = 250;
      const poll = this.cfg.revocationPoll * 1000;
      while (!signal.aborted) {
        const started = Date.now();
        try {
          if (this.cfg.revocationWait < 0) {
            await sleep(poll, signal);
            if (signal.aborted) break;
            await this.pollRevocations();
          } else {
            const changed = await this.#waitRevocations();
            // An engine (or a node) that does not hold queries answers at
            // once: do not hammer it.
            if (!changed && Date.now() - started < 1000) await sleep(poll, signal);
          }
          backoff = 250;
        } catch {
          if (signal.aborted) break;
          await sleep(backoff, signal);
          backoff = Math.min(backoff * 2, poll);
        }
      }
    })();
  }

  /** Stops the background sync. */
  close() {
    this.#abort.abort();
  }

  #lookup = (kid) => this.#keys.get(kid);

  /**
   * Verifies a credential presented as a bearer token and returns its
   * claims. Throws a VerifierError (code: the token codes, session_closed,
   * stale, or proof_required for a credential bound to a key).
   */
  async verify(token) {
    const claims = await this.#verify(token);
    if (claims.cnf !== undefined) throw new VerifierError('proof_required', 'the credential is bound to a key: send it as DPoP, with a proof');
    return claims;
  }

  async #verify(token) {
    const c = this.cfg;
    const opts = {
      keys: { get: this.#lookup }, issuer: c.issuer, audience: c.audience, formats: c.formats,
      now: c.now(), leeway: c.leeway, maxLifetime: c.maxLifetime, algorithms: c.algorithms,
    };
    let claims;
    try {
      claims = await verifyToken(token, opts);
    } catch (e) {
      if (e.code !== 'unknown_key' || c.now() - this.#lastFetch < c.jwksRefreshFloor) throw e;
      // A key not seen yet: the engine may have rotated.
      await this.refreshKeys().catch(() => {});
      claims = await verifyToken(token, opts);
    }
    if (this.#list.closed(claims.txn)) throw new VerifierError('session_closed', "the credential's session is closed");
    if (!c.failOpen && c.now() - this.#lastSync > c.maxStaleness) {
      throw new VerifierError('stale', `the revocation list was last synced ${c.now() - this.#lastSync}s ago`);
    }
    return claims;
  }

  /** Verifies a credential and checks that it allows action on resource. */
  async authorize(token, action, resource) {
    return this.#allow(await this.verify(token), action, resource);
  }

  #allow(claims, action, resource) {
    let set;
    try {
      set = parseSpaceSeparated(claims.scope);
    } catch {
      throw new VerifierError('claims', 'the scope claim is not a set of scopes');
    }
    if (!set.match(action, resource)) throw new VerifierError('scope', `the credential's scope does not allow ${action} on ${resource}`);
    return claims;
  }

  /**
   * Verifies the credential of an HTTP request (Node's IncomingMessage, or
   * {method, url, headers}): "Authorization: Bearer <token>", or
   * "Authorization: DPoP <token>" with a DPoP proof by the key a bound
   * credential names. Returns {token, claims}.
   */
  async verifyRequest(req) {
    const { token, scheme } = credentialOf(req);
    if (!token) throw new VerifierError('no_credential', 'the request carries no credential');
    const claims = await this.#verify(token);
    if (claims.cnf === undefined) {
      if (scheme === 'DPoP') throw new VerifierError('proof_required', 'the credential is not bound to a key: send it as Bearer');
      return { token, claims };
    }
    if (scheme !== 'DPoP') throw new VerifierError('proof_required', 'the credential is bound to a key: send it as DPoP, with a proof');
    const proofs = headerValues(req, 'dpop');
    if (proofs.length > 1) throw new VerifierError('proof_required', 'exactly one DPoP header is needed');
    await verifyProof(proofs[0], {
      method: req.method, url: this.#requestURL(req), accessToken: token, jkt: claims.cnf.jkt,
      now: this.cfg.now(), window: this.cfg.dpopWindow, replay: this.#replay,
    });
    return { token, claims };
  }

  /** verifyRequest, then the scope check of authorize. */
  async authorizeRequest(req, action, resource) {
    const r = await this.verifyRequest(req);
    this.#allow(r.claims, action, resource);
    return r;
  }

  #requestURL(req) {
    // The path as sent (not normalised): a proof names the URL the client used.
    const path = String(req.url ?? '/').split(/[?#]/)[0];
    if (this.cfg.publicURL) return this.cfg.publicURL.replace(/\/+$/, '') + path;
    const scheme = req.socket?.encrypted ? 'https' : 'http';
    return `${scheme}://${headerValues(req, 'host')[0] ?? 'localhost'}${path}`;
  }

  /**
   * Reports a use of a credential to the engine (needs vaultToken), with
   * the time it was seen; the engine judges it as of then.
   */
  async report(token, action, resource, outcome, observedAt = this.cfg.now()) {
    if (!this.cfg.vaultToken) throw new Error('report: vaultToken is required');
    const res = await this.cfg.fetch(`${this.base}/report`, {
      method: 'POST',
      headers: { 'X-Vault-Token': this.cfg.vaultToken, 'Content-Type': 'application/json' },
      body: JSON.stringify({ token, action, resource, outcome, observed_at: String(observedAt), leeway: this.cfg.leeway }),
      signal: AbortSignal.timeout(5000),
    });
    await res.text();
    if (res.status >= 300) throw new Error(`report: HTTP ${res.status}`);
  }
}

function headerValues(req, name) {
  const h = req.headers ?? {};
  if (typeof h.get === 'function') {
    const v = h.get(name);
    return v === null ? [] : [v];
  }
  const v = h[name] ?? h[name.toLowerCase()];
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

/** Reads "Authorization: Bearer|DPoP <token>". */
export function credentialOf(req) {
  const [auth] = headerValues(req, 'authorization');
  const f = (auth ?? '').trim().split(/\s+/);
  if (f.length !== 2) return {};
  const scheme = f[0].toLowerCase();
  if (scheme === 'bearer') return { token: f[1], scheme: 'Bearer' };
  if (scheme === 'dpop') return { token: f[1], scheme: 'DPoP' };
  return {};
}
