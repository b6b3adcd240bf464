# bench.mk: the benchmarks of issue 8. Included by the GNUmakefile, which
# defines GO. `make bench` runs the in-process Go micro-benchmarks, then
# scripts/bench.sh: a throw-away single-node Vault on raft with the plugin,
# driven by bench/loadgen, which writes BENCHMARKS.md and BENCHMARKS.svg.
#
#   make bench                                          # the full run (100,000 credentials)
#   make bench BENCH_ARGS="-max-creds 10000 -duration 5s"   # a quick one
#   BENCH_MICRO=0 BENCH_ARGS="-scenarios propagation -out-md /tmp/p.md -out-svg /tmp/p.svg" \
#     scripts/bench.sh                                  # one scenario, leaving BENCHMARKS.* alone

GO ?= go
BENCH_ARGS ?=
export BENCH_ARGS

.PHONY: bench
bench: SHELL := /bin/bash
bench: ## Run the Go micro-benchmarks, then the Vault benchmarks (writes BENCHMARKS.md and BENCHMARKS.svg).
	@micro="$$(mktemp "$${TMPDIR:-/tmp}/agent-bench-micro.XXXXXX")"; \
	  trap 'rm -f "$$micro"' EXIT; \
	  $(GO) test -run='^$$' -bench=. -benchmem ./... 2>&1 | tee "$$micro"; \
	  test "$${PIPESTATUS[0]}" -eq 0; \
	  BENCH_MICRO_FILE="$$micro" scripts/bench.sh
