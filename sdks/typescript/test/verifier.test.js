import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import * as jose from 'jose';
import { createVerifier, middleware, methodAction, accessTokenHash } from '../src/index.js';
import { createMcpVerifier, mcpTokenVerifier, requireTool } from '../src/mcp.js';

const ISSUER = 'http://engine.test/v1/agent';

// A stand-in for the engine: jwks, revocations (with blocking queries), report.
async function startEngine() {
  const { publicKey, privateKey } = await jose.generateKeyPair('EdDSA', { extractable: true });
  const jwk = { ...(await jose.exportJWK(publicKey)), alg: 'EdDSA', use: 'sig' };
  jwk.kid = await jose.calculateJwkThumbprint(jwk);
  const state = { version: 1, sessions: [], waiters: [], reports: [], status: 200 };
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    const answer = () => {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ data: { version: state.version, sessions: state.sessions, complete: !u.searchParams.has('after') } }));
    };
    if (state.status !== 200) {
      res.statusCode = state.status;
      return res.end('{}');
    }
    if (u.pathname === '/v1/agent/jwks') return res.end(JSON.stringify({ keys: [jwk] }));
    if (u.pathname === '/v1/agent/revocations') {
      const after = Number(u.searchParams.get('after') ?? -1);
      if (after >= state.version && u.searchParams.get('wait')) {
        const t = setTimeout(answer, Number(u.searchParams.get('wait')) * 1000);
        return state.waiters.push(() => {
          clearTimeout(t);
          answer();
        });
      }
      return answer();
    }
    if (u.pathname === '/v1/agent/report') {
      let body = '';
      req.on('data', (c) => (body += c));
      return req.on('end', () => {
        state.reports.push({ ...JSON.parse(body), vaultToken: req.headers['x-vault-token'] });
        res.end('{"data":{"recorded":true}}');
      });
    }
    res.statusCode = 404;
    res.end('{}');
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const addr = `http://127.0.0.1:${server.address().port}`;
  return {
    addr, state, server,
    kill(id) {
      state.version++;
      state.sessions.push({ id, exp: Math.floor(Date.now() / 1000) + 300, version: state.version });
      for (const w of state.waiters.splice(0)) w();
    },
    async mint(claims = {}, { typ = 'txntoken+jwt' } = {}) {
      const now = Math.floor(Date.now() / 1000);
      return new jose.CompactSign(new TextEncoder().encode(JSON.stringify({
        iss: ISSUER, sub: 'entity-1', aud: 'docs-api', iat: now - 1, nbf: now - 1, exp: now + 60,
        jti: `cred-${Math.random()}`, txn: 'sess-1', scope: 'read:docs/*', dep: 1, ...claims,
      }))).setProtectedHeader({ alg: 'EdDSA', kid: jwk.kid, typ }).sign(privateKey);
    },
    close: () => new Promise((r) => {
      for (const w of state.waiters.splice(0)) w();
      server.closeAllConnections();
      server.close(r);
    }),
  };
}

const engine = await startEngine();
after(() => engine.close());

test('verify, authorize, and a kill reaches the verifier within a second', async () => {
  const v = await createVerifier({ vaultAddr: engine.addr, issuer: ISSUER, audience: 'docs-api', revocationWait: 5 });
  try {
    const tok = await engine.mint({ txn: 'sess-kill' });
    assert.equal((await v.verify(tok)).txn, 'sess-kill');
    assert.equal((await v.authorize(tok, 'read', 'docs/plan')).jti.startsWith('cred-'), true);
    await assert.rejects(v.authorize(tok, 'write', 'docs/plan'), { code: 'scope' });
    await assert.rejects(v.verify(await engine.mint({ aud: 'billing' })), { code: 'audience' });
    await new Promise((r) => setTimeout(r, 100)); // the blocking query is held
    const killed = Date.now();
    engine.kill('sess-kill');
    for (;;) {
      try {
        await v.verify(tok);
      } catch (e) {
        assert.equal(e.code, 'session_closed');
        break;
      }
      assert.ok(Date.now() - killed < 1000, 'the kill took more than a second to arrive');
      await new Promise((r) => setTimeout(r, 10));
    }
  } finally {
    v.close();
  }
});

test('fails closed once the revocation list is stale', async () => {
  let now = Math.floor(Date.now() / 1000);
  const v = await createVerifier({
    vaultAddr: engine.addr, issuer: ISSUER, audience: 'docs-api', revocationWait: -1, revocationPoll: 3600, maxStaleness: 20, now: () => now,
  });
  try {
    const tok = await engine.mint();
    await v.verify(tok);
    now += 25;
    await assert.rejects(v.verify(tok), { code: 'stale' });
    const open = await createVerifier({
      vaultAddr: engine.addr, issuer: ISSUER, audience: 'docs-api', revocationWait: -1, revocationPoll: 3600, maxStaleness: 3600, failOpen: true,
    });
    open.close();
  } finally {
    v.close();
  }
});

