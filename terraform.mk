# terraform.mk: targets for bootstrap/terraform, the Terraform configuration
# that provisions the engine (catalog entry, mount, config, roles, policies).
# Included from GNUmakefile.

.PHONY: terraform
terraform: ## Build (or reuse from the cache) Terraform and the hashicorp/vault provider used by test-terraform.
	@scripts/build-terraform.sh

.PHONY: test-terraform
test-terraform: ## Test bootstrap/terraform end to end: apply, check, remove a role, destroy, against a dev Vault.
	@scripts/test-terraform.sh
