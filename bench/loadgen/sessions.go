package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"log"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
)

func (h *harness) repsFor(n int) int {
	r := h.cfg.endReps
	if b := h.cfg.endBudget / n; b < r {
		r = b
	}
	if r < 1 {
		r = 1
	}
	return r
}

// scenarioSessions times ending a session after N credentials, for each
// count: it starts several sessions, fills them in parallel with N
// credentials each, then ends them one at a time. Meanwhile it measures
// the storage each credential adds and the plugin's memory across the
// largest count.
func (h *harness) scenarioSessions(ctx context.Context) error {
	h.waitQuiet(ctx)
	if h.rawOK {
		ms, err := h.probeWrite(ctx)
		if err != nil {
			log.Printf("write probe: %v", firstLine(err))
		} else {
			h.res.WriteProbeMs = ms
			log.Printf("one idle storage write through Vault (sys/raw PUT): %.2f ms (median of %d)", ms, probeWrites)
		}
	}
	largest := 0
	for _, n := range h.cfg.endCounts {
		if n > largest {
			largest = n
		}
	}
	for _, n := range h.cfg.endCounts {
		reps := h.repsFor(n)
		er := EndResult{N: n, Sessions: reps}
		sids := make([]string, reps)
		for i := range sids {
			sid, err := h.startSession(ctx, fmt.Sprintf("end after %d credentials (%d of %d)", n, i+1, reps))
			if err != nil {
				return err
			}
			sids[i] = sid
		}
		before, err := h.storageUsage(ctx)
		if err != nil {
			return err
		}
		chunks := 1
		sampleMem := n == largest
		if sampleMem {
			chunks = 4
			h.sampleMemory(0, reps)
		}
		t0 := time.Now()
		var last []string
		for c := 0; c < chunks; c++ {
			k := n*(c+1)/chunks - n*c/chunks
			toks, err := h.issueEach(ctx, sids, k)
			if err != nil {
				return err
			}
			last = toks
			if sampleMem {
				h.sampleMemory(n*(c+1)/chunks, reps)
			}
		}
		er.IssueSeconds = time.Since(t0).Seconds()
		er.IssueRate = float64(n*reps) / er.IssueSeconds
		log.Printf("%d sessions filled with %d credentials each in %.1fs (%.0f/s in all)", reps, n, er.IssueSeconds, er.IssueRate)

		after, err := h.storageUsage(ctx)
		if err != nil {
			return err
		}
		creds := n * reps
		st := StorageSample{
			N:             n,
			Sessions:      reps,
			SnapshotDelta: after.snapshot - before.snapshot,
			RawDelta:      -1,
			RawKeysDelta:  -1,
			RawTotal:      after.rawBytes,
			RawKeys:       after.rawKeys,
		}
		if after.rawBytes >= 0 && before.rawBytes >= 0 {
			st.RawDelta = after.rawBytes - before.rawBytes
			st.RawKeysDelta = after.rawKeys - before.rawKeys
		}
		h.res.Storage = append(h.res.Storage, st)
		log.Printf("storage over %d credentials (%d sessions × %d): snapshot %+d B (%.1f B/cred), mount %+d B in %+d keys (%.1f B/cred)",
			creds, reps, n, st.SnapshotDelta, float64(st.SnapshotDelta)/float64(creds), st.RawDelta, st.RawKeysDelta, float64(st.RawDelta)/float64(creds))

		er.RevokedAfterEnd = true
		for i, sid := range sids {
			// Let raft settle, then time the end.
			sleepUntil(ctx, time.Now().Add(time.Second))
			t1 := time.Now()
			_, err = h.agent.Logical().WriteWithContext(ctx, h.cfg.mount+"/sessions/"+sid+"/end", nil)
			d := time.Since(t1)
			if err != nil {
				return fmt.Errorf("ending a session after %d credentials: %w", n, err)
			}
			ms := float64(d) / float64(time.Millisecond)
			er.SamplesMs = append(er.SamplesMs, ms)
			log.Printf("session with %d credentials (%d of %d): ended in %.2f ms", n, i+1, reps, ms)

			// The end must have revoked the session's credentials.
			revoked, err := h.inactive(ctx, last[i])
			if err != nil {
				return err
			}
			er.RevokedAfterEnd = er.RevokedAfterEnd && revoked
		}
		er.MedianMs = median(er.SamplesMs)
		h.res.Ends = append(h.res.Ends, er)
	}
	return nil
}

