package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"
)

// The "scale in sessions" scenario (issue 20): how the engine's costs grow
// with the number of sessions. On a mount of its own (a fresh index), it
// starts sessions up to each count of -scale-counts and measures there the
// plugin's memory, a session start, a page of the session list (first and
// middle, unfiltered and by role) and a step credential; it sets session
// starts per second beside auth/token/create; then it ends every session
// and times the tidy that deletes them, with the p99 of step credentials
// while it runs beside the p99 without it.

// ScaleResult is the scenario's outcome.
type ScaleResult struct {
	Mount  string       `json:"mount"`
	Points []ScalePoint `json:"points"`
	// Starts per second, and auth/token/create by an ordinary token, in
	// the same run and window length.
	StartRate RateResult  `json:"start_rate"`
	TokenRate RateResult  `json:"token_rate"`
	CacheSize int         `json:"cache_size"`
	Tidy      *TidyResult `json:"tidy,omitempty"`
}

// ScalePoint is what was measured with Sessions live sessions.
type ScalePoint struct {
	Sessions     int     `json:"sessions"`
	RSSKB        int64   `json:"rss_kb"`
	StartP50ms   float64 `json:"start_p50_ms"`
	StartP99ms   float64 `json:"start_p99_ms"`
	PageFirstMs  float64 `json:"page_first_ms"`
	PageMiddleMs float64 `json:"page_middle_ms"`
	PageRoleMs   float64 `json:"page_role_ms"`
	CredsP50ms   float64 `json:"creds_p50_ms"`
	CredsP99ms   float64 `json:"creds_p99_ms"`
}

// TidyResult is the tidy of the finished sessions.
type TidyResult struct {
	Sessions         int     `json:"sessions"`
	Live             int     `json:"live"`
	EndSeconds       float64 `json:"end_seconds"`
	TidySeconds      float64 `json:"tidy_seconds"`
	CredsP99Before   float64 `json:"creds_p99_before_ms"`
	CredsP99During   float64 `json:"creds_p99_during_ms"`
	CredsP50Before   float64 `json:"creds_p50_before_ms"`
	CredsP50During   float64 `json:"creds_p50_during_ms"`
	SnapshotBefore   int64   `json:"snapshot_before"`
	SnapshotFull     int64   `json:"snapshot_full"`
	SnapshotAfter    int64   `json:"snapshot_after"`
	SecondsUntilBack float64 `json:"seconds_until_back"`
}

const scaleRole = "scale"

