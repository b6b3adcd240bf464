import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { verifyToken, importJWKS, VerifierError } from '../src/token.js';
import { RevocationList } from '../src/revocations.js';
import { normalizeURL } from '../src/dpop.js';

const load = (name) => JSON.parse(readFileSync(new URL(`../../../testdata/conformance/${name}`, import.meta.url)));

test('credential vectors', async () => {
  const f = load('tokens.json');
  const keys = await importJWKS(f.jwks);
  let valid = 0;
  for (const c of f.cases) {
    let got = '', claims;
    try {
      claims = await verifyToken(c.token, {
        keys, issuer: f.issuer, audience: c.audience, formats: c.formats,
        now: f.now, leeway: f.leeway_seconds, maxLifetime: f.max_lifetime_seconds,
      });
      // What a verifier does next: the revocation list, then the binding.
      if (f.revoked_sessions.includes(claims.txn)) got = 'session_closed';
      else if (claims.cnf) got = 'proof_required';
    } catch (e) {
      assert.ok(e instanceof VerifierError, `${c.name}: ${e}`);
      got = e.code;
      assert.ok(!e.message.includes(c.token), `${c.name}: the error quotes the credential`);
    }
    assert.equal(got, c.error ?? '', c.name);
    if (c.valid) {
      valid++;
      for (const [k, v] of Object.entries(c.claims)) assert.deepEqual(claims[k], v, `${c.name}: ${k}`);
    }
  }
  assert.ok(valid >= 4 && f.cases.length >= 30);
});

test('revocation vectors', () => {
  const f = load('revocations.json');
  for (const s of f.sequences) {
    const l = new RevocationList();
    s.steps.forEach((st, i) => {
      let accepted = true, changed = false;
      try {
        changed = l.apply(JSON.stringify(st.answer), st.now);
      } catch {
        accepted = false;
      }
      const where = `${s.name}, step ${i}`;
      assert.equal(accepted, st.accepted, where);
      assert.equal(changed, st.changed, where);
      assert.equal(l.version, st.version, where);
      assert.deepEqual(l.sessions().sort(), st.closed, where);
    });
  }
});

test("htu vectors: Go's value or a refusal, never another", () => {
  for (const c of load('htu.json').cases) {
    let got = '';
    try {
      got = normalizeURL(c.url);
    } catch {
      got = '';
    }
    if (c.plain) assert.equal(got, c.normalized, c.url);
    else if (!c.normalized) assert.equal(got, '', `${c.url}: Go refuses it`);
    else assert.ok(got === '' || got === c.normalized, `${c.url}: ${got}`);
  }
});
