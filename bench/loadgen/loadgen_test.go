package main

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
)

func sampleResults() *Results {
	return &Results{
		Env: Env{Date: "2026-01-01 00:00 UTC", NProc: 2, VaultVersion: "1.21.4", CPUModel: "Test CPU | x"},
		Run: RunSettings{Concurrency: 16, DurationS: 10, WarmupS: 2},
		Rates: []RateResult{
			{Name: "creds", Label: "step credential", PerSec: 1200, VaultCPUus: 500, PluginCPUus: 200, LoadgenCPUus: 100},
			{Name: "jwks", Label: "jwks read (plugin)", PerSec: 2500},
			{Name: "kv", Label: "kv-v2 write", PerSec: 240},
			{Name: "lookup", Label: "token lookup-self", PerSec: 3500},
			{Name: "token", Label: "auth/token/create", PerSec: 316},
			{Name: "session-read", Label: "session read (plugin, authenticated)", PerSec: 2000},
			{Name: "token-agent", Label: "auth/token/create (ordinary token)", PerSec: 300},
		},
		Ends:    []EndResult{{N: 100, MedianMs: 6, SamplesMs: []float64{6}}, {N: 10000, MedianMs: 7}, {N: 100000, MedianMs: 8}},
		Revokes: []RevokeResult{{Children: 100, Ms: 900}, {Children: 2000, Ms: 16000}},
		Verify:  &VerifyResult{RawPerSec: 20000, VerifierPS: 17000, TokenPerSec: 17500, AuthorizePS: 16000},
		Storage: []StorageSample{{N: 100, SnapshotDelta: 40000, RawDelta: 42000}, {N: 100000, SnapshotDelta: 400000, RawDelta: 420000}},
		Memory:  []MemSample{{Issued: 0, RSSKB: 30000, PID: 7}, {Issued: 25000, RSSKB: 31000, PID: 7}, {Issued: 100000, RSSKB: 31500, PID: 7}},
		Propagation: &PropagationResult{
			PollS: 5, StepMaxTTLS: 60, GraceS: 60, Rounds: 5, SweepUs: 250,
			Rows: []PropagationRow{
				{Method: propPoll, N: 1, Rounds: 5, SamplesMs: []float64{100, 2000, 4900}, P50ms: 2000, P99ms: 4900, MaxMs: 4900},
				{Method: propPoll, N: 100, Rounds: 5, SamplesMs: []float64{40, 2500, 5000}, P50ms: 2500, P99ms: 5000, MaxMs: 5000},
				{Method: propBlocking, N: 1, Rounds: 5, SamplesMs: []float64{9, 11}, P50ms: 9, P99ms: 11, MaxMs: 11},
				{Method: propBlocking, N: 10, Rounds: 5, SamplesMs: []float64{9, 12}, P50ms: 9, P99ms: 12, MaxMs: 12},
				{Method: propBlocking, N: 100, Rounds: 5, SamplesMs: []float64{10, 30}, P50ms: 10, P99ms: 30, MaxMs: 30},
				{Method: propSSF, N: 1, NotMeasured: "the engine has no SSF streams"},
			},
			Bytes: []KillBytes{
				{KillsPerMin: 1000, ListTarget: 2000, ListEntries: 2000, FullWire: 203331, FullBody: 203112, DeltaWire: 520, NewVerifierOK: true},
				{KillsPerMin: 10000, ListTarget: 20000, ListEntries: 8000, Filled: 6000, FillSeconds: 60, FullWire: 815331, FullBody: 815112, DeltaWire: 522, NewVerifierOK: true},
			},
		},
	}
}

func TestSVGIsWellFormed(t *testing.T) {
	for name, r := range map[string]*Results{"full": sampleResults(), "empty": {}} {
		s := renderSVG(r)
		dec := xml.NewDecoder(strings.NewReader(s))
		root := ""
		for {
			tok, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: not well-formed XML: %v\n%s", name, err, s)
			}
			if se, ok := tok.(xml.StartElement); ok && root == "" {
				root = se.Name.Local
				if se.Name.Space != "http://www.w3.org/2000/svg" {
					t.Fatalf("%s: root namespace %q", name, se.Name.Space)
				}
			}
		}
		if root != "svg" {
			t.Fatalf("%s: root element %q", name, root)
		}
		if strings.Contains(s, "NaN") || strings.Contains(s, "Inf") {
			t.Fatalf("%s: NaN or Inf in the picture", name)
		}
	}
}

