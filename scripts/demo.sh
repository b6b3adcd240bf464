#!/usr/bin/env bash
# demo.sh runs the end-to-end example: a throw-away Vault with the plugin,
# a role and two policies, the docserver example (a resource server) and
# the agent example, which runs a multi-step task, hands a credential to the
# subagent example (a process with no Vault token, which exchanges it at
# agent/token for a narrower child bound to its own DPoP key), then goes
# rogue and sees its session revoked. It exits 0 only if every expected outcome happened,
# and leaves nothing behind.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
version="${PLUGIN_VERSION:-v0.1.0}"
name="vault-plugin-secrets-agent"

vault_bin="$("$root/scripts/build-vault.sh" | tail -n 1)"
work="$(mktemp -d "${TMPDIR:-/tmp}/agent-demo.XXXXXX")"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

echo "== building the plugin and the examples"
mkdir -p "$work/plugins" "$work/bin"
(cd "$root" && go build -trimpath -ldflags "-X github.com/continuoustrust/vault-plugin-secrets-agent.Version=$version" \
  -o "$work/plugins/$name" ./cmd/$name &&
  go build -o "$work/bin/docserver" ./examples/docserver &&
  go build -o "$work/bin/subagent" ./examples/subagent &&
  go build -o "$work/bin/agent" ./examples/agent)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
vport="$(free_port)"
dport="$(free_port)"
export VAULT_ADDR="http://127.0.0.1:$vport" VAULT_TOKEN=root
printf 'plugin_directory = "%s"\n' "$work/plugins" >"$work/config.hcl"

echo "== starting Vault on $VAULT_ADDR"
"$vault_bin" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$vport" \
  -config="$work/config.hcl" >"$work/vault.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do "$vault_bin" status >/dev/null 2>&1 && break; sleep 0.2; done
"$vault_bin" status >/dev/null || { cat "$work/vault.log"; exit 1; }

sha="$(sha256sum "$work/plugins/$name" | cut -d' ' -f1)"
"$vault_bin" plugin register -sha256="$sha" -version="$version" -command="$name" secret "$name" >/dev/null
"$vault_bin" secrets enable -path=agent -plugin-version="$version" -passthrough-request-headers=DPoP "$name" >/dev/null
# Token exchange and DPoP proofs name the engine's URL: its issuer.
"$vault_bin" write agent/config issuer="$VAULT_ADDR/v1/agent" >/dev/null
# Its audiences: the docserver, and the engine itself, for delegation
# credentials that sub-agents exchange at agent/token.
"$vault_bin" write agent/roles/doc-editor scopes="read:docs/*,write:docs/summaries-*,delete:docs/*" \
  audiences="docs-api,$VAULT_ADDR/v1/agent" max_steps=20 on_violation=revoke >/dev/null
cat >"$work/agent.hcl" <<'HCL'
path "agent/session"        { capabilities = ["update"] }
path "agent/creds/*"        { capabilities = ["read", "update"] }
path "agent/session/+"      { capabilities = ["read"] }
path "agent/sessions/+/end" { capabilities = ["update"] }
HCL
cat >"$work/resource-server.hcl" <<'HCL'
path "agent/introspect" { capabilities = ["update"] }
path "agent/report"     { capabilities = ["update"] }
HCL
"$vault_bin" policy write agent "$work/agent.hcl" >/dev/null
"$vault_bin" policy write resource-server "$work/resource-server.hcl" >/dev/null
agent_token="$("$vault_bin" token create -policy=agent -field=token)"
rs_token="$("$vault_bin" token create -policy=resource-server -field=token)"
echo "   role doc-editor may read docs/*, write docs/summaries-*, delete docs/*;"
echo "   the agent will declare less than that."

echo "== starting the docserver on 127.0.0.1:$dport"
VAULT_TOKEN="$rs_token" "$work/bin/docserver" -listen "127.0.0.1:$dport" -vault-addr "$VAULT_ADDR" \
  -issuer "$VAULT_ADDR/v1/agent" -poll 1s >"$work/docserver.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$dport") 2>/dev/null && break
  sleep 0.1
done

echo "== running the agent"
echo
status=0
VAULT_TOKEN="$agent_token" "$work/bin/agent" -docs "http://127.0.0.1:$dport" -subagent "$work/bin/subagent" || status=$?

echo
echo "== what the docserver saw"
sed 's/^/   /' "$work/docserver.log"
echo
echo "== the session's timeline, as Vault recorded it"
sid="$("$vault_bin" list -format=json agent/sessions | python3 -c 'import json,sys; print(json.load(sys.stdin)[0])')"
"$vault_bin" read -format=json "agent/sessions/$sid/events" |
  python3 -c 'import json,sys
for e in json.load(sys.stdin)["data"]["events"]:
    extra = e.get("description") or e.get("violation") or e.get("detail") or ""
    print("   %2d %-18s %s" % (e["seq"], e["kind"], extra))'
exit "$status"
