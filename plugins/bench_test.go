package plugins_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-arcade/arcade/host"
)

// BenchmarkLoad loads each plugin into a new host: cold (compiled from
// scratch) and cached (wazero's on-disk cache filled). Run with
// -benchtime 1x or a few x: a cold load compiles for a while.
func BenchmarkLoad(b *testing.B) {
	for _, n := range names {
		cfg := filepath.Join(b.TempDir(), "plugins.yaml")
		if err := os.WriteFile(cfg, []byte("plugins:\n  - {name: "+n+", path: "+wasm(b, n)+"}\n"), 0o644); err != nil {
			b.Fatal(err)
		}
		load := func(b *testing.B, cacheDir string) {
			m := host.NewManager(slog.New(slog.DiscardHandler), host.WithCacheDir(cacheDir))
			defer m.Close(context.Background())
			if err := m.LoadPluginsFromConfig(cfg); err != nil {
				b.Fatal(err)
			}
			if err := m.Init(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(n+"/cold", func(b *testing.B) {
			for b.Loop() {
				load(b, "")
			}
		})
		b.Run(n+"/cached", func(b *testing.B) {
			dir := b.TempDir()
			load(b, dir)
			for b.Loop() {
				load(b, dir)
			}
		})
	}
}
