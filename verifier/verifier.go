// Package verifier is the Go SDK for resource servers: the APIs that
// agents call with step credentials of the agent secrets engine.
//
// A Verifier checks a credential offline, with the same code as the engine
// (packages token and scope): the signature against the engine's JWKS
// (cached, refetched when an unknown key ID shows up, never more often than
// a floor), the issuer, the audience, the validity window with a small
// clock skew, the type and the algorithm; then that the request's (action,
// resource) lies inside the credential's scope. It learns of dead sessions
// by polling the engine's revocation list, and can ask Vault directly
// (introspection) for high-value calls, and report what it saw.
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
	"strings"
	"sync"
	"time"

	"github.com/continuoustrust/vault-plugin-secrets-agent/scope"
	"github.com/continuoustrust/vault-plugin-secrets-agent/token"
)

// Errors a verification can fail with, besides the token package's
// (token.ErrExpired, token.ErrSignature, ...), all matched with errors.Is.
var (
	// ErrRevoked: the credential's session is no longer active.
	ErrRevoked = errors.New("verifier: the credential's session is revoked")
	// ErrScope: the credential does not allow the request.
	ErrScope = errors.New("verifier: the credential's scope does not allow this request")
	// ErrNoCredential: the request carries no credential.
	ErrNoCredential = errors.New("verifier: no credential")
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
	// Leeway is the clock skew tolerated; default 30s.
	Leeway time.Duration
	// JWKSRefreshFloor is the least time between two JWKS fetches caused
	// by unknown key IDs; default 10s.
	JWKSRefreshFloor time.Duration
	// RevocationPoll is how often the revocation list is polled; default
	// 5s. A credential of a session that died is accepted for at most this
	// long (use Introspect for calls that cannot wait).
	RevocationPoll time.Duration
	// VaultToken is used for Introspect and Report (a token whose policy
	// allows update on <mount>/introspect and <mount>/report). JWKS and
	// revocations need none.
	VaultToken string
	// Report sends every request the middleware served to the engine's
	// report path, in the background.
	Report bool
	// HTTPClient defaults to a client with a 10s timeout.
	HTTPClient *http.Client
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Verifier verifies step credentials. It is safe for concurrent use.
type Verifier struct {
	cfg  Config
	base string

	mu         sync.RWMutex
	keys       map[string]token.PublicKey
	lastFetch  time.Time
	revoked    map[string]int64 // session ID -> exp
	revVersion uint64

	fetchMu  sync.Mutex
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	reports  chan report
}

// New fetches the engine's keys and revocation list and starts polling
// the list in the background. Close stops it.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if cfg.VaultAddr == "" {
		return nil, errors.New("verifier: Config.VaultAddr is required")
	}
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("verifier: Config.Issuer and Config.Audience are required")
	}
	if cfg.Mount == "" {
		cfg.Mount = "agent"
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = token.DefaultLeeway
	}
	if cfg.JWKSRefreshFloor == 0 {
		cfg.JWKSRefreshFloor = 10 * time.Second
	}
	if cfg.RevocationPoll == 0 {
		cfg.RevocationPoll = 5 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &Verifier{
		cfg:     cfg,
		base:    strings.TrimRight(cfg.VaultAddr, "/") + "/v1/" + strings.Trim(cfg.Mount, "/"),
		revoked: map[string]int64{},
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		reports: make(chan report, 256),
	}
	if err := v.fetchKeys(ctx); err != nil {
		return nil, err
	}
	if err := v.PollRevocations(ctx); err != nil {
		return nil, err
	}
	go v.run()
	return v, nil
}

// Close stops the background polling and reporting.
func (v *Verifier) Close() {
	v.stopOnce.Do(func() { close(v.stop) })
	<-v.done
}

func (v *Verifier) run() {
	defer close(v.done)
	t := time.NewTicker(v.cfg.RevocationPoll)
	defer t.Stop()
	for {
		select {
		case <-v.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), v.cfg.RevocationPoll)
			_ = v.PollRevocations(ctx) // keep the last list on failure
			cancel()
		case r := <-v.reports:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = v.Report(ctx, r.token, r.action, r.resource, r.outcome)
			cancel()
		}
	}
}

