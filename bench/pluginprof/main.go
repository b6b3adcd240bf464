// Command pluginprof is the plugin with a CPU profiler attached, for
// finding where an issuance's time goes inside the plugin process. It
// serves exactly what cmd/vault-plugin-secrets-agent serves (agent.Factory
// through plugin.ServeMultiplex) and, in addition, starts a CPU profile on
// SIGUSR1 and writes it to $PLUGINPROF_OUT on SIGUSR2. Vault passes its own
// environment on to plugins, so set PLUGINPROF_OUT for the Vault server.
//
//	go build -o /tmp/pluginprof ./bench/pluginprof
//	PLUGIN_BIN=/tmp/pluginprof BENCH_PLUGIN_PROFILE=1 scripts/bench.sh
//
// (scripts/bench.sh then sets PLUGINPROF_OUT and asks the load generator to
// signal the plugin around the creds window.) It is never what `make bench`
// measures by default.
package main

import (
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/plugin"

	agent "github.com/continuoustrust/vault-plugin-secrets-agent"
)

func main() {
	if out := os.Getenv("PLUGINPROF_OUT"); out != "" {
		go profileOnSignal(out)
	}
	apiClientMeta := &api.PluginAPIClientMeta{}
	flags := apiClientMeta.FlagSet()
	if err := flags.Parse(os.Args[1:]); err != nil {
		fatal(err)
	}
	tlsProviderFunc := api.VaultPluginTLSProvider(apiClientMeta.GetTLSConfig())
	if err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: agent.Factory,
		TLSProviderFunc:    tlsProviderFunc,
	}); err != nil {
		fatal(err)
	}
}

// profileOnSignal profiles between a SIGUSR1 and the next SIGUSR2.
func profileOnSignal(out string) {
	log := hclog.New(&hclog.LoggerOptions{Name: "pluginprof"})
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, syscall.SIGUSR1, syscall.SIGUSR2)
	var f *os.File
	for s := range ch {
		switch {
		case s == syscall.SIGUSR1 && f == nil:
			var err error
			if f, err = os.Create(out); err != nil {
				log.Error("creating the profile", "error", err)
				f = nil
				continue
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				log.Error("starting the profile", "error", err)
				f.Close()
				f = nil
			}
		case s == syscall.SIGUSR2 && f != nil:
			pprof.StopCPUProfile()
			f.Close()
			f = nil
			log.Info("wrote the CPU profile", "path", out)
		}
	}
}

func fatal(err error) {
	hclog.New(&hclog.LoggerOptions{}).Error("plugin shutting down", "error", err)
	os.Exit(1)
}
