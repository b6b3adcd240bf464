package main

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Target thresholds of issue 8.
const (
	targetIssuanceFactor = 3.0  // creds/s ≥ 3 × auth/token/create/s
	targetEndMs          = 20.0 // session end ≤ 20 ms at 100,000 credentials
	targetEndGrowth      = 2.0  // ... and ≤ 2 × its time at 100
	targetEndN           = 100000
	targetEndBaseN       = 100
	targetVerifyFactor   = 1.6 // verifier time ≤ 1.6 × raw ed25519.Verify (issue 13: verification through go-jose)
	targetBytesPerCred   = 300.0
	targetMemGrowth      = 0.10 // "flat": the last sample within 10% of the first
	// Issue 15 §3: kill → refusal.
	targetRefusalP99Ms = 100.0 // p99 of kill → refusal, blocking query and SSF push
	targetDeltaGrowth  = 2.0   // bytes per kill with deltas: ≤ 2× between the kill rates
)

// targetPropCounts are the resource-server counts the refusal targets are
// set at.
var targetPropCounts = []int{1, 10, 100}

// Verdict of one target.
type Verdict struct {
	ID       string
	What     string
	Target   string
	Measured string
	Met      string // "yes", "no", "partly", "not measured"
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

// largestEnd is the session-end result with the most credentials.
func (r *Results) largestEnd() *EndResult {
	var e *EndResult
	for i := range r.Ends {
		if e == nil || r.Ends[i].N > e.N {
			e = &r.Ends[i]
		}
	}
	return e
}

func (r *Results) smallestEnd() *EndResult {
	var e *EndResult
	for i := range r.Ends {
		if e == nil || r.Ends[i].N < e.N {
			e = &r.Ends[i]
		}
	}
	return e
}

// bytesPerCred is the storage per credential of a sample: the larger of the
// two measurements (the mount's own bytes; the raft snapshot's growth).
func (s StorageSample) bytesPerCred() float64 {
	b := float64(s.SnapshotDelta)
	if float64(s.RawDelta) > b {
		b = float64(s.RawDelta)
	}
	return b / float64(s.creds())
}

// creds is how many credentials the sample issued.
func (s StorageSample) creds() int {
	if s.Sessions > 1 {
		return s.N * s.Sessions
	}
	return s.N
}

func (r *Results) verdicts() []Verdict {
	var out []Verdict

	// 1. Issuance vs auth/token/create.
	v := Verdict{ID: "1", What: "step credentials/s vs auth/token/create/s (as root)", Target: "≥ 3×", Met: "not measured"}
	if c, t := r.rate("creds"), r.rate("token"); c != nil && t != nil && t.PerSec > 0 {
		f := c.PerSec / t.PerSec
		v.Measured = fmt.Sprintf("%s/s vs %s/s = %.2f×", num(c.PerSec), num(t.PerSec), f)
		v.Met = yesNo(f >= targetIssuanceFactor)
		// Not met: how close issuance comes to its ceiling, the cheapest
		// authenticated request through the plugin.
		if sr := r.rate("session-read"); f < targetIssuanceFactor && sr != nil && sr.PerSec > 0 {
			v.Measured += fmt.Sprintf(" (%.0f%% of an authenticated plugin read)", 100*c.PerSec/sr.PerSec)
		}
	}
	out = append(out, v)

	// 2. Session end.
	big, small := r.largestEnd(), r.smallestEnd()
	v = Verdict{ID: "2a", What: "time to end a session after 100,000 credentials", Target: "≤ 20 ms", Met: "not measured"}
	if big != nil {
		v.Measured = fmt.Sprintf("%.1f ms", big.MedianMs)
		if big.N != targetEndN {
			v.What = fmt.Sprintf("time to end a session after %s credentials (100,000 not run)", num(float64(big.N)))
			v.Met = fmt.Sprintf("not measured at 100,000 (%s at %s)", yesNo(big.MedianMs <= targetEndMs), num(float64(big.N)))
		} else {
			v.Met = yesNo(big.MedianMs <= targetEndMs)
		}
	}
	out = append(out, v)
	v = Verdict{ID: "2b", What: "end after 100,000 vs end after 100", Target: "≤ 2×", Met: "not measured"}
	if big != nil && small != nil && big.N > small.N && small.MedianMs > 0 {
		f := big.MedianMs / small.MedianMs
		v.Measured = fmt.Sprintf("%.1f ms vs %.1f ms = %.2f×", big.MedianMs, small.MedianMs, f)
		if big.N != targetEndN || small.N != targetEndBaseN {
			v.What = fmt.Sprintf("end after %s vs end after %s", num(float64(big.N)), num(float64(small.N)))
			v.Met = fmt.Sprintf("not measured at 100 / 100,000 (%s)", yesNo(f <= targetEndGrowth))
		} else {
			v.Met = yesNo(f <= targetEndGrowth)
		}
	}
	out = append(out, v)

	// 3. Offline verification.
	v = Verdict{ID: "3", What: "verifier.Verify vs raw ed25519.Verify (time per credential)", Target: "≤ 1.6×", Met: "not measured"}
	if r.Verify != nil && r.Verify.VerifierPS > 0 {
		f := r.Verify.RawPerSec / r.Verify.VerifierPS
		v.Measured = fmt.Sprintf("%.1f µs vs %.1f µs = %.2f×", 1e6/r.Verify.VerifierPS, 1e6/r.Verify.RawPerSec, f)
		v.Met = yesNo(f <= targetVerifyFactor)
	}
	out = append(out, v)

	// 4. Storage per credential: the worst case (a session so short that
	// every credential's timeline event is kept) and the largest session.
	v = Verdict{ID: "4a", What: "storage bytes per credential", Target: "≤ 300 B", Met: "not measured"}
	if len(r.Storage) > 0 {
		lo, hi := r.Storage[0], r.Storage[0]
		for _, s := range r.Storage {
			if s.N < lo.N {
				lo = s
			}
			if s.N > hi.N {
				hi = s
			}
		}
		wl, wh := lo.bytesPerCred(), hi.bytesPerCred()
		if lo.N == hi.N {
			v.Measured = fmt.Sprintf("%.0f B (sessions of %s)", wl, num(float64(lo.N)))
			v.Met = yesNo(wl <= targetBytesPerCred)
		} else {
			v.Measured = fmt.Sprintf("%.0f B in sessions of %s credentials; %.1f B in sessions of %s", wl, num(float64(lo.N)), wh, num(float64(hi.N)))
			if wl < 0 || wh < 0 {
				// A session keeps its newest max_events events: past them,
				// each chunk written deletes an older one, and what is
				// left is the noise of how chunks pack.
				v.Measured += " (below zero: past max_events each new chunk of events replaces an old one)"
			}
			switch {
			case wl <= targetBytesPerCred && wh <= targetBytesPerCred:
				v.Met = "yes"
			case wh <= targetBytesPerCred:
				v.Met = fmt.Sprintf("partly: yes in sessions of %s, no in sessions of %s", num(float64(hi.N)), num(float64(lo.N)))
			default:
				v.Met = "no"
			}
		}
	}
	out = append(out, v)

	// 4b. Memory.
	v = Verdict{ID: "4b", What: "plugin memory (RSS) across the largest session's issuances", Target: "flat (last ≤ first + 10%)", Met: "not measured"}
	if n := len(r.Memory); n >= 2 {
		first, last := r.Memory[0], r.Memory[n-1]
		growth := float64(last.RSSKB-first.RSSKB) / float64(first.RSSKB)
		v.Measured = fmt.Sprintf("%.1f MiB at 0 → %.1f MiB at %s (%+.1f%%)", mib(first.RSSKB), mib(last.RSSKB), num(float64(last.Issued)), 100*growth)
		if last.Sessions > 1 {
			v.Measured += fmt.Sprintf(" issuances into each of %d sessions (%s in all)", last.Sessions, num(float64(last.Issued*last.Sessions)))
		}
		v.Met = yesNo(growth <= targetMemGrowth && samePID(r.Memory))
		if last.Issued != targetEndN {
			v.Met = fmt.Sprintf("not measured at 100,000 (%s at %s)", v.Met, num(float64(last.Issued)))
		}
	}
	out = append(out, v)

	// 5. Kill → refusal.
	out = append(out, r.refusalVerdict("5a", propBlocking), r.refusalVerdict("5b", propSSF))
	out = append(out, r.deltaBytesVerdict())
	out = append(out, r.scaleVerdicts()...)
	out = append(out, r.identityVerdicts()...)
	return out
}

// propRows are the measured rows of a propagation method, by N.
func (r *Results) propRows(method string) []PropagationRow {
	if r.Propagation == nil {
		return nil
	}
	var out []PropagationRow
	for _, x := range r.Propagation.Rows {
		if x.Method == method && x.NotMeasured == "" {
			out = append(out, x)
		}
	}
	return out
}

// refusalVerdict: the p99 of kill → refusal of method at every N.
func (r *Results) refusalVerdict(id, method string) Verdict {
	v := Verdict{ID: id, What: fmt.Sprintf("kill → refusal p99, %s, 1 / 10 / 100 resource servers", propLabel(method)),
		Target: fmt.Sprintf("≤ %.0f ms", targetRefusalP99Ms), Met: "not measured"}
	rows := r.propRows(method)
	if len(rows) == 0 {
		return v
	}
	ok := true
	var parts, ns []string
	seen := map[int]bool{}
	for _, x := range rows {
		s := fmt.Sprintf("%s at %d", timeLabelPrecise(x.P99ms), x.N)
		if x.Missed > 0 {
			s += fmt.Sprintf(" (%d never refused)", x.Missed)
		}
		parts = append(parts, s)
		ns = append(ns, fmt.Sprint(x.N))
		seen[x.N] = true
		ok = ok && x.Missed == 0 && len(x.SamplesMs) > 0 && x.P99ms <= targetRefusalP99Ms
	}
	v.Measured = strings.Join(parts, ", ")
	v.Met = yesNo(ok)
	for _, n := range targetPropCounts {
		if !seen[n] {
			v.Met = fmt.Sprintf("not measured at %d (%s at %s)", n, v.Met, strings.Join(ns, ", "))
			break
		}
	}
	return v
}

// deltaBytesVerdict: bytes per kill with deltas, flat between the
// lowest and the highest kill rate.
func (r *Results) deltaBytesVerdict() Verdict {
	v := Verdict{ID: "5c", What: "bytes a verifier fetches per kill with deltas, 1,000 vs 10,000 kills/min",
		Target: fmt.Sprintf("flat (≤ %.0f×)", targetDeltaGrowth), Met: "not measured"}
	if r.Propagation == nil || len(r.Propagation.Bytes) < 2 {
		return v
	}
	bs := r.Propagation.Bytes
	lo, hi := bs[0], bs[0]
	for _, b := range bs {
		if b.KillsPerMin < lo.KillsPerMin {
			lo = b
		}
		if b.KillsPerMin > hi.KillsPerMin {
			hi = b
		}
	}
	if lo.DeltaWire <= 0 || hi.DeltaWire <= 0 {
		return v
	}
	poll := time.Duration(r.Propagation.PollS * float64(time.Second))
	f := math.Max(float64(lo.DeltaWire), float64(hi.DeltaWire)) / math.Min(float64(lo.DeltaWire), float64(hi.DeltaWire))
	v.What = fmt.Sprintf("bytes a verifier fetches per kill with deltas, %s vs %s kills/min", num(float64(lo.KillsPerMin)), num(float64(hi.KillsPerMin)))
	v.Measured = fmt.Sprintf("%s B vs %s B = %.2f× (lists of %s and %s sessions; polling the whole list every %s: %s B vs %s B)",
		num(float64(lo.DeltaWire)), num(float64(hi.DeltaWire)), f, num(float64(lo.ListEntries)), num(float64(hi.ListEntries)), durLabel(poll.Seconds()),
		num(pollBytesPerKill(lo.FullWire, poll, lo.KillsPerMin)), num(pollBytesPerKill(hi.FullWire, poll, hi.KillsPerMin)))
	v.Met = yesNo(f <= targetDeltaGrowth)
	return v
}

// propLabel names a propagation method.
func propLabel(method string) string {
	switch method {
	case propPoll:
		return "(a) plain polling"
	case propBlocking:
		return "(b) blocking query"
	case propSSF:
		return "(c) SSF push"
	}
	return method
}

func samePID(ms []MemSample) bool {
	for _, m := range ms {
		if m.PID != ms[0].PID {
			return false
		}
	}
	return true
}

func mib(kb int64) float64 { return float64(kb) / 1024 }

// num formats a number with thousands separators, without decimals for
// large values.
func num(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "n/a"
	}
	if x < 100 && x != math.Trunc(x) {
		return fmt.Sprintf("%.1f", x)
	}
	neg := x < 0
	n := int64(math.Round(math.Abs(x)))
	s := fmt.Sprintf("%d", n)
	var b []byte
	for i, c := range []byte(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			b = append(b, ',')
		}
		b = append(b, c)
	}
	if neg {
		return "-" + string(b)
	}
	return string(b)
}
