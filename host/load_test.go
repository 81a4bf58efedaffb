package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
)

// wantRefused checks that loading specs fails with reason and message, that
// the failure was raised as an event, and that the plugin is listed as failed.
func wantRefused(t *testing.T, reason Reason, msg string, spec Spec) {
	t.Helper()
	_, err := loadSpecs(t, spec)
	if err == nil {
		t.Fatalf("plugin %s loaded; want %q", spec.Name, reason)
	}
	if !errors.Is(err, reason) {
		t.Fatalf("want %q, got %v", reason, err)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Fatalf("error %q does not contain %q", err, msg)
	}
}

func TestLoadRefusesKindMismatch(t *testing.T) {
	t.Parallel()
	spec := kitchen("k")
	spec.Kind = "ci" // the module declares custom
	wantRefused(t, ErrKindMismatch, "plugin k refused: kind mismatch: configured ci, module declares custom", spec)
}

func TestLoadRefusesMissingFunction(t *testing.T) {
	t.Parallel()
	t.Run("declared but not exported", func(t *testing.T) {
		wantRefused(t, ErrMissingFunction, "plugin bare refused: missing function: module declares lint but does not export it",
			Spec{Name: "bare", Path: testWasm.bare, Kind: "ci"})
	})
	t.Run("not declared", func(t *testing.T) {
		spec := kitchen("partial")
		spec.Kind = "ci"
		spec.Config = map[string]string{"kind": "KIND_CI", "functions": "build,test"}
		wantRefused(t, ErrMissingFunction, "plugin partial refused: missing function: ci plugin does not declare lint", spec)
	})
}

func TestLoadChecksSHA256Pin(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(testWasm.kitchen)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	good := hex.EncodeToString(sum[:])
	bad := strings.Repeat("0", 64)

	spec := kitchen("pinned")
	spec.SHA256 = bad
	wantRefused(t, ErrHashMismatch, "plugin pinned refused: sha256 mismatch: pinned "+bad, spec)

	spec.SHA256 = good
	m := mustLoad(t, spec)
	p, err := m.Get("pinned")
	if err != nil {
		t.Fatal(err)
	}
	if p.Info().GetSha256() != good {
		t.Fatalf("sha256 %s", p.Info().GetSha256())
	}
}

func TestLoadRefusesUnknownContractVersion(t *testing.T) {
	t.Parallel()
	spec := kitchen("future")
	spec.Config = map[string]string{"contract": "v9"}
	wantRefused(t, ErrContract, `plugin future refused: unsupported contract version: module speaks "v9", host supports v1`, spec)
}

func TestLoadChecksExpectedVersion(t *testing.T) {
	t.Parallel()
	spec := kitchen("old")
	spec.Version = "2.0.0"
	wantRefused(t, ErrVersionMismatch, "configured 2.0.0, module declares 1.0.0", spec)
	spec.Version = "1.0.0"
	mustLoad(t, spec)
}

func TestLoadRefusesInvalidModules(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.wasm")
	if err := os.WriteFile(garbage, []byte("#!/bin/sh\necho hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(testWasm.kitchen)
	if err != nil {
		t.Fatal(err)
	}
	half := filepath.Join(dir, "half.wasm")
	if err := os.WriteFile(half, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, ErrInvalidModule, "is not a wasm module", Spec{Name: "garbage", Path: garbage})
	wantRefused(t, ErrInvalidModule, "plugin half refused: invalid module", Spec{Name: "half", Path: half})
	wantRefused(t, ErrInvalidModule, "no such file", Spec{Name: "missing", Path: filepath.Join(dir, "nope.wasm")})
}

func TestInitLoadsTheRestWhenOneFails(t *testing.T) {
	t.Parallel()
	broken := kitchen("broken")
	broken.Kind = "notify"
	m, err := loadSpecs(t, kitchen("good"), broken)
	if !errors.Is(err, ErrKindMismatch) {
		t.Fatalf("Init error %v", err)
	}
	mustEcho(t, m, "good")
	if _, err := m.Get("broken"); !errors.Is(err, ErrNotLoaded) || !strings.Contains(err.Error(), "kind mismatch") {
		t.Fatalf("Get(broken) = %v", err)
	}
	if _, err := m.Get("nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(nobody) = %v", err)
	}
	infos := m.List()
	if len(infos) != 2 || infos[0].GetName() != "broken" || infos[0].GetState() != pluginv1.PluginState_PLUGIN_STATE_FAILED ||
		infos[1].GetState() != pluginv1.PluginState_PLUGIN_STATE_LOADED || infos[1].GetMetadata().GetVersion() != "1.0.0" {
		t.Fatalf("List() = %v", infos)
	}
}

func TestDisabledPluginIsNotLoaded(t *testing.T) {
	t.Parallel()
	off := false
	spec := kitchen("off")
	spec.Enabled = &off
	m := mustLoad(t, spec)
	if _, err := m.Get("off"); !errors.Is(err, ErrNotLoaded) {
		t.Fatalf("Get(off) = %v", err)
	}
	if st := m.List()[0].GetState(); st != pluginv1.PluginState_PLUGIN_STATE_DISABLED {
		t.Fatalf("state %v", st)
	}
}

func TestLoadUsesCompilationCache(t *testing.T) {
	t.Parallel()
	cache := t.TempDir()
	spec := kitchen("cached")
	for i, want := range []string{"cold", "warm"} {
		m := NewManager(testLogger(t), WithCacheDir(cache))
		path := writeConfig(t, t.TempDir(), Config{Plugins: []Spec{spec}})
		if err := m.LoadPluginsFromConfig(path); err != nil {
			t.Fatal(err)
		}
		if err := m.Init(context.Background()); err != nil {
			t.Fatal(err)
		}
		p, _ := m.Get("cached")
		t.Logf("%s load: %s", want, p.cur.Load().loadTime)
		_ = m.Close(context.Background())
		entries, _ := os.ReadDir(cache)
		if i == 0 && len(entries) == 0 {
			t.Fatal("compilation cache is empty after a load")
		}
	}
}

func TestReloadOnRequest(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "manual.wasm")
	copyFile(t, testWasm.kitchen, path)
	spec := kitchen("manual")
	spec.Path = path
	m := mustLoad(t, spec)
	events := recordEvents(t, m)
	copyFile(t, testWasm.kitchen2, path)
	if v := versionOf(t, m, "manual"); v != "1.0.0" {
		t.Fatalf("reloaded without being asked: %s", v)
	}
	if err := m.Reload(context.Background(), "manual"); err != nil {
		t.Fatal(err)
	}
	if v := versionOf(t, m, "manual"); v != "2.0.0" {
		t.Fatalf("after Reload %s answers", v)
	}
	events.wait(t, 0, 0, func(e Event) bool { return e.Type == EventReloaded && e.Previous == "1.0.0" })
	if err := m.Reload(context.Background(), "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Reload(nobody) = %v", err)
	}
}
