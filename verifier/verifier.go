// Package verifier is the Go SDK for resource servers: the APIs that
// agents call with step credentials of the agent secrets engine.
//
// A Verifier checks a credential offline, with the same code as the engine
// (packages token and scope): the signature against the engine's JWKS, the
// issuer, the audience, the validity window with a small clock skew, the
// lifetime (exp − iat) against a ceiling, the type and the algorithm; then
// that the request's (action, resource) lies inside the credential's scope.
//
// It keeps the JWKS fresh: refetched in the background every
// Config.JWKSRefresh, and when an unknown key ID shows up (never more often
// than Config.JWKSRefreshFloor after a successful fetch). A refetch runs on
// a context of its own, so a client that hangs up cannot abort it.
//
// It learns of closed sessions, whose credentials are revoked, by polling
// the engine's revocation list. It
// fails safe: an answer without a valid list, or with an older version than
// the one it holds, is refused and the list it holds is kept (a list never
// rolls back); and past Config.MaxStaleness without a successful sync,
// Verify refuses every credential with ErrStale (the middleware answers
// 503) unless Config.FailOpen is set.
//
// For high-value calls it can ask Vault directly (Introspect), and it can
// report what it saw (Report), with the time it saw it.
//
// Protecting an endpoint takes a few lines:
//
//	v, err := verifier.New(ctx, verifier.Config{
//		VaultAddr: "http://127.0.0.1:8200", Audience: "docs-api", Issuer: "vault:agent",
//	})
//	if err != nil { ... }
//	defer v.Close()
//	http.Handle("/docs/", v.Middleware(func(r *http.Request) (string, string, error) {
//		return verifier.MethodAction(r), strings.TrimPrefix(r.URL.Path, "/"), nil
//	}, docsHandler))
package verifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/continuoustrust/vault-plugin-secrets-agent/dpop"
	"github.com/continuoustrust/vault-plugin-secrets-agent/scope"
	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
	"github.com/continuoustrust/vault-plugin-secrets-agent/trust"
)

// Errors a verification can fail with, besides the token package's
// (token.ErrExpired, token.ErrSignature, token.ErrLifetime, ...), all
// matched with errors.Is.
var (
	// ErrSessionClosed: the credential's session is closed (ended or
	// revoked), so the credential is revoked.
	ErrSessionClosed = errors.New("verifier: the credential's session is closed")
	// ErrScope: the credential does not allow the request.
	ErrScope = errors.New("verifier: the credential's scope does not allow this request")
	// ErrNoCredential: the request carries no credential.
	ErrNoCredential = errors.New("verifier: no credential")
	// ErrStale: the revocation list has not been synced for longer than
	// Config.MaxStaleness, so whether the credential's session is still
	// active cannot be told. The middleware answers 503.
	ErrStale = errors.New("verifier: the revocation list is stale")
	// ErrProof: the credential is bound to a key (cnf.jkt) and the request
	// carries no valid DPoP proof by that key (RFC 9449), or an unbound
	// credential came with the DPoP scheme. It wraps the dpop package's
	// error (dpop.ErrMissing, dpop.ErrReplay, ...).
	ErrProof = errors.New("verifier: no valid proof of possession")
)

// Defaults of Config.
const (
	defaultMount            = "agent"
	defaultJWKSRefreshFloor = 10 * time.Second
	defaultJWKSRefresh      = 5 * time.Minute
	defaultRevocationPoll   = 5 * time.Second
	defaultRevocationWait   = 30 * time.Second
	maxRevocationWait       = 60 * time.Second
	defaultMaxStaleness     = time.Minute
	// requestTimeout bounds a request to the engine that is not held
	// (everything but a blocking revocations query).
	requestTimeout     = 10 * time.Second
	defaultMaxLifetime = time.Hour
	// jwksFetchTimeout bounds a JWKS fetch, which runs on a context of its
	// own.
	jwksFetchTimeout = 10 * time.Second
	// jwksRetryBackoff is the least time between two JWKS fetches caused by
	// unknown key IDs after a failed one (capped at JWKSRefreshFloor): a
	// failure does not use the floor, but a broken engine is not hammered.
	jwksRetryBackoff = time.Second
	// reportTimeout bounds a background report.
	reportTimeout = 5 * time.Second
)

