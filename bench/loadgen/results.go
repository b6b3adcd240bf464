package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"time"
)

// Results is everything one run measured. It is saved as JSON (-results)
// so the report and the picture can be drawn again (-render-only).
type Results struct {
	Env     Env             `json:"env"`
	Run     RunSettings     `json:"run"`
	Rates   []RateResult    `json:"rates,omitempty"`
	Ends    []EndResult     `json:"ends,omitempty"`
	Revokes []RevokeResult  `json:"revokes,omitempty"`
	Verify  *VerifyResult   `json:"verify,omitempty"`
	Storage []StorageSample `json:"storage,omitempty"`
	Memory  []MemSample     `json:"memory,omitempty"`
	Micro   []MicroResult   `json:"micro,omitempty"`
	// Propagation is the kill → refusal scenario (issue 15 §3).
	Propagation *PropagationResult `json:"propagation,omitempty"`
	// Scale is the scale-in-sessions scenario (issue 20).
	Scale *ScaleResult `json:"scale,omitempty"`
	// Identity is step credentials beside identity tokens (issue 21).
	Identity *IdentityResult `json:"identity,omitempty"`
	Notes    []string        `json:"notes,omitempty"`
	// Origins names, for each scenario kept from an earlier run, the run
	// it came from (its date and plugin); a scenario not listed is from
	// the run of Env.
	Origins map[string]string `json:"origins,omitempty"`
	// WriteProbeMs is the median time of one idle storage write through
	// Vault (a sys/raw PUT), for scale; 0 when not measured.
	WriteProbeMs float64  `json:"write_probe_ms,omitempty"`
	Scenarios    []string `json:"scenarios"`
}

// Env describes the machine and the software measured.
type Env struct {
	Date          string `json:"date"`
	CPUModel      string `json:"cpu_model"`
	NProc         int    `json:"nproc"`
	Memory        string `json:"memory"`
	Kernel        string `json:"kernel"`
	GoVersion     string `json:"go_version"`
	VaultVersion  string `json:"vault_version"`
	PluginVersion string `json:"plugin_version"`
	PluginSHA     string `json:"plugin_sha256"`
	Source        string `json:"source"`
	RaftFS        string `json:"raft_fs"`
}

// RunSettings are the load generator's settings for the run.
type RunSettings struct {
	Concurrency    int     `json:"concurrency"`
	DurationS      float64 `json:"duration_s"`
	WarmupS        float64 `json:"warmup_s"`
	EndCounts      []int   `json:"end_counts"`
	RevokeChildren []int   `json:"revoke_children"`
	VerifyS        float64 `json:"verify_s"`
	MaxCreds       int     `json:"max_creds"`
}

// RateResult is one throughput scenario.
type RateResult struct {
	Name    string  `json:"name"`
	Label   string  `json:"label"`
	Request string  `json:"request"`
	Ops     int64   `json:"ops"`
	Errors  int64   `json:"errors"`
	Seconds float64 `json:"seconds"`
	PerSec  float64 `json:"per_sec"`
	P50ms   float64 `json:"p50_ms"`
	P99ms   float64 `json:"p99_ms"`
	// CPU time per request, in µs, of each process (-1: unknown).
	VaultCPUus   float64 `json:"vault_cpu_us"`
	PluginCPUus  float64 `json:"plugin_cpu_us"`
	LoadgenCPUus float64 `json:"loadgen_cpu_us"`
	// Busy is the machine's CPU use by these three processes during the
	// window, as a fraction of all cores.
	Busy     float64 `json:"busy"`
	FirstErr string  `json:"first_error,omitempty"`
}

// EndResult is the time to end sessions that issued N credentials.
type EndResult struct {
	N               int       `json:"n"`
	Sessions        int       `json:"sessions"` // sessions of N credentials, filled in parallel, each ended once
	SamplesMs       []float64 `json:"samples_ms"`
	MedianMs        float64   `json:"median_ms"`
	IssueSeconds    float64   `json:"issue_seconds"` // time to fill the sessions
	IssueRate       float64   `json:"issue_rate"`    // credentials per second into them, in all
	RevokedAfterEnd bool      `json:"revoked_after_end"`
}

// RevokeResult is the time Vault takes to revoke a token tree.
type RevokeResult struct {
	Children      int     `json:"children"`
	Ms            float64 `json:"ms"`
	CreateSeconds float64 `json:"create_seconds"`
	ChildGone     bool    `json:"child_gone"`
}

// VerifyResult compares offline verification with raw ed25519.Verify.
type VerifyResult struct {
	TokenBytes   int     `json:"token_bytes"`
	SignedBytes  int     `json:"signed_bytes"`
	RawPerSec    float64 `json:"raw_per_sec"`
	TokenPerSec  float64 `json:"token_per_sec"`
	VerifierPS   float64 `json:"verifier_per_sec"`
	AuthorizePS  float64 `json:"authorize_per_sec"`
	RoundSeconds float64 `json:"round_seconds"`
	Rounds       int     `json:"rounds"`
}

