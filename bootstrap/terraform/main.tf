# Provisions the agent secrets engine in a Vault whose plugin_directory already
# holds the plugin binary: catalog entry, mount, engine configuration, roles and
# the two policies agents and resource servers need.
#
# Only vault_generic_endpoint, vault_mount and vault_policy are used, with
# arguments that hashicorp/vault 1.9.0 and current releases both accept, so the
# configuration runs unchanged on either.

locals {
  plugin_command = coalesce(var.plugin_command, var.plugin_name)
  issuer         = coalesce(var.issuer, "vault:${var.mount_path}")

  unit_seconds = { s = 1, m = 60, h = 3600, d = 86400 }
  # The engine reads durations back as whole seconds; sending seconds keeps
  # `terraform plan` clean.
  config_durations = {
    session_max_ttl   = var.session_max_ttl
    step_max_ttl      = var.step_max_ttl
    session_retention = var.session_retention
  }
  config_seconds = {
    for k, v in local.config_durations : k => (
      can(regex("^[0-9]+$", v))
      ? tonumber(v)
      : sum([for m in regexall("([0-9]+)([smhd])", v) : tonumber(m[0]) * local.unit_seconds[m[1]]])
    )
  }
}

# 1. The catalog entry: name, sha256, command and version.
#
# disable_read: Vault reads a versioned catalog entry only with ?version=...,
# which vault_generic_endpoint cannot send, so a read would find nothing and
# Terraform would re-register on every apply.
# disable_delete: for the same reason a delete could not name the version and
# would silently remove nothing. `terraform destroy` therefore leaves the entry
# (name, sha256, command, version; no secrets); remove it with
#   vault plugin deregister -version=<plugin_version> secret <plugin_name>
resource "vault_generic_endpoint" "plugin" {
  path = "sys/plugins/catalog/secret/${var.plugin_name}"
  data_json = jsonencode({
    sha256  = lower(var.plugin_sha256)
    command = local.plugin_command
    version = var.plugin_version
  })
  disable_read   = true
  disable_delete = true
}

# 2. The mount. vault_mount in provider 1.9.0 has no plugin_version; enabling a
# plugin without a version makes Vault pin the mount to the newest registered
# version, which is the one registered above. `vault secrets list -detailed`
# shows it as plugin_version and running_plugin_version.
resource "vault_mount" "agent" {
  path        = var.mount_path
  type        = var.plugin_name
  description = var.mount_description

  depends_on = [vault_generic_endpoint.plugin]
}

# 2b. The mount passes the DPoP header (RFC 9449) to the engine, so that a
# proof sent with creds or token binds the credential to its key. vault_mount
# in provider 1.9.0 has no passthrough_request_headers: the mount is tuned
# through sys/mounts/<path>/tune.
resource "vault_generic_endpoint" "tune" {
  path = "sys/mounts/${vault_mount.agent.path}/tune"
  data_json = jsonencode({
    passthrough_request_headers = ["DPoP"]
  })
  disable_read   = true
  disable_delete = true
}

# 3. The engine configuration. Every field is written, so removing a setting
# from the variables puts the engine's default back.
resource "vault_generic_endpoint" "config" {
  path = "${vault_mount.agent.path}/config"
  data_json = jsonencode({
    issuer             = local.issuer
    signing_algorithm  = var.signing_algorithm
    session_max_ttl    = local.config_seconds.session_max_ttl
    step_max_ttl       = local.config_seconds.step_max_ttl
    max_events         = var.max_events
    session_retention  = local.config_seconds.session_retention
    session_cache_size = var.session_cache_size
  })
  # Fields a later engine version adds do not show up as drift.
  ignore_absent_fields = true
}

# 4. Roles, one module instance each: module.role["<name>"].
module "role" {
  source   = "./modules/agent-role"
  for_each = var.roles

  mount_path      = vault_mount.agent.path
  name            = each.key
  scopes          = each.value.scopes
  audiences       = each.value.audiences
  session_ttl     = each.value.session_ttl
  session_max_ttl = each.value.session_max_ttl
  step_ttl        = each.value.step_ttl
  step_max_ttl    = each.value.step_max_ttl
  max_steps       = each.value.max_steps
  max_depth       = each.value.max_depth
  max_rate        = each.value.max_rate
  max_sessions    = each.value.max_sessions
  on_violation    = each.value.on_violation
  violation_limit = each.value.violation_limit
  require_purpose = each.value.require_purpose

  on_out_of_intent      = each.value.on_out_of_intent
  max_pending_approvals = each.value.max_pending_approvals
  approval_ttl          = each.value.approval_ttl
  denial_is_violation   = each.value.denial_is_violation

  # A role's TTLs are checked against the engine's session_max_ttl and
  # step_max_ttl, so the configuration goes first (and is removed last).
  depends_on = [vault_generic_endpoint.config]
}

# 5. Policies.
resource "vault_policy" "agent" {
  name   = var.agent_policy_name
  policy = <<-EOT
    # Agents: start a session with a declared intent, take step credentials,
    # read their sessions and end them.
    path "${var.mount_path}/session"        { capabilities = ["update"] }
    path "${var.mount_path}/creds/*"        { capabilities = ["read", "update"] }
    path "${var.mount_path}/session/+"      { capabilities = ["read"] }
    path "${var.mount_path}/sessions/+/end" { capabilities = ["update"] }
  EOT
}

resource "vault_policy" "resource_server" {
  name   = var.resource_server_policy_name
  policy = <<-EOT
    # Resource servers: check a credential online and report what it was used
    # for. jwks and revocations need no token at all.
    path "${var.mount_path}/introspect" { capabilities = ["update"] }
    path "${var.mount_path}/report"     { capabilities = ["update"] }
  EOT
}