// Config configures a Verifier.
type Config struct {
	// VaultAddr is Vault's address, e.g. "https://vault.example.com:8200".
	VaultAddr string
	// Mount is the engine's mount path; default "agent".
	Mount string
	// Issuer is the expected "iss" (the engine's config issuer, by default
	// "vault:<mount>"). Required.
	Issuer string
	// Audience is this resource server's name: credentials for anyone else
	// are refused. Required.
	Audience string
	// Algorithms is the allow-list; default EdDSA and ES256.
	Algorithms []string
	// Formats are the credential formats accepted; default
	// {token.FormatTxnToken}. An OAuth resource server, such as an MCP
	// server, sets {token.FormatAccessToken} (RFC 9068 JWT access tokens,
	// typ at+jwt) and its canonical URI as Audience.
	Formats []token.Format
	// Leeway is the clock skew tolerated; default 30s (token.DefaultLeeway),
	// negative for none. New refuses a Leeway above trust.RevocationGrace
	// (1 minute): the engine keeps a closed session in its revocation list
	// only that long past its last credential's exp, so a larger leeway
	// would accept a closed session's credential once it left the list.
	Leeway time.Duration
	// MaxLifetime is the longest lifetime (exp − iat) accepted: a
	// credential that claims a longer one is refused (token.ErrLifetime).
	// Default 1 hour, the engine's default step_max_ttl ceiling; set it to
	// the engine's config step_max_ttl. Negative values are refused.
	MaxLifetime time.Duration
	// JWKSRefresh is how often the JWKS is refetched in the background,
	// so that new keys are known before they are used and retired ones are
	// dropped; default 5 minutes.
	JWKSRefresh time.Duration
	// JWKSRefreshFloor is the least time between a successful JWKS fetch
	// and the next one caused by an unknown key ID; default 10s. A failed
	// fetch does not use the floor (retries wait a second). Fetches run on
	// a context of their own: a client that hangs up does not abort them.
	JWKSRefreshFloor time.Duration
	// RevocationWait is how long the engine may hold each revocations
	// query open waiting for a change (a blocking query: GET
	// revocations?after=<version>&wait=<seconds>). The verifier keeps one
	// such query in flight and sends the next as soon as one answers, so
	// it learns of a closed session within milliseconds of the engine, and
	// fetches only what was added (deltas). Default 30s, at most 60s. A
	// negative value turns blocking queries off: the whole list is then
	// polled every RevocationPoll. When HTTPClient has a Timeout, the wait
	// is kept 5s below it.
	RevocationWait time.Duration
	// RevocationPoll is how often the revocation list is polled when
	// blocking queries are off, and the pause before the next query when
	// an engine answers at once without a change (an engine, or a node,
	// that does not hold queries); default 5s. After an error, queries back
	// off from a quarter second up to RevocationPoll.
	RevocationPoll time.Duration
	// MaxStaleness is how long the verifier goes on trusting its revocation
	// list without a successful sync: past it, Verify, Authorize and the
	// middleware refuse every credential with ErrStale (503), because a
	// session closed in the meantime would go unnoticed. Default 1 minute,
	// or twice RevocationPoll or RevocationWait plus 30s if longer; an
	// explicit value must be at least RevocationPoll and longer than
	// RevocationWait (a held query is not staleness).
	MaxStaleness time.Duration
	// FailOpen keeps accepting credentials past MaxStaleness, with the
	// last list held. Dangerous: while the engine is unreachable (or made
	// unreachable by an attacker), credentials of closed sessions keep
	// working until they expire. Leave it false unless availability
	// matters more than revocation.
	FailOpen bool
	// VaultToken is used for Introspect and Report (a token whose policy
	// allows update on <mount>/introspect and <mount>/report). JWKS and
	// revocations need none.
	VaultToken string
	// Report sends every request the middleware served to the engine's
	// report path, in the background, with the time the request arrived.
	Report bool
	// HTTPClient defaults to a client with no overall timeout: every
	// request carries its own deadline (10s, or the wait plus 10s for a
	// blocking revocations query).
	HTTPClient *http.Client
	// Now is the clock; default time.Now. It times credentials, the JWKS
	// refetch floor, the revocation list's staleness and reported uses.
	Now func() time.Time
	// PublicURL is the scheme and host (and any path prefix) clients reach
	// this server at, such as "https://docs.example.com", when it differs
	// from what the request says (behind a proxy): a DPoP proof names the
	// URL the client used (htu). Default: http or https (by TLS) and the
	// request's Host.
	PublicURL string
	// DPoPWindow is how far a DPoP proof's iat may lie from now, either
	// way; default 1 minute (dpop.DefaultWindow).
	DPoPWindow time.Duration
	// DPoPReplayCache is how many live proofs the verifier remembers to
	// refuse replays; default 100,000. When it is full of live proofs,
	// bound credentials are refused (fail closed) until some expire.
	DPoPReplayCache int
}

