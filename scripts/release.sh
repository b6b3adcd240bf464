#!/usr/bin/env bash
# release.sh VERSION [DIST]: build the release artifacts of the plugin into
# DIST (default dist/): static binaries (CGO_ENABLED=0, -trimpath, no build
# ID or VCS stamp, so that two builds of one commit and version are
# identical) for linux and darwin on amd64 and arm64, named
# vault-plugin-secrets-agent_<version>_<os>_<arch> so that several versions
# can sit side by side in Vault's plugin directory; their checksums in
# vault-plugin-secrets-agent_<version>_SHA256SUMS (as HashiCorp names its
# own); and, on stdout, the `vault plugin register` line of each.
set -euo pipefail

version="${1:-}"
dist="${2:-dist}"
semver='^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$'
if [[ ! "$version" =~ $semver ]]; then
  echo "release: VERSION must be a semantic version with a leading v (e.g. v0.2.0), got '${version}'" >&2
  exit 2
fi

name=vault-plugin-secrets-agent
module=github.com/continuoustrust/vault-plugin-secrets-agent
root="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$dist"
dist="$(cd "$dist" && pwd)"
sums="${name}_${version}_SHA256SUMS"
rm -f "$dist/${name}_${version}_"*

for os in linux darwin; do
  for arch in amd64 arm64; do
    out="$dist/${name}_${version}_${os}_${arch}"
    (cd "$root" && CGO_ENABLED=0 GOOS="$os" GOARCH="$arch" go build \
      -trimpath -buildvcs=false \
      -ldflags "-s -w -buildid= -X ${module}.Version=${version}" \
      -o "$out" "./cmd/${name}")
  done
done

(cd "$dist" && sha256sum "${name}_${version}"_{linux,darwin}_* > "$sums")

echo "Built ${version} into ${dist}:"
cat "$dist/$sums"
echo
echo "Copy the binary for your platform into Vault's plugin_directory, check it"
echo "(sha256sum --check --ignore-missing ${sums}), then register it:"
while read -r sum file; do
  echo "  vault plugin register -sha256=${sum} -version=${version} -command=${file} secret ${name}"
done < "$dist/$sums"
