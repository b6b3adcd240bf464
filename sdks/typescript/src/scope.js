// The scope grammar of the agent secrets engine, ported from its Go
// package scope (and checked against the same conformance vectors):
// ACTIONS:RESOURCE, actions a comma-separated list of [a-z0-9_.-]+ or "*",
// the resource '/'-separated segments of letters, digits and "._~@=-",
// where "+" is one whole segment and a final "*" any suffix.
//
// Offsets in errors are byte offsets in the UTF-8 encoding of the input, as
// in Go.

export const MAX_LENGTH = 256;
export const MAX_SET_SIZE = 64;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A string that is not a valid scope. */
export class ScopeError extends Error {
  constructor(input, offset, reason) {
    super(`scope ${JSON.stringify(input.length > MAX_LENGTH ? input.slice(0, 48) + '...' : input)}: ${reason} at offset ${offset}`);
    this.name = 'ScopeError';
    this.code = 'scope';
    this.offset = offset;
  }
}

const isActionByte = (c) =>
  (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x5f || c === 0x2e || c === 0x2d;
const SEGMENT_EXTRA = new Set([0x2e, 0x5f, 0x7e, 0x40, 0x3d, 0x2d]); // . _ ~ @ = -
const isSegmentByte = (c) =>
  (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || SEGMENT_EXTRA.has(c);

const COMMA = 0x2c, COLON = 0x3a, SLASH = 0x2f, STAR = 0x2a, PLUS = 0x2b;

/** A parsed scope: canonical actions and a resource pattern. */
export class Scope {
  constructor(actions, resource, nseg, star) {
    this.actions = actions; // canonical comma-separated list, or "*"
    this.resource = resource;
    this.nseg = nseg;
    this.star = star;
  }

  toString() {
    return `${this.actions}:${this.resource}`;
  }

  /** Whether the scope allows the concrete request (action, resource). */
  match(action, resource) {
    return validAction(action) && validResource(resource) && this.#allowsAction(action) && this.#matchResource(resource);
  }

  #allowsAction(action) {
    return this.actions === '*' || this.actions.split(',').includes(action);
  }

  #matchResource(r) {
    let p = this.resource;
    for (;;) {
      const [pseg, prest, pmore] = cut(p, '/');
      const [rseg, rrest, rmore] = cut(r, '/');
      if (pseg.endsWith('*')) return rseg.startsWith(pseg.slice(0, -1));
      if (pseg !== '+' && pseg !== rseg) return false;
      if (!pmore || !rmore) return pmore === rmore;
      p = prest;
      r = rrest;
    }
  }
}

function cut(s, sep) {
  const i = s.indexOf(sep);
  return i < 0 ? [s, '', false] : [s.slice(0, i), s.slice(i + 1), true];
}

/** Parses ACTIONS:RESOURCE; throws a ScopeError. */
export function parse(input) {
  const s = encoder.encode(input);
  if (s.length > MAX_LENGTH) throw new ScopeError(input, MAX_LENGTH, `longer than ${MAX_LENGTH} bytes`);
  if (s.length === 0) throw new ScopeError(input, 0, 'empty scope');
  const colon = s.indexOf(COLON);
  if (colon < 0) throw new ScopeError(input, s.length, "missing ':' between actions and resource");
  const actions = parseActions(input, s, colon);
  const { nseg, star } = parseResource(input, s, colon + 1);
  return new Scope(actions, decoder.decode(s.subarray(colon + 1)), nseg, star);
}

function parseActions(input, s, end) {
  if (end === 0) throw new ScopeError(input, 0, "empty action list before ':'");
  let all = false, sorted = true, prev = '', start = 0;
  for (let i = 0; i <= end; i++) {
    if (i === end || s[i] === COMMA) {
      const a = decoder.decode(s.subarray(start, i));
      if (a === '') throw new ScopeError(input, i, 'empty action in list');
      all = all || a === '*';
      sorted = sorted && (start === 0 || a > prev);
      prev = a;
      start = i + 1;
      continue;
    }
    const c = s[i];
    if (isActionByte(c)) continue;
    if (c === STAR) {
      if (i !== start || (i + 1 !== end && s[i + 1] !== COMMA)) {
        throw new ScopeError(input, i, "'*' must be a whole action");
      }
      continue;
    }
    if (c >= 0x41 && c <= 0x5a) throw new ScopeError(input, i, 'upper-case letter in action');
    throw new ScopeError(input, i, 'invalid character in action');
  }
  if (all) return '*';
  const list = decoder.decode(s.subarray(0, end));
  if (sorted) return list;
  return [...new Set(list.split(','))].sort(byteOrder).join(',');
}