// Verifier verifies step credentials. It is safe for concurrent use.
type Verifier struct {
	cfg  Config
	base string

	mu        sync.RWMutex
	keys      map[string]token.PublicKey
	lastFetch time.Time // last successful JWKS fetch
	lastFail  time.Time // last failed JWKS fetch
	keyFetch  *keyFetch // the JWKS fetch under way, if any
	rev       RevocationList
	lastSync  time.Time // last successful revocation sync

	// pushed holds the sessions a pushed SET closed (see ssf.go).
	pushed closedBySET

	fetchMu  sync.Mutex
	stop     chan struct{}
	stopOnce sync.Once
	// life is canceled by Close: it ends a held revocations query at once.
	life    context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	reports chan report
	// proofs remembers the DPoP proofs accepted.
	proofs *dpop.ReplayCache
}

// keyFetch is a JWKS fetch under way; done is closed when it ends.
type keyFetch struct{ done chan struct{} }

// New checks cfg, fetches the engine's keys and revocation list, and
// starts refreshing both in the background. Close stops it.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if cfg.VaultAddr == "" {
		return nil, errors.New("verifier: Config.VaultAddr is required")
	}
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("verifier: Config.Issuer and Config.Audience are required")
	}
	if cfg.Mount == "" {
		cfg.Mount = defaultMount
	}
	for _, f := range cfg.Formats {
		if f.Type() == "" || f == "" {
			return nil, fmt.Errorf("verifier: Config.Formats: unknown format %q (want %q or %q)", f, token.FormatTxnToken, token.FormatAccessToken)
		}
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = token.DefaultLeeway
	}
	if cfg.Leeway > trust.RevocationGrace {
		return nil, fmt.Errorf("verifier: Config.Leeway (%s) must not exceed the engine's revocation grace (%s): credentials of closed sessions would be accepted once they leave the revocation list", cfg.Leeway, trust.RevocationGrace)
	}
	if cfg.MaxLifetime == 0 {
		cfg.MaxLifetime = defaultMaxLifetime
	}
	if cfg.JWKSRefresh == 0 {
		cfg.JWKSRefresh = defaultJWKSRefresh
	}
	if cfg.JWKSRefreshFloor == 0 {
		cfg.JWKSRefreshFloor = defaultJWKSRefreshFloor
	}
	if cfg.RevocationPoll == 0 {
		cfg.RevocationPoll = defaultRevocationPoll
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	switch {
	case cfg.RevocationWait == 0:
		cfg.RevocationWait = defaultRevocationWait
	case cfg.RevocationWait > maxRevocationWait:
		return nil, fmt.Errorf("verifier: Config.RevocationWait (%s) must be at most %s", cfg.RevocationWait, maxRevocationWait)
	}
	if t := cfg.HTTPClient.Timeout; t > 0 && cfg.RevocationWait > t-5*time.Second {
		cfg.RevocationWait = t - 5*time.Second
	}
	if cfg.RevocationWait < time.Second {
		cfg.RevocationWait = -1 // blocking queries off
	}
	if cfg.MaxStaleness == 0 {
		cfg.MaxStaleness = max(defaultMaxStaleness, 2*cfg.RevocationPoll, cfg.RevocationWait+30*time.Second)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"MaxLifetime", cfg.MaxLifetime}, {"JWKSRefresh", cfg.JWKSRefresh},
		{"JWKSRefreshFloor", cfg.JWKSRefreshFloor}, {"RevocationPoll", cfg.RevocationPoll},
		{"MaxStaleness", cfg.MaxStaleness},
	} {
		if d.v < 0 {
			return nil, fmt.Errorf("verifier: Config.%s must not be negative", d.name)
		}
	}
	if cfg.MaxStaleness < cfg.RevocationPoll {
		return nil, fmt.Errorf("verifier: Config.MaxStaleness (%s) must be at least Config.RevocationPoll (%s)", cfg.MaxStaleness, cfg.RevocationPoll)
	}
	if cfg.MaxStaleness <= cfg.RevocationWait {
		return nil, fmt.Errorf("verifier: Config.MaxStaleness (%s) must be longer than Config.RevocationWait (%s)", cfg.MaxStaleness, cfg.RevocationWait)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	life, cancel := context.WithCancel(context.Background())
	v := &Verifier{
		cfg:     cfg,
		base:    strings.TrimRight(cfg.VaultAddr, "/") + "/v1/" + strings.Trim(cfg.Mount, "/"),
		stop:    make(chan struct{}),
		life:    life,
		cancel:  cancel,
		done:    make(chan struct{}),
		reports: make(chan report, 256),
		proofs:  dpop.NewReplayCache(cfg.DPoPReplayCache),
	}
	if err := v.fetchKeys(ctx); err != nil {
		cancel()
		return nil, err
	}
	if err := v.PollRevocations(ctx); err != nil {
		cancel()
		return nil, err
	}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); v.refresh() }()
	go func() { defer wg.Done(); v.syncRevocations() }()
	go func() { defer wg.Done(); v.sendReports() }()
	go func() { wg.Wait(); close(v.done) }()
	return v, nil
}

