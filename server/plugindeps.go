package server

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/go-arcade/arcade/host"
)

// PluginDependencies are the plugins the configuration makes the server
// call, each with what calls it as server.yaml names it: the artifact store
// ("artifact_store"), the audit gate ("audit"), notification rules ("notify
// rule NAME").
func (c Config) PluginDependencies() []host.Dependency {
	var deps []host.Dependency
	if c.ArtifactStore != "" {
		deps = append(deps, host.Dependency{Plugin: c.ArtifactStore, By: "artifact_store"})
	}
	if c.AuditPlugin != "" {
		deps = append(deps, host.Dependency{Plugin: c.AuditPlugin, By: "audit"})
	}
	for _, r := range c.Notify.Rules {
		deps = append(deps, host.Dependency{Plugin: r.Plugin, By: "notify rule " + r.Name})
	}
	return deps
}

// checkDependedOnPlugins refuses to start a server whose plugins.yaml
// signature policy refuses a plugin the server itself depends on: it would
// run without its artifact store, notifications or audit gate while saying
// little. A module not built yet (before `make plugins`) is no reason to
// stop: the plugin loads once it appears. The check reads each module and
// its signature, and compiles nothing.
func checkDependedOnPlugins(cfg Config, logger *slog.Logger) error {
	deps := cfg.PluginDependencies()
	if cfg.PluginsConfig == "" || len(deps) == 0 {
		return nil
	}
	if _, err := os.Stat(cfg.PluginsConfig); err != nil {
		return nil // no plugins configuration: startPlugins says so
	}
	pc, err := host.LoadConfig(cfg.PluginsConfig)
	if err != nil {
		return nil // startPlugins refuses it, saying why
	}
	var errs []error
	for _, c := range pc.CheckSignatures(deps...) {
		if c.Verdict != host.SignatureRefused || len(c.DependedOnBy) == 0 {
			continue
		}
		by := strings.Join(c.DependedOnBy, ", ")
		logger.Error("the server depends on a plugin that the signature policy refuses; not starting",
			"plugin", c.Plugin, "needed_by", by, "err", c.Err, "fix", c.Fix())
		errs = append(errs, fmt.Errorf("%s needs plugin %s, which %s refuses: %w; %s", by, c.Plugin, cfg.PluginsConfig, c.Err, c.Fix()))
	}
	if len(errs) > 0 {
		return fmt.Errorf("not starting: %w (arcade server check lists every plugin the policy refuses)", errors.Join(errs...))
	}
	return nil
}
