// Command loadgen is the benchmark harness of the agent secrets engine
// (issue 8). It drives a running Vault (a throw-away single-node server on
// raft storage, started by scripts/bench.sh) with the same load generator
// and concurrency for every scenario:
//
//   - rates:    step credentials issued per second (PUT agent/creds/<id>)
//     beside auth/token/create (as root, and by an ordinary token holding
//     the default policy, like the agent), the engine's jwks read (the
//     cheapest request through an external plugin), a session read as the
//     agent (the cheapest authenticated one), a kv-v2 write and token
//     lookup-self;
//   - sessions: time to end a session after N issued credentials, with the
//     storage growth per credential and the plugin's memory along the way;
//   - revoke:   time Vault takes to revoke a token with C child tokens;
//   - verify:   offline verification per second in the verifier and token
//     packages beside raw ed25519.Verify;
//   - propagation: kill → refusal (issue 15 §3): the time from ending a
//     session to its credentials being refused by 1, 10 and 100 resource
//     servers (real verifier.Verifier instances in this process), learning
//     of it by (a) polling the whole revocation list every 5s, (b) a
//     blocking revocations query with deltas (the verifier's default) and
//     (c) SSF push to the verifier's SET receiver; and the bytes a
//     verifier fetches per kill at 1,000 and 10,000 kills a minute, whole
//     list vs deltas, from answers measured with the list filled.
//
// It writes BENCHMARKS.md and BENCHMARKS.svg. Timings are reported, never
// asserted. Every loop is bounded in count and time.
//
//	go run ./bench/loadgen -addr http://127.0.0.1:8200 -token <root> -max-creds 10000
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	addr, token, mount string
	concurrency        int
	duration, warmup   time.Duration
	scenarios          map[string]bool
	rates              []string
	endCounts          []int
	maxCreds           int
	endReps            int
	endBudget          int
	revokeChildren     []int
	verifyDuration     time.Duration
	verifyRounds       int
	pluginCmd          string
	vaultPID           int
	outMD, outSVG      string
	resultsJSON        string
	renderOnly         string
	micro              string
	cpuProfile         string
	vaultProfile       string
	pluginVersion      string
	pluginSHA          string
	source             string
	raftDir            string
	timeout            time.Duration
	kvMount            string
	profileScenario    string
	pluginSignals      bool
	propCounts         []int
	propRounds         int
	propPoll           time.Duration
	propTimeout        time.Duration
	propKillRates      []int
	propFillTime       time.Duration
	propMethods        []string
	scaleCounts        []int
	scaleTidy          bool
	scaleTidyTimeout   time.Duration
	scaleFinish        int
	merge              string
	identityRounds     int
}

// allScenarios, in the order they run.
var allScenarios = []string{"verify", "rates", "sessions", "revoke", "propagation", "scale", "identity"}

func main() {
	log.SetFlags(log.Ltime)
	log.SetPrefix("loadgen: ")
	cfg := parseFlags()

	if cfg.renderOnly != "" {
		res, err := loadResults(cfg.renderOnly)
		if err != nil {
			log.Fatal(err)
		}
		if cfg.micro != "" {
			// Added to the results' own: a run of a few benchmarks updates
			// their rows and keeps the others.
			res.Micro = mergeMicro(res.Micro, parseMicroFile(cfg.micro))
		}
		if cfg.resultsJSON != "" {
			if err := res.save(cfg.resultsJSON); err != nil {
				log.Fatal(err)
			}
		}
		if err := writeOutputs(cfg, res); err != nil {
			log.Fatal(err)
		}
		return
	}

	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}

	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	res, err := run(ctx, cfg)
	if res != nil {
		if cfg.micro != "" {
			res.Micro = parseMicroFile(cfg.micro)
		}
		if cfg.merge != "" {
			earlier, merr := loadResults(cfg.merge)
			if merr != nil {
				log.Fatal(merr)
			}
			res = earlier.mergedWith(res)
		}
		if cfg.resultsJSON != "" {
			if serr := res.save(cfg.resultsJSON); serr != nil {
				log.Printf("saving results: %v", serr)
			}
		}
		if werr := writeOutputs(cfg, res); werr != nil && err == nil {
			err = werr
		}
		fmt.Println("\ntargets:")
		for _, v := range res.verdicts() {
			fmt.Printf("  %-3s %-62s %-26s %-50s %s\n", v.ID, v.What, v.Target, v.Measured, v.Met)
		}
	}
	if err != nil {
		if cfg.cpuProfile != "" {
			pprof.StopCPUProfile()
		}
		log.Fatal(err)
	}
}

