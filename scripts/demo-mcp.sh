#!/usr/bin/env bash
# demo-mcp.sh runs the MCP example end to end: a throw-away Vault with the
# plugin (its issuer set to the URL it is served under, as MCP clients
# expect), a role for MCP agents, the mcpserver example (an MCP server that
# takes the engine's access tokens) and the mcpagent example, which calls
# tools with a credential per call, then calls a tool outside its intent
# and sees its session killed. It prints the session's access path with
# the tool calls in it, exits 0 only if every expected outcome happened,
# and leaves nothing behind.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
version="${PLUGIN_VERSION:-v0.1.0}"
name="vault-plugin-secrets-agent"

vault_bin="$("$root/scripts/build-vault.sh" | tail -n 1)"
work="$(mktemp -d "${TMPDIR:-/tmp}/agent-demo-mcp.XXXXXX")"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

echo "== building the plugin and the MCP examples"
mkdir -p "$work/plugins" "$work/bin"
(cd "$root" && go build -trimpath -ldflags "-X github.com/continuoustrust/vault-plugin-secrets-agent.Version=$version" \
  -o "$work/plugins/$name" ./cmd/$name)
(cd "$root/examples/mcpserver" && go build -o "$work/bin/mcpserver" .)
(cd "$root/examples/mcpagent" && go build -o "$work/bin/mcpagent" .)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
vport="$(free_port)"
mport="$(free_port)"
export VAULT_ADDR="http://127.0.0.1:$vport" VAULT_TOKEN=root
mcp_url="http://127.0.0.1:$mport/mcp"
printf 'plugin_directory = "%s"\n' "$work/plugins" >"$work/config.hcl"

echo "== starting Vault on $VAULT_ADDR"
"$vault_bin" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$vport" \
  -config="$work/config.hcl" >"$work/vault.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do "$vault_bin" status >/dev/null 2>&1 && break; sleep 0.2; done
"$vault_bin" status >/dev/null || { cat "$work/vault.log"; exit 1; }

sha="$(sha256sum "$work/plugins/$name" | cut -d' ' -f1)"
"$vault_bin" plugin register -sha256="$sha" -version="$version" -command="$name" secret "$name" >/dev/null
"$vault_bin" secrets enable -path=agent -plugin-version="$version" "$name" >/dev/null
"$vault_bin" write agent/config issuer="$VAULT_ADDR/v1/agent" >/dev/null 2>&1
"$vault_bin" write agent/roles/docs-agent scopes="call:tools/*" audiences="$mcp_url" \
  max_steps=20 on_violation=revoke >/dev/null
cat >"$work/agent.hcl" <<'HCL'
path "agent/session"        { capabilities = ["update"] }
path "agent/creds/*"        { capabilities = ["read", "update"] }
path "agent/session/+"      { capabilities = ["read"] }
path "agent/sessions/+/end" { capabilities = ["update"] }
HCL
cat >"$work/mcp-server.hcl" <<'HCL'
path "agent/report" { capabilities = ["update"] }
HCL
"$vault_bin" policy write agent "$work/agent.hcl" >/dev/null
"$vault_bin" policy write mcp-server "$work/mcp-server.hcl" >/dev/null
agent_token="$("$vault_bin" token create -policy=agent -field=token)"
server_token="$("$vault_bin" token create -policy=mcp-server -field=token)"
echo "   issuer $VAULT_ADDR/v1/agent; role docs-agent may call every tool of $mcp_url;"
echo "   the agent will declare two of them."

echo "== starting the MCP server"
VAULT_TOKEN="$server_token" "$work/bin/mcpserver" -listen "127.0.0.1:$mport" -vault-addr "$VAULT_ADDR" \
  >"$work/mcpserver.out" 2>"$work/mcpserver.log" &
pids+=($!)
for _ in $(seq 1 100); do grep -q "serving" "$work/mcpserver.out" 2>/dev/null && break; sleep 0.1; done
sed 's/^/   /' "$work/mcpserver.out"
grep -q "serving" "$work/mcpserver.out" || { cat "$work/mcpserver.log"; exit 1; }

get() { python3 -c 'import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode().strip())' "$1"; }
echo "== the server's protected-resource metadata (RFC 9728)"
get "http://127.0.0.1:$mport/.well-known/oauth-protected-resource/mcp" | sed 's/^/   /'
echo "== the engine's authorization-server metadata (RFC 8414)"
get "$VAULT_ADDR/v1/agent/.well-known/oauth-authorization-server" | sed 's/^/   /'

echo "== running the agent"
echo
status=0
VAULT_TOKEN="$agent_token" "$work/bin/mcpagent" -server "$mcp_url" || status=$?

echo
echo "== what the MCP server saw"
sed 's/^[0-9/]* [0-9:]* /   /' "$work/mcpserver.log"
echo
echo "== the session's access path (Mermaid), as Vault recorded it"
sid="$("$vault_bin" list -format=json agent/sessions | python3 -c 'import json,sys; print(json.load(sys.stdin)[0])')"
"$vault_bin" read -field=mermaid "agent/sessions/$sid/graph" | sed 's/^/   /'
if [ "$status" -eq 0 ]; then
  mermaid="$("$vault_bin" read -field=mermaid "agent/sessions/$sid/graph")"
  for want in "used: call tools/search (allowed)" "used: call tools/read_doc (allowed)" "refused: scope_outside_intent"; do
    grep -qF "$want" <<<"$mermaid" || { echo "FAILED: the access path does not show \"$want\""; status=1; }
  done
fi
exit "$status"
