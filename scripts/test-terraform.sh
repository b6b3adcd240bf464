#!/usr/bin/env bash
# test-terraform.sh tests bootstrap/terraform end to end: it builds the plugin,
# starts a throw-away dev Vault whose plugin_directory holds it, runs
# `terraform init` and `terraform apply` on a copy of bootstrap/terraform with
# two roles, and checks with the vault CLI what was created and that agents
# and resource servers can do exactly what their policies say. Then it removes
# one role while a session of it is live (the session must be revoked), destroys
# everything, and checks that the mount is gone.
#
# Every check is an assertion: the first one that fails stops the script with a
# non-zero exit status and the relevant log.
#
# Usage: scripts/test-terraform.sh     (or: make test-terraform)
#
# Environment:
#   PLUGIN_VERSION  version the plugin is built and registered with (default v0.1.0)
#   VAULT_BIN       a Vault binary to use instead of scripts/build-vault.sh's
#   TERRAFORM_BIN   a Terraform binary to use instead of scripts/build-terraform.sh's
#   KEEP_WORK=1     keep the temporary folder (Terraform state, logs) for debugging
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
version="${PLUGIN_VERSION:-v0.1.0}"
name="vault-plugin-secrets-agent"
module="github.com/continuoustrust/vault-plugin-secrets-agent"
checks=0

step() { printf '\n==> %s\n' "$*"; }
say() { printf '%s\n' "$*" | sed 's/^/    /'; }
pass() {
  checks=$((checks + 1))
  printf '    ok  %s\n' "$*"
}
fail() {
  printf '\n    FAIL  %s\n' "$*" >&2
  exit 1
}
# expect_eq WHAT GOT WANT
expect_eq() {
  if [[ "$2" != "$3" ]]; then
    fail "$1: got '$2', want '$3'"
  fi
  pass "$1 = $3"
}

for tool in go jq sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is not on PATH (jq: apt-get install jq)"
done

