// The revocation list a verifier holds, and the rules by which an answer of
// the engine's revocations path changes it: the Go verifier's
// RevocationList, checked against the same conformance vectors.

/** How long the engine keeps a closed session listed past its last exp. */
export const REVOCATION_GRACE = 60;

export class RevocationList {
  #closed = null; // Map session id -> exp
  version = 0;
  epoch = '';
  synced = false;

  /**
   * Takes one answer (the raw JSON body) fetched at now (Unix seconds).
   * Returns whether the list changed; throws when the answer is refused (no
   * valid list, or an older version within the same history), keeping the
   * list held.
   */
  apply(body, now) {
    const { version, epoch, complete, entries } = decode(body);
    const whole = complete || !this.synced;
    const newHistory = whole && this.synced && this.epoch !== '' && epoch !== '' && epoch !== this.epoch;
    if (this.synced && version < this.version && !newHistory) {
      throw new Error(`revocations: refusing version ${version}, older than the version ${this.version} held`);
    }
    if (this.synced && version === this.version && !newHistory) return false;
    if (whole || this.#closed === null) {
      this.#closed = entries;
    } else {
      const cutoff = now - REVOCATION_GRACE;
      for (const [id, exp] of this.#closed) if (exp < cutoff) this.#closed.delete(id);
      for (const [id, exp] of entries) this.#closed.set(id, exp);
    }
    this.version = version;
    this.epoch = epoch;
    this.synced = true;
    return true;
  }

  /** Whether session id is in the list. */
  closed(id) {
    return this.#closed?.has(id) ?? false;
  }

  /** The session IDs in the list. */
  sessions() {
    return [...(this.#closed?.keys() ?? [])];
  }
}

function decode(body) {
  let out;
  try {
    out = typeof body === 'string' ? JSON.parse(body) : body;
  } catch {
    throw new Error('revocations: the answer is not JSON');
  }
  const d = out?.data;
  if (d === null || typeof d !== 'object') throw new Error('revocations: the answer has no data');
  if (!Number.isSafeInteger(d.version) || d.version < 0) throw new Error('revocations: the answer has no version');
  if (!Array.isArray(d.sessions)) throw new Error("revocations: the answer's sessions are not a list");
  if (d.version === 0 && d.sessions.length > 0) throw new Error('revocations: a non-empty list at version 0');
  // Read as Go reads it: a member of the wrong type refuses the answer.
  if (d.epoch !== undefined && d.epoch !== null && typeof d.epoch !== 'string') throw new Error('revocations: epoch is not a string');
  if (d.complete !== undefined && d.complete !== null && typeof d.complete !== 'boolean') throw new Error('revocations: complete is not a boolean');
  const entries = new Map();
  for (const s of d.sessions) {
    if (typeof s?.id !== 'string' || s.id === '') throw new Error('revocations: an entry has no id');
    if (s.exp !== undefined && s.exp !== null && !Number.isSafeInteger(s.exp)) throw new Error('revocations: an entry exp is not an integer');
    entries.set(s.id, s.exp ?? 0);
  }
  return { version: d.version, epoch: d.epoch ?? '', complete: d.complete === true, entries };
}
