package host

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	extism "github.com/extism/go-sdk"
	"github.com/tetratelabs/wazero"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
)

// benchRequest is the input both sides of the overhead comparison send.
var benchRequest = &pluginv1.ExecuteRequest{Action: "echo"}

// BenchmarkCallOverhead compares the host's typed call (protojson in and
// out, pool, version reference, error classification) with a bare Extism
// Plugin.Call of the same module, manifest and input bytes.
func BenchmarkCallOverhead(b *testing.B) {
	input, err := marshalOpts.Marshal(benchRequest)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("bare-extism", func(b *testing.B) {
		data, err := os.ReadFile(testWasm.kitchen)
		if err != nil {
			b.Fatal(err)
		}
		cache, err := wazero.NewCompilationCacheWithDir(testWasm.cache)
		if err != nil {
			b.Fatal(err)
		}
		defer cache.Close(context.Background())
		manifest := extism.Manifest{
			Wasm:    []extism.Wasm{extism.WasmData{Data: data}},
			Memory:  &extism.ManifestMemory{MaxPages: DefaultMemoryLimitMiB * 16, MaxHttpResponseBytes: maxHTTPResponseBytes, MaxVarBytes: maxVarBytes},
			Timeout: uint64(DefaultTimeout.Milliseconds()),
		}
		c, err := extism.NewCompiledPlugin(context.Background(), manifest, extism.PluginConfig{
			EnableWasi: true, RuntimeConfig: wazero.NewRuntimeConfig().WithCompilationCache(cache)}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close(context.Background())
		p, err := c.Instance(context.Background(), extism.PluginInstanceConfig{})
		if err != nil {
			b.Fatal(err)
		}
		p.SetLogger(func(extism.LogLevel, string) {})
		ctx := context.Background()
		if _, _, err := p.CallWithContext(ctx, "execute", input); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := p.CallWithContext(ctx, "execute", input); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("host-typed", func(b *testing.B) {
		m := benchManager(b)
		c, err := m.GetCustomPlugin("bench")
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Execute(ctx, benchRequest); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchManager loads the kitchen plugin as "bench" with the default limits
// and a logger that keeps nothing.
func benchManager(b *testing.B) *Manager {
	b.Helper()
	m := NewManager(nil, WithCacheDir(testWasm.cache))
	b.Cleanup(func() { _ = m.Close(context.Background()) })
	path := writeConfig(b, b.TempDir(), Config{Plugins: []Spec{kitchen("bench")}})
	if err := m.LoadPluginsFromConfig(path); err != nil {
		b.Fatal(err)
	}
	if err := m.Init(context.Background()); err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkPoolParallel measures calls per second through the instance
// pool from GOMAXPROCS goroutines.
func BenchmarkPoolParallel(b *testing.B) {
	m := benchManager(b)
	c, err := m.GetCustomPlugin("bench")
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, err := c.Execute(ctx, benchRequest); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

// BenchmarkLoad measures a plugin load (read, check, compile, first
// instance, metadata call) with an empty and a warm compilation cache.
func BenchmarkLoad(b *testing.B) {
	spec := kitchen("load")
	spec.applyLimits(Limits{Timeout: Duration(DefaultTimeout), MemoryLimitMiB: DefaultMemoryLimitMiB, MaxInstances: 1})
	run := func(b *testing.B, cacheDir func() string) {
		for b.Loop() {
			dir := cacheDir()
			m := NewManager(nil, WithCacheDir(dir))
			m.compilationCache()
			v, err := m.loadVersion(context.Background(), spec)
			if err != nil {
				b.Fatal(err)
			}
			v.close()
			_ = m.Close(context.Background())
			if dir != testWasm.cache {
				_ = os.RemoveAll(dir)
			}
		}
	}
	b.Run("cold", func(b *testing.B) {
		base := b.TempDir()
		n := 0
		run(b, func() string {
			n++
			return filepath.Join(base, "c", string(rune('a'+n%26)), time.Now().Format("150405.000000000"))
		})
	})
	b.Run("cached", func(b *testing.B) { run(b, func() string { return testWasm.cache }) })
}

// BenchmarkReplaceToFirstCall measures the time from a module file replaced
// on disk to the first call answered by the new version, through the
// watcher (debounce 20 ms).
func BenchmarkReplaceToFirstCall(b *testing.B) {
	m := NewManager(nil, WithCacheDir(testWasm.cache), WithDebounce(20*time.Millisecond))
	b.Cleanup(func() { _ = m.Close(context.Background()) })
	dir := b.TempDir()
	path := filepath.Join(dir, "swap.wasm")
	copyFile(b, testWasm.kitchen, path)
	loaded := make(chan struct{}, 1)
	defer m.Subscribe(func(e Event) {
		if e.Type == EventLoaded {
			loaded <- struct{}{}
		}
	})()
	if err := m.StartAutoWatch([]string{dir}, ""); err != nil {
		b.Fatal(err)
	}
	<-loaded
	c, err := m.GetCustomPlugin("swap")
	if err != nil {
		b.Fatal(err)
	}
	srcs := []string{testWasm.kitchen2, testWasm.kitchen}
	wants := []string{"2.0.0", "1.0.0"}
	i := 0
	for b.Loop() {
		start := time.Now()
		copyFile(b, srcs[i%2], path)
		for {
			resp, err := c.Execute(context.Background(), &pluginv1.ExecuteRequest{Action: "echo"})
			if err != nil {
				b.Fatal(err)
			}
			if resp.GetResult().GetFields()["version"].GetStringValue() == wants[i%2] {
				break
			}
			if time.Since(start) > 30*time.Second {
				b.Fatal("new version never answered")
			}
			time.Sleep(time.Millisecond)
		}
		i++
	}
}