work="$(mktemp -d "${TMPDIR:-/tmp}/agent-tf-test.XXXXXX")"
vault_pid=""
cleanup() {
  local rc=$?
  if [[ -n "$vault_pid" ]] && kill -0 "$vault_pid" 2>/dev/null; then
    kill "$vault_pid" 2>/dev/null || true
    wait "$vault_pid" 2>/dev/null || true
  fi
  if [[ $rc -ne 0 && -f "$work/vault.log" ]]; then
    echo "---- last 40 lines of Vault's log ----" >&2
    tail -n 40 "$work/vault.log" >&2 || true
  fi
  if [[ "${KEEP_WORK:-}" == 1 ]]; then
    echo "kept $work" >&2
  else
    rm -rf "$work"
  fi
  if [[ $rc -eq 0 ]]; then
    printf '\nPASS: %d checks; bootstrap/terraform works end to end.\n' "$checks"
  else
    printf '\nFAILED after %d passing checks (exit %d).\n' "$checks" "$rc" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# ---------------------------------------------------------------------------
step "Building the plugin ($name $version), Vault and Terraform"
mkdir -p "$work/plugins"
(cd "$root" && go build -trimpath -ldflags "-X $module.Version=$version" \
  -o "$work/plugins/$name" "./cmd/$name") || fail "building the plugin"
sha="$(sha256sum "$work/plugins/$name" | cut -d' ' -f1)"
say "plugin  $work/plugins/$name"
say "sha256  $sha"

vault_bin="$("$root/scripts/build-vault.sh" | tail -n 1)" || fail "scripts/build-vault.sh failed"
[[ -x "$vault_bin" ]] || fail "scripts/build-vault.sh did not give an executable Vault: '$vault_bin'"
say "vault   $vault_bin ($("$vault_bin" version))"

tf_out="$("$root/scripts/build-terraform.sh")" || fail "scripts/build-terraform.sh failed"
terraform="$(sed -n 's/^TERRAFORM=//p' <<<"$tf_out" | tail -n 1)"
tf_cli_config="$(sed -n 's/^TF_CLI_CONFIG_FILE=//p' <<<"$tf_out" | tail -n 1)"
[[ -x "$terraform" && -f "$tf_cli_config" ]] || fail "scripts/build-terraform.sh gave no usable TERRAFORM/TF_CLI_CONFIG_FILE"
say "terraform $terraform ($("$terraform" version 2>/dev/null | head -n 1))"
export TF_CLI_CONFIG_FILE="$tf_cli_config" CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_INPUT=0
# The 1.9.0 provider warns when VAULT_SKIP_VERIFY is unset.
export VAULT_SKIP_VERIFY=false

# ---------------------------------------------------------------------------
step "Starting a throw-away dev Vault"
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=""
for _ in $(seq 1 50); do
  p=$((20000 + RANDOM % 40000))
  # The dev server also listens on the next port for cluster traffic.
  if port_free "$p" && port_free $((p + 1)); then
    port="$p"
    break
  fi
done
[[ -n "$port" ]] || fail "no free loopback port found"

cat >"$work/config.hcl" <<HCL
plugin_directory = "$work/plugins"
HCL
unset VAULT_NAMESPACE VAULT_CACERT VAULT_CAPATH VAULT_CLIENT_CERT VAULT_CLIENT_KEY VAULT_AGENT_ADDR
export VAULT_ADDR="http://127.0.0.1:$port" VAULT_TOKEN=root
"$vault_bin" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$port" \
  -config="$work/config.hcl" >"$work/vault.log" 2>&1 &
vault_pid=$!
for _ in $(seq 1 150); do
  if "$vault_bin" status >/dev/null 2>&1; then break; fi
  kill -0 "$vault_pid" 2>/dev/null || fail "Vault exited at start"
  sleep 0.2
done
"$vault_bin" status >/dev/null 2>&1 || fail "Vault did not come up on $VAULT_ADDR"
pass "Vault is up at $VAULT_ADDR (plugin_directory $work/plugins)"

vault() { "$vault_bin" "$@"; }
# vault_as TOKEN ARGS...: the vault CLI with another token.
vault_as() {
  local token="$1"
  shift
  VAULT_TOKEN="$token" "$vault_bin" "$@"
}

# ---------------------------------------------------------------------------
step "terraform init and apply (bootstrap/terraform, two roles)"
tf_dir="$work/terraform"
mkdir -p "$tf_dir"
# A clean copy: no .terraform, lock file, state or tfvars from a developer's tree.
(cd "$root/bootstrap/terraform" && tar --exclude=.terraform --exclude=.terraform.lock.hcl \
  --exclude='*.tfstate' --exclude='*.tfstate.*' --exclude='*.tfvars' --exclude='*.auto.tfvars' \
  -cf - .) | (cd "$tf_dir" && tar -xf -)

issuer="https://vault.test/v1/agent"
write_tfvars() { # file with_deployer(0/1) with_broken(0/1)
  {
    cat <<HCL
plugin_sha256  = "$sha"
plugin_version = "$version"
issuer         = "$issuer"
max_events     = 500

roles = {
HCL
    if [[ "$2" == 1 ]]; then
      cat <<'HCL'
  deployer = {
    # Actions out of order on purpose: the module sends the engine's canonical
    # form, so the plan after apply is clean.
    scopes          = ["read,list:secrets/web/*", "write:secrets/web/tmp/*"]
    audiences       = ["secrets-api", "docs-api"]
    max_steps       = 20
    session_ttl     = "15m"
    session_max_ttl = "1h30m"
    step_max_ttl    = "10m"
  }
HCL
    fi
    if [[ "$3" == 1 ]]; then
      cat <<'HCL'
  broken = {
    # The engine refuses this role: step_ttl exceeds step_max_ttl.
    scopes       = ["read:x/*"]
    audiences    = ["x"]
    step_ttl     = "10m"
    step_max_ttl = "5m"
  }
HCL
    fi
    cat <<'HCL'
  auditor = {
    scopes          = ["read:logs/*"]
    audiences       = ["logs-api"]
    step_ttl        = 30
    max_rate        = 10
    max_sessions    = 5
    on_violation    = "deny"
    violation_limit = 2
    require_purpose = false

    on_out_of_intent      = "approval"
    max_pending_approvals = 2
    approval_ttl          = "10m"
    denial_is_violation   = true
  }
}
HCL
  } >"$1"
}
write_tfvars "$tf_dir/two-roles.tfvars" 1 0
write_tfvars "$tf_dir/one-role.tfvars" 0 0
write_tfvars "$tf_dir/broken.tfvars" 1 1

# tf LOG ARGS...: run terraform in the copy; show the resource lines, keep the
# whole output in LOG, and show it all if terraform fails.
tf() {
  local log="$work/$1"
  shift
  if ! (cd "$tf_dir" && "$terraform" "$@" -no-color >"$log" 2>&1); then
    cat "$log" >&2
    fail "terraform $1 failed (log above)"
  fi
  grep -E ': (Creation|Modifications|Destruction) complete|^(Apply|Destroy) complete|^Terraform has been successfully|^- Installed|^- Installing' "$log" |
    sed 's/^/    | /' || true
}
tf init.log init -input=false
grep -q 'Installing hashicorp/vault v1.9.0' "$work/init.log" || fail "terraform init did not install hashicorp/vault v1.9.0 from the mirror"
pass "terraform init took hashicorp/vault v1.9.0 from the filesystem mirror"
tf apply.log apply -auto-approve -input=false -var-file=two-roles.tfvars
grep -q '^Apply complete! Resources: 8 added, 0 changed, 0 destroyed' "$work/apply.log" ||
  fail "apply did not add exactly 8 resources: $(grep '^Apply complete' "$work/apply.log")"
pass "terraform apply added 8 resources"

set +e
(cd "$tf_dir" && "$terraform" plan -detailed-exitcode -input=false -no-color -var-file=two-roles.tfvars >"$work/plan.log" 2>&1)
plan_rc=$?
set -e
if [[ $plan_rc -ne 0 ]]; then
  cat "$work/plan.log" >&2
  fail "terraform plan right after apply is not clean (exit $plan_rc; 2 means changes)"
fi
pass "terraform plan right after apply: no changes (exit 0 with -detailed-exitcode)"

# ---------------------------------------------------------------------------
step "What Vault has now"
plugin_json="$(vault plugin info -format=json -version="$version" secret "$name")" ||
  fail "the plugin is not in the catalog as $name $version"
expect_eq "catalog: version" "$(jq -r .version <<<"$plugin_json")" "$version"
expect_eq "catalog: sha256" "$(jq -r .sha256 <<<"$plugin_json")" "$sha"
expect_eq "catalog: command" "$(jq -r .command <<<"$plugin_json")" "$name"

mount_json="$(vault secrets list -detailed -format=json | jq '."agent/"')"
[[ "$mount_json" != null ]] || fail "vault secrets list shows no agent/ mount"
expect_eq "agent/: type" "$(jq -r .type <<<"$mount_json")" "$name"
expect_eq "agent/: plugin_version" "$(jq -r .plugin_version <<<"$mount_json")" "$version"
expect_eq "agent/: running_plugin_version" "$(jq -r .running_plugin_version <<<"$mount_json")" "$version"
expect_eq "agent/: running_sha256" "$(jq -r .running_sha256 <<<"$mount_json")" "$sha"
expect_eq "agent/: passthrough_request_headers" "$(vault read -format=json sys/mounts/agent/tune | jq -c .data.passthrough_request_headers)" '["DPoP"]'
say "$(vault secrets list -detailed | grep -E '^(Path|agent/)' | cut -c1-160)"

config_json="$(vault read -format=json agent/config | jq -cS .data)"
expect_eq "agent/config" "$config_json" \
  "$(jq -cnS --arg iss "$issuer" '{issuer: $iss, signing_algorithm: "EdDSA", session_max_ttl: 86400, step_max_ttl: 3600, max_events: 500, session_retention: 86400, session_cache_size: 10000}')"

expect_eq "agent/roles list" "$(vault list -format=json agent/roles | jq -c 'sort')" '["auditor","deployer"]'
deployer_json="$(vault read -format=json agent/roles/deployer | jq -cS .data)"
expect_eq "agent/roles/deployer" "$deployer_json" "$(jq -cnS '{
  scopes: ["list,read:secrets/web/*", "write:secrets/web/tmp/*"], audiences: ["secrets-api", "docs-api"],
  session_ttl: 900, session_max_ttl: 5400, step_ttl: 60, step_max_ttl: 600,
  max_steps: 20, max_depth: 3, max_rate: 60, max_sessions: 0,
  on_violation: "revoke", violation_limit: 3, require_purpose: true,
  on_out_of_intent: "violation", max_pending_approvals: 3, approval_ttl: 900, denial_is_violation: false}')"
