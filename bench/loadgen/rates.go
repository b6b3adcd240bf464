package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"
)

// rateScenario describes one throughput scenario: prepare returns, for each
// worker, the request it sends in a loop.
type rateScenario struct {
	label   string
	request string
	prepare func(ctx context.Context, h *harness, workers int) ([]func(context.Context) error, error)
}

var rateScenarios = map[string]rateScenario{
	"creds": {
		label:   "step credential",
		request: "`PUT agent/creds/<session>`, one session per worker",
		prepare: func(ctx context.Context, h *harness, workers int) ([]func(context.Context) error, error) {
			ops := make([]func(context.Context) error, workers)
			for w := range ops {
				sid, err := h.startSession(ctx, fmt.Sprintf("throughput worker %d", w))
				if err != nil {
					return nil, err
				}
				ops[w] = func(ctx context.Context) error {
					_, err := h.issue(ctx, sid)
					return err
				}
			}
			return ops, nil
		},
	},
	"creds-nd": {
		label:   "step credential (no default policy)",
		request: "`PUT agent/creds/<session>` as in the first row, with an agent token created with no_default_policy=true",
		prepare: func(ctx context.Context, h *harness, workers int) ([]func(context.Context) error, error) {
			sec, err := h.root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{
				Policies: []string{benchPolicy}, TTL: "4h", NoDefaultPolicy: true, DisplayName: "bench-agent-nd",
			})
			if err != nil {
				return nil, err
			}
			c, err := newClient(h.cfg, sec.Auth.ClientToken)
			if err != nil {
				return nil, err
			}
			ops := make([]func(context.Context) error, workers)
			for w := range ops {
				sec, err := c.Logical().WriteWithContext(ctx, h.cfg.mount+"/session", map[string]interface{}{
					"role": benchRole, "purpose": fmt.Sprintf("throughput worker %d (no default policy)", w), "scopes": "read:bench/*", "audiences": benchAudience,
				})
				if err != nil {
					return nil, err
				}
				sid, _ := sec.Data["session_id"].(string)
				ops[w] = func(ctx context.Context) error {
					_, err := c.Logical().WriteWithContext(ctx, h.cfg.mount+"/creds/"+sid, map[string]interface{}{
						"scopes": benchScope, "audience": benchAudience, "description": "benchmark step",
					})
					return err
				}
			}
			return ops, nil
		},
	},
	"token": {
		label:   "auth/token/create",
		request: "`PUT auth/token/create` policies=[bench] ttl=60s no_default_policy=true, as root",
		prepare: func(ctx context.Context, h *harness, workers int) ([]func(context.Context) error, error) {
			op := func(ctx context.Context) error {
				_, err := h.root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{
					Policies: []string{benchPolicy}, TTL: "60s", NoDefaultPolicy: true,
				})
				return err
			}
			return same(op, workers), nil
		},
	},
	"token-agent": {
		label:   "auth/token/create (ordinary token)",
		request: "`PUT auth/token/create` policies=[bench] ttl=60s no_default_policy=true, by a non-root token that holds the default policy, like the agent",
		prepare: func(ctx context.Context, h *harness, workers int) ([]func(context.Context) error, error) {
			// The parent: created by root like the agent's token, with
			// the default policy, and allowed to create tokens.
			sec, err := h.root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{
				Policies: []string{benchPolicy, parentPolicy}, TTL: "4h", DisplayName: "bench-token-parent",
			})
			if err != nil {
				return nil, err
			}
			c, err := newClient(h.cfg, sec.Auth.ClientToken)
			if err != nil {
				return nil, err
			}
			op := func(ctx context.Context) error {
				// Children of the parent (not orphans), as in the root row.
				_, err := c.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{
					Policies: []string{benchPolicy}, TTL: "60s", NoDefaultPolicy: true,
				})
				return err
			}
			return same(op, workers), nil
		},
	},
	"session-read": {
		label:   "session read (plugin, authenticated)",
		request: "`GET agent/session/<session>` as the agent: the cheapest authenticated request through the plugin (no storage write), one session per worker",
		prepare: func(ctx context.Context, h *harness, workers int) ([]func(context.Context) error, error) {
			ops := make([]func(context.Context) error, workers)
			for w := range ops {
				sid, err := h.startSession(ctx, fmt.Sprintf("session-read worker %d", w))
				if err != nil {
					return nil, err
				}
				path := h.cfg.mount + "/session/" + sid
				ops[w] = func(ctx context.Context) error {
					sec, err := h.agent.Logical().ReadWithContext(ctx, path)
					if err == nil && (sec == nil || sec.Data["session_id"] != sid) {
						err = errors.New("the session was not in the answer")
					}
					return err
				}
			}
			return ops, nil
		},
	},
	"jwks": {
		label:   "jwks read (plugin)",
		request: "`GET agent/jwks`, unauthenticated: the cheapest request through the plugin",
		prepare: func(ctx context.Context, h *harness, workers int) ([]func(context.Context) error, error) {
			op := func(ctx context.Context) error {
				_, err := h.anon.Logical().ReadWithContext(ctx, h.cfg.mount+"/jwks")
				return err
			}
			return same(op, workers), nil
		},
	},
	"kv": {
		label:   "kv-v2 write",
		request: "`PUT bench-kv/data/w<worker>` (kv-v2), one key per worker",
		prepare: func(ctx context.Context, h *harness, workers int) ([]func(context.Context) error, error) {
			ops := make([]func(context.Context) error, workers)
			for w := range ops {
				path := fmt.Sprintf("%s/data/w%d", h.cfg.kvMount, w)
				ops[w] = func(ctx context.Context) error {
					_, err := h.agent.Logical().WriteWithContext(ctx, path, map[string]interface{}{
						"data": map[string]interface{}{"value": "benchmark value"},
					})
					return err
				}
			}
			return ops, nil
		},
	},
	"lookup": {
		label:   "token lookup-self",
		request: "`GET auth/token/lookup-self` with the agent's token",
		prepare: func(ctx context.Context, h *harness, workers int) ([]func(context.Context) error, error) {
			op := func(ctx context.Context) error {
				_, err := h.agent.Auth().Token().LookupSelfWithContext(ctx)
				return err
			}
			return same(op, workers), nil
		},
	},
}

