package pdktest_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-arcade/arcade/host"
	"github.com/go-arcade/arcade/host/pdktest"
)

var quiet = slog.New(slog.DiscardHandler)

// BenchmarkCallNoop is the cost of a trivial PDK call under the host.
func BenchmarkCallNoop(b *testing.B) {
	p := pdktest.Load(b, probe(b), pdktest.Options{MaxInstances: 1, Logger: quiet})
	for b.Loop() {
		if _, err := p.Plugin.Call(b.Context(), "noop", nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEcho1MiB is 1 MiB in and the same 1 MiB out through the fast
// path.
func BenchmarkEcho1MiB(b *testing.B) {
	p := pdktest.Load(b, probe(b), pdktest.Options{MaxInstances: 1, Logger: quiet})
	in := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	b.SetBytes(int64(2 * len(in)))
	for b.Loop() {
		out, err := p.Plugin.Call(b.Context(), "echo", in)
		if err != nil || len(out) != len(in) {
			b.Fatal(err)
		}
	}
}

// BenchmarkEcho1MiBKernel is the same echo through the kernel, as other
// Extism runtimes move it: each round breaks the instance so that the next
// call, an instance's first, takes the kernel path (the new instance's
// start-up is included, ≈2 ms).
func BenchmarkEcho1MiBKernel(b *testing.B) {
	p := pdktest.Load(b, probe(b), pdktest.Options{MaxInstances: 1, Logger: quiet})
	in := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	b.SetBytes(int64(2 * len(in)))
	for b.Loop() {
		b.StopTimer()
		_ = p.Call("execute", []byte(`{"action":"exit"}`), nil)
		b.StartTimer()
		out, err := p.Plugin.Call(b.Context(), "echo", in)
		if err != nil || len(out) != len(in) {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad is loading the probe plugin into a new host: reading,
// compiling (cold: nothing cached; cached: wazero's on-disk cache filled),
// instantiating and the metadata call.
func BenchmarkLoad(b *testing.B) {
	wasm := probe(b)
	cfg := filepath.Join(b.TempDir(), "plugins.yaml")
	yaml := "plugins:\n  - {name: probe, path: " + wasm + "}\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		b.Fatal(err)
	}
	load := func(b *testing.B, cacheDir string) {
		m := host.NewManager(quiet, host.WithCacheDir(cacheDir))
		defer m.Close(context.Background())
		if err := m.LoadPluginsFromConfig(cfg); err != nil {
			b.Fatal(err)
		}
		if err := m.Init(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			load(b, "")
		}
	})
	b.Run("cached", func(b *testing.B) {
		dir := b.TempDir()
		load(b, dir)
		for b.Loop() {
			load(b, dir)
		}
	})
}
