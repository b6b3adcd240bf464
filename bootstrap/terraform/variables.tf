# The Vault address and token are not variables: the provider takes them from
# VAULT_ADDR and VAULT_TOKEN.

# ---------------------------------------------------------------------------
# The plugin
# ---------------------------------------------------------------------------

variable "plugin_sha256" {
  description = "SHA-256 of the plugin binary in Vault's plugin_directory, as 64 hex digits (`sha256sum vault-plugin-secrets-agent`). Vault refuses to run a binary whose hash differs."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-fA-F]{64}$", var.plugin_sha256))
    error_message = "The plugin_sha256 value must be 64 hex digits, as printed by sha256sum."
  }
}

variable "plugin_version" {
  description = "Version the plugin is registered under, e.g. \"v0.1.0\". Use the version the binary was built with (`PLUGIN_VERSION=... make build`, default v0.1.0); Vault shows it as running_plugin_version of the mount."
  type        = string

  validation {
    condition     = can(regex("^v[0-9]+\\.[0-9]+\\.[0-9]+([-+][0-9A-Za-z.+-]+)?$", var.plugin_version))
    error_message = "The plugin_version value must be a semantic version with a leading v, e.g. v0.1.0."
  }
}

variable "plugin_name" {
  description = "Name of the plugin in Vault's catalog, which is also the type of the mount."
  type        = string
  default     = "vault-plugin-secrets-agent"
  nullable    = false
}

variable "plugin_command" {
  description = "File name of the plugin binary inside Vault's plugin_directory. Defaults to plugin_name."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------
# The mount and the engine configuration (agent/config)
# ---------------------------------------------------------------------------

variable "mount_path" {
  description = "Path the secrets engine is mounted at, without slashes at either end. Agents then use <mount_path>/session, <mount_path>/creds/<id>, ..."
  type        = string
  default     = "agent"
  nullable    = false

  validation {
    condition     = can(regex("^[^/]+(/[^/]+)*$", var.mount_path))
    error_message = "The mount_path value must not be empty or start or end with a slash."
  }
}

variable "mount_description" {
  description = "Description of the mount, shown by `vault secrets list`."
  type        = string
  default     = "agent sessions with continuous trust"
  nullable    = false
}

variable "issuer" {
  description = "The \"iss\" claim of every step credential; resource servers check it. Defaults to \"vault:<mount_path>\", the engine's own default (e.g. \"vault:agent\"). Set a URL if your resource servers expect one."
  type        = string
  default     = null
}

variable "signing_algorithm" {
  description = "JWS algorithm of step credentials: \"EdDSA\" (Ed25519) or \"ES256\" (ECDSA P-256). Changing it rotates the signing key at once; older keys stay in jwks until their credentials expire."
  type        = string
  default     = "EdDSA"
  nullable    = false

  validation {
    condition     = contains(["EdDSA", "ES256"], var.signing_algorithm)
    error_message = "The signing_algorithm value must be \"EdDSA\" or \"ES256\"."
  }
}

variable "session_max_ttl" {
  description = "The longest any session may live, renewals included; no role's session_max_ttl may exceed it. Seconds or a duration such as \"24h\", \"90m\", \"1h30m\", \"2d\"."
  type        = string
  default     = "24h"
  nullable    = false

  validation {
    condition     = can(regex("^([0-9]+|([0-9]+[smhd])+)$", var.session_max_ttl))
    error_message = "The session_max_ttl value must be seconds or a duration such as \"24h\" or \"1h30m\"."
  }
}

variable "step_max_ttl" {
  description = "The longest any step credential may live; no role's step_max_ttl may exceed it. Seconds or a duration such as \"1h\"."
  type        = string
  default     = "1h"
  nullable    = false

  validation {
    condition     = can(regex("^([0-9]+|([0-9]+[smhd])+)$", var.step_max_ttl))
    error_message = "The step_max_ttl value must be seconds or a duration such as \"1h\" or \"5m\"."
  }
}

variable "max_events" {
  description = "How many timeline events one session keeps; older ones are dropped and counted."
  type        = number
  default     = 1000
  nullable    = false
}

variable "session_cache_size" {
  description = "How many active sessions the active node keeps in memory (16 to 1000000); the others are read from storage when used."
  type        = number
  default     = 10000
  nullable    = false

  validation {
    condition     = var.session_cache_size >= 16 && var.session_cache_size <= 1000000
    error_message = "The session_cache_size value must be between 16 and 1000000."
  }
}

variable "session_retention" {
  description = "How long a closed session's record and timeline stay readable after its last credential expired; then the periodic tidy deletes them. Seconds or a duration such as \"24h\"."
  type        = string
  default     = "24h"
  nullable    = false

  validation {
    condition     = can(regex("^([0-9]+|([0-9]+[smhd])+)$", var.session_retention))
    error_message = "The session_retention value must be seconds or a duration such as \"24h\"."
  }
}

# ---------------------------------------------------------------------------
# Roles
# ---------------------------------------------------------------------------

variable "roles" {
  description = <<-EOT
    Roles to write at <mount_path>/roles/<key>. A role is the hard ceiling for every
    session started under it. scopes and audiences are required; every other field
    is optional and falls back to the engine's default (shown in brackets):
    session_ttl [15m], session_max_ttl [1h], step_ttl [60s], step_max_ttl [5m],
    max_steps [100], max_depth [3], max_rate [60], max_sessions [0 = no limit],
    on_violation ["revoke" or "deny"; revoke], violation_limit [3],
    require_purpose [true]. Durations are seconds or strings such as "15m" or
    "1h30m". Removing a role from this map deletes it, and deleting a role
    revokes its live sessions.
  EOT
  type = map(object({
    scopes          = list(string)
    audiences       = list(string)
    session_ttl     = optional(string)
    session_max_ttl = optional(string)
    step_ttl        = optional(string)
    step_max_ttl    = optional(string)
    max_steps       = optional(number)
    max_depth       = optional(number)
    max_rate        = optional(number)
    max_sessions    = optional(number)
    on_violation    = optional(string)
    violation_limit = optional(number)
    require_purpose = optional(bool)
    # Step-up approval: "violation" (default) or "approval".
    on_out_of_intent      = optional(string)
    max_pending_approvals = optional(number)
    approval_ttl          = optional(string)
    denial_is_violation   = optional(bool)
  }))
  default  = {}
  nullable = false

  validation {
    condition     = alltrue([for name in keys(var.roles) : can(regex("^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$", name))])
    error_message = "Role names must be letters, digits, '_', '-' and '.', and start and end with a letter, digit or '_'."
  }
}

# ---------------------------------------------------------------------------
# Policies
# ---------------------------------------------------------------------------

variable "agent_policy_name" {
  description = "Name of the Vault policy for agents: start sessions, take step credentials, read and end their sessions."
  type        = string
  default     = "agent"
  nullable    = false
}

variable "resource_server_policy_name" {
  description = "Name of the Vault policy for resource servers: introspect and report credentials."
  type        = string
  default     = "resource-server"
  nullable    = false
}
