package agent

// Version is the plugin's version. The GNUmakefile sets it at build time
// with -ldflags "-X github.com/continuoustrust/vault-plugin-secrets-agent.Version=vX.Y.Z";
// Vault shows it as the mount's running version.
var Version = "v0.1.0"