// Close stops the background refreshing and reporting.
func (v *Verifier) Close() {
	v.stopOnce.Do(func() { close(v.stop); v.cancel() })
	<-v.done
}

// refresh refetches the JWKS every JWKSRefresh, until Close.
func (v *Verifier) refresh() {
	keys := time.NewTicker(v.cfg.JWKSRefresh)
	defer keys.Stop()
	for {
		select {
		case <-v.stop:
			return
		case <-keys.C:
			v.startKeyFetch(false) // keep the known keys on failure
		}
	}
}

// syncRevocations keeps one revocations query in flight until Close:
// with blocking queries, each asks for what was added after the version
// held and is held by the engine until something is (or RevocationWait
// passes), and the next is sent at once; an engine that answers at once
// without a change is asked again after RevocationPoll. Errors back off
// from a quarter second up to RevocationPoll; the list held is kept.
// Without blocking queries, the whole list is polled every RevocationPoll.
func (v *Verifier) syncRevocations() {
	backoff := time.Duration(0)
	// New has just fetched the whole list: a poll waits its interval first.
	if v.cfg.RevocationWait < 0 && !v.sleep(v.cfg.RevocationPoll) {
		return
	}
	for {
		var pause time.Duration
		if v.cfg.RevocationWait < 0 {
			ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
			err := v.PollRevocations(ctx)
			cancel()
			pause = v.cfg.RevocationPoll
			if err != nil {
				backoff = nextBackoff(backoff, v.cfg.RevocationPoll)
				pause = backoff
			} else {
				backoff = 0
			}
		} else {
			started := time.Now()
			// Close cancels a held query at once.
			ctx, cancel := context.WithTimeout(v.life, v.cfg.RevocationWait+requestTimeout)
			changed, err := v.waitRevocations(ctx, v.cfg.RevocationWait)
			cancel()
			switch {
			case err != nil:
				backoff = nextBackoff(backoff, v.cfg.RevocationPoll)
				pause = backoff
			case !changed && time.Since(started) < v.cfg.RevocationWait/2:
				// Not held: an engine or node that answers at once.
				backoff, pause = 0, v.cfg.RevocationPoll
			default:
				backoff = 0
			}
		}
		if !v.sleep(pause) {
			return
		}
	}
}

