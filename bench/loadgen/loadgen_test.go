package main

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
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
	want := map[string]string{"1": "yes", "2a": "yes", "2b": "yes", "3": "yes", "4a": "partly: yes in sessions of 100,000, no in sessions of 100", "4b": "yes"}
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
