#!/usr/bin/env bash
# dev.sh runs a throw-away Vault dev server on 127.0.0.1:8200 (root token
# "root") with this plugin registered in the catalog (sha256 and version) and
# enabled at agent/. It runs in the foreground; Ctrl-C stops Vault and removes
# everything it made.
#
# Environment: VAULT_ADDR_PORT (default 8200), PLUGIN_VERSION (default v0.1.0),
# VAULT_BIN (a Vault binary to use instead of building one).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
port="${VAULT_ADDR_PORT:-8200}"
version="${PLUGIN_VERSION:-v0.1.0}"
name="vault-plugin-secrets-agent"
plugin_bin="$root/bin/$name"

vault_bin="$("$root/scripts/build-vault.sh" | tail -n 1)"
if [[ ! -x "$plugin_bin" ]]; then
  echo "dev: $plugin_bin is missing; run 'make dev' (it builds the plugin first)" >&2
  exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/agent-dev.XXXXXX")"
mkdir -p "$work/plugins"
cp "$plugin_bin" "$work/plugins/$name"
cat >"$work/config.hcl" <<HCL
plugin_directory = "$work/plugins"
HCL

vault_pid=""
cleanup() {
  if [[ -n "$vault_pid" ]] && kill -0 "$vault_pid" 2>/dev/null; then
    kill "$vault_pid" 2>/dev/null || true
    wait "$vault_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

export VAULT_ADDR="http://127.0.0.1:$port"
export VAULT_TOKEN=root

# -dev-no-store-token: the root token is not written to ~/.vault-token, so
# nothing is left behind when this script ends.
"$vault_bin" server -dev -dev-root-token-id=root -dev-no-store-token -dev-listen-address="127.0.0.1:$port" \
  -config="$work/config.hcl" >"$work/vault.log" 2>&1 &
vault_pid=$!

for _ in $(seq 1 100); do
  if "$vault_bin" status >/dev/null 2>&1; then break; fi
  if ! kill -0 "$vault_pid" 2>/dev/null; then
    echo "dev: Vault exited; its log:" >&2
    cat "$work/vault.log" >&2
    exit 1
  fi
  sleep 0.2
done
"$vault_bin" status >/dev/null

sha="$(sha256sum "$work/plugins/$name" | cut -d' ' -f1)"
"$vault_bin" plugin register -sha256="$sha" -version="$version" -command="$name" secret "$name" >/dev/null
"$vault_bin" secrets enable -path=agent -plugin-version="$version" -passthrough-request-headers=DPoP \
  -description="agent sessions with continuous trust" "$name" >/dev/null

cat <<MSG

Vault is running at $VAULT_ADDR with the agent secrets engine at agent/
(plugin $name $version, sha256 $sha).
Its plugin directory is $work/plugins (removed with everything else on Ctrl-C).

In another shell:

  export VAULT_ADDR=$VAULT_ADDR VAULT_TOKEN=root PATH="$(dirname "$vault_bin"):\$PATH"
  vault secrets list -detailed
  vault read agent/config
  vault path-help agent/config

New lines of Vault's log (and the plugin's) follow. Press Ctrl-C to stop Vault and remove everything.

MSG

tail -n 0 -f "$work/vault.log" --pid="$vault_pid" &
wait "$vault_pid"
