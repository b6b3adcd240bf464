package main

import (
	"fmt"
	"path/filepath"
	"strings"
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
		p("![Issuance rates; session end and revoke-tree time against credential count](%s)\n\n", filepath.Base(svgPath))
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

	if len(r.Notes) > 0 {
		p("## Notes\n\n")
		for _, n := range r.Notes {
			p("- %s\n", n)
		}
		p("\n")
	}
	p("Reproduce: `make bench` (about 25 minutes on 2 cores, most of it filling the 100,000-credential sessions);\n")
	p("a quick, smaller run: `BENCH_ARGS=\"-max-creds 10000 -duration 5s\" bash scripts/bench.sh`. With `BENCH_KEEP=<dir>`\n")
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