func TestVerdicts(t *testing.T) {
	vs := sampleResults().verdicts()
	want := map[string]string{"1": "yes", "2a": "yes", "2b": "yes", "3": "yes", "4a": "partly: yes in sessions of 100,000, no in sessions of 100", "4b": "yes",
		"5a": "yes", "5b": "not measured", "5c": "yes"}
	for _, v := range vs {
		if w, ok := want[v.ID]; ok && v.Met != w {
			t.Errorf("target %s: met %q, want %q (%s)", v.ID, v.Met, w, v.Measured)
		}
	}
	md := renderMarkdown(sampleResults(), "BENCHMARKS.svg")
	if !strings.Contains(md, `Test CPU \| x`) || !strings.Contains(md, "![") {
		t.Errorf("markdown is missing the CPU or the picture:\n%s", md)
	}
}

func TestIssuanceComparisons(t *testing.T) {
	r := sampleResults()
	var names []string
	for _, x := range displayOrder(r.Rates) {
		names = append(names, x.Name)
	}
	if got, want := strings.Join(names, ","), "creds,token,token-agent,jwks,session-read,kv,lookup"; got != want {
		t.Errorf("display order %s, want %s", got, want)
	}

	md := renderMarkdown(r, "")
	for _, want := range []string{
		"issued at **3.80×** the rate of `auth/token/create` as root",
		"holds the default policy\n(300/s), the factor is **4.00×**",
		"runs at 2,000/s; issuance runs at **60%** of that rate",
		"cannot be faster than the read",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown is missing %q:\n%s", want, md)
		}
	}
	// Met: the verdict compares with the root row only.
	v := r.verdicts()[0]
	if v.Met != "yes" || strings.Contains(v.Measured, "plugin read") {
		t.Errorf("target 1: met %q, measured %q", v.Met, v.Measured)
	}

	// Not met: the share of the ceiling is added to what was measured.
	r.rate("token").PerSec = 600
	v = r.verdicts()[0]
	if v.Met != "no" || v.Measured != "1,200/s vs 600/s = 2.00× (60% of an authenticated plugin read)" {
		t.Errorf("target 1: met %q, measured %q", v.Met, v.Measured)
	}

	// Without the new rows (older results), neither sentence is written.
	r = sampleResults()
	r.Rates = r.Rates[:5]
	md = renderMarkdown(r, "")
	if strings.Contains(md, "ordinary token") || strings.Contains(md, "ceiling") {
		t.Errorf("sentences about rows that were not measured:\n%s", md)
	}
	if !strings.Contains(md, "issued at **3.80×**") {
		t.Errorf("the root comparison is missing:\n%s", md)
	}
	if v := r.verdicts()[0]; strings.Contains(v.Measured, "plugin read") {
		t.Errorf("target 1 measured %q", v.Measured)
	}
}

func TestParseMicro(t *testing.T) {
	out := parseMicro(strings.NewReader(`goos: linux
pkg: github.com/continuoustrust/vault-plugin-secrets-agent/token
BenchmarkVerifyEdDSA-2   	   20000	     55000 ns/op	  13.1 MB/s	    4000 B/op	      60 allocs/op
BenchmarkBroken-2 notanumber
PASS
`))
	if len(out) != 1 || out[0].Name != "BenchmarkVerifyEdDSA-2" || out[0].Metrics["ns/op"] != 55000 || out[0].Package == "" {
		t.Fatalf("parsed %+v", out)
	}
	if len(out[0].Units) != 4 {
		t.Fatalf("units %v", out[0].Units)
	}
}

func TestHelpers(t *testing.T) {
	if got := capCounts([]int{100, 10000, 100000}, 10000); len(got) != 2 || got[1] != 10000 {
		t.Errorf("capCounts: %v", got)
	}
	if got := capCounts([]int{100, 10000, 100000}, 5000); len(got) != 2 || got[1] != 5000 {
		t.Errorf("capCounts: %v (10000 and 100000 both cap to 5000, kept once)", got)
	}
	if top, step := niceScale(1234); top < 1234 || step <= 0 || top/step > 10 {
		t.Errorf("niceScale(1234) = %v, %v", top, step)
	}
	if num(1234567) != "1,234,567" || num(12.34) != "12.3" || num(-1000) != "-1,000" {
		t.Errorf("num: %s %s %s", num(1234567), num(12.34), num(-1000))
	}
	for _, a := range []string{"http://127.0.0.1:8200", "http://localhost:1"} {
		if !loopback(a) {
			t.Errorf("%s should be loopback", a)
		}
	}
	if loopback("http://10.0.0.1:8200") || loopback("http://127.0.0.1.example.com:80") {
		t.Error("non-loopback address accepted")
	}
}