// byteOrder compares ASCII strings as Go compares strings (bytewise).
const byteOrder = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

function parseResource(input, s, start) {
  if (start === s.length) throw new ScopeError(input, start, "empty resource after ':'");
  let nseg = 1, segStart = start, star = false;
  for (let i = start; i < s.length; i++) {
    const c = s[i];
    if (c === SLASH) {
      checkSegment(input, s, segStart, i);
      nseg++;
      segStart = i + 1;
    } else if (c === STAR) {
      if (i !== s.length - 1) throw new ScopeError(input, i, "'*' is only allowed as the last character of the resource");
      star = true;
    } else if (c === PLUS) {
      const next = i + 1 < s.length ? s[i + 1] : SLASH;
      if (i === segStart && next === STAR) throw new ScopeError(input, i, '"+*" is not allowed');
      if (i !== segStart || next !== SLASH) throw new ScopeError(input, i, "'+' must be a whole path segment");
    } else if (!isSegmentByte(c)) {
      throw new ScopeError(input, i, 'invalid character in resource');
    }
  }
  if (!star) checkSegment(input, s, segStart, s.length);
  return { nseg, star };
}

function checkSegment(input, s, from, to) {
  const seg = decoder.decode(s.subarray(from, to));
  if (seg === '') throw new ScopeError(input, to, 'empty path segment');
  if (seg === '.' || seg === '..') throw new ScopeError(input, from, `path segment "${seg}" is not allowed`);
}

function allBytes(s, pred) {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f || !pred(c)) return false;
  }
  return true;
}

/** Whether a is a concrete action. */
export function validAction(a) {
  return typeof a === 'string' && a !== '' && allBytes(a, isActionByte);
}

/** Whether r is a concrete resource. */
export function validResource(r) {
  if (typeof r !== 'string') return false;
  return r.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..' && allBytes(seg, isSegmentByte));
}

// ---- containment ----

/** Whether every request inner allows, outer allows (exact). */
export function contains(outer, inner) {
  return actionsContain(outer.actions, inner.actions) && resourceContains(outer, inner);
}

function actionsContain(outer, inner) {
  if (outer === '*') return true;
  if (inner === '*') return false;
  const o = outer.split(',');
  return inner.split(',').every((a) => o.includes(a));
}

function resourceContains(outer, inner) {
  const nI = inner.nseg, nO = outer.nseg;
  if (inner.star && !outer.star) return false;
  if (nI < nO) return false;
  if (!inner.star && !outer.star && nI !== nO) return false;
  const is = inner.resource.split('/'), os = outer.resource.split('/');
  for (let i = 0; i < nO; i++) {
    if (!segmentSubset(is[i], os[i])) return false;
  }
  return true;
}

function segmentSet(seg) {
  if (seg === '+') return { lit: false, v: '' };
  if (seg.endsWith('*')) return { lit: false, v: seg.slice(0, -1) };
  return { lit: true, v: seg };
}

function segmentSubset(inSeg, outSeg) {
  const i = segmentSet(inSeg), o = segmentSet(outSeg);
  if (o.lit) return i.lit && i.v === o.v;
  return i.v.startsWith(o.v);
}

// ---- sets ----

/** A set of scopes: what a credential's "scope" claim grants. */
export class ScopeSet {
  constructor(scopes) {
    this.scopes = scopes;
  }

  /** Whether some scope of the set allows (action, resource). */
  match(action, resource) {
    return this.scopes.some((s) => s.match(action, resource));
  }

  /** Whether every scope of inner lies inside some scope of this set. */
  containsSet(inner) {
    return inner.scopes.every((i) => this.scopes.some((o) => contains(o, i)));
  }

  toString() {
    return this.scopes.map(String).join(' ');
  }
}

/** Parses a list of scopes (at most MAX_SET_SIZE), dropping duplicates. */
export function parseSet(list) {
  if (list.length > MAX_SET_SIZE) throw new ScopeError('', 0, `too many scopes: ${list.length} given, the maximum is ${MAX_SET_SIZE}`);
  const out = [];
  const seen = new Set();
  for (const s of list) {
    const sc = parse(s);
    if (!seen.has(String(sc))) {
      seen.add(String(sc));
      out.push(sc);
    }
  }
  return new ScopeSet(out);
}

/** Parses a "scope" claim: scopes separated by single spaces. */
export function parseSpaceSeparated(claim) {
  if (claim === '') return new ScopeSet([]);
  const parts = claim.split(' ');
  if (parts.length > MAX_SET_SIZE) throw new ScopeError('', 0, `too many scopes: ${parts.length} given, the maximum is ${MAX_SET_SIZE}`);
  return parseSet(parts);
}
