package plugins_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	"github.com/go-arcade/arcade/host"
	"github.com/go-arcade/arcade/host/pdktest"
)

// shippedConfig copies conf.d/plugins.yaml into a temporary tree laid out
// like the repository, with the built plugins when withPlugins is set.
func shippedConfig(t *testing.T, withPlugins bool) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"conf.d", "plugins"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile("../conf.d/plugins.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(root, "conf.d", "plugins.yaml")
	if err := os.WriteFile(cfg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if withPlugins {
		for _, n := range names {
			data, err := os.ReadFile(wasm(t, n))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, "plugins", n+".wasm"), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return cfg
}

// TestShippedConfig loads conf.d/plugins.yaml as shipped: every enabled
// first-party plugin loads with the kind configured for it.
func TestShippedConfig(t *testing.T) {
	var logs syncBuffer
	m := host.NewManager(slog.New(slog.NewTextHandler(&logs, nil)), host.WithCacheDir(pdktest.CacheDir()))
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	if err := m.LoadPluginsFromConfig(shippedConfig(t, true)); err != nil {
		t.Fatal(err)
	}
	if err := m.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, info := range m.List() {
		seen[info.GetName()] = true
		switch info.GetState() {
		case pluginv1.PluginState_PLUGIN_STATE_LOADED, pluginv1.PluginState_PLUGIN_STATE_DISABLED:
		default:
			t.Errorf("%s: %s %s", info.GetName(), info.GetState(), info.GetLastError())
		}
	}
	for _, n := range names {
		if !seen[n] {
			t.Errorf("conf.d/plugins.yaml has no entry for %s", n)
		}
	}
	// The shipped grants are all the shipped plugins ask for (the job
	// workspace is granted with each step).
	if strings.Contains(logs.String(), "not granted") {
		t.Errorf("a shipped plugin asks for more than it is granted:\n%s", logs.String())
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestShippedConfigUnbuilt: before `make plugins`, loading reports each
// missing module clearly and carries on; the "make plugins" hint comes only
// where the plugin's sources are there for make to build.
func TestShippedConfigUnbuilt(t *testing.T) {
	m := host.NewManager(nil, host.WithCacheDir(""))
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	cfg := shippedConfig(t, false)
	src := filepath.Join(filepath.Dir(cfg), "..", "plugins", "go-lint")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.LoadPluginsFromConfig(cfg); err != nil {
		t.Fatal(err)
	}
	err := m.Init(t.Context())
	if err == nil || !strings.Contains(err.Error(), "plugin go-lint refused: invalid module") {
		t.Fatalf("Init: %v", err)
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		hint := strings.Contains(line, "make plugins")
		if strings.Contains(line, "plugin go-lint ") != hint {
			t.Errorf("the hint where it does not apply, or not where it does: %s", line)
		}
	}
}