// sleep waits d, and reports false when Close came first.
func (v *Verifier) sleep(d time.Duration) bool {
	if d <= 0 {
		select {
		case <-v.stop:
			return false
		default:
			return true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-v.stop:
		return false
	case <-t.C:
		return true
	}
}

// nextBackoff doubles prev from a quarter second, up to limit.
func nextBackoff(prev, limit time.Duration) time.Duration {
	if prev == 0 {
		return min(250*time.Millisecond, limit)
	}
	return min(2*prev, limit)
}

// sendReports sends the middleware's reports, until Close.
func (v *Verifier) sendReports() {
	for {
		select {
		case <-v.stop:
			return
		case r := <-v.reports:
			ctx, cancel := context.WithTimeout(context.Background(), reportTimeout)
			_ = v.Report(ctx, r.token, r.action, r.resource, r.outcome, r.observedAt)
			cancel()
		}
	}
}

// Verify checks a credential offline: signature, issuer, audience, times,
// lifetime, type, algorithm, and that its session is not in the
// revocation list. Past Config.MaxStaleness without a successful
// revocation sync it fails with ErrStale (unless Config.FailOpen).
//
// Verify takes raw as a bearer token: a credential bound to a key (cnf)
// fails with ErrProof, since only a request can carry its proof (use
// VerifyRequest).
func (v *Verifier) Verify(ctx context.Context, raw string) (*token.Claims, error) {
	claims, err := v.verify(ctx, raw, v.cfg.Now())
	if err == nil && claims.Cnf != nil {
		return nil, fmt.Errorf("%w: the credential is bound to a key: verify the request that carries it (VerifyRequest)", ErrProof)
	}
	return claims, err
}

// verify is Verify at now.
func (v *Verifier) verify(ctx context.Context, raw string, now time.Time) (*token.Claims, error) {
	opts := token.VerifyOptions{
		Issuer: v.cfg.Issuer, Audience: v.cfg.Audience, Now: now,
		Leeway: v.cfg.Leeway, Algorithms: v.cfg.Algorithms, MaxLifetime: v.cfg.MaxLifetime,
		Formats: v.cfg.Formats,
	}
	if opts.Issuer == "" || opts.Audience == "" {
		// Only a Verifier not made by New gets here.
		return nil, errors.New("verifier: no issuer or audience configured")
	}
	claims, err := token.Verify(raw, v.lookup, opts)
	if errors.Is(err, token.ErrUnknownKey) {
		// A key we have not seen: the engine may have rotated. Refetch
		// (or wait for a refetch under way) and look again.
		v.refetchKeys(ctx)
		claims, err = token.Verify(raw, v.lookup, opts)
	}
	if err != nil {
		return nil, err
	}
	v.mu.RLock()
	closed := v.rev.Closed(claims.Txn)
	synced := v.lastSync
	v.mu.RUnlock()
	if closed || v.closedBySETAt(claims.Txn, now) {
		return nil, ErrSessionClosed
	}
	if !v.cfg.FailOpen && now.Sub(synced) > v.cfg.MaxStaleness {
		return nil, fmt.Errorf("%w: last synced %s ago", ErrStale, now.Sub(synced).Truncate(time.Second))
	}
	return claims, nil
}

// Authorize verifies a credential and checks that it allows action on
// resource, with the engine's own scope matcher.
//
// Like Verify, it refuses a credential bound to a key (ErrProof): use
// AuthorizeRequest.
func (v *Verifier) Authorize(ctx context.Context, raw, action, resource string) (*token.Claims, error) {
	claims, err := v.authorize(ctx, raw, action, resource, v.cfg.Now())
	if err == nil && claims.Cnf != nil {
		return nil, fmt.Errorf("%w: the credential is bound to a key: authorize the request that carries it (AuthorizeRequest)", ErrProof)
	}
	return claims, err
}

// authorize is Authorize at now.
func (v *Verifier) authorize(ctx context.Context, raw, action, resource string, now time.Time) (*token.Claims, error) {
	claims, err := v.verify(ctx, raw, now)
	if err != nil {
		return nil, err
	}
	set, err := scope.ParseSpaceSeparated(claims.Scope)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", token.ErrClaims, err)
	}
	if !set.Match(action, resource) {
		return claims, fmt.Errorf("%w: %s on %s", ErrScope, action, resource)
	}
	return claims, nil
}