auditor_json="$(vault read -format=json agent/roles/auditor | jq -cS .data)"
expect_eq "agent/roles/auditor" "$auditor_json" "$(jq -cnS '{
  scopes: ["read:logs/*"], audiences: ["logs-api"],
  session_ttl: 900, session_max_ttl: 3600, step_ttl: 30, step_max_ttl: 300,
  max_steps: 100, max_depth: 3, max_rate: 10, max_sessions: 5,
  on_violation: "deny", violation_limit: 2, require_purpose: false,
  on_out_of_intent: "approval", max_pending_approvals: 2, approval_ttl: 600, denial_is_violation: true}')"

expect_eq "policies" "$(vault policy list -format=json | jq -c '[.[] | select(. == "agent" or . == "resource-server")] | sort')" \
  '["agent","resource-server"]'
policy_paths() { # name -> "path caps; path caps; ..." from the policy text
  vault policy read "$1" | sed -n 's/^path "\([^"]*\)" *{ *capabilities = \[\(.*\)\] *}$/\1 \2/p' | tr -d '"' | paste -sd ';' -
}
expect_eq "policy agent" "$(policy_paths agent)" \
  "agent/session update;agent/creds/* read, update;agent/session/+ read;agent/sessions/+/end update"
expect_eq "policy resource-server" "$(policy_paths resource-server)" \
  "agent/introspect update;agent/report update"

