import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse, contains, parseSpaceSeparated, ScopeError } from '../src/scope.js';

const vectors = JSON.parse(readFileSync(new URL('../../../testdata/conformance/scope.json', import.meta.url)));

test('scope vectors: parse', () => {
  for (const c of vectors.parse) {
    if (c.valid) {
      assert.equal(String(parse(c.input)), c.canonical, c.input);
    } else {
      assert.throws(() => parse(c.input), (e) => e instanceof ScopeError && e.offset === c.offset, `${JSON.stringify(c.input)} at ${c.offset}`);
    }
  }
});

test('scope vectors: match', () => {
  for (const c of vectors.match) {
    assert.equal(parse(c.scope).match(c.action, c.resource), c.allowed, `${c.scope} ${c.action} ${c.resource}`);
  }
});

test('scope vectors: contains', () => {
  for (const c of vectors.contains) {
    assert.equal(contains(parse(c.outer), parse(c.inner)), c.contained, `${c.outer} ⊇ ${c.inner}`);
  }
});

test('scope vectors: sets', () => {
  for (const c of vectors.sets) {
    let set;
    try {
      set = parseSpaceSeparated(c.claim);
    } catch {
      assert.equal(c.valid, false, c.claim);
      continue;
    }
    assert.equal(c.valid, true, c.claim);
    for (const m of c.matches) assert.equal(set.match(m.action, m.resource), m.allowed, `${c.claim} ${m.action} ${m.resource}`);
  }
});
