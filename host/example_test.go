package host_test

import (
	"context"
	"log/slog"
	"os"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	"github.com/go-arcade/arcade/host"
)

// The seed's usage: load conf.d/plugins.yaml, watch ./plugins and the
// configuration, and send a notification through the "slack" plugin.
func ExampleNewManager() {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))

	manager := host.NewManager(logger)
	defer manager.Close(ctx)
	if err := manager.LoadPluginsFromConfig("./conf.d/plugins.yaml"); err != nil {
		logger.Error("plugins config", "err", err)
		return
	}
	if err := manager.Init(ctx); err != nil {
		logger.Warn("some plugins did not load", "err", err)
	}
	if err := manager.StartAutoWatch([]string{"./plugins"}, "./conf.d/plugins.yaml"); err != nil {
		logger.Error("plugin watcher", "err", err)
		return
	}
	defer manager.StopAutoWatch()

	message := &pluginv1.SendRequest{Title: "Build 42 failed", Severity: pluginv1.Severity_SEVERITY_HIGH}
	notifyPlugin, err := manager.GetNotifyPlugin("slack")
	if err == nil {
		if _, err := notifyPlugin.Send(ctx, message); err != nil {
			logger.Warn("notification not sent", "err", err) // e.g. "plugin slack timed out after 10s"
		}
	}
}

// A job step's plugin logs go to the job's log through the call's context.
func ExampleWithLogger() {
	var manager *host.Manager // loaded as above
	jobLog := slog.New(slog.NewTextHandler(os.Stdout, nil)).With("job", "j-42")
	ctx := host.WithLogger(context.Background(), jobLog)
	if ci, err := manager.GetCIPlugin("gofmt"); err == nil {
		_, _ = ci.Lint(ctx, &pluginv1.StepRequest{Context: &pluginv1.StepContext{JobId: "j-42", Workspace: "/workspace"}})
	}
}
