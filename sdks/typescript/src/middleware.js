// Middleware for Node's http server and Express: each request must carry a
// credential the verifier accepts, for the (action, resource) the mapper
// says the request performs. Refusals follow RFC 6750 (and RFC 9449 for
// proofs of possession): 401 with a Bearer or DPoP challenge, 403
// insufficient_scope, 503 when the revocation list is stale.

/** GET/HEAD read, POST create, PUT/PATCH write, DELETE delete. */
export function methodAction(req) {
  return { GET: 'read', HEAD: 'read', POST: 'create', PUT: 'write', PATCH: 'write', DELETE: 'delete' }[req.method] ?? req.method.toLowerCase();
}

const CHALLENGES = {
  no_credential: 'Bearer, DPoP algs="EdDSA ES256"',
  proof_required: 'DPoP error="invalid_dpop_proof", algs="EdDSA ES256"',
  scope: 'Bearer error="insufficient_scope"',
};

/** The HTTP status and WWW-Authenticate challenge for a VerifierError. */
export function refusal(err) {
  if (err?.name !== 'VerifierError') return { status: 500, challenge: undefined };
  if (err.code === 'stale') return { status: 503, challenge: undefined };
  if (err.code === 'scope') return { status: 403, challenge: CHALLENGES.scope };
  return { status: 401, challenge: CHALLENGES[err.code] ?? 'Bearer error="invalid_token"' };
}

/**
 * Returns (req, res, next) middleware. mapper(req) returns {action,
 * resource}; the verified claims are put on req.agentClaims. With
 * options.report, every use (and every refused out-of-scope use, or use of
 * a closed session's credential) is reported to the engine in the
 * background.
 */
export function middleware(verifier, mapper, options = {}) {
  return async (req, res, next) => {
    const seen = verifier.cfg.now();
    let mapped;
    try {
      mapped = mapper(req);
    } catch (e) {
      return send(res, 400, undefined, String(e?.message ?? e));
    }
    const { action, resource } = mapped;
    let token;
    try {
      const r = await verifier.authorizeRequest(req, action, resource);
      token = r.token;
      req.agentClaims = r.claims;
    } catch (e) {
      const { status, challenge } = refusal(e);
      if (options.report && (e.code === 'scope' || e.code === 'session_closed')) {
        const raw = (req.headers?.authorization ?? '').trim().split(/\s+/)[1];
        if (raw) verifier.report(raw, action, resource, 'denied', seen).catch(() => {});
      }
      return send(res, status, challenge, e.message);
    }
    if (options.report) verifier.report(token, action, resource, 'allowed', seen).catch(() => {});
    return next ? next() : undefined;
  };
}

function send(res, status, challenge, message) {
  if (challenge) res.setHeader('WWW-Authenticate', challenge);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json');
  res.end(JSON.stringify({ error: message }));
}
