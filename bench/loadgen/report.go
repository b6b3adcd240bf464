package main

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"time"
)

// renderMarkdown writes BENCHMARKS.md.
func renderMarkdown(r *Results, svgPath string) string {
	var b strings.Builder
	p := func(format string, a ...interface{}) { fmt.Fprintf(&b, format, a...) }

	p("# Benchmarks\n\n")
	p("Written by `make bench` (`scripts/bench.sh`, which runs `bench/loadgen` against a throw-away\n")
	p("single-node Vault on integrated raft storage with the plugin mounted at `agent/`). Every\n")
	p("scenario below ran in one run, with the same load generator (`vault/api`, retries off) and\n")
	p("the same concurrency. Timings are measured here, never asserted in tests.\n\n")

	p("## Machine and software\n\n")
	p("| | |\n|---|---|\n")
	p("| date | %s |\n", r.Env.Date)
	p("| CPU | %s |\n", mdEsc(r.Env.CPUModel))
	p("| cores (`nproc`) | %d |\n", r.Env.NProc)
	p("| memory | %s |\n", r.Env.Memory)
	p("| kernel | %s |\n", r.Env.Kernel)
	if r.Env.RaftFS != "" {
		p("| raft data on | %s |\n", r.Env.RaftFS)
	}
	p("| Go | %s |\n", r.Env.GoVersion)
	p("| Vault | %s |\n", r.Env.VaultVersion)
	if r.Env.PluginVersion != "" {
		p("| plugin | vault-plugin-secrets-agent %s |\n", r.Env.PluginVersion)
	}
	if r.Env.PluginSHA != "" {
		p("| plugin sha256 | `%s` |\n", r.Env.PluginSHA)
	}
	if r.Env.Source != "" {
		p("| built from | %s |\n", mdEsc(r.Env.Source))
	}
	p("| concurrency | %d requests in flight (the load generator runs on the same machine) |\n", r.Run.Concurrency)
	p("| throughput window | %.0f s per scenario, after %.0f s of warm-up |\n", r.Run.DurationS, r.Run.WarmupS)
	p("\n")

	p("## Targets\n\n")
	p("| # | what | target | measured | met |\n|---|---|---|---|---|\n")
	for _, v := range r.verdicts() {
		m := v.Measured
		if m == "" {
			m = "–"
		}
		p("| %s | %s | %s | %s | **%s** |\n", v.ID, v.What, v.Target, m, v.Met)
	}
	p("\n")
	if svgPath != "" {
		p("![Issuance rates; session end and revoke-tree time against credential count; kill → refusal by plain polling, blocking query and SSF push](%s)\n\n", filepath.Base(svgPath))
	}

	if len(r.Rates) > 0 {
		p("## 1. Throughput\n\n")
		p("Each row: %d workers send the request in a loop for %.0f s (after %.0f s of warm-up); a request counts\n",
			r.Run.Concurrency, r.Run.DurationS, r.Run.WarmupS)
		p("when it starts and ends inside the window. CPU per request is the growth of each process's user+system\n")
		p("time (`/proc/<pid>/stat`) over the window divided by the requests; *busy* is all three processes' CPU\n")
		p("over the window as a share of all %d cores.\n\n", r.Env.NProc)
		p("| | request | per second | p50 | p99 | errors | Vault CPU/req | plugin CPU/req | loadgen CPU/req | busy |\n")
		p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, x := range displayOrder(r.Rates) {
			p("| %s | %s | **%s** | %.2f ms | %.2f ms | %d | %s | %s | %s | %.0f%% |\n",
				mdEsc(x.Label), mdEsc(x.Request), num(x.PerSec), x.P50ms, x.P99ms, x.Errors, us(x.VaultCPUus), us(x.PluginCPUus), us(x.LoadgenCPUus), 100*x.Busy)
		}
		p("\n")
		errList := false
		for _, x := range displayOrder(r.Rates) {
			if x.FirstErr != "" {
				p("- %s: first error: `%s`\n", x.Label, mdEsc(x.FirstErr))
				errList = true
			}
		}
		if errList {
			p("\n") // end the list before the paragraphs
		}
		if c := r.rate("creds"); c != nil {
			para := false
			if t := r.rate("token"); t != nil && t.PerSec > 0 {
				p("Step credentials are issued at **%.2f×** the rate of `auth/token/create` as root", c.PerSec/t.PerSec)
				if j := r.rate("jwks"); j != nil && j.PerSec > 0 {
					p(", and at %.0f%% of the rate of the plugin's cheapest request (`jwks`, unauthenticated)", 100*c.PerSec/j.PerSec)
				}
				p(".\n")
				para = true
			}
			if ta := r.rate("token-agent"); ta != nil && ta.PerSec > 0 {
				p("Against `auth/token/create` called by an ordinary token that, like the agent's, holds the default policy\n")
				p("(%s/s), the factor is **%.2f×**; the target is set against the root row.\n", num(ta.PerSec), c.PerSec/ta.PerSec)
				para = true
			}
			if sr := r.rate("session-read"); sr != nil && sr.PerSec > 0 {
				p("The cheapest authenticated request through the plugin, `GET agent/session/<session>` with the agent's token,\n")
				p("runs at %s/s; issuance runs at **%.0f%%** of that rate. An issuance takes the same path as that read (Vault\n", num(sr.PerSec), 100*c.PerSec/sr.PerSec)
				p("checks the token and its policies and passes the request to the plugin, which looks the session up) and then\n")
				p("signs and records a credential, so it cannot be faster than the read: the percentage is how much of that\n")
				p("ceiling the engine reaches.\n")
				para = true
			}
			if para {
				p("\n")
			}
		}
		if c, nd := r.rate("creds"), r.rate("creds-nd"); c != nil && nd != nil && c.PerSec > 0 {
			p("The same issuance with an agent token created with `no_default_policy=true` runs at %s/s (%+.0f%%): Vault\n", num(nd.PerSec), 100*(nd.PerSec/c.PerSec-1))
			p("re-parses the default policy, which is templated, on every request of a token that holds it\n")
			p("(`PolicyStore.ACL` → `parseACLPolicyWithTemplating` in a CPU profile of Vault); its CPU per request drops\n")
			p("from %s to %s. The first row, with the default policy, is the one compared with the target.\n\n", us(c.VaultCPUus), us(nd.VaultCPUus))
		}
		if c := r.rate("creds"); c != nil && c.VaultCPUus >= 0 && c.PluginCPUus >= 0 && c.LoadgenCPUus >= 0 {
			total := c.VaultCPUus + c.PluginCPUus + c.LoadgenCPUus
			p("Where an issuance's time goes: each credential cost %.0f µs of CPU in all (Vault %.0f%%, the plugin %.0f%%,\n",
				total, 100*c.VaultCPUus/total, 100*c.PluginCPUus/total)
			p("the load generator %.0f%%). On %d cores that allows at most about %s/s; the run reached %s/s with the\n",
				100*c.LoadgenCPUus/total, r.Env.NProc, num(float64(r.Env.NProc)*1e6/total), num(c.PerSec))
			p("machine %.0f%% busy.", 100*c.Busy)
			for _, m := range r.Micro {
				if strings.HasPrefix(m.Name, "BenchmarkIssueCredential-") {
					p(" The engine's own work, measured in process on in-memory storage (`BenchmarkIssueCredential`), is\n")
					p("%.0f µs of it, with %.2f storage writes (puts) and %.2f deletes per credential.", m.Metrics["ns/op"]/1000, m.Metrics["puts/op"], m.Metrics["deletes/op"])
				}
			}
			p("\n\n")
		}
	}

	if len(r.Ends) > 0 || len(r.Revokes) > 0 {
		p("## 2. Ending a session vs revoking a token tree\n\n")
		p("For each count N, several sessions are started and filled with N credentials each, in parallel\n")
		p("(%d workers spread over them; the engine issues one session's credentials one at a time). Then\n", r.Run.Concurrency)
		p("each session in turn is left alone for 1 s and `PUT agent/sessions/<id>/end` is timed, as the agent;\n")
		p("`introspect` must then call the session's last credential inactive. The time shown is the median\n")
		p("over the sessions. For comparison, a token is given C child tokens (created by the parent, in\n")
		p("parallel) and `auth/token/revoke` (revoke-tree) of the parent is timed, as root.\n\n")
		p("| operation | count | time (median) | samples | sessions filled at | credentials revoked afterwards |\n|---|---:|---:|---|---|---|\n")
		for _, e := range r.Ends {
			var ss []string
			for _, s := range e.SamplesMs {
				ss = append(ss, fmt.Sprintf("%.1f", s))
			}
			p("| end a session | %s credentials | **%.1f ms** | %s ms | %s credentials/s (%d sessions in parallel) | %s |\n",
				num(float64(e.N)), e.MedianMs, strings.Join(ss, ", "), num(e.IssueRate), e.Sessions, yesNo(e.RevokedAfterEnd))
		}
		for _, x := range r.Revokes {
			p("| revoke-tree | %s child tokens | **%s** | %s | %.1f s to create the children | %s |\n",
				num(float64(x.Children)), msOrS(x.Ms), msOrS(x.Ms), x.CreateSeconds, yesNo(x.ChildGone))
		}
		p("\n")
		if r.WriteProbeMs > 0 {
			p("For scale: one storage write through Vault while it is idle (a `sys/raw` PUT: one raft log entry,\n")
			p("applied and fsync'd, no engine involved) takes %.2f ms (median of %d).", r.WriteProbeMs, probeWrites)
			if e := r.largestEnd(); e != nil {
				p(" Ending the session with %s credentials took as long as %.1f such writes.", num(float64(e.N)), e.MedianMs/r.WriteProbeMs)
			}
			p("\n\n")
		}
	}

	if r.Verify != nil {
		x := r.Verify
		p("## 3. Offline verification\n\n")
		p("One credential issued by the engine (%d bytes; %d signed bytes), verified in one goroutine\n", x.TokenBytes, x.SignedBytes)
		p("for %.0f s per method, %d rounds with the methods alternating; the best round of each counts. Keys come from\n", x.RoundSeconds, x.Rounds)
		p("`agent/jwks`. `verifier.Verify` is the resource-server package (JWKS cache, revocation list, and\n")
		p("`token.Verify` inside); `Authorize` adds the scope check.\n\n")
		p("| method | per second | per credential | vs raw |\n|---|---:|---:|---:|\n")
		row := func(name string, ps float64) {
			if ps <= 0 {
				return
			}
			p("| %s | %s | %.1f µs | %.2f× |\n", name, num(ps), 1e6/ps, x.RawPerSec/ps)
		}
		row("raw `ed25519.Verify` (same signature, same signing input)", x.RawPerSec)
		row("`token.Verify` (keys from jwks)", x.TokenPerSec)
		row("`verifier.Verifier.Verify`", x.VerifierPS)
		row("`verifier.Verifier.Authorize` (+ scope match)", x.AuthorizePS)
		p("\n")
	}
	renderDPoP(p, r)

	if len(r.Storage) > 0 || len(r.Memory) > 0 {
		p("## 4. Storage and memory\n\n")
	}
	if len(r.Storage) > 0 {
		p("Storage is measured on the sessions of section 2, for each count from just after they started to\n")
		p("just before they ended, two ways: the growth of the mount's own storage (the sum of\n")
		p("every key and value under it, read back through `sys/raw`, i.e. before Vault's encryption), and\n")
		p("the growth of a whole-Vault raft snapshot (`sys/storage/raft/snapshot`, what\n")
		p("`vault operator raft snapshot save` writes: encrypted values, gzip-compressed). The verdict takes\n")
		p("the larger. The engine keeps a session's newest `max_events` (default 1,000) timeline events, one per\n")
		p("credential, so short sessions pay for every credential's event and long ones only for the last 1,000.\n\n")
		p("| credentials per session | sessions | mount growth (sys/raw) | keys added | snapshot growth | bytes per credential |\n|---:|---:|---:|---:|---:|---:|\n")
		for _, s := range r.Storage {
			raw, keys := "n/a", "n/a"
			if s.RawDelta >= 0 {
				raw = fmt.Sprintf("%s B", num(float64(s.RawDelta)))
				keys = num(float64(s.RawKeysDelta))
			}
			p("| %s | %d | %s | %s | %s B | **%.1f** |\n", num(float64(s.N)), max(s.Sessions, 1), raw, keys, num(float64(s.SnapshotDelta)), s.bytesPerCred())
		}
		p("\n")
	}
	if len(r.Memory) > 0 {
		p("The plugin's resident memory (`VmRSS` of the process whose command line starts with the plugin's\n")
		p("path) while the largest sessions of section 2 take their credentials; the process had already served\n")
		p("the throughput scenarios, so 0 is a warm start.\n\n")
		p("| issued into each session | sessions | issued in all | plugin RSS | pid |\n|---:|---:|---:|---:|---:|\n")
		for _, m := range r.Memory {
			p("| %s | %d | %s | %.1f MiB | %d |\n", num(float64(m.Issued)), max(m.Sessions, 1), num(float64(m.Issued*max(m.Sessions, 1))), mib(m.RSSKB), m.PID)
		}
		p("\n")
	}

	if r.Propagation != nil {
		renderPropagation(p, r)
	}
	if r.Scale != nil {
		renderScale(p, r, svgPath)
	}
	if r.Identity != nil {
		renderIdentity(p, r, svgPath)
	}

	if len(r.Micro) > 0 {
		p("## In-process micro-benchmarks\n\n")
		p("`go test -run='^$' -bench=. -benchmem` of the packages below, in the same run (no Vault: the engine\n")
		p("on `logical.InmemStorage`, with its storage calls counted).\n\n")
		p("| package | benchmark | iterations | results |\n|---|---|---:|---|\n")
		for _, m := range r.Micro {
			var parts []string
			for _, u := range m.Units {
				parts = append(parts, fmt.Sprintf("%s %s", trimFloat(m.Metrics[u]), u))
			}
			p("| %s | %s | %s | %s |\n", shortPkg(m.Package), m.Name, num(float64(m.Iters)), strings.Join(parts, ", "))
		}
		p("\n")
	}

	notes := append([]string(nil), r.Notes...)
	if n := r.originNote(); n != "" {
		notes = append(notes, n)
	}
	if len(notes) > 0 {
		p("## Notes\n\n")
		for _, n := range notes {
			p("- %s\n", n)
		}
		p("\n")
	}
	p("Reproduce: `make bench` (about an hour on 2 cores, most of it filling the 100,000-credential sessions and the 100,000 live sessions);\n")
	p("a quick, smaller run: `BENCH_ARGS=\"-max-creds 10000 -duration 5s\" bash scripts/bench.sh`; only one scenario, e.g. kill → refusal:\n")
	p("`BENCH_ARGS=\"-scenarios propagation -out-md /tmp/p.md -out-svg /tmp/p.svg\" bash scripts/bench.sh`. With `BENCH_KEEP=<dir>`\n")
	p("the run also keeps its raw results (`results.json`, which `go run ./bench/loadgen -render-only` draws again),\n")
	p("Vault's log and CPU profiles of Vault (over the creds window, from `sys/pprof`) and of the load generator.\n")
	return b.String()
}

