package artifacts_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-arcade/arcade/host"
	"github.com/go-arcade/arcade/pdk/pdktest"
	"github.com/go-arcade/arcade/server/artifacts"
)

func TestMain(m *testing.M) { pdktest.Main(m) }

// fsStore loads the first-party fs-store plugin, built from source, over a
// fresh folder, as the server does (it checks loads itself).
func fsStore(t *testing.T) (*artifacts.Objects, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "plugins.yaml")
	yaml := fmt.Sprintf("plugins:\n  - name: fs-store\n    path: %s\n    config: {verify_loads: \"false\"}\n    grants:\n      allowed_paths: [{host: %s, guest: /store, mode: rw}]\n      memory_limit_mib: 128\n",
		pdktest.Build(t, "../../plugins/fs-store"), dir)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	m := host.NewManager(slog.New(slog.DiscardHandler), host.WithCacheDir(pdktest.CacheDir()))
	t.Cleanup(func() { m.Close(context.Background()) })
	if err := m.LoadPluginsFromConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if err := m.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	objects := artifacts.NewObjects(func() (artifacts.Plugin, error) {
		p, err := m.GetStoragePlugin("fs-store")
		if err != nil {
			return nil, err
		}
		return p, nil
	}, 256<<10)
	return objects, dir
}

// TestPartsRoundTrip writes an object in parts (several saved at once),
// reads it back whole, removes it, and notices a part corrupted on disk.
func TestPartsRoundTrip(t *testing.T) {
	objects, dir := fsStore(t)
	ctx := t.Context()
	data := make([]byte, 5*256<<10+123)
	for i := range data {
		data[i] = byte(i % 251)
	}
	w := objects.NewPartWriter(ctx, "artifacts/j/1/dist/app.bin", time.Now().Add(time.Hour))
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 100_000)
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	parts, err := w.Close()
	if err != nil || parts != 6 {
		t.Fatalf("close: %d parts, %v; want 6", parts, err)
	}
	var got bytes.Buffer
	if err := objects.EachPart(ctx, "artifacts/j/1/dist/app.bin", parts, func(b []byte) error { got.Write(b); return nil }); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("read back %d bytes, not the %d written", got.Len(), len(data))
	}

	// A part changed on disk is refused as corrupt.
	part := filepath.Join(dir, "objects", "artifacts/j/1/dist/app.bin/part-000002")
	b, err := os.ReadFile(part)
	if err != nil {
		t.Fatal(err)
	}
	b[10] ^= 0xff
	if err := os.WriteFile(part, b, 0o644); err != nil {
		t.Fatal(err)
	}
	err = objects.EachPart(ctx, "artifacts/j/1/dist/app.bin", parts, func([]byte) error { return nil })
	if !errors.Is(err, artifacts.ErrCorrupt) {
		t.Errorf("corrupt part: %v, want ErrCorrupt", err)
	}

	if err := objects.DeleteParts(ctx, "artifacts/j/1/dist/app.bin", parts); err != nil {
		t.Fatal(err)
	}
	// Deleting again is fine.
	if err := objects.DeleteParts(ctx, "artifacts/j/1/dist/app.bin", parts); err != nil {
		t.Errorf("second delete: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "objects", "artifacts/j/1/dist/app.bin/*")); len(left) != 0 {
		t.Errorf("parts left: %v", left)
	}

	// An aborted write leaves nothing; an empty object is one empty part.
	w = objects.NewPartWriter(ctx, "artifacts/j/1/aborted", time.Time{})
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "objects", "artifacts/j/1/aborted/*")); len(left) != 0 {
		t.Errorf("aborted parts left: %v", left)
	}
	w = objects.NewPartWriter(ctx, "artifacts/j/1/empty", time.Time{})
	if n, err := w.Close(); err != nil || n != 1 {
		t.Errorf("empty object: %d parts, %v", n, err)
	}
}

// TestNoStore: without a plugin every call says so.
func TestNoStore(t *testing.T) {
	objects := artifacts.NewObjects(func() (artifacts.Plugin, error) { return nil, errors.New("plugin fs-store not loaded") }, 0)
	if err := objects.Available(); !errors.Is(err, artifacts.ErrNoStore) {
		t.Errorf("Available: %v", err)
	}
	if _, err := objects.Load(t.Context(), "k"); !errors.Is(err, artifacts.ErrNoStore) {
		t.Errorf("Load: %v", err)
	}
	var none *artifacts.Objects
	if err := none.Available(); !errors.Is(err, artifacts.ErrNoStore) {
		t.Errorf("nil objects: %v", err)
	}
}
