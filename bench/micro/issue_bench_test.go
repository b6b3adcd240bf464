package micro

import (
	"sync/atomic"
	"testing"
)

// perSession is how many credentials one session takes before the
// benchmark moves to a new one (far below max_steps and the max_rate
// bucket).
const perSession = 50000

// BenchmarkIssueCredential is the engine's own cost of one step credential
// (no Vault, no raft, no HTTP): CPU per issuance, and the storage calls and
// bytes each issuance makes. kept-B/op is the growth of what storage holds,
// per credential.
func BenchmarkIssueCredential(b *testing.B) {
	e := newEngine(b)
	sid := e.startSession(b)
	kept0 := keptBytes(b, e.s)
	c0 := e.s.snapshot()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i > 0 && i%perSession == 0 {
			b.StopTimer()
			sid = e.startSession(b)
			b.StartTimer()
		}
		if _, err := e.issue(sid); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	c1 := e.s.snapshot()
	n := float64(b.N)
	b.ReportMetric(float64(c1.gets-c0.gets)/n, "gets/op")
	b.ReportMetric(float64(c1.puts-c0.puts)/n, "puts/op")
	b.ReportMetric(float64(c1.deletes-c0.deletes)/n, "deletes/op")
	b.ReportMetric(float64(c1.putBytes-c0.putBytes)/n, "put-B/op")
	b.ReportMetric(float64(keptBytes(b, e.s)-kept0)/n, "kept-B/op")
}

// BenchmarkIssueCredentialParallel issues from GOMAXPROCS goroutines, one
// session each.
func BenchmarkIssueCredentialParallel(b *testing.B) {
	e := newEngine(b)
	c0 := e.s.snapshot()
	var total atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		sid := e.startSession(b)
		n := 0
		for pb.Next() {
			if n > 0 && n%perSession == 0 {
				sid = e.startSession(b)
			}
			if _, err := e.issue(sid); err != nil {
				b.Error(err)
				return
			}
			n++
		}
		total.Add(int64(n))
	})
	b.StopTimer()
	c1 := e.s.snapshot()
	if n := float64(total.Load()); n > 0 {
		b.ReportMetric(float64(c1.puts-c0.puts)/n, "puts/op")
	}
}
