#!/usr/bin/env bash
# test-release.sh: `make release` refuses a version that is not semantic,
# builds every artifact, and builds them identically twice (reproducible:
# the same commit and version give the same checksums).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/agent-release.XXXXXX")"
trap 'rm -rf "$work"' EXIT

if "$root/scripts/release.sh" 1.2.3 "$work/bad" >/dev/null 2>&1; then
  echo "FAIL: release accepted a version without a leading v" >&2
  exit 1
fi
version=v0.0.0-test.1
"$root/scripts/release.sh" "$version" "$work/one" > "$work/one.txt"
# A second build of the same commit and version, from a copy of the source
# in another directory: no path of the build machine may end up in a binary.
mkdir -p "$work/src"
(cd "$root" && git ls-files -z | xargs -0 cp --parents -t "$work/src")
"$work/src/scripts/release.sh" "$version" "$work/two" > /dev/null
sums="vault-plugin-secrets-agent_${version}_SHA256SUMS"
if ! cmp -s "$work/one/$sums" "$work/two/$sums"; then
  echo "FAIL: two builds of the same commit and version differ:" >&2
  diff "$work/one/$sums" "$work/two/$sums" >&2 || true
  exit 1
fi
n=$(wc -l < "$work/one/$sums")
if [[ "$n" -ne 4 ]]; then
  echo "FAIL: expected 4 binaries, SHA256SUMS lists $n" >&2
  exit 1
fi
grep -q -- "-version=$version -command=vault-plugin-secrets-agent_${version}_linux_amd64 secret vault-plugin-secrets-agent" "$work/one.txt" || {
  echo "FAIL: no register line for linux/amd64:" >&2; cat "$work/one.txt" >&2; exit 1; }
# The version is stamped into the binary (what running_plugin_version shows).
if [[ "$(go env GOOS)/$(go env GOARCH)" == linux/amd64 ]]; then
  grep -aq "$version" "$work/one/vault-plugin-secrets-agent_${version}_linux_amd64" || {
    echo "FAIL: the linux/amd64 binary does not carry $version" >&2; exit 1; }
fi
echo "release: 4 binaries, identical across two builds:"
cat "$work/one/$sums"