test('middleware: challenges, scope, reports, DPoP', async () => {
  const v = await createVerifier({ vaultAddr: engine.addr, issuer: ISSUER, audience: 'docs-api', vaultToken: 'rs-token', revocationWait: -1 });
  const mw = middleware(v, (req) => ({ action: methodAction(req), resource: new URL(req.url, 'http://x').pathname.slice(1) }), { report: true });
  const srv = http.createServer((req, res) => mw(req, res, () => res.end('ok')));
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${srv.address().port}`;
  try {
    let r = await fetch(`${base}/docs/plan`);
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('www-authenticate'), 'Bearer, DPoP algs="EdDSA ES256"');
    const tok = await engine.mint();
    r = await fetch(`${base}/docs/plan`, { headers: { Authorization: `Bearer ${tok}` } });
    assert.equal(r.status, 200);
    r = await fetch(`${base}/docs/plan`, { method: 'DELETE', headers: { Authorization: `Bearer ${tok}` } });
    assert.equal(r.status, 403);
    assert.equal(r.headers.get('www-authenticate'), 'Bearer error="insufficient_scope"');
    r = await fetch(`${base}/docs/plan`, { headers: { Authorization: 'Bearer abc.def.ghi' } });
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('www-authenticate'), 'Bearer error="invalid_token"');
    await new Promise((res) => setTimeout(res, 50));
    assert.deepEqual(engine.state.reports.map((x) => [x.action, x.resource, x.outcome, x.vaultToken, x.token === tok]),
      [['read', 'docs/plan', 'allowed', 'rs-token', true], ['delete', 'docs/plan', 'denied', 'rs-token', true]]);

    // A credential bound to a key needs a fresh proof by it.
    const { publicKey, privateKey } = await jose.generateKeyPair('ES256');
    const pub = await jose.exportJWK(publicKey);
    const jkt = await jose.calculateJwkThumbprint(pub);
    const bound = await engine.mint({ cnf: { jkt } });
    const proof = (method, url, token, iat = Math.floor(Date.now() / 1000)) =>
      new jose.SignJWT({ jti: crypto.randomUUID(), htm: method, htu: url, iat, ath: accessTokenHash(token) })
        .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: pub }).sign(privateKey);
    const url = `${base}/docs/plan`;
    r = await fetch(url, { headers: { Authorization: `Bearer ${bound}` } });
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('www-authenticate'), 'DPoP error="invalid_dpop_proof", algs="EdDSA ES256"');
    const good = await proof('GET', url, bound);
    for (const [name, p] of [
      ['no proof', undefined],
      ['another URL', await proof('GET', `${base}/docs/other`, bound)],
      ['another method', await proof('PUT', url, bound)],
      ['another token', await proof('GET', url, tok)],
      ['an old proof', await proof('GET', url, bound, Math.floor(Date.now() / 1000) - 300)],
    ]) {
      r = await fetch(url, { headers: { Authorization: `DPoP ${bound}`, ...(p ? { DPoP: p } : {}) } });
      assert.equal(r.status, 401, name);
    }
    r = await fetch(url, { headers: { Authorization: `DPoP ${bound}`, DPoP: good } });
    assert.equal(r.status, 200);
    r = await fetch(url, { headers: { Authorization: `DPoP ${bound}`, DPoP: good } });
    assert.equal(r.status, 401, 'a replayed proof');
    await assert.rejects(v.verify(bound), { code: 'proof_required' });
  } finally {
    srv.close();
    v.close();
  }
});

test("an MCP server on the official SDK's requireBearerAuth", async () => {
  const express = (await import('express')).default;
  const { requireBearerAuth } = await import('@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js');
  const resource = 'https://tools.example.com/mcp';
  const v = await createMcpVerifier({ vaultAddr: engine.addr, issuer: ISSUER, resource, revocationWait: -1 });
  const app = express();
  app.post('/mcp', requireBearerAuth({ verifier: mcpTokenVerifier(v), resourceMetadataUrl: 'https://tools.example.com/.well-known/oauth-protected-resource/mcp' }),
    (req, res) => {
      try {
        requireTool(req.auth, 'search');
        res.json({ ok: true, client: req.auth.clientId });
      } catch (e) {
        res.status(403).json({ error: e.message });
      }
    });
  const srv = app.listen(0, '127.0.0.1');
  await new Promise((r) => srv.once('listening', r));
  const url = `http://127.0.0.1:${srv.address().port}/mcp`;
  try {
    let r = await fetch(url, { method: 'POST' });
    assert.equal(r.status, 401);
    assert.match(r.headers.get('www-authenticate'), /resource_metadata="https:\/\/tools.example.com\/.well-known\/oauth-protected-resource\/mcp"/);
    const txn = await engine.mint({ aud: resource, scope: 'call:tools/search' });
    r = await fetch(url, { method: 'POST', headers: { Authorization: `Bearer ${txn}` } });
    assert.equal(r.status, 401, 'a transaction token is not an access token');
    const at = await engine.mint({ aud: resource, scope: 'call:tools/search', client_id: 'entity-1' }, { typ: 'at+jwt' });
    r = await fetch(url, { method: 'POST', headers: { Authorization: `Bearer ${at}` } });
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { ok: true, client: 'entity-1' });
    const other = await engine.mint({ aud: resource, scope: 'call:tools/read_doc', client_id: 'entity-1' }, { typ: 'at+jwt' });
    r = await fetch(url, { method: 'POST', headers: { Authorization: `Bearer ${other}` } });
    assert.equal(r.status, 403);
  } finally {
    srv.close();
    v.close();
  }
});

