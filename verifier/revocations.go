package verifier

import (
	"fmt"
	"maps"
	"time"

	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

// RevocationList is the list of closed sessions a verifier holds, and the
// rules by which an answer of the engine's revocations path changes it:
// the rules every verifier of this engine follows, in every language (the
// conformance vectors in testdata/conformance/revocations.json check
// them). The zero value is an empty list that has never been synced. It is
// not safe for concurrent use; Verifier guards its own.
type RevocationList struct {
	closed  map[string]int64 // session ID -> the exp of its last credential
	version uint64
	epoch   string
	synced  bool
}

// Apply takes one answer of revocations (the raw JSON body), fetched at
// now. An answer to the first query, or one that says "complete", is the
// whole list; any other is a delta that only adds. The list never goes
// backwards:
//
//   - an answer without a valid list (no data, no version, sessions not a
//     list, an entry without an ID, a non-empty list at version 0) is an
//     error, and the list held stays;
//   - a lower version than the one held is an error, unless the answer is
//     complete and from another history of the list (its epoch differs
//     from the one held: the engine's storage was wiped or restored),
//     which replaces the list;
//   - the same version changes nothing;
//   - a higher version replaces the list (complete) or adds to it (delta);
//     a delta also drops the sessions whose credentials all expired more
//     than the engine's revocation grace before now.
//
// It reports whether the list changed. Any answer without an error counts
// as a successful sync.
func (l *RevocationList) Apply(body []byte, now time.Time) (changed bool, err error) {
	version, epoch, complete, entries, err := decodeRevocations(body)
	if err != nil {
		return false, err
	}
	return l.apply(version, epoch, complete || !l.synced, entries, now)
}

// apply is Apply for a decoded answer; complete means the answer is the
// whole list.
func (l *RevocationList) apply(version uint64, epoch string, complete bool, entries map[string]int64, now time.Time) (bool, error) {
	newHistory := complete && l.synced && l.epoch != "" && epoch != "" && epoch != l.epoch
	if l.synced && version < l.version && !newHistory {
		return false, fmt.Errorf("verifier: revocations: refusing version %d, older than the version %d held", version, l.version)
	}
	if l.synced && version == l.version && !newHistory {
		return false, nil
	}
	if complete || l.closed == nil {
		l.closed = entries
	} else {
		// Deltas only add: drop what can no longer matter (every credential
		// expired past the leeway) so the set stays bounded.
		cutoff := now.Add(-trust.RevocationGrace).Unix()
		for id, exp := range l.closed {
			if exp < cutoff {
				delete(l.closed, id)
			}
		}
		maps.Copy(l.closed, entries)
	}
	l.version, l.epoch, l.synced = version, epoch, true
	return true, nil
}

// Closed reports whether session id is in the list.
func (l *RevocationList) Closed(id string) bool {
	_, ok := l.closed[id]
	return ok
}

// Version is the version of the list held (0 before the first sync).
func (l *RevocationList) Version() uint64 { return l.version }

// Epoch is the history of the list held.
func (l *RevocationList) Epoch() string { return l.epoch }

// Synced reports whether an answer was ever taken.
func (l *RevocationList) Synced() bool { return l.synced }

// Sessions returns the IDs in the list, in no particular order.
func (l *RevocationList) Sessions() []string {
	out := make([]string, 0, len(l.closed))
	for id := range l.closed {
		out = append(out, id)
	}
	return out
}
