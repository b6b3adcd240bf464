#!/usr/bin/env bash
# bench.sh runs the benchmark harness of issue 8: it starts a throw-away
# single-node Vault on integrated raft storage (loopback only), registers
# and mounts the plugin at agent/, runs bench/loadgen against it and writes
# BENCHMARKS.md and BENCHMARKS.svg at the repository root. It leaves
# nothing else behind.
#
# Usage: scripts/bench.sh
#
# Environment:
#   PLUGIN_BIN        use this plugin binary instead of building the working tree
#   PLUGIN_VERSION    version to build and register (default v0.1.0)
#   VAULT_BIN         use this Vault instead of scripts/build-vault.sh's
#   BENCH_ARGS        extra loadgen flags, e.g. "-max-creds 10000 -duration 5s"
#                     (go run ./bench/loadgen -h lists them)
#   BENCH_MICRO_FILE  `go test -bench` output to include (make bench passes
#                     its own); unset: the in-process benchmarks of
#                     bench/micro and token run here; BENCH_MICRO=0 skips them
#   BENCH_KEEP        a folder to copy the raw results, profiles and logs to
#   BENCH_PLUGIN_PROFILE=1  with PLUGIN_BIN built from bench/pluginprof: also
#                     profile the plugin process over the creds window
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
version="${PLUGIN_VERSION:-v0.1.0}"
name="vault-plugin-secrets-agent"
module="github.com/continuoustrust/vault-plugin-secrets-agent"

