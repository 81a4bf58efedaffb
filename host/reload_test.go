package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// watchedPlugin starts a Manager watching a fresh folder that holds src as
// name.wasm, and waits until it is loaded.
func watchedPlugin(t *testing.T, name, src string) (*Manager, *eventLog, string, int) {
	t.Helper()
	m := newTestManager(t)
	events := recordEvents(t, m)
	dir := t.TempDir()
	path := filepath.Join(dir, name+".wasm")
	copyFile(t, src, path)
	if err := m.StartAutoWatch([]string{dir}, ""); err != nil {
		t.Fatal(err)
	}
	_, next := events.wait(t, 0, time.Minute, func(e Event) bool { return e.Plugin == name && e.Type == EventLoaded })
	return m, events, path, next
}

// versionOf calls echo and returns the version that answered.
func versionOf(t testing.TB, m *Manager, name string) string {
	t.Helper()
	resp, err := execute(context.Background(), t, m, name, "echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetResult().GetFields()["version"].GetStringValue()
}

func TestWatchLoadsAndUnloadsDroppedFiles(t *testing.T) {
	t.Parallel()
	m, events, path, next := watchedPlugin(t, "dropped", testWasm.kitchen)
	mustEcho(t, m, "dropped")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	events.wait(t, next, time.Minute, func(e Event) bool { return e.Plugin == "dropped" && e.Type == EventUnloaded })
	if _, err := m.Get("dropped"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after delete = %v", err)
	}
}

func TestWatchBrokenReplacementKeepsOldVersion(t *testing.T) {
	t.Parallel()
	m, events, path, next := watchedPlugin(t, "steady", testWasm.kitchen)

	// Half of the new version, as a copy caught mid-write would leave it.
	b, err := os.ReadFile(testWasm.kitchen2)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	ev, next := events.wait(t, next, time.Minute, func(e Event) bool { return e.Type == EventFailed })
	if !errors.Is(ev.Err, ErrInvalidModule) || ev.Version != "1.0.0" {
		t.Fatalf("failed event %+v", ev)
	}
	if v := versionOf(t, m, "steady"); v != "1.0.0" {
		t.Fatalf("after a broken replacement %s answers", v)
	}
	p, _ := m.Get("steady")
	if p.Info().GetLastError() == "" {
		t.Error("the failed reload is not shown in Info")
	}

	// Fixing the file loads the new version.
	copyFile(t, testWasm.kitchen2, path)
	ev, _ = events.wait(t, next, time.Minute, func(e Event) bool { return e.Type == EventReloaded })
	if ev.Version != "2.0.0" || ev.Previous != "1.0.0" {
		t.Fatalf("reloaded event %+v", ev)
	}
	if v := versionOf(t, m, "steady"); v != "2.0.0" {
		t.Fatalf("after the fix %s answers", v)
	}
	if p.Info().GetLastError() != "" {
		t.Error("last error not cleared")
	}
}

func TestReloadLetsCallsInFlightFinishOnOldVersion(t *testing.T) {
	t.Parallel()
	m, events, path, next := watchedPlugin(t, "swap", testWasm.kitchen)
	started := make(chan struct{})
	var old string
	var wg sync.WaitGroup
	wg.Go(func() {
		close(started)
		resp, err := execute(context.Background(), t, m, "swap", "spin", map[string]any{"ms": "1500"})
		if err != nil {
			t.Error(err)
			return
		}
		old = resp.GetResult().GetFields()["version"].GetStringValue()
	})
	<-started
	time.Sleep(100 * time.Millisecond)
	copyFile(t, testWasm.kitchen2, path)
	events.wait(t, next, time.Minute, func(e Event) bool { return e.Type == EventReloaded })
	if v := versionOf(t, m, "swap"); v != "2.0.0" {
		t.Fatalf("new call answered by %s", v)
	}
	wg.Wait()
	if old != "1.0.0" {
		t.Fatalf("call in flight answered by %q, want 1.0.0", old)
	}
}

// TestReloadRace: 200 concurrent callers while the module is replaced 10
// times with alternating versions. No call may fail, and each answer must
// come whole from one version: the version in the reply matches the echo.
func TestReloadRace(t *testing.T) {
	t.Parallel()
	m, events, path, next := watchedPlugin(t, "racer", testWasm.kitchen)
	c, err := m.GetCustomPlugin("racer")
	if err != nil {
		t.Fatal(err)
	}
	// Enough callers that every swap lands amid calls, few enough that the
	// race detector on two cores, beside other test binaries, still swaps
	// within the wait below (a compile there can take 10 s).
	const callers, swaps = 200, 10
	var calls, failures atomic.Int64
	seen := [2]atomic.Int64{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var once sync.Once
	halt := func() { once.Do(func() { close(stop); wg.Wait() }) }
	defer halt() // also when a wait below fails the test
	for i := range callers {
		wg.Go(func() {
			for n := 0; ; n++ {
				tag := fmt.Sprintf("%d-%d", i, n)
				resp, err := executeWith(c, "echo", map[string]any{"tag": tag})
				calls.Add(1)
				switch {
				case err != nil:
					failures.Add(1)
					t.Errorf("call failed: %v", err)
				case resp.GetResult().GetFields()["params"].GetStructValue().GetFields()["tag"].GetStringValue() != tag:
					failures.Add(1)
					t.Errorf("answer for %s is not ours: %v", tag, resp)
				default:
					switch resp.GetResult().GetFields()["version"].GetStringValue() {
					case "1.0.0":
						seen[0].Add(1)
					case "2.0.0":
						seen[1].Add(1)
					default:
						failures.Add(1)
						t.Errorf("unknown version in %v", resp)
					}
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		})
	}
	srcs := []string{testWasm.kitchen2, testWasm.kitchen}
	wants := []string{"2.0.0", "1.0.0"}
	start := time.Now()
	for i := range swaps {
		copyFile(t, srcs[i%2], path)
		_, next = events.wait(t, next, 90*time.Second, func(e Event) bool {
			return e.Plugin == "racer" && e.Type == EventReloaded && e.Version == wants[i%2]
		})
	}
	halt()
	t.Logf("%d calls during %d swaps in %s: %d on 1.0.0, %d on 2.0.0, %d failed",
		calls.Load(), swaps, time.Since(start).Round(time.Millisecond), seen[0].Load(), seen[1].Load(), failures.Load())
	if failures.Load() != 0 {
		t.Fatalf("%d calls failed", failures.Load())
	}
	if seen[0].Load() == 0 || seen[1].Load() == 0 {
		t.Fatal("not every version answered")
	}
	if v := versionOf(t, m, "racer"); v != "1.0.0" {
		t.Fatalf("after the last swap %s answers", v)
	}
}

func TestWatchAppliesConfigEdits(t *testing.T) {
	t.Parallel()
	m := newTestManager(t)
	events := recordEvents(t, m)
	dir := t.TempDir()
	cfgPath := writeConfig(t, dir, Config{Plugins: []Spec{kitchen("alpha")}})
	if err := m.LoadPluginsFromConfig(cfgPath); err != nil {
		t.Fatal(err)
	}
	if err := m.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	pluginDir := t.TempDir()
	if err := m.StartAutoWatch([]string{pluginDir}, cfgPath); err != nil {
		t.Fatal(err)
	}
	next := events.len()

	// Replace alpha by beta, with beta's timeout changed later.
	beta := kitchen("beta")
	writeConfig(t, dir, Config{Plugins: []Spec{beta}})
	_, next = events.wait(t, next, time.Minute, func(e Event) bool { return e.Plugin == "beta" && e.Type == EventLoaded })
	events.wait(t, 0, time.Minute, func(e Event) bool { return e.Plugin == "alpha" && e.Type == EventUnloaded })
	mustEcho(t, m, "beta")

	beta.Grants.Timeout = Duration(5 * time.Second)
	writeConfig(t, dir, Config{Plugins: []Spec{beta}})
	_, next = events.wait(t, next, time.Minute, func(e Event) bool { return e.Plugin == "beta" && e.Type == EventReloaded })
	p, _ := m.Get("beta")
	if got := p.Info().GetGranted().GetTimeoutMs(); got != 5000 {
		t.Fatalf("timeout after edit %d ms", got)
	}

	// An invalid edit changes nothing, and says so once.
	if err := os.WriteFile(cfgPath, []byte("plugins: [{name: x, kind: nope}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ev, next := events.wait(t, next, time.Minute, func(e Event) bool { return e.Type == EventConfigRejected })
	if ev.Path != cfgPath || ev.Err == nil || !strings.Contains(ev.Err.Error(), "nope") {
		t.Fatalf("rejection event %+v", ev)
	}
	time.Sleep(300 * time.Millisecond)
	if n := events.len(); n != next {
		t.Fatalf("invalid config produced %d more events", n-next)
	}
	mustEcho(t, m, "beta")
}

func TestSeedUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pluginDir := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, testWasm.kitchen, filepath.Join(pluginDir, "slack.wasm"))
	cfg := []byte(`
plugins:
  - name: slack
    path: plugins/slack.wasm
    kind: notify
    failure_policy: fail_open
    config: {kind: KIND_NOTIFY}
    grants:
      allowed_hosts: [hooks.slack.com]
      timeout: 5s
`)
	cfgPath := filepath.Join(dir, "plugins.yaml")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	manager := NewManager(testLogger(t), WithCacheDir(testWasm.cache))
	defer manager.Close(context.Background())
	if err := manager.LoadPluginsFromConfig(cfgPath); err != nil {
		t.Fatal(err)
	}
	if err := manager.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := manager.StartAutoWatch([]string{pluginDir}, cfgPath); err != nil {
		t.Fatal(err)
	}
	defer manager.StopAutoWatch()

	ctx := context.Background()
	notifyPlugin, err := manager.GetNotifyPlugin("slack")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := notifyPlugin.Send(ctx, messageFor("build 42 failed"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetMessageId() != "kitchen-1.0.0" {
		t.Fatalf("send answered %v", resp)
	}
}

func TestWatchFollowsConfiguredFilesOutsidePluginFolders(t *testing.T) {
	t.Parallel()
	m := newTestManager(t)
	events := recordEvents(t, m)
	elsewhere := filepath.Join(t.TempDir(), "lib", "custom.wasm")
	if err := os.MkdirAll(filepath.Dir(elsewhere), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, testWasm.kitchen, elsewhere)
	spec := kitchen("far")
	spec.Path = elsewhere
	cfgPath := writeConfig(t, t.TempDir(), Config{Plugins: []Spec{spec}})
	if err := m.LoadPluginsFromConfig(cfgPath); err != nil {
		t.Fatal(err)
	}
	if err := m.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := m.StartAutoWatch([]string{t.TempDir()}, cfgPath); err != nil {
		t.Fatal(err)
	}
	next := events.len()
	copyFile(t, testWasm.kitchen2, elsewhere)
	events.wait(t, next, time.Minute, func(e Event) bool { return e.Plugin == "far" && e.Type == EventReloaded })
	if v := versionOf(t, m, "far"); v != "2.0.0" {
		t.Fatalf("answered by %s", v)
	}
}
