package main

import (
	"fmt"
	"math"
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
)

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
	return out
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