func parseFlags() *config {
	c := &config{}
	var scen, rates, ends, revokes, propCounts, propRates, propMethods string
	flag.StringVar(&c.addr, "addr", envOr("VAULT_ADDR", "http://127.0.0.1:8200"), "Vault address (loopback only)")
	flag.StringVar(&c.token, "token", os.Getenv("VAULT_TOKEN"), "a root token of that Vault")
	flag.StringVar(&c.mount, "mount", "agent", "mount path of the engine")
	flag.StringVar(&c.kvMount, "kv-mount", "bench-kv", "mount path of the kv-v2 engine the loadgen enables for the kv reference")
	flag.IntVar(&c.concurrency, "concurrency", 16, "concurrent requests (workers), the same for every scenario")
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "measured time per throughput scenario")
	flag.DurationVar(&c.warmup, "warmup", 2*time.Second, "unmeasured time before each throughput scenario's window")
	flag.StringVar(&scen, "scenarios", "all", "comma-separated: verify, rates, sessions, revoke, propagation, scale, identity (or all)")
	flag.StringVar(&rates, "rates", "creds,creds-nd,token,token-agent,jwks,session-read,kv,lookup",
		"throughput scenarios, run in this order: creds, creds-nd (agent token without the default policy), token (auth/token/create as root), "+
			"token-agent (auth/token/create by a non-root token with the default policy), jwks, session-read (GET agent/session/<id> as the agent), kv, lookup")
	flag.StringVar(&ends, "end-counts", "100,10000,100000", "credential counts after which a session is ended")
	flag.IntVar(&c.maxCreds, "max-creds", 100000, "cap on every end count (scales the sessions scenario down for a quick run)")
	flag.IntVar(&c.endReps, "end-reps", 5, "sessions ended per count (filled in parallel), while reps × count stays within -end-budget")
	flag.IntVar(&c.endBudget, "end-budget", 300000, "most credentials issued for one count, over all its sessions (at least one session)")
	flag.StringVar(&revokes, "revoke-children", "100,2000", "child-token counts for revoke-tree")
	flag.DurationVar(&c.verifyDuration, "verify-duration", 2*time.Second, "time per verification round and method")
	flag.IntVar(&c.verifyRounds, "verify-rounds", 3, "verification rounds (methods alternate; the best round counts)")
	flag.StringVar(&c.pluginCmd, "plugin-cmd", "", "the plugin's path in Vault's plugin directory (finds its process)")
	flag.IntVar(&c.vaultPID, "vault-pid", 0, "Vault's process ID (for its CPU time)")
	flag.StringVar(&c.outMD, "out-md", "BENCHMARKS.md", "report to write (empty: none)")
	flag.StringVar(&c.outSVG, "out-svg", "BENCHMARKS.svg", "picture to write (empty: none)")
	flag.StringVar(&c.resultsJSON, "results", "", "also save the raw results as JSON here")
	flag.StringVar(&c.renderOnly, "render-only", "", "only write the report and picture from a results JSON")
	flag.StringVar(&c.micro, "micro", "", "`go test -bench` output to include in the report")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "write the load generator's CPU profile here")
	flag.StringVar(&c.vaultProfile, "vault-profile", "", "write a CPU profile of Vault (sys/pprof) taken during the creds scenario here")
	flag.StringVar(&c.profileScenario, "profile-scenario", "creds", "the throughput scenario -vault-profile and -plugin-profile-signals profile")
	flag.BoolVar(&c.pluginSignals, "plugin-profile-signals", false, "send the plugin SIGUSR1/SIGUSR2 around that scenario's window (only for bench/pluginprof, which profiles between them)")
	flag.StringVar(&c.pluginVersion, "plugin-version", "", "the plugin version registered (for the report)")
	flag.StringVar(&c.pluginSHA, "plugin-sha", "", "the plugin binary's sha256 (for the report)")
	flag.StringVar(&c.source, "source", "", "what the plugin was built from (for the report)")
	flag.StringVar(&c.raftDir, "raft-dir", "", "Vault's raft data directory (for the report: its file system)")
	flag.StringVar(&propCounts, "prop-counts", "1,10,100", "propagation: resource servers (verifiers) per measurement")
	flag.IntVar(&c.propRounds, "prop-rounds", 5, "propagation: kills per method and resource-server count")
	flag.DurationVar(&c.propPoll, "prop-poll", 5*time.Second, "propagation: the plain polling interval of method (a)")
	flag.DurationVar(&c.propTimeout, "prop-timeout", 10*time.Second, "propagation: how long a round waits for every refusal (plus -prop-poll for polling)")
	flag.StringVar(&propRates, "prop-kill-rates", "1000,10000", "propagation: kills per minute at which the bytes per kill are measured (empty: none)")
	flag.DurationVar(&c.propFillTime, "prop-fill-time", 60*time.Second, "propagation: most time spent filling the revocation list for one kill rate")
	flag.StringVar(&propMethods, "prop-methods", "poll,blocking,ssf", "propagation: poll (a), blocking (b), ssf (c)")
	var scaleCounts string
	flag.StringVar(&scaleCounts, "scale-counts", "100,1000,10000,100000", "scale: live-session counts at which costs are measured")
	flag.BoolVar(&c.scaleTidy, "scale-tidy", true, "scale: end the sessions and measure the tidy that deletes them")
	flag.DurationVar(&c.scaleTidyTimeout, "scale-tidy-timeout", 30*time.Minute, "scale: most time to wait for the tidy")
	flag.IntVar(&c.identityRounds, "identity-rounds", 3, "identity: rounds of its rows (interleaved); each row reports its median round")
	flag.IntVar(&c.scaleFinish, "scale-finish", 0, "scale: how many sessions to end for the tidy to delete (0: all); the others stay live")
	flag.StringVar(&c.merge, "merge", "", "a results JSON of an earlier run: the report keeps its scenarios that this run does not run")
	flag.DurationVar(&c.timeout, "timeout", 2*time.Hour, "give up after this long")
	flag.Parse()

	c.scenarios = map[string]bool{}
	for _, s := range splitList(scen) {
		if s == "all" {
			for _, a := range allScenarios {
				c.scenarios[a] = true
			}
			continue
		}
		if !slices.Contains(allScenarios, s) {
			log.Fatalf("-scenarios: unknown scenario %q", s)
		}
		c.scenarios[s] = true
	}
	c.scaleCounts = parseInts("scale-counts", scaleCounts)
	c.propCounts = parseInts("prop-counts", propCounts)
	c.propKillRates = parseInts("prop-kill-rates", propRates)
	for _, m := range splitList(propMethods) {
		switch m {
		case propPoll, propBlocking, propSSF:
			if !slices.Contains(c.propMethods, m) {
				c.propMethods = append(c.propMethods, m)
			}
		default:
			log.Fatalf("-prop-methods: unknown method %q (poll, blocking, ssf)", m)
		}
	}
	if c.propRounds < 1 || c.propRounds > 1000 {
		log.Fatal("-prop-rounds: between 1 and 1000")
	}
	for _, n := range c.propCounts {
		if n > 1000 {
			log.Fatal("-prop-counts: at most 1000 resource servers")
		}
	}
	if c.propPoll < time.Second || c.propTimeout <= 0 || c.propFillTime <= 0 {
		log.Fatal("-prop-poll: at least 1s; -prop-timeout and -prop-fill-time: positive")
	}
	for _, r := range splitList(rates) {
		if _, ok := rateScenarios[r]; !ok {
			log.Fatalf("-rates: unknown scenario %q", r)
		}
		c.rates = append(c.rates, r)
	}
	c.endCounts = capCounts(parseInts("end-counts", ends), c.maxCreds)
	c.revokeChildren = parseInts("revoke-children", revokes)
	if c.concurrency < 1 || c.concurrency > 1024 {
		log.Fatal("-concurrency: between 1 and 1024")
	}
	if c.renderOnly == "" {
		if c.token == "" {
			log.Fatal("-token (or VAULT_TOKEN) is required")
		}
		if !loopback(c.addr) {
			log.Fatalf("-addr %s: only a loopback Vault (127.0.0.1, localhost) is benchmarked", c.addr)
		}
	}
	return c
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseInts(name, s string) []int {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(strings.ReplaceAll(f, "_", ""))
		if err != nil || n < 1 {
			log.Fatalf("-%s: %q is not a positive count", name, f)
		}
		out = append(out, n)
	}
	return out
}

