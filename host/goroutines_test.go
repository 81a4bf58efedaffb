package host

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

func runtimeStack(buf []byte) int { return runtime.Stack(buf, true) }

// TestStopAndCloseLeaveNoGoroutines checks that the watcher and the
// plugins' runtimes stop when asked.
func TestStopAndCloseLeaveNoGoroutines(t *testing.T) {
	m := NewManager(testLogger(t), WithCacheDir(testWasm.cache))
	path := writeConfig(t, t.TempDir(), Config{Plugins: []Spec{kitchen("leak")}})
	if err := m.LoadPluginsFromConfig(path); err != nil {
		t.Fatal(err)
	}
	if err := m.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := m.StartAutoWatch([]string{t.TempDir()}, path); err != nil {
		t.Fatal(err)
	}
	mustEcho(t, m, "leak")
	if err := m.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for range 50 {
		stacks := string(buf[:runtimeStack(buf)])
		if !strings.Contains(stacks, "fsnotify") && !strings.Contains(stacks, "host.(*watcher)") && !strings.Contains(stacks, "host.(*Manager).work") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("watcher goroutines left running:\n%s", buf)
}
