package trust

import "time"

// RevocationGrace is how long an entry stays in the revocation list after
// its session's last credential expired: verifiers tolerate some clock
// skew past "exp" (token.DefaultLeeway, 30s), so the list must outlast it.
const RevocationGrace = time.Minute

// ClosedSession is one entry of the revocation list: a session that is no
// longer active while some of its credentials may still be unexpired.
type ClosedSession struct {
	ID string `json:"id"`
	// RevokedAt is when the session closed, revoking its credentials.
	RevokedAt int64 `json:"revoked_at"`
	// Exp is when the last credential the session could have issued
	// expires; the entry leaves the list after it.
	Exp int64 `json:"exp"`
	// Version is the list's version that added the entry: a verifier
	// holding version V needs only the entries above it.
	Version uint64 `json:"version"`
}

// Listed reports whether the entry must still be served at now: until
// RevocationGrace after Exp.
func (r ClosedSession) Listed(now time.Time) bool {
	return now.Unix() <= r.Exp+int64(RevocationGrace/time.Second)
}

// RevocationList is what resource servers poll to learn of closed sessions,
// whose credentials are revoked.
// Version grows with every change, so a poller can tell whether anything
// changed since it last looked.
type RevocationList struct {
	Version  uint64          `json:"version"`
	Sessions []ClosedSession `json:"sessions"`
	// Epoch names one history of the list: a list that starts again (its
	// storage wiped, or restored from an older snapshot) has another, so
	// that a verifier can tell a new history from a rollback.
	Epoch string `json:"epoch,omitempty"`
}

// Add lists a session that stopped being active at now, dropping entries
// that have expired. It returns false and changes nothing when the session
// could have no unexpired credential left.
func (l *RevocationList) Add(s *Session, now time.Time) bool {
	until := s.TokensValidUntil()
	if !until.After(now) {
		return false
	}
	for _, r := range l.Sessions {
		if r.ID == s.ID {
			return false
		}
	}
	l.Prune(now)
	l.Version++
	l.Sessions = append(l.Sessions, ClosedSession{ID: s.ID, RevokedAt: now.Unix(), Exp: until.Unix(), Version: l.Version})
	return true
}

// Prune drops entries whose every credential has expired more than
// RevocationGrace ago, and reports whether it dropped any (the version then
// grows).
func (l *RevocationList) Prune(now time.Time) bool {
	kept := l.Sessions[:0]
	for _, r := range l.Sessions {
		if r.Listed(now) {
			kept = append(kept, r)
		}
	}
	changed := len(kept) != len(l.Sessions)
	l.Sessions = kept
	if changed {
		l.Version++
	}
	return changed
}
