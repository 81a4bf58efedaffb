package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/go-arcade/arcade/host"
)

// newServerCheckCmd checks a server's configuration without starting it:
// server.yaml is read once at start, so an edit is checked here first.
func newServerCheckCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check server.yaml, and the plugins.yaml it names, without starting a server",
		Long: `check reads the server's configuration as "arcade server" would (the file,
ARCADE_* variables, defaults) and checks it: unknown keys, limits, notification
rules and their templates. It also reads the plugins configuration the server
would watch. A server reads server.yaml once, when it starts: check an edit,
then restart the server.`,
		Example: `  arcade server check --config conf.d/server.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := serverConfig(cmd, configPath)
			if err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("%s: %w", configPath, err)
			}
			plugins := "no plugins configuration"
			if cfg.PluginsConfig != "" {
				if _, err := os.Stat(cfg.PluginsConfig); err == nil {
					pc, err := host.LoadConfig(cfg.PluginsConfig)
					if err != nil {
						return err
					}
					plugins = fmt.Sprintf("%s: %d plugins", cfg.PluginsConfig, len(pc.Plugins))
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok, %d notification rules; %s\n", configPath, len(cfg.Notify.Rules), plugins)
			return nil
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "conf.d/server.yaml", "server configuration file")
	return cmd
}