# ---------------------------------------------------------------------------
step "Drift and bad input"
vault write agent/roles/auditor max_rate=11 >/dev/null
set +e
(cd "$tf_dir" && "$terraform" plan -detailed-exitcode -input=false -no-color -var-file=two-roles.tfvars >"$work/plan-drift.log" 2>&1)
plan_rc=$?
set -e
if [[ $plan_rc -ne 2 ]]; then
  cat "$work/plan-drift.log" >&2
  fail "terraform plan after 'vault write agent/roles/auditor max_rate=11' exited $plan_rc, want 2 (changes)"
fi
grep -q 'module.role\["auditor"\].vault_generic_endpoint.role will be updated in-place' "$work/plan-drift.log" ||
  fail "the drift plan does not update module.role[\"auditor\"]"
pass "an out-of-band change to agent/roles/auditor shows up in terraform plan"
tf apply-drift.log apply -auto-approve -input=false -var-file=two-roles.tfvars
expect_eq "after apply, agent/roles/auditor max_rate" "$(vault read -field=max_rate agent/roles/auditor)" 10

if (cd "$tf_dir" && "$terraform" apply -auto-approve -input=false -no-color -var-file=broken.tfvars \
  >"$work/apply-broken.log" 2>&1); then
  fail "apply of a role with step_ttl > step_max_ttl succeeded"