const probeWrites = 9

// probeWrite times single storage writes through Vault while it is idle: a
// sys/raw PUT is one entry in raft's log, applied and fsync'd, with no
// engine in between. It returns the median.
func (h *harness) probeWrite(ctx context.Context) (float64, error) {
	const key = "sys/raw/bench-probe/write"
	var ms []float64
	for i := 0; i < probeWrites; i++ {
		sleepUntil(ctx, time.Now().Add(200*time.Millisecond))
		t0 := time.Now()
		if _, err := h.root.Logical().WriteWithContext(ctx, key, map[string]interface{}{"value": fmt.Sprintf("probe %d", i)}); err != nil {
			return 0, err
		}
		ms = append(ms, float64(time.Since(t0))/float64(time.Millisecond))
	}
	_, _ = h.root.Logical().DeleteWithContext(ctx, key)
	return median(ms), nil
}

// inactive asks introspect whether a credential is no longer active.
func (h *harness) inactive(ctx context.Context, tok string) (bool, error) {
	sec, err := h.agent.Logical().WriteWithContext(ctx, h.cfg.mount+"/introspect", map[string]interface{}{"token": tok})
	if err != nil {
		return false, fmt.Errorf("introspect: %w", err)
	}
	active, _ := sec.Data["active"].(bool)
	return !active, nil
}

func (h *harness) sampleMemory(issued, sessions int) {
	pid := h.pluginPID()
	if pid == 0 {
		log.Printf("memory: no plugin process found (-plugin-cmd %q)", h.cfg.pluginCmd)
		return
	}
	kb, err := rssKB(pid)
	if err != nil {
		log.Printf("memory: %v", err)
		return
	}
	h.res.Memory = append(h.res.Memory, MemSample{Issued: issued, Sessions: sessions, RSSKB: kb, PID: pid})
	log.Printf("plugin (pid %d) RSS after %d issuances into each of %d sessions: %.1f MiB", pid, issued, sessions, float64(kb)/1024)
}

type storageUsage struct {
	snapshot int64 // bytes of a raft snapshot of the whole Vault
	rawBytes int64 // bytes of the mount's keys and values (-1: unknown)
	rawKeys  int64
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

func (h *harness) storageUsage(ctx context.Context) (storageUsage, error) {
	u := storageUsage{rawBytes: -1, rawKeys: -1}
	var cw countingWriter
	if err := h.root.Sys().RaftSnapshotWithContext(ctx, &cw); err != nil {
		return u, fmt.Errorf("raft snapshot: %w", err)
	}
	u.snapshot = cw.n
	if h.rawOK {
		keys, bytes, err := h.rawWalk(ctx)
		if err != nil {
			log.Printf("sys/raw walk failed (%v); storage by snapshot only", firstLine(err))
			h.rawOK = false
		} else {
			u.rawKeys, u.rawBytes = keys, bytes
		}
	}
	return u, nil
}

// rawMaxKeys bounds a walk of the mount's storage.
const rawMaxKeys = 1_000_000

// rawWalk sums the length of every key (relative to the mount) and value in
// the mount's storage, through sys/raw.
func (h *harness) rawWalk(ctx context.Context) (int64, int64, error) {
	base := "sys/raw/logical/" + h.mountUUID + "/"
	var keys []string
	dirs := []string{""}
	for len(dirs) > 0 {
		if len(keys) > rawMaxKeys {
			return 0, 0, fmt.Errorf("more than %d keys", rawMaxKeys)
		}
		dir := dirs[len(dirs)-1]
		dirs = dirs[:len(dirs)-1]
		sec, err := h.root.Logical().ListWithContext(ctx, base+dir)
		if err != nil {
			return 0, 0, err
		}
		if sec == nil {
			continue
		}
		list, _ := sec.Data["keys"].([]interface{})
		for _, k := range list {
			s, _ := k.(string)
			if strings.HasSuffix(s, "/") {
				dirs = append(dirs, dir+s)
			} else if s != "" {
				keys = append(keys, dir+s)
			}
		}
	}

	var (
		mu       sync.Mutex
		total    int64
		firstErr error
		next     int
	)
	var wg sync.WaitGroup
	for w := 0; w < h.cfg.concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if next >= len(keys) || firstErr != nil {
					mu.Unlock()
					return
				}
				k := keys[next]
				next++
				mu.Unlock()
				n, err := h.rawSize(ctx, base+k)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				total += int64(len(k)) + n
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, 0, firstErr
	}
	return int64(len(keys)), total, nil
}

