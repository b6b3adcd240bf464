# One role of the agent secrets engine. Every field has the engine's default,
# and every field is written, so the role in Vault is exactly what this module
# says: removing an argument puts the default back.
#
# Durations are whole seconds or strings such as "90s", "15m", "1h30m", "2d".
# A null argument means the default.

variable "mount_path" {
  description = "Path the agent secrets engine is mounted at, e.g. \"agent\"."
  type        = string
}

variable "name" {
  description = "Name of the role; it is written at <mount_path>/roles/<name>."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$", var.name))
    error_message = "The role name must be letters, digits, '_', '-' and '.', and start and end with a letter, digit or '_'."
  }
}

variable "scopes" {
  description = "Required. The scope patterns sessions of this role may ever hold, each ACTIONS:RESOURCE, e.g. \"read,list:secrets/web/*\" or \"deploy:k8s/+/deployments/web\". One scope per element."
  type        = list(string)

  validation {
    condition     = length(var.scopes) > 0
    error_message = "A role needs at least one scope."
  }
}

variable "audiences" {
  description = "Required. The audiences (resource servers) step credentials of this role may be issued for."
  type        = list(string)

  validation {
    condition     = length(var.audiences) > 0
    error_message = "A role needs at least one audience."
  }
}

variable "session_ttl" {
  description = "Lease TTL of a session when it starts and at each renewal."
  type        = string
  default     = "15m"
  nullable    = false

  validation {
    condition     = can(regex("^([0-9]+|([0-9]+[smhd])+)$", var.session_ttl))
    error_message = "The session_ttl value must be seconds or a duration such as \"15m\"."
  }
}

variable "session_max_ttl" {
  description = "The most a session may live, renewals included; at most the engine's (config's) session_max_ttl."
  type        = string
  default     = "1h"
  nullable    = false

  validation {
    condition     = can(regex("^([0-9]+|([0-9]+[smhd])+)$", var.session_max_ttl))
    error_message = "The session_max_ttl value must be seconds or a duration such as \"1h\"."
  }
}

variable "step_ttl" {
  description = "Lifetime of a step credential when the request names none."
  type        = string
  default     = "60s"
  nullable    = false

  validation {
    condition     = can(regex("^([0-9]+|([0-9]+[smhd])+)$", var.step_ttl))
    error_message = "The step_ttl value must be seconds or a duration such as \"60s\"."
  }
}

variable "step_max_ttl" {
  description = "The longest a step credential may live; longer requests are clamped. At most session_max_ttl and the engine's (config's) step_max_ttl."
  type        = string
  default     = "5m"
  nullable    = false

  validation {
    condition     = can(regex("^([0-9]+|([0-9]+[smhd])+)$", var.step_max_ttl))
    error_message = "The step_max_ttl value must be seconds or a duration such as \"5m\"."
  }
}

variable "max_steps" {
  description = "Step credentials one session may obtain."
  type        = number
  default     = 100
  nullable    = false
}

variable "max_depth" {
  description = "How deep credentials may be derived from credentials (1: no derivation)."
  type        = number
  default     = 3
  nullable    = false
}

variable "max_rate" {
  description = "Step credentials per minute per session, as a token bucket that starts full."
  type        = number
  default     = 60
  nullable    = false
}

variable "max_sessions" {
  description = "Sessions of this role active at once; 0 for no limit."
  type        = number
  default     = 0
  nullable    = false
}

variable "on_violation" {
  description = "\"revoke\" revokes the session at the first violation; \"deny\" refuses the request and revokes the session once its violations exceed violation_limit."
  type        = string
  default     = "revoke"
  nullable    = false

  validation {
    condition     = contains(["revoke", "deny"], var.on_violation)
    error_message = "The on_violation value must be \"revoke\" or \"deny\"."
  }
}

variable "violation_limit" {
  description = "Violations a session tolerates under on_violation = \"deny\"."
  type        = number
  default     = 3
  nullable    = false
}

variable "require_purpose" {
  description = "Whether a session must state its purpose."
  type        = bool
  default     = true
  nullable    = false
}

variable "on_out_of_intent" {
  description = "What a step outside the session's intent but inside the role does: \"violation\" (the default) or \"approval\" (it waits for an administrator other than the session's creator)."
  type        = string
  default     = "violation"
  nullable    = false

  validation {
    condition     = contains(["violation", "approval"], var.on_out_of_intent)
    error_message = "The on_out_of_intent value must be \"violation\" or \"approval\"."
  }
}

variable "max_pending_approvals" {
  description = "Approvals a session may wait for at once, under approval."
  type        = number
  default     = 3
  nullable    = false
}

variable "approval_ttl" {
  description = "How long an approval waits for a decision: seconds, or a duration such as \"15m\"."
  type        = string
  default     = "15m"
  nullable    = false
}

variable "denial_is_violation" {
  description = "Whether a denied approval is also an approval_denied violation of the session."
  type        = bool
  default     = false
  nullable    = false
}