func same(op func(context.Context) error, n int) []func(context.Context) error {
	ops := make([]func(context.Context) error, n)
	for i := range ops {
		ops[i] = op
	}
	return ops
}

// createsTokens names the scenarios that create 60s tokens, which Vault
// revokes when they expire: work that would land in a later window.
var createsTokens = map[string]bool{"token": true, "token-agent": true}

func (h *harness) scenarioRates(ctx context.Context) error {
	for _, name := range h.cfg.rates {
		if !createsTokens[name] {
			// Let the tokens of an earlier token scenario expire first.
			h.waitQuiet(ctx)
		}
		sc := rateScenarios[name]
		ops, err := sc.prepare(ctx, h, h.cfg.concurrency)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		r, err := h.measureProfiled(ctx, name, sc, ops)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		h.res.Rates = append(h.res.Rates, r)
		log.Printf("%-18s %8.0f/s  p50 %.2f ms  p99 %.2f ms  errors %d  cpu/req: vault %.0f µs, plugin %.0f µs, loadgen %.0f µs",
			r.Label, r.PerSec, r.P50ms, r.P99ms, r.Errors, r.VaultCPUus, r.PluginCPUus, r.LoadgenCPUus)
		if createsTokens[name] {
			h.tokenScenarioEnd = time.Now()
		}
	}
	return nil
}

// measureProfiled is measureRate, with a CPU profile of Vault taken over
// the window when name is the scenario -vault-profile profiles.
func (h *harness) measureProfiled(ctx context.Context, name string, sc rateScenario, ops []func(context.Context) error) (RateResult, error) {
	var prof *bytes.Buffer
	var profDone chan struct{}
	if name == h.cfg.profileScenario && h.cfg.vaultProfile != "" {
		prof, profDone = h.startVaultProfile(ctx)
	}
	r, err := h.measureRate(ctx, name, sc, ops)
	if profDone != nil {
		<-profDone
		if prof.Len() > 0 {
			if err := os.WriteFile(h.cfg.vaultProfile, prof.Bytes(), 0o644); err != nil {
				log.Printf("writing the Vault profile: %v", err)
			}
		}
	}
	return r, err
}