// rawSize is the length of one stored value.
func (h *harness) rawSize(ctx context.Context, path string) (int64, error) {
	// compressed=false: the value as stored, not decompressed by sys/raw.
	sec, err := h.root.Logical().ReadWithDataWithContext(ctx, path, map[string][]string{"encoding": {"base64"}, "compressed": {"false"}})
	if err != nil {
		return 0, err
	}
	if sec == nil {
		return 0, nil // deleted since the list
	}
	v, _ := sec.Data["value"].(string)
	if b, err := base64.StdEncoding.DecodeString(v); err == nil {
		return int64(len(b)), nil
	}
	return int64(len(v)), nil
}

// scenarioRevoke times auth/token/revoke (revoke-tree) of a token with C
// children, for each count.
func (h *harness) scenarioRevoke(ctx context.Context) error {
	h.waitQuiet(ctx)
	for _, c := range h.cfg.revokeChildren {
		r, err := h.revokeTree(ctx, c)
		if err != nil {
			return err
		}
		h.res.Revokes = append(h.res.Revokes, r)
		log.Printf("revoke-tree of a token with %d children (created in %.1fs): %.0f ms", c, r.CreateSeconds, r.Ms)
	}
	return nil
}

func (h *harness) revokeTree(ctx context.Context, children int) (RevokeResult, error) {
	r := RevokeResult{Children: children}
	sec, err := h.root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{
		Policies: []string{parentPolicy, benchPolicy}, TTL: "4h", DisplayName: "bench-parent",
	})
	if err != nil {
		return r, fmt.Errorf("creating the parent token: %w", err)
	}
	parent := sec.Auth.ClientToken
	pc, err := newClient(h.cfg, parent)
	if err != nil {
		return r, err
	}

	var (
		mu       sync.Mutex
		next     int
		child    string
		failures int
		firstErr error
	)
	t0 := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < h.cfg.concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if next >= children || failures > 100 || ctx.Err() != nil {
					mu.Unlock()
					return
				}
				next++
				mu.Unlock()
				s, err := pc.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{
					Policies: []string{benchPolicy}, TTL: "4h", DisplayName: "bench-child",
				})
				mu.Lock()
				if err != nil {
					failures++
					next-- // try this child again
					if firstErr == nil {
						firstErr = err
					}
				} else if child == "" {
					child = s.Auth.ClientToken
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if failures > 100 || ctx.Err() != nil {
		return r, fmt.Errorf("creating %d child tokens: %d failures (first: %v) %v", children, failures, firstErr, ctx.Err())
	}
	r.CreateSeconds = time.Since(t0).Seconds()

	sleepUntil(ctx, time.Now().Add(time.Second))
	t1 := time.Now()
	if err := h.root.Auth().Token().RevokeTreeWithContext(ctx, parent); err != nil {
		return r, fmt.Errorf("revoke-tree: %w", err)
	}
	r.Ms = float64(time.Since(t1)) / float64(time.Millisecond)

	// A child must be gone.
	_, err = h.root.Auth().Token().LookupWithContext(ctx, child)
	r.ChildGone = err != nil
	return r, nil
}