func us(x float64) string {
	if x < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f µs", x)
}

func msOrS(ms float64) string {
	if ms >= 1000 {
		return fmt.Sprintf("%.2f s", ms/1000)
	}
	return fmt.Sprintf("%.1f ms", ms)
}

func trimFloat(x float64) string {
	switch {
	case x >= 100:
		return num(x)
	case x == float64(int64(x)):
		return fmt.Sprintf("%d", int64(x))
	default:
		return fmt.Sprintf("%.2f", x)
	}
}

func shortPkg(p string) string {
	return strings.TrimPrefix(strings.TrimPrefix(p, "github.com/continuoustrust/vault-plugin-secrets-agent"), "/")
}

func mdEsc(s string) string {
	return strings.ReplaceAll(s, "|", `\|`)
}

// renderPropagation writes section 5: kill → refusal, and bytes per kill.
func renderPropagation(p func(string, ...interface{}), r *Results) {
	x := r.Propagation
	poll := time.Duration(x.PollS * float64(time.Second))
	hold := time.Duration((x.StepMaxTTLS + x.GraceS) * float64(time.Second))
	p("## 5. Kill → refusal\n\n")
	p("The time that counts when a session is killed: until resource servers refuse its credentials. Each\n")
	p("round starts a session (of a role whose credentials live %s: `step_ttl` = `step_max_ttl`) and gives\n", durLabel(x.StepMaxTTLS))
	p("each of N resource servers a credential of it. A resource server is a real `verifier.Verifier` in the load\n")
	p("generator's process, with an HTTP client of its own, talking to this Vault. Every one must accept its\n")
	p("credential; then the session is ended (`PUT agent/sessions/<id>/end`, as the agent). Each verifier is\n")
	p("checked every %.0f µs: its time is the first check at which it knows the session closed (`SessionClosed`; for\n", x.SweepUs)
	p("(c), its receiver accepted the session's SET), confirmed by `Verify` refusing the credential with\n")
	p("`ErrSessionClosed`, minus the moment the end request was sent. It includes the engine's close, whose own\n")
	p("answer time is shown too. %d kills per row; p50 and p99 are nearest-rank over every refusal of every round\n", x.Rounds)
	p("(N × kills samples), so with few samples the p99 is the slowest. The N verifiers share the machine's %d cores\n", r.Env.NProc)
	p("with Vault and the plugin.\n\n")
	p("- **(a) plain polling**: `RevocationWait: -1, RevocationPoll: %s`, the whole list every %s. The N verifiers\n", poll, durLabel(x.PollS))
	p("  are started spread over one interval, and each kill lands at a random moment of it.\n")
	p("- **(b) blocking query** (the verifier's default): one `GET agent/revocations?after=<version>&wait=30` held\n")
	p("  at the engine per verifier, answered with the delta when the list changes.\n")
	p("- **(c) SSF push**: a push stream per verifier (`agent/ssf/streams`, `delivery_method=push`, its own\n")
	p("  audience and Authorization header) to the verifier's `SETReceiver`, served on 127.0.0.1 by the load\n")
	p("  generator; each stream delivered a verification SET before the first kill. Only the push counts: the\n")
	p("  verifier's own list sync polls once a minute meanwhile. The streams are deleted afterwards.\n\n")
	p("| how the resource server learns of the kill | resource servers | kills | refusals | p50 | p99 | slowest | never refused | end answered (median) |\n")
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, row := range x.Rows {
		if row.NotMeasured != "" {
			p("| %s | %d | – | – | – | – | – | – | not measured in this run: %s |\n", propLabel(row.Method), row.N, mdEsc(row.NotMeasured))
			continue
		}
		p("| %s | %d | %d | %d | %s | **%s** | %s | %d | %s |\n", propLabel(row.Method), row.N, row.Rounds, len(row.SamplesMs),
			timeLabelPrecise(row.P50ms), timeLabelPrecise(row.P99ms), timeLabelPrecise(row.MaxMs), row.Missed, timeLabelPrecise(row.EndMs))
	}
	for _, m := range []string{propPoll, propBlocking, propSSF} {
		found := false
		for _, row := range x.Rows {
			found = found || row.Method == m
		}
		if !found {
			p("| %s | – | – | – | – | – | – | – | not measured in this run |\n", propLabel(m))
		}
	}
	p("\n")
	if len(r.propRows(propSSF)) > 0 {
		p("With push streams the close queues one SET per stream (a storage write each) before it answers, so with\n")
		p("many streams the end itself answers later; each stream then signs its SET and POSTs it.\n\n")
	}

	if len(x.Bytes) == 0 && x.BytesErr == "" {
		return
	}
	p("### Bytes per kill\n\n")
	p("A killed session stays in the revocation list while its credentials may live (`step_max_ttl`, %s)\n", durLabel(x.StepMaxTTLS))
	p("plus the %s grace: %s, so at K kills a minute the list holds %s × K sessions. For each rate the list\n", durLabel(x.GraceS), durLabel(hold.Seconds()), trimFloat(hold.Minutes()))
	p("was filled by starting and ending sessions through the API (%d in parallel, bounded in time; the table\n", r.Run.Concurrency)
	p("says what it held), then a full `GET agent/revocations` answer and a delta holding the one session of a\n")
	p("kill (`after=<the version before it>`) were each received %d times on a connection of their own, with the\n", propSamples)
	p("headers Go's client sends, and counted as received: status line, headers and body (median).")
	if len(x.Bytes) > 0 {
		if x.Bytes[0].Gzip {
			p(" Vault sent them gzip-compressed.")
		} else {
			p(" Vault sent them uncompressed (`Accept-Encoding: gzip` notwithstanding).")
		}
	}
	p("\nA verifier polling every %s fetches the full answer %s times a minute whatever happens: %s × full answer ÷\n", durLabel(x.PollS), trimFloat(float64(time.Minute)/float64(poll)), trimFloat(float64(time.Minute)/float64(poll)))
	p("kills a minute per kill. One holding a blocking query fetches one delta per kill at most (kills close together\n")
	p("share an answer), so at most the delta answer per kill.\n\n")
	if x.BytesErr != "" {
		p("Not measured: `%s`.\n\n", mdEsc(x.BytesErr))
	}
	if len(x.Bytes) == 0 {
		return
	}
	p("| kills a minute | the list would hold | the list held | filled in | full answer | (a) polling every %s: bytes per kill | (b) deltas: bytes per kill (one delta answer) | a new verifier syncs the list |\n", durLabel(x.PollS))
	p("|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, b := range x.Bytes {
		held, pollCell := num(float64(b.ListEntries)), num(pollBytesPerKill(b.FullWire, poll, b.KillsPerMin))+" B"
		if b.underFilled() {
			share := fmt.Sprintf("%.0f%%", 100*float64(b.ListEntries)/float64(b.ListTarget))
			held += " (" + share + ")"
			pollCell += " (the list at " + share + ")"
		}
		filled := "–"
		if b.Filled > 0 {
			filled = fmt.Sprintf("%s sessions in %.0f s", num(float64(b.Filled)), b.FillSeconds)
		}
		syncs := "yes"
		if !b.NewVerifierOK {
			syncs = "**no**: `" + mdEsc(b.NewVerifierErr) + "`"
		}
		p("| %s | %s | %s | %s | %s B | %s | **%s B** | %s |\n", num(float64(b.KillsPerMin)), num(float64(b.ListTarget)), held, filled,
			num(float64(b.FullWire)), pollCell, num(float64(b.DeltaWire)), syncs)
	}
	p("\n")
	if per := bytesPerEntry(x.Bytes); per > 0 {
		polls := float64(time.Minute) / float64(poll)
		p("Each listed session adds %.0f B to the full answer, so polling costs about %.0f B × %s min listed × %s polls a minute\n", per, per, trimFloat(hold.Minutes()), trimFloat(polls))
		p("≈ **%s B per kill whatever the kill rate**, but in proportion to how long credentials may live: with credentials\n", num(per*hold.Minutes()*polls))
		p("of up to an hour (61 minutes listed) it is about %s B per kill. A delta carries only the kill, whatever the list holds.\n", num(per*61*polls))
		for _, b := range x.Bytes {
			if !b.underFilled() {
				continue
			}
			full := float64(b.FullWire) + per*float64(b.ListTarget-b.ListEntries)
			p("At %s kills a minute the fill reached %s of %s sessions: the full list would be about %s B (extrapolated at %.0f B per\n",
				num(float64(b.KillsPerMin)), num(float64(b.ListEntries)), num(float64(b.ListTarget)), num(full), per)
			p("session), %s B per kill polled every %s.", num(pollBytesPerKill(int(full), poll, b.KillsPerMin)), durLabel(x.PollS))
			if body := float64(b.FullBody) + per*float64(b.ListTarget-b.ListEntries); body > verifierMaxBody {
				p(" That is more than the %s B a verifier reads of an answer (`maxBody` in verifier/verifier.go): a\n", num(verifierMaxBody))
				p("verifier could not read the whole list, neither to poll it nor to start (`verifier.New` fetches it).")
			}
			p("\n")
		}
		p("\n")
	}
}