func (h *harness) scenarioScale(ctx context.Context) error {
	h.waitQuiet(ctx)
	mount := h.cfg.mount + "-scale"
	mounts, err := h.root.Sys().ListMountsWithContext(ctx)
	if err != nil {
		return err
	}
	am := mounts[h.cfg.mount+"/"]
	if am == nil {
		return fmt.Errorf("no engine mounted at %s/", h.cfg.mount)
	}
	if _, ok := mounts[mount+"/"]; ok {
		if err := h.root.Sys().UnmountWithContext(ctx, mount); err != nil {
			return err
		}
	}
	if err := h.root.Sys().MountWithContext(ctx, mount, &api.MountInput{Type: am.Type, Config: api.MountConfigInput{PluginVersion: am.PluginVersion}}); err != nil {
		return fmt.Errorf("mounting a second engine at %s: %w", mount, err)
	}
	snap0, err := h.storageUsage(ctx)
	if err != nil {
		return err
	}
	if _, err := h.root.Logical().WriteWithContext(ctx, mount+"/roles/"+scaleRole, map[string]interface{}{
		"scopes": "read:bench/*", "audiences": benchAudience, "max_steps": 1000000, "max_rate": 100000,
		"session_ttl": "4h", "session_max_ttl": "4h", "step_ttl": "30s", "step_max_ttl": "30s",
	}); err != nil {
		return err
	}
	if err := h.root.Sys().PutPolicyWithContext(ctx, "bench-scale", fmt.Sprintf(`
path "%[1]s/session"        { capabilities = ["update"] }
path "%[1]s/creds/*"        { capabilities = ["update"] }
path "%[1]s/sessions/+/end" { capabilities = ["update"] }
`, mount)); err != nil {
		return err
	}
	sec, err := h.root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{"bench-scale"}, TTL: "6h", DisplayName: "bench-scale"})
	if err != nil {
		return err
	}
	agent, err := newClient(h.cfg, sec.Auth.ClientToken)
	if err != nil {
		return err
	}
	cfgResp, err := h.root.Logical().ReadWithContext(ctx, mount+"/config")
	if err != nil {
		return err
	}
	sr := &ScaleResult{Mount: mount}
	if n, ok := cfgResp.Data["session_cache_size"]; ok {
		fmt.Sscan(fmt.Sprint(n), &sr.CacheSize)
	}
	h.res.Scale = sr

	var (
		mu  sync.Mutex
		ids []string
	)
	start := func(ctx context.Context) (string, error) {
		sec, err := agent.Logical().WriteWithContext(ctx, mount+"/session", map[string]interface{}{
			"role": scaleRole, "purpose": "scale", "scopes": "read:bench/*", "audiences": benchAudience,
		})
		if err != nil {
			return "", err
		}
		id, _ := sec.Data["session_id"].(string)
		if id == "" {
			return "", errors.New("no session_id")
		}
		mu.Lock()
		ids = append(ids, id)
		mu.Unlock()
		return id, nil
	}
	issue := func(ctx context.Context, id string) error {
		_, err := agent.Logical().WriteWithContext(ctx, mount+"/creds/"+id, map[string]interface{}{"scopes": benchScope, "audience": benchAudience})
		return err
	}

	// Session starts per second beside auth/token/create, first, on an
	// empty mount... and they count as live sessions from then on.
	sr.StartRate, err = h.measureRate(ctx, "session-start", rateScenario{label: "session start", request: "`PUT " + mount + "/session`"},
		same(func(ctx context.Context) error { _, err := start(ctx); return err }, h.cfg.concurrency))
	if err != nil {
		return fmt.Errorf("session starts: %w", err)
	}
	sc := rateScenarios["token-agent"]
	ops, err := sc.prepare(ctx, h, h.cfg.concurrency)
	if err != nil {
		return err
	}
	if sr.TokenRate, err = h.measureRate(ctx, "token-agent", sc, ops); err != nil {
		return fmt.Errorf("token creates: %w", err)
	}
	log.Printf("scale: session starts %.0f/s (p99 %.1f ms) beside auth/token/create %.0f/s (p99 %.1f ms)",
		sr.StartRate.PerSec, sr.StartRate.P99ms, sr.TokenRate.PerSec, sr.TokenRate.P99ms)

	// The credential workers use sessions of their own, started first.
	workers := make([]string, 4)
	for i := range workers {
		if workers[i], err = start(ctx); err != nil {
			return err
		}
	}

	counts := append([]int(nil), h.cfg.scaleCounts...)
	sort.Ints(counts)
	for _, n := range counts {
		mu.Lock()
		have := len(ids)
		mu.Unlock()
		if have < n {
			lat, err := h.parallel(ctx, n-have, func(ctx context.Context) error { _, err := start(ctx); return err })
			if err != nil {
				return fmt.Errorf("starting sessions up to %d: %w", n, err)
			}
			log.Printf("scale: %d live sessions (started %d, p50 %.2f ms)", n, n-have, percentile(lat, 0.5))
		}
		p := ScalePoint{Sessions: n}
		// A start costs the same at any count: time a few more.
		lat, err := h.parallel(ctx, 200, func(ctx context.Context) error { _, err := start(ctx); return err })
		if err != nil {
			return err
		}
		p.StartP50ms, p.StartP99ms = percentile(lat, 0.5), percentile(lat, 0.99)
		mu.Lock()
		middle := ids[len(ids)/2]
		mu.Unlock()
		if p.PageFirstMs, err = h.timeList(ctx, mount, map[string][]string{"limit": {"100"}}); err != nil {
			return err
		}
		if p.PageMiddleMs, err = h.timeList(ctx, mount, map[string][]string{"limit": {"100"}, "after": {middle}}); err != nil {
			return err
		}
		if p.PageRoleMs, err = h.timeList(ctx, mount, map[string][]string{"limit": {"100"}, "role": {scaleRole}, "after": {middle}}); err != nil {
			return err
		}
		var k atomic.Int64
		lat, err = h.parallel(ctx, 400, func(ctx context.Context) error {
			return issue(ctx, workers[int(k.Add(1))%len(workers)])
		})
		if err != nil {
			return err
		}
		p.CredsP50ms, p.CredsP99ms = percentile(lat, 0.5), percentile(lat, 0.99)
		if pid := h.pluginPID(); pid > 0 {
			p.RSSKB, _ = rssKB(pid)
		}
		sr.Points = append(sr.Points, p)
		log.Printf("scale: %d sessions: RSS %.1f MiB, start p50 %.2f ms, page first %.2f ms / middle %.2f ms / by role %.2f ms, creds p99 %.2f ms",
			n, float64(p.RSSKB)/1024, p.StartP50ms, p.PageFirstMs, p.PageMiddleMs, p.PageRoleMs, p.CredsP99ms)
	}
	if h.cfg.scaleTidy {
		return h.scaleTidy(ctx, sr, mount, agent, ids, workers, issue, snap0.snapshot)
	}
	return nil
}

