package plugins_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	"github.com/go-arcade/arcade/host"
)

// BenchmarkFSStore saves and loads objects of several sizes through the
// fs-store plugin as the server does (typed face, protojson), reporting
// MB/s: what an artifact part of that size costs. As the server calls it,
// the caller gives the sha256 and checks loads itself (verify_loads off).
func BenchmarkFSStore(b *testing.B) {
	dir := b.TempDir()
	cfg := filepath.Join(dir, "plugins.yaml")
	yaml := fmt.Sprintf("plugins:\n  - name: fs-store\n    path: %s\n    config: {verify_loads: \"false\"}\n    grants:\n      allowed_paths: [{host: %s, guest: /store, mode: rw}]\n      memory_limit_mib: 256\n      timeout: 5m\n", wasm(b, "fs-store"), dir)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		b.Fatal(err)
	}
	m := host.NewManager(slog.New(slog.DiscardHandler), host.WithCacheDir(b.TempDir()))
	defer m.Close(context.Background())
	if err := m.LoadPluginsFromConfig(cfg); err != nil {
		b.Fatal(err)
	}
	if err := m.Init(context.Background()); err != nil {
		b.Fatal(err)
	}
	p, err := m.GetStoragePlugin("fs-store")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, size := range []int{256 << 10, 1 << 20, 4 << 20, 16 << 20} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i * 7)
		}
		sum := sha256.Sum256(data)
		md := map[string]string{"sha256": hex.EncodeToString(sum[:])}
		b.Run(fmt.Sprintf("save/%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := p.Save(ctx, &pluginv1.SaveRequest{Key: "bench/obj", Content: data, Metadata: md}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("load/%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := p.Load(ctx, &pluginv1.LoadRequest{Key: "bench/obj"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