work="$(mktemp -d "${TMPDIR:-/tmp}/agent-bench.XXXXXX")"
work="$(cd "$work" && pwd -P)"
vault_pid=""
cleanup() {
  local status=$?
  if [[ -n "$vault_pid" ]] && kill -0 "$vault_pid" 2>/dev/null; then
    kill -INT "$vault_pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$vault_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$vault_pid" 2>/dev/null || true
    wait "$vault_pid" 2>/dev/null || true
  fi
  # A plugin process Vault left behind (it normally stops them): only ours,
  # by its path in this run's plugin directory.
  for d in /proc/[0-9]*; do
    if [[ "$(tr '\0' '\n' <"$d/cmdline" 2>/dev/null | head -n 1)" == "$work/plugins/$name" ]]; then
      kill -KILL "${d#/proc/}" 2>/dev/null || true
    fi
  done
  if [[ -n "${BENCH_KEEP:-}" ]]; then
    mkdir -p "$BENCH_KEEP"
    cp "$work"/results.json "$work"/*.pprof "$work"/*.txt "$work"/vault.log "$BENCH_KEEP"/ 2>/dev/null || true
  fi
  if [[ $status -ne 0 && -f "$work/vault.log" ]]; then
    echo "bench: failed; the last lines of Vault's log:" >&2
    tail -n 30 "$work/vault.log" >&2 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# 1. The plugin and the load generator, from the working tree. Others may be
#    editing it: a tree that does not compile is retried, then HEAD is used.
mkdir -p "$work/plugins" "$work/bin"
source_note=""
build_from() { # dir
  (cd "$1" &&
    go build -trimpath -ldflags "-X $module.Version=$version" -o "$work/plugins/$name" ./cmd/$name &&
    go build -o "$work/bin/loadgen" ./bench/loadgen)
}
describe_tree() {
  local head dirty=""
  head="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  if [[ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
    dirty=" + uncommitted changes"
  fi
  echo "working tree at $head$dirty"
}
if [[ -n "${PLUGIN_BIN:-}" ]]; then
  [[ -x "$PLUGIN_BIN" ]] || { echo "bench: PLUGIN_BIN=$PLUGIN_BIN is not executable" >&2; exit 1; }
  cp "$PLUGIN_BIN" "$work/plugins/$name"
  (cd "$root" && go build -o "$work/bin/loadgen" ./bench/loadgen)
  source_note="PLUGIN_BIN=$PLUGIN_BIN"
else
  echo "== building the plugin ($version) and the load generator"
  built=""
  for attempt in 1 2 3; do
    if build_from "$root" 2>"$work/build.txt"; then
      built=yes
      source_note="$(describe_tree)"
      break
    fi
    echo "bench: the working tree does not compile (attempt $attempt of 3):" >&2
    head -n 10 "$work/build.txt" >&2
    if [[ $attempt -lt 3 ]]; then sleep 60; fi
  done
  if [[ -z "$built" ]]; then
    echo "bench: building the last commit instead" >&2
    mkdir -p "$work/snap"
    git -C "$root" archive HEAD | tar -x -C "$work/snap"
    build_from "$work/snap"
    source_note="HEAD $(git -C "$root" rev-parse --short HEAD) (the working tree did not compile)"
  fi
fi
sha="$(sha256sum "$work/plugins/$name" | cut -d' ' -f1)"

# 2. Vault, built once and cached.
vault_bin="$("$root/scripts/build-vault.sh" | tail -n 1)"

# 3. A throw-away single-node Vault on raft, on free loopback ports.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
port="$(free_port)"
cport="$(free_port)"
while [[ "$cport" == "$port" ]]; do cport="$(free_port)"; done
mkdir -p "$work/raft"
cat >"$work/config.hcl" <<HCL
plugin_directory     = "$work/plugins"
disable_mlock        = true
api_addr             = "http://127.0.0.1:$port"
cluster_addr         = "http://127.0.0.1:$cport"
raw_storage_endpoint = true
storage "raft" {
  path    = "$work/raft"
  node_id = "bench1"
}
listener "tcp" {
  address         = "127.0.0.1:$port"
  cluster_address = "127.0.0.1:$cport"
  tls_disable     = true
}
HCL
export VAULT_ADDR="http://127.0.0.1:$port"
unset VAULT_TOKEN
echo "== starting Vault ($("$vault_bin" version | head -n 1)) on $VAULT_ADDR, raft in $work/raft"
if [[ "${BENCH_PLUGIN_PROFILE:-0}" == 1 ]]; then
  export PLUGINPROF_OUT="$work/plugin-creds.pprof" # read by bench/pluginprof, passed on by Vault
fi
"$vault_bin" server -config="$work/config.hcl" >"$work/vault.log" 2>&1 &
vault_pid=$!

status_code() { local rc=0; "$vault_bin" status >/dev/null 2>&1 || rc=$?; echo "$rc"; }
for _ in $(seq 1 300); do
  kill -0 "$vault_pid" 2>/dev/null || { echo "bench: Vault exited" >&2; exit 1; }
  rc="$(status_code)"
  if [[ "$rc" == 2 || "$rc" == 0 ]]; then break; fi
  sleep 0.2
done
init="$("$vault_bin" operator init -key-shares=1 -key-threshold=1 -format=json)"
unseal_key="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["unseal_keys_b64"][0])' <<<"$init")"
root_token="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["root_token"])' <<<"$init")"
"$vault_bin" operator unseal "$unseal_key" >/dev/null
export VAULT_TOKEN="$root_token"
active=""
for _ in $(seq 1 300); do
  if "$vault_bin" secrets list >/dev/null 2>&1; then active=yes; break; fi
  sleep 0.2
done
[[ -n "$active" ]] || { echo "bench: Vault did not become active" >&2; exit 1; }

"$vault_bin" plugin register -sha256="$sha" -version="$version" -command="$name" secret "$name" >/dev/null
"$vault_bin" secrets enable -path=agent -plugin-version="$version" "$name" >/dev/null
echo "== plugin $name $version (sha256 $sha) enabled at agent/"

# 4. In-process micro-benchmarks for the report.
micro_file="${BENCH_MICRO_FILE:-}"
if [[ -z "$micro_file" && "${BENCH_MICRO:-1}" != 0 ]]; then
  echo "== in-process micro-benchmarks (bench/micro, token)"
  micro_file="$work/micro.txt"
  if ! (cd "$root" && go test -run='^$' -bench=. -benchmem -count=1 ./bench/micro/ ./token/) >"$micro_file" 2>&1; then
    echo "bench: the micro-benchmarks failed (left out of the report):" >&2
    tail -n 20 "$micro_file" >&2
    micro_file=""
  fi
fi

# 5. The load generator.
echo "== load generator"
args=(
  -addr "$VAULT_ADDR" -token "$root_token"
  -vault-pid "$vault_pid" -plugin-cmd "$work/plugins/$name" -raft-dir "$work/raft"
  -plugin-version "$version" -plugin-sha "$sha" -source "$source_note"
  -results "$work/results.json" -vault-profile "$work/vault-creds.pprof" -cpuprofile "$work/loadgen.pprof"
  -out-md "$root/BENCHMARKS.md" -out-svg "$root/BENCHMARKS.svg"
)
if [[ -n "$micro_file" ]]; then args+=(-micro "$micro_file"); fi
if [[ "${BENCH_PLUGIN_PROFILE:-0}" == 1 ]]; then args+=(-plugin-profile-signals); fi
# shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
"$work/bin/loadgen" "${args[@]}" ${BENCH_ARGS:-}

