output "name" {
  description = "Name of the role."
  value       = var.name
}

output "path" {
  description = "Vault path of the role, e.g. \"agent/roles/deployer\"."
  value       = vault_generic_endpoint.role.path
}

output "fields" {
  description = "The role as written, in the engine's canonical form (durations in seconds)."
  value       = local.role
}
