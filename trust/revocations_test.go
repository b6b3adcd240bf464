package trust

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// closedSession is a session of testRole (lease 15m, step_max_ttl 5m)
// closed (revoked or ended) at t0+at.
func closedSession(t *testing.T, id string, revoke bool, at time.Duration) *Session {
	t.Helper()
	s := newSession(t, nil, IntentRequest{})
	s.ID = id
	if revoke {
		require.True(t, s.Revoke("operator", t0.Add(at)))
	} else {
		require.True(t, s.End(t0.Add(at)))
	}
	return s
}

func TestRevocationListAdd(t *testing.T) {
	var l RevocationList
	a := closedSession(t, "a", false, time.Minute) // tokens valid until t0+6m
	now := t0.Add(time.Minute)
	require.True(t, l.Add(a, now))
	assert.Equal(t, uint64(1), l.Version)
	require.Equal(t, []ClosedSession{{ID: "a", RevokedAt: now.Unix(), Exp: a.TokensValidUntil().Unix(), Version: 1}}, l.Sessions)
	assert.Equal(t, t0.Add(6*time.Minute).Unix(), l.Sessions[0].Exp)

	b := closedSession(t, "b", true, 2*time.Minute)
	require.True(t, l.Add(b, t0.Add(2*time.Minute)))
	assert.Equal(t, uint64(2), l.Version)
	require.Len(t, l.Sessions, 2)
	assert.Equal(t, ClosedSession{ID: "b", RevokedAt: t0.Add(2 * time.Minute).Unix(), Exp: t0.Add(7 * time.Minute).Unix(), Version: 2}, l.Sessions[1])

	// Closed late in its lease: the lease is the bound.
	var l2 RevocationList
	c := closedSession(t, "c", true, 12*time.Minute)
	require.True(t, l2.Add(c, t0.Add(12*time.Minute)))
	assert.Equal(t, []ClosedSession{{ID: "c", RevokedAt: t0.Add(12 * time.Minute).Unix(), Exp: t0.Add(15 * time.Minute).Unix(), Version: 1}}, l2.Sessions)
}

func TestRevocationListDuplicateAddIsANoOp(t *testing.T) {
	var l RevocationList
	a := closedSession(t, "a", true, time.Minute)
	require.True(t, l.Add(a, t0.Add(time.Minute)))
	before := cloneList(l)
	assert.False(t, l.Add(a, t0.Add(time.Minute)))
	assert.False(t, l.Add(a, t0.Add(2*time.Minute)))
	assert.Equal(t, before, l)
}

func TestRevocationListAddNothingUnexpired(t *testing.T) {
	var l RevocationList
	// An entry that has expired by the time of the next Add.
	old := closedSession(t, "old", true, 0) // tokens valid until t0+5m
	require.True(t, l.Add(old, t0))

	// Ended at t0+1m: its tokens expired at t0+6m.
	late := closedSession(t, "late", false, time.Minute)
	before := cloneList(l)
	assert.False(t, l.Add(late, t0.Add(6*time.Minute)))
	assert.False(t, l.Add(late, t0.Add(10*time.Minute)))
	assert.Equal(t, before, l, "returns false and changes nothing")

	// Expired: the lease itself ran out.
	exp := newSession(t, nil, IntentRequest{})
	exp.ID = "expired"
	require.True(t, exp.Expire(exp.ExpiresAt))
	assert.False(t, l.Add(exp, exp.ExpiresAt))
	assert.Equal(t, before, l)
}

func TestRevocationListAddPrunes(t *testing.T) {
	var l RevocationList
	require.True(t, l.Add(closedSession(t, "a", true, 0), t0))                                // exp t0+5m
	require.True(t, l.Add(closedSession(t, "b", true, 0), t0))                                // exp t0+5m
	require.True(t, l.Add(closedSession(t, "c", true, 4*time.Minute), t0.Add(4*time.Minute))) // exp t0+9m
	v := l.Version

	d := closedSession(t, "d", true, 7*time.Minute)
	require.True(t, l.Add(d, t0.Add(7*time.Minute)))
	assert.Greater(t, l.Version, v)
	ids := []string{}
	for _, r := range l.Sessions {
		ids = append(ids, r.ID)
	}
	assert.Equal(t, []string{"c", "d"}, ids, "expired entries dropped, order kept")
}