// measureRate runs ops (one per worker) in a loop for warmup+duration and
// counts the requests that start inside the measured window and finish by
// its end.
func (h *harness) measureRate(ctx context.Context, name string, sc rateScenario, ops []func(context.Context) error) (RateResult, error) {
	r := RateResult{Name: name, Label: sc.label, Request: sc.request, VaultCPUus: -1, PluginCPUus: -1, LoadgenCPUus: -1}
	start := time.Now()
	winStart := start.Add(h.cfg.warmup)
	winEnd := winStart.Add(h.cfg.duration)
	runCtx, cancel := context.WithDeadline(ctx, winEnd.Add(requestTimeout))
	defer cancel()

	type workerOut struct {
		lat      []float64
		errs     int64
		firstErr error
	}
	outs := make([]workerOut, len(ops))
	var wg sync.WaitGroup
	for w, op := range ops {
		wg.Add(1)
		go func(w int, op func(context.Context) error) {
			defer wg.Done()
			o := &outs[w]
			for runCtx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(winEnd) {
					return
				}
				err := op(runCtx)
				t1 := time.Now()
				if !t0.Before(winStart) && !t1.After(winEnd) {
					if err != nil {
						o.errs++
						if o.firstErr == nil {
							o.firstErr = err
						}
					} else {
						o.lat = append(o.lat, float64(t1.Sub(t0))/float64(time.Millisecond))
					}
				}
				if err != nil && errors.Is(err, context.Canceled) {
					return
				}
			}
		}(w, op)
	}

	// CPU of Vault, the plugin and this process across the window.
	pid := h.pluginPID()
	signal := h.cfg.pluginSignals && name == h.cfg.profileScenario && pid > 0
	sleepUntil(ctx, winStart)
	if signal {
		_ = syscall.Kill(pid, syscall.SIGUSR1) // bench/pluginprof: start profiling
	}
	v0, p0, l0 := cpuSeconds(h.cfg.vaultPID), cpuSeconds(pid), selfCPUSeconds()
	sleepUntil(ctx, winEnd)
	v1, p1, l1 := cpuSeconds(h.cfg.vaultPID), cpuSeconds(pid), selfCPUSeconds()
	if signal {
		_ = syscall.Kill(pid, syscall.SIGUSR2) // bench/pluginprof: write the profile
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return r, err
	}

	var lat []float64
	for _, o := range outs {
		lat = append(lat, o.lat...)
		r.Errors += o.errs
		if r.FirstErr == "" && o.firstErr != nil {
			r.FirstErr = firstLine(o.firstErr)
		}
	}
	sort.Float64s(lat)
	r.Ops = int64(len(lat))
	r.Seconds = h.cfg.duration.Seconds()
	r.PerSec = float64(r.Ops) / r.Seconds
	r.P50ms = percentile(lat, 0.50)
	r.P99ms = percentile(lat, 0.99)
	perReq := func(a, b float64) float64 {
		if a < 0 || b < 0 || r.Ops == 0 {
			return -1
		}
		return (b - a) / float64(r.Ops) * 1e6
	}
	r.VaultCPUus = perReq(v0, v1)
	r.PluginCPUus = perReq(p0, p1)
	r.LoadgenCPUus = perReq(l0, l1)
	busy := 0.0
	for _, d := range [][2]float64{{v0, v1}, {p0, p1}, {l0, l1}} {
		if d[0] >= 0 && d[1] >= 0 {
			busy += d[1] - d[0]
		}
	}
	r.Busy = busy / r.Seconds / float64(h.res.Env.NProc)
	if r.Ops == 0 {
		return r, fmt.Errorf("no request succeeded (%d errors, first: %s)", r.Errors, r.FirstErr)
	}
	if r.Errors > 0 {
		log.Printf("%s: %d errors, first: %s", name, r.Errors, r.FirstErr)
	}
	return r, nil
}

func sleepUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// startVaultProfile asks Vault for a CPU profile (sys/pprof/profile) over
// the coming creds window, in the background.
func (h *harness) startVaultProfile(ctx context.Context) (*bytes.Buffer, chan struct{}) {
	buf := &bytes.Buffer{}
	done := make(chan struct{})
	secs := int(h.cfg.duration.Seconds())
	if secs < 1 {
		secs = 1
	}
	go func() {
		defer close(done)
		// Start inside the window.
		sleepUntil(ctx, time.Now().Add(h.cfg.warmup))
		req := h.root.NewRequest("GET", "/v1/sys/pprof/profile")
		req.Params.Set("seconds", fmt.Sprint(secs))
		pctx, cancel := context.WithTimeout(ctx, time.Duration(secs+60)*time.Second)
		defer cancel()
		resp, err := h.root.RawRequestWithContext(pctx, req)
		if err != nil {
			log.Printf("Vault CPU profile: %v", firstLine(err))
			return
		}
		defer resp.Body.Close()
		if _, err := buf.ReadFrom(resp.Body); err != nil {
			log.Printf("Vault CPU profile: %v", err)
		}
	}()
	return buf, done
}
