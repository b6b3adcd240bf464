#!/usr/bin/env bash
# demo-approval.sh runs the step-up approval example: a throw-away Vault
# with the plugin, a role under on_out_of_intent=approval, and the approval
# example agent, whose step outside its intent (inside its role) waits until
# an administrator (this script, as another identity than the agent)
# approves it. It prints the approval as the administrator sees it and the
# session's timeline, exits 0 only if every expected outcome happened, and
# leaves nothing behind.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
version="${PLUGIN_VERSION:-v0.1.0}"
name="vault-plugin-secrets-agent"

vault_bin="$("$root/scripts/build-vault.sh" | tail -n 1)"
work="$(mktemp -d "${TMPDIR:-/tmp}/agent-demo-approval.XXXXXX")"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

echo "== building the plugin and the approval example"
mkdir -p "$work/plugins" "$work/bin"
(cd "$root" && go build -trimpath -ldflags "-X github.com/continuoustrust/vault-plugin-secrets-agent.Version=$version" \
  -o "$work/plugins/$name" ./cmd/$name && go build -o "$work/bin/approval" ./examples/approval)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
vport="$(free_port)"
export VAULT_ADDR="http://127.0.0.1:$vport" VAULT_TOKEN=root
printf 'plugin_directory = "%s"\n' "$work/plugins" >"$work/config.hcl"
"$vault_bin" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$vport" \
  -config="$work/config.hcl" >"$work/vault.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do "$vault_bin" status >/dev/null 2>&1 && break; sleep 0.2; done
"$vault_bin" status >/dev/null || { cat "$work/vault.log"; exit 1; }
sha="$(sha256sum "$work/plugins/$name" | cut -d' ' -f1)"
"$vault_bin" plugin register -sha256="$sha" -version="$version" -command="$name" secret "$name" >/dev/null
"$vault_bin" secrets enable -path=agent -plugin-version="$version" "$name" >/dev/null
"$vault_bin" write agent/roles/release scopes="read,write:docs/notes/*" audiences=docs-api \
  on_out_of_intent=approval approval_ttl=2m >/dev/null
cat >"$work/agent.hcl" <<'HCL'
path "agent/session"        { capabilities = ["update"] }
path "agent/creds/*"        { capabilities = ["read", "update"] }
path "agent/session/+"      { capabilities = ["read"] }
path "agent/sessions/+/end" { capabilities = ["update"] }
HCL
"$vault_bin" policy write agent "$work/agent.hcl" >/dev/null
agent_token="$("$vault_bin" token create -policy=agent -field=token)"
echo "   role release may read and write docs/notes/*; a step outside a session's intent waits for approval."

# The administrator: approve the first approval that shows up.
(
  for _ in $(seq 1 200); do
    id="$("$vault_bin" list -format=json agent/approvals 2>/dev/null | python3 -c 'import json,sys; k=json.load(sys.stdin); print(k[0] if k else "")' 2>/dev/null || true)"
    if [ -n "$id" ]; then
      "$vault_bin" read "agent/approvals/$id" | grep -E '^(description|scopes|audience|state) ' >"$work/approval.txt"
      "$vault_bin" write "agent/approvals/$id/approve" ttl=5m comment="release day" >/dev/null
      exit 0
    fi
    sleep 0.2
  done
  exit 1
) &
approver=$!

echo "== running the agent"
echo
status=0
VAULT_TOKEN="$agent_token" "$work/bin/approval" || status=$?
wait "$approver" || { echo "FAILED: no approval showed up"; status=1; }

echo
echo "== what the administrator saw, then approved"
sed 's/^/   /' "$work/approval.txt" 2>/dev/null || true
echo
echo "== the session's timeline, as Vault recorded it"
sid="$("$vault_bin" list -format=json agent/sessions | python3 -c 'import json,sys; print(json.load(sys.stdin)[0])')"
"$vault_bin" read -format=json "agent/sessions/$sid/events" |
  python3 -c 'import json,sys
for e in json.load(sys.stdin)["data"]["events"]:
    extra = e.get("description") or e.get("violation") or e.get("detail") or ""
    who = (" by " + e["actor"]) if e["kind"].startswith("approval_") and e.get("actor") else ""
    print("   %2d %-19s %s%s" % (e["seq"], e["kind"], extra, who))'
exit "$status"
