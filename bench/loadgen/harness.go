package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
)

const (
	benchRole     = "bench"
	benchPolicy   = "bench"
	parentPolicy  = "bench-parent"
	benchScope    = "read:bench/data"
	benchAudience = "bench-api"
	// requestTimeout bounds every single request.
	requestTimeout = 60 * time.Second
)

// harness holds the clients and what the setup created.
type harness struct {
	cfg          *config
	res          *Results
	root         *api.Client // the root token
	agent        *api.Client // a token with the bench policy: the agent
	anon         *api.Client // no token: unauthenticated paths
	agentToken   string
	vaultVersion string
	issuer       string
	mountUUID    string
	rawOK        bool
	// tokenScenarioEnd is when auth/token/create last ran; its 60s tokens
	// expire (and are revoked by Vault) after it.
	tokenScenarioEnd time.Time
}

func newClient(cfg *config, token string) (*api.Client, error) {
	c := api.DefaultConfig()
	if c.Error != nil {
		return nil, c.Error
	}
	c.Address = cfg.addr
	c.Timeout = requestTimeout
	c.MaxRetries = 0
	// Enough idle connections for every worker, so no scenario pays for
	// new TCP connections (the default keeps GOMAXPROCS+1).
	if t, ok := c.HttpClient.Transport.(*http.Transport); ok {
		t.MaxIdleConns = 4 * cfg.concurrency
		t.MaxIdleConnsPerHost = 4 * cfg.concurrency
	}
	cl, err := api.NewClient(c)
	if err != nil {
		return nil, err
	}
	cl.SetMaxRetries(0)
	if token == "" {
		cl.ClearToken()
	} else {
		cl.SetToken(token)
	}
	return cl, nil
}

func newHarness(ctx context.Context, cfg *config) (*harness, error) {
	h := &harness{cfg: cfg}
	var err error
	if h.root, err = newClient(cfg, cfg.token); err != nil {
		return nil, err
	}
	if h.anon, err = newClient(cfg, ""); err != nil {
		return nil, err
	}
	st, err := h.root.Sys().SealStatusWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("reaching Vault at %s: %w", cfg.addr, err)
	}
	if st.Sealed {
		return nil, errors.New("vault is sealed")
	}
	h.vaultVersion = st.Version
	if err := h.setup(ctx); err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	return h, nil
}

