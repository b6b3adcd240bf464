package verifier

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

// blockingConfig is testConfig with blocking queries on and polling so
// slow that only a blocking query can explain what a test sees.
func blockingConfig(f *fakeEngine, c *clock) Config {
	cfg := testConfig(f, c)
	cfg.RevocationWait = 30 * time.Second
	cfg.RevocationPoll = time.Hour
	cfg.MaxStaleness = 2 * time.Hour
	return cfg
}

// A close reaches a verifier through its held query, not a poll: the
// credential is refused as soon as the engine lists the session.
func TestBlockingQueryLearnsOfACloseAtOnce(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	f.setRevocations(3, "old-session")
	raw := mint(t, k, nil) // session sess-1
	v := newVerifier(t, blockingConfig(f, newClock(t0)))
	ctx := context.Background()
	_, err := v.Verify(ctx, raw)
	require.NoError(t, err)

	require.Eventually(t, func() bool { return f.waiting() == 1 }, 5*time.Second, time.Millisecond,
		"the verifier keeps one query held at the engine")
	f.addRevocation("sess-1")
	require.Eventually(t, func() bool {
		_, err := v.Verify(ctx, raw)
		return err != nil
	}, 5*time.Second, time.Millisecond)
	_, err = v.Verify(ctx, raw)
	require.ErrorIs(t, err, ErrSessionClosed)
	assert.True(t, v.SessionClosed("old-session"), "a delta adds to the list held")

	// Each query asked only for what was added after the version held,
	// and the next one was sent at once.
	require.Eventually(t, func() bool { return f.waiting() == 1 }, 5*time.Second, time.Millisecond)
	qs := f.queries()
	assert.Equal(t, []string{"", "after=3&wait=30", "after=4&wait=30"}, qs)
}

// Without epochs (answers that name none), the version alone orders the
// list: an answer older than the version held is refused and changes
// nothing, complete or not; a newer delta adds, a newer complete answer
// replaces. (TestRevocationEpochs covers a new history.)
func TestBlockingQueryCompleteAndRollback(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	f.setRevocations(5, "a", "b")
	clk := newClock(t0)
	cfg := testConfig(f, clk) // the background sync is off: queries are sent by the test
	v := newVerifier(t, cfg)
	ctx := context.Background()
	require.True(t, v.SessionClosed("a"))

	// after=5 is newer than the engine's 2: it answers the whole list.
	f.setRevocations(2, "c")
	changed, err := v.waitRevocations(ctx, 0)
	require.ErrorContains(t, err, "older than the version 5 held", "a complete list at a lower version is a rollback")
	assert.False(t, changed)
	assert.True(t, v.SessionClosed("a"))

	f.setRevocations(9, "c")
	f.mu.Lock()
	f.revSessions[0].Version = 7
	f.mu.Unlock()
	changed, err = v.waitRevocations(ctx, 0)
	require.NoError(t, err)
	assert.True(t, changed)
	assert.True(t, v.SessionClosed("a"), "a delta only adds")
	assert.True(t, v.SessionClosed("c"))

	// A complete answer replaces.
	f.mu.Lock()
	f.revIgnore = false
	f.mu.Unlock()
	f.setRevocationBody(`{"data":{"version":12,"complete":true,"sessions":[{"id":"d","exp":` + itoa(t0.Add(time.Hour).Unix()) + `}]}}`)
	changed, err = v.waitRevocations(ctx, 0)
	require.NoError(t, err)
	assert.True(t, changed)
	assert.False(t, v.SessionClosed("a"))
	assert.True(t, v.SessionClosed("d"))

	// Bad answers are errors and keep the list.
	for _, body := range []string{`{}`, `null`, `{"data":null}`, `{"data":{"version":13}}`, `{"data":{"version":13,"sessions":[{"exp":1}]}}`} {
		f.setRevocationBody(body)
		_, err := v.waitRevocations(ctx, 0)
		require.Error(t, err, body)
		assert.True(t, v.SessionClosed("d"), body)
	}
}

// Entries whose credentials all expired long ago leave the list held as
// deltas arrive, so it stays bounded though deltas never remove.
func TestBlockingQueryDropsExpiredEntries(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	f.setRevocations(1, "a")
	clk := newClock(t0)
	v := newVerifier(t, testConfig(f, clk))
	require.True(t, v.SessionClosed("a")) // exp t0+1h
	clk.Add(2 * time.Hour)
	f.addRevocation("b")
	_, err := v.waitRevocations(context.Background(), 0)
	require.NoError(t, err)
	assert.False(t, v.SessionClosed("a"))
	assert.True(t, v.SessionClosed("b"))
}