// StorageSample is the storage growth over N credentials issued into one
// (already started) session.
type StorageSample struct {
	N             int   `json:"n"`              // credentials per session
	Sessions      int   `json:"sessions"`       // sessions filled (N each)
	SnapshotDelta int64 `json:"snapshot_delta"` // bytes of `vault operator raft snapshot save`
	RawDelta      int64 `json:"raw_delta"`      // bytes (keys + values) of the mount's storage, via sys/raw; -1 unknown
	RawKeysDelta  int64 `json:"raw_keys_delta"`
	RawTotal      int64 `json:"raw_total"`
	RawKeys       int64 `json:"raw_keys"`
}

// MemSample is the plugin process's memory after some issuances.
type MemSample struct {
	Issued   int   `json:"issued"`   // into each session
	Sessions int   `json:"sessions"` // sessions filled in parallel
	RSSKB    int64 `json:"rss_kb"`
	PID      int   `json:"pid"`
}

// MicroResult is one line of `go test -bench` output.
type MicroResult struct {
	Package string             `json:"package"`
	Name    string             `json:"name"`
	Iters   int64              `json:"iters"`
	Metrics map[string]float64 `json:"metrics"`
	Units   []string           `json:"units"` // in output order
}

// PropagationResult is how long a kill takes to reach resource servers,
// and what the revocation list costs them per kill.
type PropagationResult struct {
	// PollS is the interval of plain polling, method (a).
	PollS float64 `json:"poll_s"`
	// StepMaxTTLS is the propagation role's step_max_ttl (= its step_ttl):
	// the engine lists a killed session for that long plus GraceS.
	StepMaxTTLS float64 `json:"step_max_ttl_s"`
	GraceS      float64 `json:"grace_s"`
	Rounds      int     `json:"rounds"` // kills per method and N
	// SweepUs is how often each verifier was checked for the refusal.
	SweepUs float64          `json:"sweep_us"`
	Rows    []PropagationRow `json:"rows,omitempty"`
	Bytes   []KillBytes      `json:"bytes,omitempty"`
	// BytesErr says why the bytes were not measured, if they were not.
	BytesErr string `json:"bytes_error,omitempty"`
}

// Propagation methods.
const (
	propPoll     = "poll"     // (a) the whole list every PollS
	propBlocking = "blocking" // (b) a held revocations query with deltas
	propSSF      = "ssf"      // (c) SSF push (RFC 8935) to a SET receiver
)

// PropagationRow is kill → refusal for one method and N resource servers.
type PropagationRow struct {
	Method string `json:"method"`
	N      int    `json:"n"` // resource servers (verifiers), each with a credential of the killed session
	Rounds int    `json:"rounds"`
	// SamplesMs: for every round and every verifier that refused in
	// time, refusal − the moment the end request was sent.
	SamplesMs []float64 `json:"samples_ms,omitempty"`
	Missed    int       `json:"missed"` // verifiers that had not refused within the round's bound
	P50ms     float64   `json:"p50_ms"`
	P99ms     float64   `json:"p99_ms"`
	MaxMs     float64   `json:"max_ms"`
	// EndMs is the median time the end request took to be answered.
	EndMs float64 `json:"end_ms"`
	// NotMeasured says why the row was not measured ("" when it was).
	NotMeasured string `json:"not_measured,omitempty"`
}

// KillBytes is what a verifier fetches per kill at one kill rate: the
// revocation list filled with the sessions it would hold at that rate.
type KillBytes struct {
	KillsPerMin int `json:"kills_per_min"`
	// ListTarget is what the list would hold at that rate: kills per
	// minute × (step_max_ttl + grace) in minutes.
	ListTarget int `json:"list_target"`
	// ListEntries is what the full answer measured held.
	ListEntries int     `json:"list_entries"`
	Filled      int     `json:"filled"` // sessions started and ended to fill it
	FillSeconds float64 `json:"fill_seconds"`
	// FullWire is the bytes of one full GET revocations answer as
	// received (status line, headers and body, with Accept-Encoding: gzip
	// as Go's client sends); FullBody its decoded JSON body.
	FullWire int  `json:"full_wire"`
	FullBody int  `json:"full_body"`
	Gzip     bool `json:"gzip"`
	// DeltaWire and DeltaBody: one answer with the one session a kill
	// added (after=<the version before it>).
	DeltaWire    int `json:"delta_wire"`
	DeltaBody    int `json:"delta_body"`
	DeltaEntries int `json:"delta_entries"`
	// NewVerifier: whether verifier.New (which fetches the whole list)
	// succeeded against the filled list, and its error if not.
	NewVerifierOK  bool   `json:"new_verifier_ok"`
	NewVerifierErr string `json:"new_verifier_error,omitempty"`
}

func (r *Results) rate(name string) *RateResult {
	for i := range r.Rates {
		if r.Rates[i].Name == name {
			return &r.Rates[i]
		}
	}
	return nil
}