func TestPropagationReport(t *testing.T) {
	r := sampleResults()
	md := renderMarkdown(r, "BENCHMARKS.svg")
	for _, want := range []string{
		"## 5. Kill → refusal",
		"| (b) blocking query | 100 | 5 | 2 | 10.0 ms | **30.0 ms** |",
		"| (c) SSF push | 1 | – | – | – | – | – | – | not measured in this run: the engine has no SSF streams |",
		"| 1,000 | 2,000 | 2,000 | – | 203,331 B | 2,440 B | **520 B** | yes |",
		"| 10,000 | 20,000 | 8,000 (40%) | 6,000 sessions in 60 s | 815,331 B | 978 B (the list at 40%) | **522 B** | yes |",
		// (815,331 − 203,331) / 6,000 = 102 B per session; the full list
		// of 20,000 extrapolated is past the verifier's 1 MiB.
		"Each listed session adds 102 B",
		"more than the 1,048,576 B a verifier reads",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown is missing %q:\n%s", want, md)
		}
	}
	// Verdict 5a names every N; one N missing says so.
	r.Propagation.Rows = r.Propagation.Rows[:4]
	for _, v := range r.verdicts() {
		if v.ID == "5a" && v.Met != "not measured at 100 (yes at 1, 10)" {
			t.Errorf("5a: met %q", v.Met)
		}
	}
	// A missed refusal fails the target.
	r = sampleResults()
	r.Propagation.Rows[4].Missed = 1
	for _, v := range r.verdicts() {
		if v.ID == "5a" && v.Met != "no" {
			t.Errorf("5a with a missed refusal: met %q", v.Met)
		}
	}
	// Deltas that grow with the list fail 5c.
	r.Propagation.Bytes[1].DeltaWire = 2000
	for _, v := range r.verdicts() {
		if v.ID == "5c" && v.Met != "no" {
			t.Errorf("5c: met %q (%s)", v.Met, v.Measured)
		}
	}
}

func TestQuantile(t *testing.T) {
	var xs []float64
	for i := 100; i >= 1; i-- {
		xs = append(xs, float64(i))
	}
	for _, c := range []struct{ p, want float64 }{{0.5, 50}, {0.99, 99}, {1, 100}, {0.001, 1}} {
		if got := quantile(xs, c.p); got != c.want {
			t.Errorf("quantile(1..100, %v) = %v, want %v", c.p, got, c.want)
		}
	}
	if xs[0] != 100 {
		t.Error("quantile sorted its argument")
	}
	// Few samples: the p99 is the slowest, the p50 the middle one.
	five := []float64{5, 1, 4, 2, 3}
	if quantile(five, 0.99) != 5 || quantile(five, 0.5) != 3 {
		t.Errorf("quantile of 5 samples: p99 %v, p50 %v", quantile(five, 0.99), quantile(five, 0.5))
	}
	if quantile(nil, 0.5) != 0 {
		t.Error("quantile of nothing")
	}
}