// scaleTidy ends every session but the credential workers', lets the
// tidy delete them (session_retention=0), and measures it.
func (h *harness) scaleTidy(ctx context.Context, sr *ScaleResult, mount string, agent *api.Client, ids, workers []string, issue func(context.Context, string) error, before int64) error {
	tr := &TidyResult{SnapshotBefore: before}
	sr.Tidy = tr
	keep := map[string]bool{}
	for _, w := range workers {
		keep[w] = true
	}
	var finish []string
	for _, id := range ids {
		if !keep[id] && (h.cfg.scaleFinish == 0 || len(finish) < h.cfg.scaleFinish) {
			finish = append(finish, id)
		}
	}
	tr.Live = len(ids) - len(finish)
	tr.Sessions = len(finish)
	full, err := h.storageUsage(ctx)
	if err != nil {
		return err
	}
	tr.SnapshotFull = full.snapshot

	// The p99 of step credentials with no tidy running: the sessions are
	// all active, the tidy finds nothing to delete (and takes little).
	credLoad := func(d time.Duration) ([]float64, error) {
		var k atomic.Int64
		deadline := time.Now().Add(d)
		return h.parallelUntil(ctx, deadline, func(ctx context.Context) error {
			return issue(ctx, workers[int(k.Add(1))%len(workers)])
		})
	}
	lat, err := credLoad(20 * time.Second)
	if err != nil {
		return err
	}
	tr.CredsP50Before, tr.CredsP99Before = percentile(lat, 0.5), percentile(lat, 0.99)

	t0 := time.Now()
	var next atomic.Int64
	if _, err := h.parallel(ctx, len(finish), func(ctx context.Context) error {
		id := finish[next.Add(1)-1]
		_, err := agent.Logical().WriteWithContext(ctx, mount+"/sessions/"+id+"/end", nil)
		return err
	}); err != nil {
		return fmt.Errorf("ending sessions: %w", err)
	}
	tr.EndSeconds = time.Since(t0).Seconds()
	log.Printf("scale: ended %d sessions in %.0f s", len(finish), tr.EndSeconds)

	// Closed sessions are deleted once their last credential expired
	// and session_retention passed: 0 here, so at the next tidy (Vault
	// calls it about once a minute).
	if _, err := h.root.Logical().WriteWithContext(ctx, mount+"/config", map[string]interface{}{"session_retention": 0}); err != nil {
		return err
	}
	t1 := time.Now()
	var during []float64
	var duringMu sync.Mutex
	stop := make(chan struct{})
	loadDone := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				loadDone <- nil
				return
			default:
			}
			lat, err := credLoad(5 * time.Second)
			if err != nil {
				loadDone <- err
				return
			}
			duringMu.Lock()
			during = append(during, lat...)
			duringMu.Unlock()
		}
	}()
	deadline := time.Now().Add(h.cfg.scaleTidyTimeout)
	for {
		left, err := h.countListed(ctx, mount)
		if err != nil {
			close(stop)
			<-loadDone
			return err
		}
		if left <= tr.Live {
			break
		}
		if time.Now().After(deadline) {
			close(stop)
			<-loadDone
			return fmt.Errorf("the tidy had not deleted the finished sessions after %s (%d left)", h.cfg.scaleTidyTimeout, left)
		}
		sleepUntil(ctx, time.Now().Add(10*time.Second))
	}
	tr.TidySeconds = time.Since(t1).Seconds()
	close(stop)
	if err := <-loadDone; err != nil {
		return err
	}
	sort.Float64s(during)
	tr.CredsP50During, tr.CredsP99During = percentile(during, 0.5), percentile(during, 0.99)
	after, err := h.storageUsage(ctx)
	if err != nil {
		return err
	}
	tr.SnapshotAfter = after.snapshot
	tr.SecondsUntilBack = time.Since(t0).Seconds()
	log.Printf("scale: the tidy deleted %d sessions in %.0f s; creds p99 %.2f ms during it, %.2f ms before; snapshot %d B before the sessions, %d B with them, %d B after",
		tr.Sessions, tr.TidySeconds, tr.CredsP99During, tr.CredsP99Before, tr.SnapshotBefore, tr.SnapshotFull, tr.SnapshotAfter)
	return nil
}

