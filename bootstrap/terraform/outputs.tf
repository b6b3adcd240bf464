output "plugin" {
  description = "The catalog entry: name, version, sha256 and command."
  value = {
    name    = var.plugin_name
    version = var.plugin_version
    sha256  = lower(var.plugin_sha256)
    command = local.plugin_command
  }
}

output "mount_path" {
  description = "Path of the agent secrets engine."
  value       = vault_mount.agent.path
}

output "issuer" {
  description = "The \"iss\" claim resource servers must expect."
  value       = local.issuer
}

output "jwks_path" {
  description = "Path (after VAULT_ADDR) of the public signing keys; no token needed."
  value       = "/v1/${vault_mount.agent.path}/jwks"
}

output "revocations_path" {
  description = "Path (after VAULT_ADDR) of the revoked sessions list; no token needed."
  value       = "/v1/${vault_mount.agent.path}/revocations"
}

output "roles" {
  description = "Role name to role path, e.g. { deployer = \"agent/roles/deployer\" }."
  value       = { for name, r in module.role : name => r.path }
}

output "agent_policy" {
  description = "Name of the policy to attach to agents' tokens."
  value       = vault_policy.agent.name
}

output "resource_server_policy" {
  description = "Name of the policy to attach to resource servers' tokens."
  value       = vault_policy.resource_server.name
}
