package host

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
)

// A one-line edit of plugins.yaml reloads the plugin whose entry changed,
// and nothing else: not the unchanged ones, not one that failed for a
// reason the edit did not touch.
func TestConfigEditReloadsOnlyTheChangedEntry(t *testing.T) {
	t.Parallel()
	m := newTestManager(t)
	events := recordEvents(t, m)
	dir := t.TempDir()
	alpha, beta := kitchen("alpha"), kitchen("beta")
	missing := Spec{Name: "gamma", Path: filepath.Join(dir, "gamma.wasm"), Kind: "custom"}
	cfgPath := writeConfig(t, dir, Config{Plugins: []Spec{alpha, beta, missing}})
	if err := m.LoadPluginsFromConfig(cfgPath); err != nil {
		t.Fatal(err)
	}
	_ = m.Init(context.Background()) // gamma fails
	if err := m.StartAutoWatch(nil, cfgPath); err != nil {
		t.Fatal(err)
	}
	next := events.len()
	alpha.Grants.Timeout = Duration(7 * time.Second)
	writeConfig(t, dir, Config{Plugins: []Spec{alpha, beta, missing}})
	_, next = events.wait(t, next, time.Minute, func(e Event) bool { return e.Plugin == "alpha" && e.Type == EventReloaded })
	time.Sleep(300 * time.Millisecond) // anything else the edit causes
	events.mu.Lock()
	defer events.mu.Unlock()
	for _, e := range events.events[next:] {
		t.Errorf("the edit of alpha's entry also caused: %s %s %v", e.Type, e.Plugin, e.Err)
	}
}

