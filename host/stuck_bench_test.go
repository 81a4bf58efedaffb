package host

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
)

// BenchmarkTimeoutOverrun measures how long past its timeout (200 ms) a
// call into a plugin that does not end takes to return: one that sleeps
// (20 s), one that spins, and a load whose metadata sleeps (20 s). It uses
// only the public API and builds its plugin, so the same file runs against
// an earlier build of the host.
func BenchmarkTimeoutOverrun(b *testing.B) {
	wasm := filepath.Join(b.TempDir(), "stuck.wasm")
	if err := buildWasm(wasm, "./testdata/stuck", ""); err != nil {
		b.Fatal(err)
	}
	const timeout = 200 * time.Millisecond
	spec := func(name string, config map[string]string) Spec {
		return Spec{Name: name, Path: wasm, Kind: "custom", Config: config,
			Grants: Grants{Limits: Limits{Timeout: Duration(timeout), MemoryLimitMiB: 64, MaxInstances: 2}}}
	}
	call := func(b *testing.B, action string) {
		m := NewManager(nil, WithCacheDir(filepath.Join(b.TempDir(), "cache")))
		defer m.Close(context.Background())
		if err := m.LoadPluginsFromConfig(writeConfig(b, b.TempDir(), Config{Plugins: []Spec{spec("stuck", nil)}})); err != nil {
			b.Fatal(err)
		}
		if err := m.Init(context.Background()); err != nil {
			b.Fatal(err)
		}
		c, err := m.GetCustomPlugin("stuck")
		if err != nil {
			b.Fatal(err)
		}
		params, _ := structpb.NewStruct(map[string]any{"ms": "20000"})
		var over time.Duration
		b.ResetTimer()
		for range b.N {
			start := time.Now()
			_, err := c.Execute(context.Background(), &pluginv1.ExecuteRequest{Action: action, Params: params})
			over += time.Since(start) - timeout
			if err == nil {
				b.Fatal("a stuck call succeeded")
			}
		}
		b.ReportMetric(float64(over.Milliseconds())/float64(b.N), "overrun-ms")
	}
	b.Run("sleep", func(b *testing.B) { call(b, "sleep") })
	b.Run("busy", func(b *testing.B) { call(b, "busy") })
	b.Run("metadata", func(b *testing.B) {
		// A load that answers first fills the compilation cache, so that
		// the loads measured spend their time in metadata.
		cache := filepath.Join(b.TempDir(), "cache")
		warm := NewManager(nil, WithCacheDir(cache))
		if err := warm.LoadPluginsFromConfig(writeConfig(b, b.TempDir(), Config{Plugins: []Spec{spec("stuck", nil)}})); err != nil {
			b.Fatal(err)
		}
		if err := warm.Init(context.Background()); err != nil {
			b.Fatal(err)
		}
		_ = warm.Close(context.Background())
		var over time.Duration
		b.ResetTimer()
		for range b.N {
			m := NewManager(nil, WithCacheDir(cache))
			if err := m.LoadPluginsFromConfig(writeConfig(b, b.TempDir(), Config{Plugins: []Spec{spec("stuck", map[string]string{"stuck": "sleep", "ms": "20000"})}})); err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			err := m.Init(context.Background())
			over += time.Since(start) - timeout
			if err == nil {
				b.Fatal("a load stuck in metadata succeeded")
			}
			_ = m.Close(context.Background())
		}
		b.ReportMetric(float64(over.Milliseconds())/float64(b.N), "overrun-ms")
	})
}