// durLabel formats seconds for a sentence: "60 s", "2 min".
func durLabel(s float64) string {
	if s >= 60 && math.Mod(s, 60) == 0 {
		return fmt.Sprintf("%.0f min", s/60)
	}
	return trimFloat(s) + " s"
}

// underFilled: the fill fell short of the list the rate would hold (by
// more than the few sessions that may leave it meanwhile).
func (b KillBytes) underFilled() bool {
	return float64(b.ListEntries) < 0.98*float64(b.ListTarget)
}

// verifierMaxBody is how much of an answer a verifier reads (maxBody in
// verifier/verifier.go).
const verifierMaxBody = 1 << 20

// bytesPerEntry is what one listed session adds to the full answer: the
// growth of the full answer between the two most different lists, or, with
// one list, the full answer over its entries.
func bytesPerEntry(bs []KillBytes) float64 {
	if len(bs) == 0 {
		return 0
	}
	lo, hi := bs[0], bs[0]
	for _, b := range bs {
		if b.ListEntries < lo.ListEntries {
			lo = b
		}
		if b.ListEntries > hi.ListEntries {
			hi = b
		}
	}
	if hi.ListEntries > lo.ListEntries {
		return float64(hi.FullWire-lo.FullWire) / float64(hi.ListEntries-lo.ListEntries)
	}
	if hi.ListEntries > 0 {
		return float64(hi.FullWire) / float64(hi.ListEntries)
	}
	return 0
}

// renderDPoP compares a DPoP-checked verification with a bearer one, from
// the micro-benchmark BenchmarkVerifyRequestDPoP of the same run.
func renderDPoP(p func(string, ...interface{}), r *Results) {
	var bearer, bound float64
	for _, m := range r.Micro {
		switch {
		case strings.HasPrefix(m.Name, "BenchmarkVerifyRequestDPoP/bearer"):
			bearer = m.Metrics["ns/op"]
		case strings.HasPrefix(m.Name, "BenchmarkVerifyRequestDPoP/dpop"):
			bound = m.Metrics["ns/op"]
		}
	}
	if bearer <= 0 || bound <= 0 {
		return
	}
	p("### Proof of possession\n\n")
	p("`verifier.VerifyRequest` on an engine-issued credential, in process (`BenchmarkVerifyRequestDPoP`, same run):\n")
	p("a bearer credential takes %.1f µs; a credential bound to a key, with its DPoP proof (RFC 9449: the\n", bearer/1000)
	p("proof's signature by its embedded key through go-jose, its claims by the strict rules, the thumbprint,\n")
	p("the replay cache), takes %.1f µs: %.2f× (a second signature check, and a second JWS to parse).\n\n", bound/1000, bound/bearer)
}
