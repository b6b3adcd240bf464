#!/usr/bin/env bash
# build-terraform.sh builds a Terraform CLI and the hashicorp/vault provider
# from source through the Go module proxy (no release downloads, no Docker)
# and caches both outside the repository, so later runs reuse them.
#
# Usage: scripts/build-terraform.sh
#
# The provider is installed into a filesystem mirror, and a CLI configuration
# file makes Terraform take hashicorp/vault from there, so `terraform init`
# works offline. The last two lines of the output are
#
#   TERRAFORM=<path of the terraform binary>
#   TF_CLI_CONFIG_FILE=<path of the CLI configuration file>
#
# Environment:
#   TERRAFORM_BIN      use this Terraform binary instead of building one
#   TERRAFORM_VERSION  Terraform release to build (default 1.5.7)
#   TERRAFORM_CACHE    cache folder (default ${XDG_CACHE_HOME:-$HOME/.cache}/vault-plugin-secrets-agent/terraform)
#
# Why the provider needs a wrapper: the only terraform-provider-vault release
# the module proxy serves is v1.9.0. Its go.mod still names the old path
# github.com/terraform-providers/terraform-provider-vault, and its own main
# speaks plugin protocol 4, which Terraform 0.13 and later refuse. A small main
# module of our own (its own go.mod, in the cache, never the plugin's) serves
# the same vault.Provider through the plugin package of terraform v0.12.29,
# which speaks protocol 5.
set -euo pipefail

tf_version="${TERRAFORM_VERSION:-1.5.7}"
provider_version="1.9.0"
cache="${TERRAFORM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vault-plugin-secrets-agent/terraform}"

say() { echo "build-terraform: $*" >&2; }
die() {
  say "ERROR: $*"
  exit 1
}

command -v go >/dev/null 2>&1 || die "go is not on PATH"
mkdir -p "$cache"

# One build at a time per cache folder.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$cache/.lock"
  flock 9
fi

goos="$(go env GOOS)"
goarch="$(go env GOARCH)"
platform="${goos}_${goarch}"
cli_config="$cache/terraformrc"
mirror="$cache/mirror"

# Terraform is told about the mirror before it is first run, and never phones
# home for version checks.
write_cli_config() {
  cat >"$cli_config.tmp" <<HCL
# Written by scripts/build-terraform.sh. hashicorp/vault comes from the local
# filesystem mirror (a build from source); every other provider would come from
# its registry as usual.
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/hashicorp/vault"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/vault"]
  }
}
HCL
  mv "$cli_config.tmp" "$cli_config"
}
write_cli_config
export TF_CLI_CONFIG_FILE="$cli_config" CHECKPOINT_DISABLE=1

# ---------------------------------------------------------------------------
# 1. Terraform
# ---------------------------------------------------------------------------
if [[ -n "${TERRAFORM_BIN:-}" ]]; then
  [[ -x "$TERRAFORM_BIN" ]] || die "TERRAFORM_BIN=$TERRAFORM_BIN is not an executable file"
  "$TERRAFORM_BIN" version >/dev/null 2>&1 || die "TERRAFORM_BIN=$TERRAFORM_BIN does not run ('terraform version' failed)"
  terraform="$TERRAFORM_BIN"
  say "using TERRAFORM_BIN=$terraform ($("$terraform" version | head -n 1))"
else
  terraform="$cache/terraform-$tf_version/terraform"
  if [[ -x "$terraform" ]] && "$terraform" version 2>/dev/null | head -n 1 | grep -qx "Terraform v$tf_version"; then
    say "reusing $terraform"
  else
    say "building Terraform v$tf_version from source (cold: ~5-10 min)"
    start=$SECONDS
    gobin="$(mktemp -d "$cache/gobin.XXXXXX")"
    if ! GOBIN="$gobin" go install "github.com/hashicorp/terraform@v$tf_version" >&2; then
      rm -rf "$gobin"
      die "go install github.com/hashicorp/terraform@v$tf_version failed"
    fi
    mkdir -p "$(dirname "$terraform")"
    mv "$gobin/terraform" "$terraform"
    rm -rf "$gobin"
    "$terraform" version 2>/dev/null | head -n 1 | grep -qx "Terraform v$tf_version" ||
      die "the Terraform just built does not report v$tf_version: $("$terraform" version 2>&1 | head -n 1)"
    say "built $terraform in $((SECONDS - start))s"
  fi
