// Command plugin_autowatch is the plugin auto-load demo: it loads
// conf.d/plugins.yaml, watches ./plugins and the config, and reports every
// plugin loaded, reloaded, unloaded or refused.
//
//	go run ./examples/plugin_autowatch
//
// While it runs, copy a plugin into ./plugins (it loads), replace it (it is
// swapped), delete it (it unloads), or edit conf.d/plugins.yaml (the change is
// applied). A plugin named "slack" of kind notify gets a test message.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	"github.com/go-arcade/arcade/host"
)

func main() {
	pluginDir := flag.String("plugins", "./plugins", "folder to watch for .wasm plugins")
	configPath := flag.String("config", "./conf.d/plugins.yaml", "plugins configuration")
	every := flag.Duration("every", 10*time.Second, "how often to list the plugins")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(ctx, logger, os.Stdout, *pluginDir, *configPath, *every); err != nil {
		logger.Error("demo failed", "err", err)
		os.Exit(1)
	}
}

// run is the demo: it returns when ctx ends.
func run(ctx context.Context, logger *slog.Logger, out io.Writer, pluginDir, configPath string, every time.Duration) error {
	manager := host.NewManager(logger)
	defer manager.Close(context.Background())
	defer manager.Subscribe(func(e host.Event) {
		line := fmt.Sprintf("event: %s %s", e.Type, e.Plugin)
		if e.Version != "" {
			line += " " + e.Version
		}
		if e.Err != nil {
			line += ": " + e.Err.Error()
		}
		fmt.Fprintln(out, line)
	})()

	// Load plugins from the configuration.
	if err := manager.LoadPluginsFromConfig(configPath); err != nil {
		return err
	}
	if err := manager.Init(ctx); err != nil {
		logger.Warn("some plugins did not load", "err", err)
	}
	// Watch the plugin folder and the configuration.
	if err := manager.StartAutoWatch([]string{pluginDir}, configPath); err != nil {
		return err
	}
	defer manager.StopAutoWatch()
	fmt.Fprintf(out, "watching %s and %s; press Ctrl-C to stop\n", pluginDir, configPath)

	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			for _, p := range manager.List() {
				fmt.Fprintf(out, "plugin %s: %s %s %s\n", p.GetName(),
					host.KindName(p.GetMetadata().GetKind()), p.GetMetadata().GetVersion(), p.GetState())
			}
			// Use a plugin.
			notifyPlugin, err := manager.GetNotifyPlugin("slack")
			if err == nil {
				message := &pluginv1.SendRequest{Title: "Arcade demo", Body: "hello from plugin_autowatch"}
				resp, err := notifyPlugin.Send(ctx, message)
				fmt.Fprintf(out, "slack: %v %v\n", resp.GetStatus(), err)
			} else if !errors.Is(err, host.ErrNotFound) {
				fmt.Fprintf(out, "slack: %v\n", err)
			}
		}
	}
}
