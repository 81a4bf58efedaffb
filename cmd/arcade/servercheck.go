package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/go-arcade/arcade/host"
	"github.com/go-arcade/arcade/server"
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
then restart the server.

It is also the dry run of plugins.yaml's signature policy (trusted_keys,
require_signatures, signature_mode): each enabled plugin's module and its
signature (NAME.wasm.sig beside it, or signature:) are read and checked against
trusted_keys, nothing compiled. It lists each plugin the policy refuses, or in
signature_mode warn would refuse under enforce, with the reason and what of
server.yaml needs it (artifact_store, audit, notify rule NAME). It fails when
the policy refuses a plugin (a bad signature in every mode); in warn mode it
lists and passes. A module not built yet (before make plugins) is reported as
missing, an oci:// plugin as checked when pulled. A server refuses to start
when the policy refuses a plugin server.yaml needs.`,
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
			out := cmd.OutOrStdout()
			plugins := "no plugins configuration"
			var pc *host.Config
			if cfg.PluginsConfig != "" {
				if _, err := os.Stat(cfg.PluginsConfig); err == nil {
					if pc, err = host.LoadConfig(cfg.PluginsConfig); err != nil {
						return err
					}
					plugins = fmt.Sprintf("%s: %d plugins", cfg.PluginsConfig, len(pc.Plugins))
				}
			}
			fmt.Fprintf(out, "%s: ok, %d notification rules; %s\n", configPath, len(cfg.Notify.Rules), plugins)
			if pc == nil {
				return nil
			}
			return checkSignaturePolicy(out, cfg, pc)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "conf.d/server.yaml", "server configuration file")
	return cmd
}

// checkSignaturePolicy prints what plugins.yaml's signature policy makes
// of each plugin, and fails when it refuses one.
func checkSignaturePolicy(out io.Writer, cfg server.Config, pc *host.Config) error {
	deps := cfg.PluginDependencies()
	checks := pc.CheckSignatures(deps...)
	policy := "off (no trusted_keys): signatures are not checked"
	switch {
	case pc.RequireSignatures:
		policy = "enforce (require_signatures)"
	case pc.SignatureMode == host.SignatureWarn:
		policy = "warn (signature_mode): unsigned plugins load; enforce would refuse those listed"
	case len(pc.TrustedKeys) > 0:
		policy = "signatures present are checked; unsigned plugins load (require_signatures off)"
	}
	fmt.Fprintf(out, "signatures: %s; trusted keys: %d\n", policy, len(pc.TrustedKeys))
	var refused, unreadable, needed []string
	fixes := map[string][]host.SignatureCheck{}
	var fixOrder []string
	for _, c := range checks {
		line := ""
		switch c.Verdict {
		case host.SignatureNotChecked, host.SignatureAccepted:
			continue
		case host.SignatureModuleMissing:
			line = fmt.Sprintf("module %s missing (not built yet? make plugins): its signature is checked when it appears", c.Module)
		case host.SignatureAtPull:
			line = fmt.Sprintf("%s: its signature is checked when it is pulled", c.Module)
		case host.SignatureUnreadable:
			line = fmt.Sprintf("unreadable: %v", c.Err)
			unreadable = append(unreadable, c.Plugin)
		case host.SignatureRefused:
			line = "refused, " + reasonOf(c.Err)
			refused = append(refused, c.Plugin)
		case host.SignatureWouldRefuse:
			line = "would be refused under enforce, " + reasonOf(c.Err)
		}
		if len(c.DependedOnBy) > 0 {
			line += "; server.yaml needs it: " + strings.Join(c.DependedOnBy, ", ")
			if c.Verdict == host.SignatureRefused {
				needed = append(needed, c.Plugin+" ("+strings.Join(c.DependedOnBy, ", ")+")")
			}
		}
		if fix := c.Fix(); fix != "" {
			if _, ok := fixes[fix]; !ok {
				fixOrder = append(fixOrder, fix)
			}
			fixes[fix] = append(fixes[fix], c)
		}
		fmt.Fprintf(out, "  %s: %s\n", c.Plugin, line)
	}
	// Each fix once, for the plugins it mends, with their folder when they
	// share one.
	for _, fix := range fixOrder {
		var names []string
		folder := ""
		for i, c := range fixes[fix] {
			names = append(names, c.Plugin)
			if dir := filepath.Dir(c.Module); i == 0 {
				folder = dir
			} else if dir != folder {
				folder = ""
			}
		}
		if folder != "" {
			fix = strings.ReplaceAll(fix, "FOLDER", folder)
		}
		fmt.Fprintf(out, "  fix for %s: %s\n", strings.Join(names, ", "), fix)
	}
	// What server.yaml needs and plugins.yaml does not load.
	for _, d := range deps {
		if slices.ContainsFunc(checks, func(c host.SignatureCheck) bool { return c.Plugin == d.Plugin }) {
			continue
		}
		state := "not in " + cfg.PluginsConfig + " (it loads only from a watched folder's " + d.Plugin + ".wasm)"
		if slices.ContainsFunc(pc.Plugins, func(s host.Spec) bool { return s.Name == d.Plugin }) {
			state = "disabled in " + cfg.PluginsConfig
		}
		fmt.Fprintf(out, "  %s: %s; server.yaml needs it: %s\n", d.Plugin, state, d.By)
	}
	var problems []string
	if len(refused) > 0 {
		p := "the signature policy refuses " + strings.Join(refused, ", ")
		if len(needed) > 0 {
			p += "; a server would not start: it needs " + strings.Join(needed, ", ")
		}
		problems = append(problems, p)
	}
	if len(unreadable) > 0 {
		problems = append(problems, "cannot read the module of "+strings.Join(unreadable, ", "))
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %s", cfg.PluginsConfig, strings.Join(problems, "; "))
}

// reasonOf is a refusal's reason and detail, without the plugin's name.
func reasonOf(err error) string {
	var e *host.Error
	if errors.As(err, &e) {
		return fmt.Sprintf("%s: %s", e.Reason, e.Detail)
	}
	return err.Error()
}