// An engine (or node) that answers at once without holding the query is
// not hammered: the verifier waits RevocationPoll before asking again.
func TestBlockingQueryAgainstAnEngineThatDoesNotHold(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	f.mu.Lock()
	f.revIgnore = true
	f.mu.Unlock()
	cfg := blockingConfig(f, newClock(t0))
	cfg.RevocationPoll = 200 * time.Millisecond
	newVerifier(t, cfg)
	time.Sleep(time.Second)
	n := f.revCount()
	assert.GreaterOrEqual(t, n, 3, "it keeps asking")
	assert.LessOrEqual(t, n, 8, "about one query per RevocationPoll, not a spin: %d", n)
}

// Errors back off instead of spinning, and the list held is kept.
func TestBlockingQueryBacksOffOnErrors(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	f.setRevocations(1, "a")
	cfg := blockingConfig(f, newClock(t0))
	cfg.RevocationPoll = 400 * time.Millisecond
	v := newVerifier(t, cfg)
	f.setRevStatus(http.StatusServiceUnavailable)
	before := f.revCount()
	time.Sleep(time.Second)
	n := f.revCount() - before
	assert.LessOrEqual(t, n, 6, "backing off: %d queries in a second", n)
	assert.True(t, v.SessionClosed("a"))
}

func TestRevocationWaitConfig(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	cfg := testConfig(f, newClock(t0))
	cfg.RevocationWait = 61 * time.Second
	_, err := New(context.Background(), cfg)
	require.ErrorContains(t, err, "RevocationWait")

	cfg.RevocationWait = 30 * time.Second
	cfg.MaxStaleness = 20 * time.Second
	cfg.RevocationPoll = 5 * time.Second
	_, err = New(context.Background(), cfg)
	require.ErrorContains(t, err, "must be longer than Config.RevocationWait")

	// A client timeout bounds the wait.
	cfg.MaxStaleness = 0
	cfg.HTTPClient = &http.Client{Timeout: 20 * time.Second}
	v := newVerifier(t, cfg)
	assert.Equal(t, 15*time.Second, v.cfg.RevocationWait)
	assert.True(t, strings.Contains(v.cfg.MaxStaleness.String(), "m"), "default staleness outlasts the wait: %s", v.cfg.MaxStaleness)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// A complete list from another history of the engine's list (another
// epoch: its storage was wiped or restored) replaces the list held even at
// a lower version; within one history the list never goes backwards. The
// verifier names the epoch it holds in its queries.
func TestRevocationEpochs(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	exp := itoa(t0.Add(time.Hour).Unix())
	f.setRevocationBody(`{"data":{"version":5,"epoch":"E1","complete":true,"sessions":[{"id":"a","exp":` + exp + `}]}}`)
	v := newVerifier(t, testConfig(f, newClock(t0)))
	ctx := context.Background()
	require.True(t, v.SessionClosed("a"))

	f.setRevocationBody(`{"data":{"version":2,"epoch":"E2","complete":true,"sessions":[{"id":"c","exp":` + exp + `}]}}`)
	changed, err := v.waitRevocations(ctx, 0)
	require.NoError(t, err)
	assert.True(t, changed)
	assert.False(t, v.SessionClosed("a"), "a new history replaces the list")
	assert.True(t, v.SessionClosed("c"))
	qs := f.queries()
	assert.Contains(t, qs[len(qs)-1], "epoch=E1", "the query named the epoch held")

	// Within E2, a lower version is a rollback.
	f.setRevocationBody(`{"data":{"version":1,"epoch":"E2","complete":true,"sessions":[]}}`)
	_, err = v.waitRevocations(ctx, 0)
	require.ErrorContains(t, err, "older than the version 2 held")
	assert.True(t, v.SessionClosed("c"))
	// A delta (not complete) from another epoch is no new history either.
	f.setRevocationBody(`{"data":{"version":1,"epoch":"E3","complete":false,"sessions":[]}}`)
	_, err = v.waitRevocations(ctx, 0)
	require.Error(t, err)
	assert.True(t, v.SessionClosed("c"))
	// PollRevocations (a whole list) follows a new history too.
	f.setRevocationBody(`{"data":{"version":1,"epoch":"E4","sessions":[]}}`)
	require.NoError(t, v.PollRevocations(ctx))
	assert.False(t, v.SessionClosed("c"))
}

// A whole revocation list larger than the 1 MiB other answers may be
// (20,000 closed sessions are about 2 MB) is read whole.
func TestLargeRevocationList(t *testing.T) {
	k := genKey(t, token.AlgEdDSA)
	f := newFakeEngine(t, k)
	ids := make([]string, 20000)
	for i := range ids {
		ids[i] = "session-" + strconv.Itoa(i) + "-0123456789abcdef0123456789abcdef"
	}
	f.setRevocations(20000, ids...)
	v := newVerifier(t, testConfig(f, newClock(t0)))
	assert.True(t, v.SessionClosed(ids[19999]))
}