func (v *Verifier) lookup(kid string) (token.PublicKey, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	k, ok := v.keys[kid]
	return k, ok
}

// refetchKeys refetches the JWKS for an unknown key ID, or waits for a
// fetch under way. It starts none within JWKSRefreshFloor after a
// successful fetch, nor within a short backoff after a failed one. The
// fetch runs on a context of its own: ctx only bounds how long the caller
// waits for it, so a caller that gives up does not abort it.
func (v *Verifier) refetchKeys(ctx context.Context) {
	f := v.startKeyFetch(true)
	if f == nil {
		return
	}
	select {
	case <-f.done:
	case <-ctx.Done():
	}
}

// startKeyFetch starts a JWKS fetch unless one is under way, and returns
// the fetch under way. With floor, it returns nil instead of starting one
// inside the floor or the backoff after a failure.
func (v *Verifier) startKeyFetch(floor bool) *keyFetch {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.keyFetch != nil {
		return v.keyFetch
	}
	if floor {
		now := v.cfg.Now()
		if now.Sub(v.lastFetch) < v.cfg.JWKSRefreshFloor ||
			now.Sub(v.lastFail) < min(jwksRetryBackoff, v.cfg.JWKSRefreshFloor) {
			return nil
		}
	}
	f := &keyFetch{done: make(chan struct{})}
	v.keyFetch = f
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), jwksFetchTimeout)
		err := v.fetchKeys(ctx)
		cancel()
		v.mu.Lock()
		v.keyFetch = nil
		if err != nil {
			v.lastFail = v.cfg.Now()
		}
		v.mu.Unlock()
		close(f.done)
	}()
	return f
}

// fetchKeys fetches the JWKS and, on success, replaces the known keys.
// A failed fetch keeps them.
func (v *Verifier) fetchKeys(ctx context.Context) error {
	v.fetchMu.Lock()
	defer v.fetchMu.Unlock()
	body, err := v.get(ctx, "/jwks")
	if err != nil {
		return fmt.Errorf("verifier: fetching jwks: %w", err)
	}
	keys, err := token.ParseJWKS(body)
	if err != nil {
		return fmt.Errorf("verifier: %w", err)
	}
	m := make(map[string]token.PublicKey, len(keys))
	for _, k := range keys {
		m[k.ID] = k
	}
	v.mu.Lock()
	v.keys = m
	v.lastFetch = v.cfg.Now()
	v.mu.Unlock()
	return nil
}

// revocationAnswer is the engine's answer on <mount>/revocations; the
// pointers tell a missing member from a zero one.
type revocationAnswer struct {
	Data *struct {
		Version  *uint64 `json:"version"`
		Epoch    string  `json:"epoch"`
		Complete bool    `json:"complete"`
		Sessions *[]struct {
			ID  string `json:"id"`
			Exp int64  `json:"exp"`
		} `json:"sessions"`
	} `json:"data"`
}