func (r *Results) save(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func loadResults(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// percentile of sorted durations in ms.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p * float64(len(sorted)-1))
	return sorted[i]
}

// quantile is the nearest-rank p-quantile of xs (0 < p ≤ 1): the smallest
// sample with at least p of the samples at or below it. With few samples
// the p99 is the slowest one, never an interpolation below it.
func quantile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	k := int(math.Ceil(p*float64(len(s)))) - 1
	return s[min(max(k, 0), len(s)-1)]
}

// pollBytesPerKill is what a verifier polling the whole list every poll
// fetches per kill: answers of fullBytes, 1 minute / poll times a minute,
// shared by killsPerMin kills.
func pollBytesPerKill(fullBytes int, poll time.Duration, killsPerMin int) float64 {
	if poll <= 0 || killsPerMin <= 0 {
		return 0
	}
	return float64(fullBytes) * (float64(time.Minute) / float64(poll)) / float64(killsPerMin)
}

// listTarget is how many sessions the revocation list holds at a kill
// rate: each stays listed for hold (its credentials' lifetime plus the
// grace).
func listTarget(killsPerMin int, hold time.Duration) int {
	return int(math.Round(float64(killsPerMin) * hold.Minutes()))
}

// mergedWith returns r with the scenarios that later ran replaced by
// later's results: a run of one scenario updates its part of the report
// and keeps the rest. The machine and software are later's; the report
// says which scenarios came from which run.
func (r *Results) mergedWith(later *Results) *Results {
	out := *r
	ran := map[string]bool{}
	for _, s := range later.Scenarios {
		ran[s] = true
	}
	if ran["verify"] {
		out.Verify = later.Verify
	}
	if ran["rates"] {
		out.Rates = later.Rates
	}
	if ran["sessions"] {
		out.Ends, out.Storage, out.Memory, out.WriteProbeMs = later.Ends, later.Storage, later.Memory, later.WriteProbeMs
	}
	if ran["revoke"] {
		out.Revokes = later.Revokes
	}
	if ran["propagation"] {
		out.Propagation = later.Propagation
	}
	if ran["scale"] {
		out.Scale = later.Scale
	}
	if ran["identity"] {
		out.Identity = later.Identity
	}
	out.Micro = mergeMicro(r.Micro, later.Micro)
	out.Notes = nil
	for _, n := range append(append([]string(nil), r.Notes...), later.Notes...) {
		if !strings.HasPrefix(n, originNotePrefix) { // said again, from Origins
			out.Notes = append(out.Notes, n)
		}
	}
	var kept []string
	out.Origins = map[string]string{}
	for _, s := range r.Scenarios {
		if !ran[s] {
			kept = append(kept, s)
			out.Origins[s] = r.origin(s)
		}
	}
	if len(out.Origins) == 0 {
		out.Origins = nil
	}
	out.Env = later.Env
	out.Scenarios = append(kept, later.Scenarios...)
	return &out
}

// originNotePrefix begins the note that says which run each scenario
// came from.
const originNotePrefix = "Scenarios from earlier runs: "

// origin is the run scenario s of r came from.
func (r *Results) origin(s string) string {
	if o, ok := r.Origins[s]; ok {
		return o
	}
	return fmt.Sprintf("%s, plugin %s", r.Env.Date, r.Env.Source)
}

// originNote says which scenarios came from earlier runs, and from which,
// or "" when every scenario is from the run of Env.
func (r *Results) originNote() string {
	if len(r.Origins) == 0 {
		return ""
	}
	byRun := map[string][]string{}
	var runs []string
	for _, s := range r.Scenarios {
		o, ok := r.Origins[s]
		if !ok {
			continue
		}
		if _, seen := byRun[o]; !seen {
			runs = append(runs, o)
		}
		byRun[o] = append(byRun[o], s)
	}
	var parts []string
	for _, o := range runs {
		parts = append(parts, fmt.Sprintf("%s (%s)", strings.Join(byRun[o], ", "), o))
	}
	var fresh []string
	for _, s := range r.Scenarios {
		if _, ok := r.Origins[s]; !ok {
			fresh = append(fresh, s)
		}
	}
	return originNotePrefix + strings.Join(parts, "; ") + "; " + strings.Join(fresh, ", ") + " from this one."
}

// mergeMicro returns the micro-benchmarks of earlier, each replaced by
// later's result of the same package and name, and later's others after
// them.
func mergeMicro(earlier, later []MicroResult) []MicroResult {
	key := func(m MicroResult) string { return m.Package + " " + m.Name }
	newer := map[string]MicroResult{}
	for _, m := range later {
		newer[key(m)] = m
	}
	var out []MicroResult
	for _, m := range earlier {
		if n, ok := newer[key(m)]; ok {
			m = n
			delete(newer, key(m))
		}
		out = append(out, m)
	}
	for _, m := range later {
		if _, ok := newer[key(m)]; ok {
			out = append(out, m)
		}
	}
	return out
}