func TestRevocationListPrune(t *testing.T) {
	var l RevocationList
	assert.False(t, l.Prune(t0), "nothing to prune in an empty list")
	assert.Zero(t, l.Version)

	require.True(t, l.Add(closedSession(t, "a", true, time.Minute), t0.Add(time.Minute)))     // exp t0+6m
	require.True(t, l.Add(closedSession(t, "b", true, 3*time.Minute), t0.Add(3*time.Minute))) // exp t0+8m
	v := l.Version

	assert.False(t, l.Prune(t0.Add(6*time.Minute)), "kept through its exp second")
	assert.False(t, l.Prune(t0.Add(6*time.Minute+RevocationGrace)), "and for RevocationGrace after it")
	assert.Equal(t, v, l.Version, "no change, no new version")
	assert.Len(t, l.Sessions, 2)

	assert.True(t, l.Prune(t0.Add(6*time.Minute+RevocationGrace+time.Second)))
	assert.Equal(t, v+1, l.Version)
	require.Len(t, l.Sessions, 1)
	assert.Equal(t, "b", l.Sessions[0].ID)

	assert.False(t, l.Prune(t0.Add(8*time.Minute+RevocationGrace)))
	assert.Equal(t, v+1, l.Version)

	assert.True(t, l.Prune(t0.Add(time.Hour)))
	assert.Equal(t, v+2, l.Version)
	assert.Empty(t, l.Sessions)
}

func TestRevocationListVersionOnlyGrows(t *testing.T) {
	var l RevocationList
	last := l.Version
	check := func() {
		t.Helper()
		assert.GreaterOrEqual(t, l.Version, last)
		last = l.Version
	}
	for i := 0; i < 20; i++ {
		at := time.Duration(i) * 30 * time.Second
		s := closedSession(t, string(rune('a'+i)), i%2 == 0, at)
		l.Add(s, t0.Add(at))
		check()
		l.Add(s, t0.Add(at))
		check()
		l.Prune(t0.Add(at + 5*time.Minute + 2*time.Second))
		check()
	}
	assert.Greater(t, l.Version, uint64(20))
}

func TestRevocationListJSON(t *testing.T) {
	var l RevocationList
	require.True(t, l.Add(closedSession(t, "a", true, time.Minute), t0.Add(time.Minute)))
	b, err := json.Marshal(&l)
	require.NoError(t, err)
	assert.JSONEq(t, `{"version":1,"sessions":[{"id":"a","revoked_at":1748779260,"exp":1748779560,"version":1}]}`, string(b))

	var back RevocationList
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, l, back)
}

func TestRevocationListAfterAViolation(t *testing.T) {
	s := newSession(t, nil, IntentRequest{})
	at := t0.Add(2 * time.Minute)
	require.True(t, s.RecordViolation(Violation{Kind: ScopeOutsideIntent, Time: at}))
	var l RevocationList
	require.True(t, l.Add(s, at))
	assert.Equal(t, t0.Add(7*time.Minute).Unix(), l.Sessions[0].Exp)
}

func cloneList(l RevocationList) RevocationList {
	out := l
	out.Sessions = append([]ClosedSession(nil), l.Sessions...)
	return out
}

// Each entry records the list version that added it, the version a
// delta is computed against.
func TestRevocationEntriesRecordTheirVersion(t *testing.T) {
	var l RevocationList
	require.True(t, l.Add(closedSession(t, "a", true, time.Minute), t0.Add(time.Minute)))
	require.True(t, l.Add(closedSession(t, "b", true, time.Minute), t0.Add(time.Minute)))
	assert.Equal(t, uint64(2), l.Version)
	assert.Equal(t, uint64(1), l.Sessions[0].Version)
	assert.Equal(t, uint64(2), l.Sessions[1].Version)
}
