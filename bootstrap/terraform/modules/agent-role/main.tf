locals {
  unit_seconds = { s = 1, m = 60, h = 3600, d = 86400 }
  durations = {
    session_ttl     = var.session_ttl
    session_max_ttl = var.session_max_ttl
    step_ttl        = var.step_ttl
    step_max_ttl    = var.step_max_ttl
    approval_ttl    = var.approval_ttl
  }
  seconds = {
    for k, v in local.durations : k => (
      can(regex("^[0-9]+$", v))
      ? tonumber(v)
      : sum([for m in regexall("([0-9]+)([smhd])", v) : tonumber(m[0]) * local.unit_seconds[m[1]]])
    )
  }

  # The engine stores scopes in canonical form: actions sorted and
  # deduplicated ("*" if any is "*"), duplicate scopes dropped. Sending that
  # form keeps `terraform plan` clean. A malformed scope is sent as given, and
  # the engine's answer names what is wrong with it.
  scope_parts = [for s in var.scopes : regexall("^([^:]*):(.*)$", trimspace(s))]
  scopes = distinct([
    for i, s in var.scopes : length(local.scope_parts[i]) == 0 ? trimspace(s) : format(
      "%s:%s",
      contains(split(",", local.scope_parts[i][0][0]), "*") ? "*" : join(",", sort(distinct(split(",", local.scope_parts[i][0][0])))),
      local.scope_parts[i][0][1],
    )
  ])

  role = {
    scopes          = local.scopes
    audiences       = distinct([for a in var.audiences : trimspace(a)])
    session_ttl     = local.seconds.session_ttl
    session_max_ttl = local.seconds.session_max_ttl
    step_ttl        = local.seconds.step_ttl
    step_max_ttl    = local.seconds.step_max_ttl
    max_steps       = var.max_steps
    max_depth       = var.max_depth
    max_rate        = var.max_rate
    max_sessions    = var.max_sessions
    on_violation    = var.on_violation
    violation_limit = var.violation_limit
    require_purpose = var.require_purpose

    on_out_of_intent      = var.on_out_of_intent
    max_pending_approvals = var.max_pending_approvals
    approval_ttl          = local.seconds.approval_ttl
    denial_is_violation   = var.denial_is_violation
  }
}

# Writing the role validates every field; a bad one fails the apply with the
# engine's message naming it. Destroying the role revokes its live sessions.
resource "vault_generic_endpoint" "role" {
  path      = "${var.mount_path}/roles/${var.name}"
  data_json = jsonencode(local.role)
  # Fields a later engine version adds do not show up as drift.
  ignore_absent_fields = true
}