func TestBytesPerKill(t *testing.T) {
	// A full list of 200,000 B polled every 5 s: 12 × 200,000 B a minute,
	// shared by 1,000 kills.
	if got := pollBytesPerKill(200000, 5*time.Second, 1000); got != 2400 {
		t.Errorf("pollBytesPerKill = %v, want 2400", got)
	}
	if got := pollBytesPerKill(2000000, 5*time.Second, 10000); got != 2400 {
		t.Errorf("pollBytesPerKill = %v, want 2400", got)
	}
	if got := pollBytesPerKill(1, 0, 1000); got != 0 {
		t.Errorf("pollBytesPerKill with no interval = %v", got)
	}
	// Listed for 60 s of credentials plus the 1-minute grace.
	if got := listTarget(1000, 2*time.Minute); got != 2000 {
		t.Errorf("listTarget = %d", got)
	}
	if got := listTarget(10000, 2*time.Minute); got != 20000 {
		t.Errorf("listTarget = %d", got)
	}
	bs := []KillBytes{{ListEntries: 2000, FullWire: 200300}, {ListEntries: 8000, FullWire: 800300}}
	if got := bytesPerEntry(bs); got != 100 {
		t.Errorf("bytesPerEntry = %v, want 100", got)
	}
	if got := bytesPerEntry(bs[:1]); got != 100.15 {
		t.Errorf("bytesPerEntry of one list = %v", got)
	}
	if durLabel(60) != "1 min" || durLabel(5) != "5 s" || durLabel(120) != "2 min" || durLabel(90) != "90 s" {
		t.Errorf("durLabel: %s %s %s %s", durLabel(60), durLabel(5), durLabel(120), durLabel(90))
	}
}

func TestMedianByRate(t *testing.T) {
	rs := []RateResult{{Label: "a", PerSec: 300}, {Label: "b", PerSec: 100}, {Label: "c", PerSec: 200}}
	if got := medianByRate(rs); got.Label != "c" {
		t.Fatalf("median of three: got %q, want c", got.Label)
	}
	if got := medianByRate(rs[:2]); got.Label != "b" {
		t.Fatalf("median of two: got %q, want the lower, b", got.Label)
	}
	if got := medianByRate(rs[:1]); got.Label != "a" {
		t.Fatalf("median of one: got %q", got.Label)
	}
	if rs[0].Label != "a" || rs[1].Label != "b" {
		t.Fatal("medianByRate reordered its argument")
	}
}

// TestMergeSaysWhereEachScenarioCameFrom: merging runs of single
// scenarios keeps, for each scenario, the run it came from, and the
// report says so in one note.
func TestMergeSaysWhereEachScenarioCameFrom(t *testing.T) {
	full := &Results{Scenarios: []string{"verify", "rates", "scale", "identity"}, Env: Env{Date: "d1", Source: "p1"},
		Notes: []string{"a note of the full run"}}
	scale := &Results{Scenarios: []string{"scale"}, Env: Env{Date: "d2", Source: "p2"}}
	identity := &Results{Scenarios: []string{"identity"}, Env: Env{Date: "d3", Source: "p3"}}

	got := full.mergedWith(scale).mergedWith(identity)
	want := "Scenarios from earlier runs: verify, rates (d1, plugin p1); scale (d2, plugin p2); identity from this one."
	if n := got.originNote(); n != want {
		t.Fatalf("origin note:\n got %q\nwant %q", n, want)
	}
	if len(got.Notes) != 1 || got.Notes[0] != "a note of the full run" {
		t.Fatalf("notes: %q", got.Notes)
	}
	if got.Env.Date != "d3" {
		t.Fatalf("env: %+v", got.Env)
	}
	if n := identity.originNote(); n != "" {
		t.Fatalf("a run of its own says nothing: %q", n)
	}
	// A rerun of every scenario forgets the earlier runs.
	again := got.mergedWith(&Results{Scenarios: []string{"verify", "rates", "scale", "identity"}, Env: Env{Date: "d4"}})
	if n := again.originNote(); n != "" {
		t.Fatalf("after a full rerun: %q", n)
	}
}

// 7c holds only when token exchange keeps up with identity tokens with and
// without an audit device.
func TestExchangeVerdictNeedsBothRows(t *testing.T) {
	rate := func(v float64) RateResult { return RateResult{PerSec: v} }
	for _, c := range []struct {
		exchange, exchangeAudit float64
		want                    string
	}{
		{110, 101, "yes"},
		{110, 94, "no"},
		{95, 120, "no"},
		{110, 0, "yes"}, // an earlier run without the audited row
	} {
		r := &Results{Identity: &IdentityResult{
			Identity: rate(100), IdentityAudit: rate(100),
			Exchange: rate(c.exchange), ExchangeAudit: rate(c.exchangeAudit),
		}}
		v := r.identityVerdicts()[2]
		if v.ID != "7c" || v.Met != c.want {
			t.Errorf("exchange %v, audited %v: verdict %s %q, want %q (%s)", c.exchange, c.exchangeAudit, v.ID, v.Met, c.want, v.Measured)
		}
	}
}