// Verify checks a credential offline: signature, issuer, audience, times,
// type, algorithm, and that its session is not in the revocation list.
func (v *Verifier) Verify(ctx context.Context, raw string) (*token.Claims, error) {
	opts := token.VerifyOptions{
		Issuer: v.cfg.Issuer, Audience: v.cfg.Audience, Now: v.cfg.Now(),
		Leeway: v.cfg.Leeway, Algorithms: v.cfg.Algorithms,
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
	_, dead := v.revoked[claims.Txn]
	v.mu.RUnlock()
	if dead {
		return nil, ErrRevoked
	}
	return claims, nil
}

// Authorize verifies a credential and checks that it allows action on
// resource, with the engine's own scope matcher.
func (v *Verifier) Authorize(ctx context.Context, raw, action, resource string) (*token.Claims, error) {
	claims, err := v.Verify(ctx, raw)
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

func (v *Verifier) refetchAllowed() bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.cfg.Now().Sub(v.lastFetch) >= v.cfg.JWKSRefreshFloor
}

// refetchKeys fetches the JWKS again for an unknown key ID, at most once
// per JWKSRefreshFloor however many callers ask at once and whether or not
// the fetch succeeds; callers arriving during a fetch wait for it. A failed
// fetch keeps the known keys.
func (v *Verifier) refetchKeys(ctx context.Context) {
	v.fetchMu.Lock()
	defer v.fetchMu.Unlock()
	if !v.refetchAllowed() {
		return
	}
	v.mu.Lock()
	v.lastFetch = v.cfg.Now()
	v.mu.Unlock()
	_ = v.fetchKeysLocked(ctx)
}

// fetchKeys fetches the JWKS.
func (v *Verifier) fetchKeys(ctx context.Context) error {
	v.fetchMu.Lock()
	defer v.fetchMu.Unlock()
	return v.fetchKeysLocked(ctx)
}

// fetchKeysLocked fetches the JWKS; the caller holds fetchMu.
func (v *Verifier) fetchKeysLocked(ctx context.Context) error {
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

// PollRevocations fetches the revocation list now; it is also polled every
// Config.RevocationPoll. An unchanged version changes nothing.
func (v *Verifier) PollRevocations(ctx context.Context) error {
	body, err := v.get(ctx, "/revocations")
	if err != nil {
		return fmt.Errorf("verifier: fetching revocations: %w", err)
	}
	var out struct {
		Data struct {
			Version  uint64 `json:"version"`
			Sessions []struct {
				ID  string `json:"id"`
				Exp int64  `json:"exp"`
			} `json:"sessions"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return fmt.Errorf("verifier: decoding revocations: %w", err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if out.Data.Version == v.revVersion && len(v.revoked) > 0 {
		return nil
	}
	m := make(map[string]int64, len(out.Data.Sessions))
	for _, s := range out.Data.Sessions {
		m[s.ID] = s.Exp
	}
	v.revoked, v.revVersion = m, out.Data.Version
	return nil
}

// Revoked reports whether session id is in the last revocation list.
func (v *Verifier) Revoked(id string) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	_, ok := v.revoked[id]
	return ok
}

const maxBody = 1 << 20

func (v *Verifier) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", path, resp.Status)
	}
	return body, nil
}

// post sends an authenticated write to the engine and decodes its data.
func (v *Verifier) post(ctx context.Context, path string, data map[string]string) (map[string]interface{}, error) {
	if v.cfg.VaultToken == "" {
		return nil, errors.New("verifier: Config.VaultToken is required for " + strings.TrimPrefix(path, "/"))
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
// calls that cannot accept the revocation list's polling delay.
func (v *Verifier) Introspect(ctx context.Context, raw string) (bool, error) {
	data, err := v.post(ctx, "/introspect", map[string]string{"token": raw})
	if err != nil {
		return false, err
	}
	active, _ := data["active"].(bool)
	return active, nil
}

// Report tells the engine what a credential was used for. A use outside
// its scope, or of a dead credential, is a violation of its session.
func (v *Verifier) Report(ctx context.Context, raw, action, resource, outcome string) error {
	_, err := v.post(ctx, "/report", map[string]string{"token": raw, "action": action, "resource": resource, "outcome": outcome})
	return err
}

type report struct{ token, action, resource, outcome string }

// reportLater queues a report for the background sender; a full queue
// drops it rather than slowing the request.
func (v *Verifier) reportLater(raw, action, resource, outcome string) {
	select {
	case v.reports <- report{raw, action, resource, outcome}:
	default:
	}
}