// Plugin states are told truly: a plugin being compiled is compiling, a
// disabled one is disabled with the kind plugins.yaml gives it, a failed
// one failed, with a hint only where the hint applies.
func TestPluginStates(t *testing.T) {
	t.Parallel()
	m := newTestManager(t)
	dir := t.TempDir()
	off := kitchen("off")
	off.Kind = "notify"
	f := false
	off.Enabled = &f
	missing := Spec{Name: "gamma", Path: filepath.Join(dir, "gamma.wasm"), Kind: "security"}
	cfgPath := writeConfig(t, dir, Config{Plugins: []Spec{kitchen("alpha"), off, missing}})
	if err := m.LoadPluginsFromConfig(cfgPath); err != nil {
		t.Fatal(err)
	}
	done, loading := m.InitBackground(context.Background())
	if strings.Join(loading, " ") != "alpha gamma" {
		t.Errorf("loading %v, want the enabled plugins alpha gamma", loading)
	}
	// Before and while loading, every enabled plugin is listed as compiling
	// or already in its final state, never as loaded without a module.
	for _, info := range m.List() {
		if info.GetState() == pluginv1.PluginState_PLUGIN_STATE_LOADED && info.GetMetadata() == nil {
			t.Errorf("%s listed as loaded with no metadata", info.GetName())
		}
	}
	if len(m.List()) != 3 {
		t.Errorf("listed %d plugins before the load, want 3", len(m.List()))
	}
	<-done
	states := map[string]*pluginv1.PluginInfo{}
	for _, info := range m.List() {
		states[info.GetName()] = info
	}
	if s := states["alpha"]; s.GetState() != pluginv1.PluginState_PLUGIN_STATE_LOADED || s.GetKind() != pluginv1.Kind_KIND_CUSTOM {
		t.Errorf("alpha: %v %v", s.GetState(), s.GetKind())
	}
	if s := states["off"]; s.GetState() != pluginv1.PluginState_PLUGIN_STATE_DISABLED || s.GetKind() != pluginv1.Kind_KIND_NOTIFY || s.GetLastError() != "" {
		t.Errorf("off: %v %v %q", s.GetState(), s.GetKind(), s.GetLastError())
	}
	s := states["gamma"]
	if s.GetState() != pluginv1.PluginState_PLUGIN_STATE_FAILED || s.GetKind() != pluginv1.Kind_KIND_SECURITY {
		t.Errorf("gamma: %v %v", s.GetState(), s.GetKind())
	}
	// gamma's folder holds no plugin sources: `make plugins` would not
	// build it, so the error does not say so.
	if !strings.Contains(s.GetLastError(), "no such file") || strings.Contains(s.GetLastError(), "make plugins") {
		t.Errorf("gamma's error: %q", s.GetLastError())
	}
	// Where the sources are beside it, the hint applies.
	if err := os.MkdirAll(filepath.Join(dir, "gamma"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gamma", "main.go"), []byte("package main\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(context.Background(), "gamma"); err == nil || !strings.Contains(err.Error(), "make plugins") {
		t.Errorf("reload of gamma with its sources beside: %v", err)
	}
}

// A dropped-in plugin that failed to load and whose file is then deleted
// leaves the list, and reloading every plugin works again.
func TestFailedPluginDeletedLeaves(t *testing.T) {
	t.Parallel()
	m := newTestManager(t)
	events := recordEvents(t, m)
	pluginDir := t.TempDir()
	good := filepath.Join(pluginDir, "good.wasm")
	copyFile(t, testWasm.kitchen, good)
	if err := m.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := m.StartAutoWatch([]string{pluginDir}, ""); err != nil {
		t.Fatal(err)
	}
	events.wait(t, 0, time.Minute, func(e Event) bool { return e.Plugin == "good" && e.Type == EventLoaded })
	broken := filepath.Join(pluginDir, "broken.wasm")
	if err := os.WriteFile(broken, []byte("not wasm"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, next := events.wait(t, 0, time.Minute, func(e Event) bool { return e.Plugin == "broken" && e.Type == EventFailed })
	if err := m.Reload(context.Background(), ""); err == nil {
		t.Error("reloading every plugin with a broken one: no error")
	}
	if err := os.Remove(broken); err != nil {
		t.Fatal(err)
	}
	events.wait(t, next, time.Minute, func(e Event) bool { return e.Plugin == "broken" && e.Type == EventUnloaded })
	for _, info := range m.List() {
		if info.GetName() == "broken" {
			t.Errorf("broken is still listed: %v", info)
		}
	}
	if err := m.Reload(context.Background(), ""); err != nil {
		t.Errorf("reloading every plugin after the broken one left: %v", err)
	}
}

// Closing the host (the server stopping) is no unload: the plugins were
// neither removed nor disabled, so no plugin.unloaded event is told and
// nothing is logged per plugin after the server said it stopped.
func TestCloseTellsNoUnloads(t *testing.T) {
	t.Parallel()
	m := newTestManager(t)
	events := recordEvents(t, m)
	dir := t.TempDir()
	cfgPath := writeConfig(t, dir, Config{Plugins: []Spec{kitchen("alpha"), kitchen("beta")}})
	if err := m.LoadPluginsFromConfig(cfgPath); err != nil {
		t.Fatal(err)
	}
	if err := m.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	next := events.len()
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	events.mu.Lock()
	defer events.mu.Unlock()
	for _, e := range events.events[next:] {
		t.Errorf("closing the host told: %s %s", e.Type, e.Plugin)
	}
}

// A server starts its watcher, whose first scan finds the configured
// modules in the plugin folder, and then its first load: the two overlap.
// The first load ends only when every configured plugin has had its load,
// whichever of the two loads compiled it, so that the server does not call
// a plugin "not ready" that is still compiling.
func TestInitEndsWhenWatcherLoadsEndToo(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, WithCacheDir(t.TempDir())) // cold: loads take a while
	dir := t.TempDir()
	var specs []Spec
	for _, name := range []string{"alpha", "beta", "gamma"} {
		path := filepath.Join(dir, name+".wasm")
		copyFile(t, testWasm.kitchen, path)
		specs = append(specs, Spec{Name: name, Path: path, Kind: "custom"})
	}
	cfgPath := writeConfig(t, t.TempDir(), Config{Plugins: specs})
	if err := m.LoadPluginsFromConfig(cfgPath); err != nil {
		t.Fatal(err)
	}
	// The watcher's scan comes while the first load compiles.
	done, _ := m.InitBackground(context.Background())
	if err := m.StartAutoWatch([]string{dir}, cfgPath); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, info := range m.List() {
		if info.GetState() != pluginv1.PluginState_PLUGIN_STATE_LOADED || m.Compiling(info.GetName()) {
			t.Errorf("after the first load: %s %v (compiling %v)", info.GetName(), info.GetState(), m.Compiling(info.GetName()))
		}
	}
}