// capCounts caps every count at max, keeping them in order without
// duplicates.
func capCounts(counts []int, max int) []int {
	var out []int
	seen := map[int]bool{}
	for _, n := range counts {
		if max > 0 && n > max {
			n = max
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

func loopback(addr string) bool {
	for _, p := range []string{"http://127.0.0.1:", "https://127.0.0.1:", "http://localhost:", "https://localhost:", "http://[::1]:", "https://[::1]:"} {
		if strings.HasPrefix(addr, p) {
			return true
		}
	}
	return false
}

// run measures every selected scenario. It returns what it has measured so
// far even when it fails, so a partial report is still written.
func run(ctx context.Context, cfg *config) (*Results, error) {
	h, err := newHarness(ctx, cfg)
	if err != nil {
		return nil, err
	}
	res := &Results{
		Env: Env{
			Date:          time.Now().UTC().Format("2006-01-02 15:04 MST"),
			CPUModel:      cpuModel(),
			NProc:         runtime.NumCPU(),
			Memory:        memTotal(),
			Kernel:        kernelRelease(),
			GoVersion:     runtime.Version(),
			VaultVersion:  h.vaultVersion,
			PluginVersion: cfg.pluginVersion,
			PluginSHA:     cfg.pluginSHA,
			Source:        cfg.source,
			RaftFS:        fsType(cfg.raftDir),
		},
		Run: RunSettings{
			Concurrency:    cfg.concurrency,
			DurationS:      cfg.duration.Seconds(),
			WarmupS:        cfg.warmup.Seconds(),
			EndCounts:      cfg.endCounts,
			RevokeChildren: cfg.revokeChildren,
			VerifyS:        cfg.verifyDuration.Seconds(),
			MaxCreds:       cfg.maxCreds,
		},
	}
	h.res = res
	// Order: offline verification first, while Vault is idle; then the
	// throughput scenarios (creds first, which also warms the plugin up
	// before its memory is sampled; after the auth/token/create scenarios
	// the expiry of their 60s tokens is waited out before anything else is
	// timed); then the sessions and revoke-tree latencies; last the kill →
	// refusal scenario, whose fill of the revocation list (thousands of
	// sessions started and ended) would disturb anything after it.
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"verify", h.scenarioVerify},
		{"rates", h.scenarioRates},
		{"sessions", h.scenarioSessions},
		{"revoke", h.scenarioRevoke},
		{"propagation", h.scenarioPropagation},
		{"scale", h.scenarioScale},
		// Last: its audit device, while enabled, slows every request.
		{"identity", h.scenarioIdentity},
	}
	for _, s := range steps {
		if !cfg.scenarios[s.name] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("before %s: %w", s.name, err)
		}
		log.Printf("== %s", s.name)
		t0 := time.Now()
		if err := s.fn(ctx); err != nil {
			return res, fmt.Errorf("%s: %w", s.name, err)
		}
		res.Scenarios = append(res.Scenarios, s.name)
		log.Printf("== %s done in %s", s.name, time.Since(t0).Round(time.Second))
	}
	return res, nil
}

func writeOutputs(cfg *config, res *Results) error {
	if cfg.outMD != "" {
		if err := os.WriteFile(cfg.outMD, []byte(renderMarkdown(res, cfg.outSVG)), 0o644); err != nil {
			return err
		}
		log.Printf("wrote %s", cfg.outMD)
	}
	if cfg.outSVG != "" {
		if err := os.WriteFile(cfg.outSVG, []byte(renderSVG(res)), 0o644); err != nil {
			return err
		}
		log.Printf("wrote %s", cfg.outSVG)
		if res.Scale != nil {
			path := scaleSVGPath(cfg.outSVG)
			if err := os.WriteFile(path, []byte(renderScaleSVG(res)), 0o644); err != nil {
				return err
			}
			log.Printf("wrote %s", path)
		}
		if res.Identity != nil {
			path := identitySVGPath(cfg.outSVG)
			if err := os.WriteFile(path, []byte(renderIdentitySVG(res)), 0o644); err != nil {
				return err
			}
			log.Printf("wrote %s", path)
		}
	}
	return nil
}
