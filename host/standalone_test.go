package host

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunnerStep loads a module from bytes with a workspace granted
// read-write, as an agent runs a job step, and checks what the plugin may do
// there, where its output goes, and that a loop or a hog fails alone.
func TestRunnerStep(t *testing.T) {
	data, err := os.ReadFile(testWasm.kitchen)
	if err != nil {
		t.Fatal(err)
	}
	r := NewRunner(nil, WithCacheDir(testWasm.cache), WithCompilationWorkers(1))
	defer r.Close(context.Background())
	ws := t.TempDir()
	if err := os.WriteFile(filepath.Join(ws, "in.txt"), []byte("from a command"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := Spec{Name: "kitchen", Config: map[string]string{"kind": "KIND_CUSTOM"}}
	spec.Grants.AllowedPaths = []PathGrant{{Host: ws, Guest: "/workspace", Mode: "rw"}}
	spec.Grants.Timeout = Duration(500 * time.Millisecond)
	spec.Grants.MemoryLimitMiB = 16
	l, err := r.Load(context.Background(), spec, data)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Metadata().GetVersion() != "1.0.0" {
		t.Errorf("version %q", l.Metadata().GetVersion())
	}

	var logged syncBuffer
	ctx := WithLogger(context.Background(), slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug})))
	out, err := l.Call(ctx, "execute", []byte(`{"action":"read","params":{"path":"/workspace/in.txt"}}`))
	if err != nil || !strings.Contains(string(out), "from a command") {
		t.Fatalf("read workspace: %s %v", out, err)
	}
	if _, err := l.Call(ctx, "execute", []byte(`{"action":"write","params":{"path":"/workspace/out.txt","content":"from the plugin"}}`)); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(ws, "out.txt")); err != nil || string(b) != "from the plugin" {
		t.Errorf("file the plugin wrote: %q %v", b, err)
	}
	if _, err := l.Call(ctx, "execute", []byte(`{"action":"read","params":{"path":"/etc/hostname"}}`)); !errors.Is(err, ErrPathNotGranted) {
		t.Errorf("read outside the workspace: %v, want path not granted", err)
	}
	if _, err := l.Call(ctx, "execute", []byte(`{"action":"log"}`)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logged.String(), "warn from kitchen 1.0.0") {
		t.Errorf("plugin log lines not in the call's logger:\n%s", logged.String())
	}
	if _, err := l.Call(ctx, "deploy", nil); !errors.Is(err, ErrUnknownFunction) {
		t.Errorf("undeclared function: %v", err)
	}

	_, err = l.Call(ctx, "execute", []byte(`{"action":"loop"}`))
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "timed out after 500ms") {
		t.Errorf("loop: %v, want a timeout", err)
	}
	// The memory bound, apart from the time bound: growing to 16 MiB takes
	// more than 500ms on a loaded machine.
	roomy := spec
	roomy.Grants.Timeout = Duration(time.Minute)
	lr, err := r.Load(context.Background(), roomy, data)
	if err != nil {
		t.Fatal(err)
	}
	defer lr.Close()
	_, err = lr.Call(ctx, "execute", []byte(`{"action":"hog"}`))
	if !errors.Is(err, ErrOutOfMemory) || !strings.Contains(err.Error(), "limit 16 MiB") {
		t.Errorf("hog: %v, want out of memory", err)
	}
	if out, err := l.Call(ctx, "execute", []byte(`{"action":"echo"}`)); err != nil || !strings.Contains(string(out), "1.0.0") {
		t.Errorf("call after the failures: %s %v", out, err)
	}

	// A module that is not what it claims is refused.
	pinned := spec
	pinned.SHA256 = strings.Repeat("0", 64)
	if _, err := r.Load(context.Background(), pinned, data); !errors.Is(err, ErrHashMismatch) {
		t.Errorf("pinned sha256: %v", err)
	}
	if _, err := r.Load(context.Background(), spec, []byte("not wasm")); !errors.Is(err, ErrInvalidModule) {
		t.Errorf("not wasm: %v", err)
	}
}

// TestPluginModule hands out the bytes of the serving version.
func TestPluginModule(t *testing.T) {
	spec := Spec{Name: "kitchen", Path: testWasm.kitchen, Kind: "custom", Config: map[string]string{"a": "b"}}
	spec.Grants.AllowedHosts = []string{"127.0.0.1"}
	spec.Grants.Timeout = Duration(2 * time.Second)
	spec.Grants.MemoryLimitMiB = 32
	m, err := loadSpecs(t, spec)
	if err != nil {
		t.Fatal(err)
	}
	p, err := m.Get("kitchen")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := p.Module()
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(testWasm.kitchen)
	if string(mod.Data) != string(data) || mod.SHA256 != p.Info().GetSha256() || mod.Version != "1.0.0" || mod.Kind != "custom" ||
		mod.Timeout != 2*time.Second || mod.MemoryLimitMiB != 32 || mod.Config["a"] != "b" || mod.AllowedHosts[0] != "127.0.0.1" {
		t.Errorf("module %+v", mod)
	}
}

// BenchmarkRunnerStep is one job step's cost with a warm compilation cache:
// load the module from bytes (compiled code from the cache, metadata call),
// call it once, close it.
func BenchmarkRunnerStep(b *testing.B) {
	data, err := os.ReadFile(testWasm.kitchen)
	if err != nil {
		b.Fatal(err)
	}
	r := NewRunner(nil, WithCacheDir(testWasm.cache))
	defer r.Close(context.Background())
	spec := Spec{Name: "kitchen"}
	spec.Grants.AllowedPaths = []PathGrant{{Host: b.TempDir(), Guest: "/workspace", Mode: "rw"}}
	ctx := context.Background()
	for b.Loop() {
		l, err := r.Load(ctx, spec, data)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := l.Call(ctx, "execute", []byte(`{"action":"echo"}`)); err != nil {
			b.Fatal(err)
		}
		l.Close()
	}
}