// decodeRevocations checks an answer of revocations: a valid list has
// data, a version, sessions as a list of entries with IDs, and no entry
// at version 0.
func decodeRevocations(body []byte) (version uint64, epoch string, complete bool, entries map[string]int64, err error) {
	var out revocationAnswer
	if err := json.Unmarshal(body, &out); err != nil {
		return 0, "", false, nil, fmt.Errorf("verifier: decoding revocations: %w", err)
	}
	d := out.Data
	switch {
	case d == nil:
		return 0, "", false, nil, errors.New("verifier: revocations: the answer has no data")
	case d.Version == nil:
		return 0, "", false, nil, errors.New("verifier: revocations: the answer has no version")
	case d.Sessions == nil:
		return 0, "", false, nil, errors.New("verifier: revocations: the answer's sessions are not a list")
	case *d.Version == 0 && len(*d.Sessions) > 0:
		// Version 0 is the empty list of an engine that never listed a
		// session.
		return 0, "", false, nil, errors.New("verifier: revocations: a non-empty list at version 0")
	}
	entries = make(map[string]int64, len(*d.Sessions))
	for _, s := range *d.Sessions {
		if s.ID == "" {
			return 0, "", false, nil, errors.New("verifier: revocations: an entry has no id")
		}
		entries[s.ID] = s.Exp
	}
	return *d.Version, d.Epoch, d.Complete, entries, nil
}

// waitRevocations sends one blocking query for what was added after the
// version held (the whole list when none is held yet) and applies the
// answer: a complete list replaces the list held, a delta is merged into
// it. It never goes backwards: an answer older than the version held is an
// error and changes nothing. It reports whether the list changed.
func (v *Verifier) waitRevocations(ctx context.Context, wait time.Duration) (bool, error) {
	v.mu.RLock()
	synced, held, heldEpoch := v.rev.Synced(), v.rev.Version(), v.rev.Epoch()
	v.mu.RUnlock()
	path := "/revocations"
	if synced {
		path += fmt.Sprintf("?after=%d&wait=%d", held, int(wait/time.Second))
		if heldEpoch != "" {
			path += "&epoch=" + url.QueryEscape(heldEpoch)
		}
	}
	body, err := v.get(ctx, path)
	if err != nil {
		return false, fmt.Errorf("verifier: fetching revocations: %w", err)
	}
	version, epoch, complete, entries, err := decodeRevocations(body)
	if err != nil {
		return false, err
	}
	complete = complete || !synced
	v.mu.Lock()
	defer v.mu.Unlock()
	changed, err := v.rev.apply(version, epoch, complete, entries, v.cfg.Now())
	if err != nil {
		return false, err
	}
	v.lastSync = v.cfg.Now()
	return changed, nil
}

// PollRevocations fetches the whole revocation list now (the background
// sync keeps it current; see Config.RevocationWait). The list never goes backwards: an answer without
// a valid list (no data, no version, sessions not a list, an entry without
// an ID, a non-empty list at version 0) and an answer with a lower version
// than the one held are errors and keep the list held; an answer with the
// same version changes nothing. Any answer with a valid list of the same
// or a higher version counts as a successful sync (see
// LastRevocationSync).
func (v *Verifier) PollRevocations(ctx context.Context) error {
	body, err := v.get(ctx, "/revocations")
	if err != nil {
		return fmt.Errorf("verifier: fetching revocations: %w", err)
	}
	version, epoch, _, m, err := decodeRevocations(body)
	if err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, err := v.rev.apply(version, epoch, true, m, v.cfg.Now()); err != nil {
		return err
	}
	v.lastSync = v.cfg.Now()
	return nil
}

// LastRevocationSync returns when (by Config.Now) the revocation list was
// last synced successfully. Past Config.MaxStaleness after it, Verify
// fails with ErrStale unless Config.FailOpen.
func (v *Verifier) LastRevocationSync() time.Time {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.lastSync
}

// SessionClosed reports whether session id is in the last revocation list.
func (v *Verifier) SessionClosed(id string) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.rev.Closed(id)
}

