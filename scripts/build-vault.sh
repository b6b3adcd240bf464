#!/usr/bin/env bash
# build-vault.sh builds a Vault server and CLI from source through the Go
# module proxy and caches the binary outside the repository, so later runs
# (and CI on the same machine) reuse it.
#
# Usage: scripts/build-vault.sh
#
# Environment:
#   VAULT_BIN      use this Vault binary instead of building one
#   VAULT_VERSION  Vault release to build (default 1.21.4)
#   VAULT_CACHE    cache folder (default ${XDG_CACHE_HOME:-$HOME/.cache}/vault-plugin-secrets-agent)
#
# The last line of the output is the path of the Vault binary.
set -euo pipefail

if [[ -n "${VAULT_BIN:-}" ]]; then
  if [[ ! -x "$VAULT_BIN" ]]; then
    echo "build-vault: VAULT_BIN=$VAULT_BIN is not an executable file" >&2
    exit 1
  fi
  echo "$VAULT_BIN"
  exit 0
fi

version="${VAULT_VERSION:-1.21.4}"
cache="${VAULT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vault-plugin-secrets-agent}"
bin="$cache/vault-$version/vault"

if [[ -x "$bin" ]] && "$bin" version >/dev/null 2>&1; then
  echo "$bin"
  exit 0
fi

echo "build-vault: building Vault v$version from source into $cache (cold: ~15 min and several GB of modules)" >&2
work="$cache/build-$version"
mkdir -p "$work" "$(dirname "$bin")"

# 1. The Vault module's source, copied out of the module cache so it can be patched.
src_mod="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/hashicorp/vault@v$version" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
if [[ -z "$src_mod" || ! -d "$src_mod" ]]; then
  echo "build-vault: could not download github.com/hashicorp/vault@v$version" >&2
  exit 1
fi
rm -rf "$work/vault-src"
cp -r "$src_mod" "$work/vault-src"
chmod -R u+w "$work/vault-src"

# 2. Patches: v1.21.4 requires sdk v0.21.0, whose API drifted from the sdk copy
#    inside the release (a dependency's replace directives do not apply), so
#    exactly three lines do not compile against it.
patch_line() { # file line expected replacement
  local f="$work/vault-src/$1" n="$2" want="$3" repl="$4" got
  got="$(sed -n "${n}p" "$f" | sed 's/^[[:space:]]*//')"
  if [[ "$got" != "$want" ]]; then
    echo "build-vault: $1:$n is not what the patch expects: $got" >&2
    exit 1
  fi
  REPL="$repl" N="$n" perl -i -pe 'if ($. == $ENV{N}) { s/^(\s*).*$/$1$ENV{REPL}/ }' "$f"
}
if [[ "$version" == "1.21.4" ]]; then
  # ActivationFunc takes a third string argument in sdk v0.21.0.
  patch_line vault/identity_store.go 119 \
    'ActivationFunc: iStore.activateDeduplication,' \
    'ActivationFunc: func(ctx context.Context, req *logical.Request, _ string) error { return iStore.activateDeduplication(ctx, req) },'
  # ...so its caller passes that extra argument.
  patch_line vault/logical_system_activation_flags.go 167 \
    'if err := b.idStoreBackend.ActivationFunc(ctx, nil); err != nil {' \
    'if err := b.idStoreBackend.ActivationFunc(ctx, nil, ""); err != nil {'
  # In sdk v0.21.0 RestorePolicy returns only an error.
  patch_line builtin/logical/transit/path_restore.go 64 \
    'restoredKeyName, err := b.lm.RestorePolicy(ctx, req.Storage, keyName, backupB64, force)' \
    'restoredKeyName, err := keyName, b.lm.RestorePolicy(ctx, req.Storage, keyName, backupB64, force)'
fi

# 3. A builder module of its own whose main is Vault's main.
cat >"$work/go.mod" <<GOMOD
module vaultbuilder

go 1.24

require github.com/hashicorp/vault v$version

replace github.com/hashicorp/vault => ./vault-src

// Carried over from Vault's own go.mod: a dependency's replaces do not apply.
replace github.com/99designs/keyring => github.com/Jeffail/keyring v1.2.3

replace github.com/ma314smith/signedxml v1.1.1 => github.com/moov-io/signedxml v1.1.1
GOMOD
cat >"$work/main.go" <<'GOMAIN'
// Command vault is HashiCorp Vault, built from source for this project's tests.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
GOMAIN

cd "$work"
GOFLAGS=-mod=mod go mod tidy >&2
GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$bin.tmp" . >&2
mv "$bin.tmp" "$bin"
"$bin" version >&2
echo "$bin"