// countListed pages through the mount's session list and counts it.
func (h *harness) countListed(ctx context.Context, mount string) (int, error) {
	n, after := 0, ""
	for {
		q := map[string][]string{"list": {"true"}, "limit": {"10000"}}
		if after != "" {
			q["after"] = []string{after}
		}
		sec, err := h.root.Logical().ReadWithDataWithContext(ctx, mount+"/sessions", q)
		if err != nil {
			return 0, err
		}
		if sec == nil {
			return n, nil
		}
		keys, _ := sec.Data["keys"].([]interface{})
		n += len(keys)
		next, _ := sec.Data["next"].(string)
		if next == "" {
			return n, nil
		}
		after = next
	}
}

// timeList is the median time of 21 LIST requests of the session list.
func (h *harness) timeList(ctx context.Context, mount string, q map[string][]string) (float64, error) {
	var lat []float64
	q["list"] = []string{"true"}
	for i := 0; i < 21; i++ {
		t0 := time.Now()
		sec, err := h.root.Logical().ReadWithDataWithContext(ctx, mount+"/sessions", q)
		if err != nil {
			return 0, err
		}
		if sec == nil {
			return 0, errors.New("an empty page")
		}
		lat = append(lat, float64(time.Since(t0))/float64(time.Millisecond))
	}
	sort.Float64s(lat)
	return percentile(lat, 0.5), nil
}

// parallel runs op n times over the harness's concurrency and returns
// the latencies, sorted.
func (h *harness) parallel(ctx context.Context, n int, op func(context.Context) error) ([]float64, error) {
	var (
		left     atomic.Int64
		mu       sync.Mutex
		lat      []float64
		firstErr error
		wg       sync.WaitGroup
	)
	left.Store(int64(n))
	for w := 0; w < h.cfg.concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 && ctx.Err() == nil {
				t0 := time.Now()
				err := op(ctx)
				d := float64(time.Since(t0)) / float64(time.Millisecond)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				lat = append(lat, d)
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	sort.Float64s(lat)
	return lat, ctx.Err()
}

// parallelUntil runs op over four workers until deadline, and returns
// the latencies, sorted.
func (h *harness) parallelUntil(ctx context.Context, deadline time.Time, op func(context.Context) error) ([]float64, error) {
	var (
		mu       sync.Mutex
		lat      []float64
		firstErr error
		wg       sync.WaitGroup
	)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				err := op(ctx)
				d := float64(time.Since(t0)) / float64(time.Millisecond)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				lat = append(lat, d)
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	sort.Float64s(lat)
	return lat, ctx.Err()
}