// Answer size limits: 1 MiB for everything but the revocation list, whose
// whole form holds about 100 bytes per closed session that may still have
// unexpired credentials (20,000 sessions are about 2 MB): 64 MiB for it.
const (
	maxBody            = 1 << 20
	maxRevocationsBody = 64 << 20
)

func (v *Verifier) get(ctx context.Context, path string) ([]byte, error) {
	limit := int64(maxBody)
	if strings.HasPrefix(path, "/revocations") {
		limit = maxRevocationsBody
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, requestTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", path, resp.Status)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("%s answered more than %d bytes", path, limit)
	}
	return body, nil
}

// post sends an authenticated write to the engine and decodes its data.
func (v *Verifier) post(ctx context.Context, path string, data map[string]string) (map[string]interface{}, error) {
	if v.cfg.VaultToken == "" {
		return nil, errors.New("verifier: Config.VaultToken is required for " + strings.TrimPrefix(path, "/"))
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, requestTimeout)
		defer cancel()
	}
	b, _ := json.Marshal(data)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, v.base+path, strings.NewReader(string(b)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Vault-Token", v.cfg.VaultToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, err
	}
	var out struct {
		Data   map[string]interface{} `json:"data"`
		Errors []string               `json:"errors"`
	}
	_ = json.Unmarshal(body, &out)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("verifier: %s answered %s: %s", strings.TrimPrefix(path, "/"), resp.Status, strings.Join(out.Errors, "; "))
	}
	return out.Data, nil
}

// Introspect asks Vault whether a credential is active right now: for
// calls that cannot accept the revocation list's polling delay. An active
// answer for a credential of another audience or issuer than Config's is
// not active: Introspect then returns false and an error that matches
// token.ErrAudience or token.ErrIssuer.
func (v *Verifier) Introspect(ctx context.Context, raw string) (bool, error) {
	data, err := v.post(ctx, "/introspect", map[string]string{"token": raw})
	if err != nil {
		return false, err
	}
	if active, _ := data["active"].(bool); !active {
		return false, nil
	}
	if aud, _ := data["aud"].(string); aud != v.cfg.Audience {
		return false, fmt.Errorf("verifier: introspection: %w", token.ErrAudience)
	}
	if iss, _ := data["iss"].(string); iss != v.cfg.Issuer {
		return false, fmt.Errorf("verifier: introspection: %w", token.ErrIssuer)
	}
	return true, nil
}

// Report tells the engine what a credential was used for, and when the
// use was seen (observedAt; the zero time means now, by Config.Now). The
// engine judges the use at that time: a use outside the credential's
// scope, or of a credential that was no longer valid then (expired, or of
// a closed session), is a violation of its session.
func (v *Verifier) Report(ctx context.Context, raw, action, resource, outcome string, observedAt time.Time) error {
	if observedAt.IsZero() {
		observedAt = v.cfg.Now()
	}
	_, err := v.post(ctx, "/report", map[string]string{
		"token": raw, "action": action, "resource": resource, "outcome": outcome,
		"observed_at": observedAt.UTC().Format(time.RFC3339Nano),
		// The engine judges the use with the clock skew this verifier
		// tolerated, so a use accepted within it is not called misuse.
		"leeway": strconv.FormatInt(int64(v.cfg.Leeway/time.Second), 10),
	})
	return err
}

type report struct {
	token, action, resource, outcome string
	observedAt                       time.Time
}

// ReportLater queues a report of a use seen at observedAt (the zero time
// means now) for the background sender, and returns at once: the request
// is never slowed. A full queue drops the report. The middleware (with
// Config.Report) and package mcpauth report with it.
func (v *Verifier) ReportLater(raw, action, resource, outcome string, observedAt time.Time) {
	if observedAt.IsZero() {
		observedAt = v.cfg.Now()
	}
	select {
	case v.reports <- report{raw, action, resource, outcome, observedAt}:
	default:
	}
}
