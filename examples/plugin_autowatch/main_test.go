package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a goroutine-safe buffer for the demo's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDemo runs the demo against a temporary folder: a plugin dropped in is
// loaded and used, and unloaded when deleted.
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "slack.wasm.src")
	build := exec.Command("go", "build", "-buildmode=c-shared", "-o", wasm, "../../host/testdata/kitchen")
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the test plugin: %v\n%s", err, b)
	}
	pluginDir := filepath.Join(dir, "plugins")
	configPath := filepath.Join(dir, "plugins.yaml")
	config := "plugins:\n  - {name: slack, path: plugins/slack.wasm, kind: notify, config: {kind: KIND_NOTIFY}}\n"
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))

	ctx, cancel := context.WithCancel(context.Background())
	var out lockedBuffer
	done := make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	go func() { done <- run(ctx, logger, &out, pluginDir, configPath, 100*time.Millisecond) }()
	waitFor := func(s string) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Minute); !strings.Contains(out.String(), s); {
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("demo never printed %q:\n%s", s, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("watching")
	b, err := os.ReadFile(wasm)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pluginDir, "slack.wasm"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor("event: loaded slack 1.0.0")
	waitFor("slack: STATUS_SUCCESS <nil>")
	if err := os.Remove(filepath.Join(pluginDir, "slack.wasm")); err != nil {
		t.Fatal(err)
	}
	waitFor("event: unloaded slack")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