fi
grep -q 'step_ttl: 10m0s exceeds step_max_ttl 5m0s' "$work/apply-broken.log" || {
  cat "$work/apply-broken.log" >&2
  fail "the failed apply does not carry the engine's message naming step_ttl"
}
pass "a role with step_ttl > step_max_ttl fails the apply with the engine's message: $(grep -o 'step_ttl: 10m0s exceeds step_max_ttl 5m0s' "$work/apply-broken.log" | head -n 1)"
if vault read agent/roles/broken >/dev/null 2>&1; then fail "agent/roles/broken exists after the failed apply"; fi
pass "agent/roles/broken was not created"

# ---------------------------------------------------------------------------
step "An agent (token with policy agent) works within its policy"
agent_token="$(vault token create -policy=agent -ttl=30m -field=token)"
rs_token="$(vault token create -policy=resource-server -ttl=30m -field=token)"

session_json="$(vault_as "$agent_token" write -format=json agent/session role=deployer \
  purpose="rotate the web TLS certificate" scopes="read,list:secrets/web/*" audiences=secrets-api max_steps=5)" ||
  fail "the agent could not start a session"
session_id="$(jq -r .data.session_id <<<"$session_json")"
[[ -n "$session_id" && "$session_id" != null ]] || fail "agent/session answered no session_id"
expect_eq "session: role" "$(jq -r .data.role <<<"$session_json")" deployer
expect_eq "session: lease renewable" "$(jq -r .renewable <<<"$session_json")" true
say "session $session_id (lease $(jq -r .lease_id <<<"$session_json"))"

cred_json="$(vault_as "$agent_token" read -format=json "agent/creds/$session_id" \
  scopes="read:secrets/web/tls" audience=secrets-api description="fetch the current certificate")" ||
  fail "the agent could not read agent/creds/$session_id"
cred="$(jq -r .data.token <<<"$cred_json")"
[[ "$cred" == *.*.* ]] || fail "agent/creds answered no JWS token: $cred"
expect_eq "credential: scopes" "$(jq -c .data.scopes <<<"$cred_json")" '["read:secrets/web/tls"]'
expect_eq "credential: audience" "$(jq -r .data.audience <<<"$cred_json")" secrets-api

expect_eq "agent reads its session: state" \
  "$(vault_as "$agent_token" read -format=json "agent/session/$session_id" | jq -r .data.state)" active

# deny_check WHAT TOKEN ARGS...: the command must fail with permission denied.
deny_check() {
  local what="$1" token="$2" out
  shift 2
  if out="$(vault_as "$token" "$@" 2>&1)"; then
    fail "$what: succeeded, but the policy should deny it"
  fi
  grep -q 'permission denied' <<<"$out" || fail "$what: failed, but not with permission denied: $out"
  pass "$what: permission denied"
}
deny_check "the agent reads agent/config" "$agent_token" read agent/config
deny_check "the agent writes agent/roles/deployer" "$agent_token" write agent/roles/deployer max_steps=100

# ---------------------------------------------------------------------------
step "A resource server (token with policy resource-server) works within its policy"
deny_check "the resource server starts a session" "$rs_token" write agent/session role=deployer purpose="x"
introspect_json="$(vault_as "$rs_token" write -format=json agent/introspect token="$cred")" ||
  fail "the resource server could not introspect"
expect_eq "introspect: active" "$(jq -r .data.active <<<"$introspect_json")" true
expect_eq "introspect: session_state" "$(jq -r .data.session_state <<<"$introspect_json")" active
report_json="$(vault_as "$rs_token" write -format=json agent/report token="$cred" \
  action=read resource=secrets/web/tls outcome=allowed)" || fail "the resource server could not report"
expect_eq "report: recorded" "$(jq -r .data.recorded <<<"$report_json")" true

vault_as "$agent_token" write -f "agent/sessions/$session_id/end" >/dev/null || fail "the agent could not end its session"
expect_eq "after the agent ended it: session state" \
  "$(vault read -format=json "agent/sessions/$session_id" | jq -r .data.state)" ended
expect_eq "after the end: introspect active" \
  "$(vault_as "$rs_token" write -format=json agent/introspect token="$cred" | jq -r .data.active)" false

# ---------------------------------------------------------------------------
step "Removing a role from the variables deletes it, and revokes its live session"
live_json="$(vault_as "$agent_token" write -format=json agent/session role=deployer \
  purpose="a task still running when the role goes" scopes="read:secrets/web/*" audiences=secrets-api)" ||
  fail "the agent could not start the second session"
live_id="$(jq -r .data.session_id <<<"$live_json")"
live_cred="$(vault_as "$agent_token" read -field=token "agent/creds/$live_id" scopes=read:secrets/web/config audience=secrets-api)" ||
  fail "the agent could not take a credential in the second session"
expect_eq "live session $live_id: state" "$(vault read -field=state "agent/sessions/$live_id")" active

tf apply-one-role.log apply -auto-approve -input=false -var-file=one-role.tfvars
grep -q '^Apply complete! Resources: 0 added, 0 changed, 1 destroyed' "$work/apply-one-role.log" ||
  fail "apply without deployer did not destroy exactly one resource: $(grep '^Apply complete' "$work/apply-one-role.log")"
grep -q 'module.role\["deployer"\].vault_generic_endpoint.role: Destruction complete' "$work/apply-one-role.log" ||
  fail "apply without deployer did not destroy module.role[\"deployer\"]"
pass "terraform apply without deployer destroyed module.role[\"deployer\"] only"

if vault read agent/roles/deployer >/dev/null 2>&1; then fail "agent/roles/deployer still exists"; fi
pass "agent/roles/deployer is gone"
expect_eq "agent/roles/auditor still there: on_violation" "$(vault read -field=on_violation agent/roles/auditor)" deny
live_state_json="$(vault read -format=json "agent/sessions/$live_id" | jq .data)"
expect_eq "live session: state" "$(jq -r .state <<<"$live_state_json")" revoked
expect_eq "live session: revoked_reason" "$(jq -r .revoked_reason <<<"$live_state_json")" "role deleted"
expect_eq "its credential: introspect active" \
  "$(vault_as "$rs_token" write -format=json agent/introspect token="$live_cred" | jq -r .data.active)" false
vault read -format=json agent/revocations | jq -e --arg id "$live_id" '[.data.sessions[].id] | index($id) != null' >/dev/null ||
  fail "agent/revocations does not list $live_id"
pass "agent/revocations lists $live_id"

# ---------------------------------------------------------------------------
step "terraform destroy removes everything it made"
tf destroy.log destroy -auto-approve -input=false -var-file=one-role.tfvars
grep -q '^Destroy complete! Resources: 7 destroyed' "$work/destroy.log" ||
  fail "destroy did not destroy exactly 7 resources: $(grep '^Destroy complete' "$work/destroy.log")"
pass "terraform destroy destroyed the 7 remaining resources"
state_left="$(cd "$tf_dir" && "$terraform" state list -no-color 2>&1)" || fail "terraform state list failed: $state_left"
[[ -z "$state_left" ]] || fail "terraform state still holds: $state_left"
pass "the Terraform state is empty"
if vault secrets list -format=json | jq -e 'has("agent/")' >/dev/null; then fail "agent/ is still mounted"; fi
pass "agent/ is no longer mounted"
for p in agent resource-server; do
  if vault policy read "$p" >/dev/null 2>&1; then fail "policy $p still exists"; fi
  pass "policy $p is gone"
done
# By design (see bootstrap/terraform/main.tf): provider 1.9.0 cannot name the
# version on delete, so the catalog entry stays until it is deregistered.
vault plugin info -version="$version" secret "$name" >/dev/null 2>&1 ||
  fail "the catalog entry was expected to stay after destroy (disable_delete)"
pass "the catalog entry stays after destroy, as documented (disable_delete)"
vault plugin deregister -version="$version" secret "$name" >/dev/null
if vault plugin info -version="$version" secret "$name" >/dev/null 2>&1; then fail "deregistering the catalog entry did not remove it"; fi
pass "vault plugin deregister -version=$version secret $name removes it"