fi

# ---------------------------------------------------------------------------
# 2. The hashicorp/vault provider, into the filesystem mirror
# ---------------------------------------------------------------------------
provider_dir="$mirror/registry.terraform.io/hashicorp/vault/$provider_version/$platform"
provider="$provider_dir/terraform-provider-vault_v$provider_version"
if [[ -x "$provider" && -s "$provider" ]]; then
  say "reusing $provider"
else
  say "building terraform-provider-vault v$provider_version (protocol 5) from source (cold: ~1.5-3 min)"
  start=$SECONDS
  src="$cache/provider-vault-$provider_version"
  mkdir -p "$src"
  cat >"$src/go.mod" <<GOMOD
// A main module of its own that serves terraform-provider-vault v$provider_version
// over plugin protocol 5. Written by scripts/build-terraform.sh.
module terraformprovidervault

go 1.13

require (
	github.com/hashicorp/terraform v0.12.29
	github.com/terraform-providers/terraform-provider-vault v$provider_version
)

// v$provider_version's go.mod still declares the old module path; the module
// proxy serves it under the new one.
replace github.com/terraform-providers/terraform-provider-vault => github.com/hashicorp/terraform-provider-vault v$provider_version
GOMOD
  cat >"$src/main.go" <<'GOMAIN'
// Command terraform-provider-vault serves hashicorp/vault's provider through
// the plugin package of Terraform v0.12.29, which speaks plugin protocol 5,
// the protocol Terraform 0.12 to 1.x accept.
package main

import (
	"github.com/hashicorp/terraform/plugin"
	"github.com/terraform-providers/terraform-provider-vault/vault"
)

func main() {
	plugin.Serve(&plugin.ServeOpts{ProviderFunc: vault.Provider})
}
GOMAIN
  mkdir -p "$provider_dir"
  (
    cd "$src"
    GOFLAGS=-mod=mod go mod tidy >&2 &&
      GOFLAGS=-mod=mod go build -o "$provider.tmp" . >&2
  ) || {
    rm -f "$provider.tmp"
    die "building terraform-provider-vault v$provider_version in $src failed"
  }
  mv "$provider.tmp" "$provider"
  say "built $provider in $((SECONDS - start))s"
fi

# ---------------------------------------------------------------------------
# 3. Smoke test: Terraform must find the provider in the mirror, offline.
# ---------------------------------------------------------------------------
stamp="$cache/.verified-$(basename "$(dirname "$terraform")")-$(cksum <"$terraform" | cut -d' ' -f1)-$(cksum <"$provider" | cut -d' ' -f1)"
if [[ ! -e "$stamp" ]]; then
  probe="$(mktemp -d "${TMPDIR:-/tmp}/build-terraform.XXXXXX")"
  cat >"$probe/main.tf" <<'HCL'
terraform {
  required_providers {
    vault = { source = "hashicorp/vault", version = "1.9.0" }
  }
}
HCL
  if ! (cd "$probe" && "$terraform" init -input=false -no-color >"$probe/init.log" 2>&1 &&
    "$terraform" providers schema -json >"$probe/schema.json" 2>>"$probe/init.log" &&
    grep -q '"vault_generic_endpoint"' "$probe/schema.json"); then
    cat "$probe/init.log" >&2
    rm -rf "$probe"
    die "terraform could not load hashicorp/vault $provider_version from $mirror"
  fi
  rm -rf "$probe"
  touch "$stamp"
  say "checked: terraform init loads hashicorp/vault $provider_version from the mirror"
fi

echo "TERRAFORM=$terraform"
echo "TF_CLI_CONFIG_FILE=$cli_config"
