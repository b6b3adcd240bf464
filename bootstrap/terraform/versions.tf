terraform {
  # optional() object attributes need 1.3; tested with 1.5.7 and 1.11.
  required_version = ">= 1.3.0"

  required_providers {
    vault = {
      source = "hashicorp/vault"
      # Only vault_mount, vault_generic_endpoint and vault_policy are used,
      # with arguments that 1.9.0 and every later release (4.x, 5.x) accept.
      version = ">= 1.9.0"
    }
  }
}

# The provider reads VAULT_ADDR and VAULT_TOKEN (and VAULT_CACERT,
# VAULT_NAMESPACE, ...) from the environment. The token needs to manage the
# plugin catalog, mounts and policies: root, or a token with an equivalent
# admin policy.
provider "vault" {}