test('claims of the wrong shape are refused as Go refuses them', async () => {
  const v = await createVerifier({ vaultAddr: engine.addr, issuer: ISSUER, audience: 'docs-api', revocationWait: -1 });
  try {
    for (const [claims, code] of [
      [{ cnf: 'x' }, 'malformed'], [{ cnf: [] }, 'malformed'], [{ cnf: { JKT: 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs' } }, 'malformed'],
      [{ cnf: {} }, 'claims'], [{ tctx: 'x' }, 'malformed'], [{ rctx: 5 }, 'malformed'], [{ act: { sub: 5 } }, 'malformed'],
      [{ tctx: { Role: 'x' } }, 'malformed'],
    ]) {
      await assert.rejects(v.verify(await engine.mint(claims)), { code }, JSON.stringify(claims));
    }
  } finally {
    v.close();
  }
});

test('a proof is remembered through its last instant', async () => {
  const { ReplayCache } = await import('../src/dpop.js');
  const c = new ReplayCache();
  c.check('k', 100, 50);
  assert.throws(() => c.check('k', 100, 100), { code: 'proof_required' });
  c.check('k', 200, 101);
});

test('integers are read only as JSON spells them, as Go reads them', async () => {
  const { numberLiterals } = await import('../src/token.js');
  const lit = numberLiterals('{"a":{"iat":1.5},"iat" : 1.8e9,"s":"iat","dep":-0,"x":[1,2]}');
  assert.equal(lit.get('iat'), '1.8e9');
  assert.equal(lit.get('dep'), '-0');
  assert.equal(lit.has('s'), false);
  assert.equal(lit.has('x'), false);

  // A DPoP proof whose iat is 1.8e9 rather than 1800000000.
  const { verifyProof } = await import('../src/dpop.js');
  const { publicKey, privateKey } = await jose.generateKeyPair('ES256');
  const jwk = await jose.exportJWK(publicKey);
  const now = 1800000000;
  const sign = async (iat) => {
    const payload = `{"jti":"p-${iat}","htm":"GET","htu":"https://rs.example/x","iat":${iat}}`;
    return new jose.CompactSign(new TextEncoder().encode(payload))
      .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk }).sign(privateKey);
  };
  const o = { method: 'GET', url: 'https://rs.example/x', now };
  await verifyProof(await sign('1800000000'), o);
  await assert.rejects(verifyProof(await sign('1.8e9'), o), /not written as an integer/);
  await assert.rejects(verifyProof(await sign('1800000000.0'), o), /not written as an integer/);
});

test('htu is compared as Go compares it: the path as written', async () => {
  const { normalizeURL } = await import('../src/dpop.js');
  assert.equal(normalizeURL('HTTPS://Example.COM:443/a/../b?x#y'), 'https://example.com/a/../b');
  assert.notEqual(normalizeURL('https://rs.example/a/../x'), normalizeURL('https://rs.example/x'));
  assert.throws(() => normalizeURL('https://evil.example\\@rs.example/x'), 'read as two hosts by different parsers');
  assert.equal(normalizeURL('http://[::1]:8080/x'), 'http://[::1]:8080/x');
  assert.equal(normalizeURL('https://h:8443/%7Ex'), 'https://h:8443/%7Ex');
  for (const bad of ['ftp://h/x', 'https:///x', 'not a url']) assert.throws(() => normalizeURL(bad));
});