// setup writes the role, the policies, the agent token and the kv mount the
// scenarios need. It is idempotent.
func (h *harness) setup(ctx context.Context) error {
	m := h.cfg.mount
	mounts, err := h.root.Sys().ListMountsWithContext(ctx)
	if err != nil {
		return err
	}
	am, ok := mounts[m+"/"]
	if !ok {
		return fmt.Errorf("no engine mounted at %s/", m)
	}
	h.mountUUID = am.UUID
	if _, ok := mounts[h.cfg.kvMount+"/"]; !ok && h.wantRate("kv") {
		if err := h.root.Sys().MountWithContext(ctx, h.cfg.kvMount, &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
			return fmt.Errorf("enabling kv-v2 at %s: %w", h.cfg.kvMount, err)
		}
	}

	// The role: a large budget and rate, and deny (not revoke) so that a
	// stray rate refusal never revokes a session under measurement.
	_, err = h.root.Logical().WriteWithContext(ctx, m+"/roles/"+benchRole, map[string]interface{}{
		"scopes":          "read:bench/*",
		"audiences":       benchAudience,
		"max_steps":       1000000,
		"max_rate":        100000,
		"on_violation":    "deny",
		"violation_limit": 1000,
		"session_ttl":     "2h",
		"session_max_ttl": "2h",
		"step_ttl":        "60s",
	})
	if err != nil {
		return fmt.Errorf("writing role: %w", err)
	}
	cfgResp, err := h.root.Logical().ReadWithContext(ctx, m+"/config")
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	if cfgResp != nil {
		h.issuer, _ = cfgResp.Data["issuer"].(string)
	}
	if h.issuer == "" {
		h.issuer = "vault:" + m
	}

	policy := fmt.Sprintf(`
path "%[1]s/session"        { capabilities = ["update"] }
path "%[1]s/creds/*"        { capabilities = ["read", "update"] }
path "%[1]s/session/+"      { capabilities = ["read"] }
path "%[1]s/sessions/+/end" { capabilities = ["update"] }
path "%[1]s/introspect"     { capabilities = ["update"] }
path "%[2]s/data/*"         { capabilities = ["create", "update"] }
`, m, h.cfg.kvMount)
	if err := h.root.Sys().PutPolicyWithContext(ctx, benchPolicy, policy); err != nil {
		return err
	}
	if err := h.root.Sys().PutPolicyWithContext(ctx, parentPolicy, `path "auth/token/create" { capabilities = ["update"] }`); err != nil {
		return err
	}
	sec, err := h.root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{
		Policies: []string{benchPolicy}, TTL: "4h", DisplayName: "bench-agent",
	})
	if err != nil {
		return fmt.Errorf("creating the agent token: %w", err)
	}
	h.agentToken = sec.Auth.ClientToken
	if h.agent, err = newClient(h.cfg, h.agentToken); err != nil {
		return err
	}

	// sys/raw (raw_storage_endpoint = true) lets the storage scenario
	// count the mount's exact bytes.
	if _, err := h.root.Logical().ListWithContext(ctx, "sys/raw/logical/"+h.mountUUID+"/"); err == nil {
		h.rawOK = true
	} else {
		log.Printf("sys/raw is not available (%v); storage is measured by snapshot size only", firstLine(err))
	}

	if h.wantRate("kv") {
		// A new kv-v2 mount answers 400 while it upgrades: wait (bounded).
		deadline := time.Now().Add(60 * time.Second)
		for {
			_, err := h.agent.Logical().WriteWithContext(ctx, h.cfg.kvMount+"/data/probe", map[string]interface{}{"data": map[string]interface{}{"v": "x"}})
			if err == nil {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("kv-v2 at %s is not writable: %w", h.cfg.kvMount, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

func (h *harness) wantRate(name string) bool {
	if !h.cfg.scenarios["rates"] {
		return false
	}
	for _, r := range h.cfg.rates {
		if r == name {
			return true
		}
	}
	return false
}

// startSession starts a session as the agent and returns its ID.
func (h *harness) startSession(ctx context.Context, purpose string) (string, error) {
	sec, err := h.agent.Logical().WriteWithContext(ctx, h.cfg.mount+"/session", map[string]interface{}{
		"role": benchRole, "purpose": purpose, "scopes": "read:bench/*", "audiences": benchAudience,
	})
	if err != nil {
		return "", fmt.Errorf("starting a session: %w", err)
	}
	id, _ := sec.Data["session_id"].(string)
	if id == "" {
		return "", errors.New("starting a session: no session_id in the answer")
	}
	return id, nil
}

// issue takes one step credential of session sid and returns its token.
func (h *harness) issue(ctx context.Context, sid string) (string, error) {
	sec, err := h.agent.Logical().WriteWithContext(ctx, h.cfg.mount+"/creds/"+sid, map[string]interface{}{
		"scopes": benchScope, "audience": benchAudience, "description": "benchmark step",
	})
	if err != nil {
		return "", err
	}
	if sec == nil {
		return "", errors.New("empty answer")
	}
	tok, _ := sec.Data["token"].(string)
	if tok == "" {
		return "", errors.New("no token in the answer")
	}
	return tok, nil
}

// issueEach issues n credentials into each of the sessions sids, with the
// harness's concurrency spread evenly over them (a session's credentials
// are issued one at a time by the engine, so several sessions fill in
// parallel). It returns the last token issued into each session, fails
// after too many errors, and never runs longer than the context allows.
func (h *harness) issueEach(ctx context.Context, sids []string, n int) ([]string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		next     = make([]int, len(sids))
		failures int
		lastTok  = make([]string, len(sids))
		firstErr error
	)
	maxFailures := 100 + len(sids)*n/100
	take := func(s int) bool {
		mu.Lock()
		defer mu.Unlock()
		if next[s] >= n {
			return false
		}
		next[s]++
		return true
	}
	workers := h.cfg.concurrency
	if workers < len(sids) {
		workers = len(sids)
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			for take(s) {
				for {
					if ctx.Err() != nil {
						return
					}
					tok, err := h.issue(ctx, sids[s])
					if err == nil {
						mu.Lock()
						lastTok[s] = tok
						mu.Unlock()
						break
					}
					mu.Lock()
					failures++
					if firstErr == nil {
						firstErr = err
					}
					tooMany := failures > maxFailures
					mu.Unlock()
					if tooMany {
						cancel()
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
		}(w % len(sids))
	}
	wg.Wait()
	if failures > maxFailures {
		return nil, fmt.Errorf("issuing %d credentials into each of %d sessions: %d failures, the first: %v", n, len(sids), failures, firstErr)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if failures > 0 {
		log.Printf("issuing %d credentials into each of %d sessions: %d retried failures (first: %v)", n, len(sids), failures, firstLine(firstErr))
	}
	return lastTok, nil
}

func firstLine(err error) string {
	if err == nil {
		return ""
	}
	s := strings.TrimSpace(err.Error())
	// vault/api errors span lines; keep the code and the message.
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// pluginPID finds the plugin's process (there is one: it is multiplexed).
func (h *harness) pluginPID() int {
	pids := findPluginPIDs(h.cfg.pluginCmd, "vault-plugin-secrets-agent")
	if len(pids) == 0 {
		return 0
	}
	return pids[0]
}

// waitQuiet waits until the tokens of auth/token/create have expired and
// Vault has revoked them, so they do not disturb what is timed next:
// until 65s after that scenario, then until Vault's CPU use stays under 5%
// of a core for a second (at most 3 minutes in all).
func (h *harness) waitQuiet(ctx context.Context) {
	if h.tokenScenarioEnd.IsZero() {
		return
	}
	until := h.tokenScenarioEnd.Add(65 * time.Second)
	limit := time.Now().Add(3 * time.Minute)
	if d := time.Until(until); d > 0 {
		log.Printf("waiting %s for the 60s tokens of auth/token/create to expire", d.Round(time.Second))
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
	}
	if h.cfg.vaultPID <= 0 {
		return
	}
	for time.Now().Before(limit) && ctx.Err() == nil {
		c0 := cpuSeconds(h.cfg.vaultPID)
		time.Sleep(time.Second)
		c1 := cpuSeconds(h.cfg.vaultPID)
		if c0 < 0 || c1 < 0 || c1-c0 < 0.05 {
			break
		}
	}
	h.tokenScenarioEnd = time.Time{}
}
