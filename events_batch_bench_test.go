package agent

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// BenchmarkEventBatching is the measurement behind the batch bounds
// (batchEvents, batchDelay): how many storage writes a credential costs
// when sessions take steps at a steady rate, for several batch delays. 32
// sessions each take rate steps a second, round robin, in real time, for
// as many credentials as the benchmark asks; the puts counted are every
// write the engine makes for them (batches, reservations), the last
// batches included (written as a clean stop writes them). It reports
// puts/credential and the rate each session
// reached (lower than asked when the machine cannot keep up).
//
//	go test -run '^$' -bench EventBatching -benchtime 3s .
//
// Before batching every credential cost one write. A session that steps
// less often than once per delay still pays one write per credential; the
// delay only helps sessions faster than that, up to one write per
// batchEvents credentials.
func BenchmarkEventBatching(b *testing.B) {
	const sessions = 32
	for _, delay := range []time.Duration{100 * time.Millisecond, 250 * time.Millisecond, time.Second, 5 * time.Second} {
		for _, rate := range []int{1, 4, 16, 64, 256} {
			b.Run(fmt.Sprintf("delay=%s/steps-per-s=%d", delay, rate), func(b *testing.B) {
				inner := &logical.InmemStorage{}
				be := newTestBackendOn(b, inner)
				be.batchDelay = delay
				s := &countingStorage{Storage: inner}
				writeRole(b, be, s, "web", map[string]interface{}{"max_steps": 1_000_000, "max_rate": 100_000})
				ids := make([]string, sessions)
				for i := range ids {
					ids[i], _ = startSession(b, be, s, agentA, map[string]interface{}{"role": "web", "scopes": "read:secrets/web/*"})
				}
				step := map[string]interface{}{"scopes": "read:secrets/web/tls", "audience": "secrets-api"}
				be.writeBatches()
				s.mu.Lock()
				s.puts = 0
				s.mu.Unlock()

				interval := time.Second / time.Duration(sessions*rate)
				start := time.Now()
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
						time.Sleep(wait)
					}
					resp, err := issue(b, be, s, agentA, ids[i%sessions], step)
					if err != nil || resp == nil || resp.IsError() {
						b.Fatalf("step %d: %v %v", i, err, resp)
					}
				}
				elapsed := time.Since(start)
				b.StopTimer()
				be.writeBatches() // what a clean stop writes
				s.mu.Lock()
				puts := s.puts
				s.mu.Unlock()
				n := float64(b.N)
				b.ReportMetric(float64(puts)/n, "puts/credential")
				b.ReportMetric(n/sessions/elapsed.Seconds(), "steps/s/session")
				be.clean(context.Background())
			})
		}
	}
}
