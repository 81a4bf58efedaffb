package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
)

// hangingServer is an HTTP server that answers nothing until the test ends.
func hangingServer(t *testing.T) string {
	t.Helper()
	done := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-done:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(done); ts.Close() })
	return ts.URL
}

// stuckSpec is the stuck plugin under name with a timeout per call.
func stuckSpec(name string, timeout time.Duration, config map[string]string) Spec {
	return Spec{Name: name, Path: testWasm.stuck, Kind: "custom", Config: config,
		Grants: Grants{AllowedHosts: []string{"127.0.0.1"}, Limits: Limits{Timeout: Duration(timeout), MaxInstances: 2}}}
}

// returns runs f and fails the test if it has not returned after limit: a
// guard against hanging the whole test binary, far above what f needs.
func returns[T any](t *testing.T, limit time.Duration, f func() T) T {
	t.Helper()
	got := make(chan T, 1)
	go func() { got <- f() }()
	select {
	case v := <-got:
		return v
	case <-time.After(limit):
		t.Fatalf("still running after %s", limit)
		panic("unreachable")
	}
}

func stuckCall(ctx context.Context, c *CustomPlugin, action string, params map[string]any) error {
	p, err := structpb.NewStruct(params)
	if err != nil {
		return err
	}
	_, err = c.Execute(ctx, &pluginv1.ExecuteRequest{Action: action, Params: p})
	return err
}

// A call that sleeps an hour, spins, polls stdin or waits on an HTTP server
// that never answers ends at its own timeout — reported as a timeout, not
// ended by its caller giving up, not a crash — and its instance is
// discarded: the next call gets a sound one.
func TestStuckCallsEndAtTheirTimeout(t *testing.T) {
	t.Parallel()
	url := hangingServer(t)
	m := mustLoad(t, stuckSpec("stuck", time.Second, nil))
	c, err := m.GetCustomPlugin("stuck")
	if err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{"sleep", "busy", "stdin", "http"} {
		t.Run(action, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()
			err := returns(t, 60*time.Second, func() error { return stuckCall(ctx, c, action, map[string]any{"url": url}) })
			var e *Error
			if !errors.As(err, &e) || e.Reason != ErrTimeout || !strings.Contains(err.Error(), "timed out after 1s") {
				t.Fatalf("a stuck %s: %v", action, err)
			}
			if n := m.plugins["stuck"].Info().GetInstances(); n > 1 {
				t.Errorf("%d instances after the stuck call: it was kept", n)
			}
			if err := stuckCall(ctx, c, "ok", nil); err != nil {
				t.Fatalf("the call after a stuck %s: %v", action, err)
			}
		})
	}
}

// A plugin stuck in its metadata fails its own load at its timeout while
// another plugin loads beside it; a reload of it ends the same way.
func TestStuckMetadataFailsAlone(t *testing.T) {
	t.Parallel()
	url := hangingServer(t)
	for _, how := range []string{"sleep", "busy", "stdin", "http"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			m := newTestManager(t)
			events := recordEvents(t, m)
			stuck := stuckSpec("stuck", 10*time.Second, map[string]string{"stuck": how, "url": url})
			path := writeConfig(t, t.TempDir(), Config{Plugins: []Spec{stuck, kitchen("fine")}})
			if err := m.LoadPluginsFromConfig(path); err != nil {
				t.Fatal(err)
			}
			err := returns(t, 60*time.Second, func() error { return m.Init(context.Background()) })
			if !errors.Is(err, ErrBadMetadata) || !errors.Is(err, ErrTimeout) || strings.Contains(err.Error(), "fine") {
				t.Fatalf("Init: %v", err)
			}
			// The other plugin did not wait for the stuck one.
			loaded, _ := events.wait(t, 0, time.Second, func(e Event) bool { return e.Type == EventLoaded || e.Type == EventFailed })
			if loaded.Plugin != "fine" || loaded.Type != EventLoaded {
				t.Errorf("first event %s %s: the loads ran one after the other", loaded.Type, loaded.Plugin)
			}
			mustEcho(t, m, "fine")
			err = returns(t, 60*time.Second, func() error { return m.Reload(context.Background(), "stuck") })
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("Reload: %v", err)
			}
		})
	}
}

// Closing the manager ends the calls in progress, whatever the plugin does
// and whatever the callers' contexts say.
func TestCloseEndsStuckCallsAndLoads(t *testing.T) {
	t.Parallel()
	m := newTestManager(t)
	path := writeConfig(t, t.TempDir(), Config{Plugins: []Spec{stuckSpec("stuck", time.Hour, nil)}})
	if err := m.LoadPluginsFromConfig(path); err != nil {
		t.Fatal(err)
	}
	if err := m.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	c, err := m.GetCustomPlugin("stuck")
	if err != nil {
		t.Fatal(err)
	}
	called := make(chan error, 1)
	go func() { called <- stuckCall(context.Background(), c, "sleep", nil) }()
	deadline := time.Now().Add(30 * time.Second)
	for m.plugins["stuck"].Info().GetInstances() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // the call has its own instance now
	}
	if err := returns(t, 30*time.Second, func() error { return m.Close(context.Background()) }); err != nil {
		t.Fatal(err)
	}
	err = returns(t, 30*time.Second, func() error { return <-called })
	if !errors.Is(err, ErrCanceled) {
		t.Fatalf("a call in progress when the host closed: %v", err)
	}
}

// countingHandler counts records and keeps the last one's message.
type countingHandler struct {
	n       atomic.Int64
	dropped atomic.Value
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.n.Add(1)
	if strings.Contains(r.Message, "lines dropped") {
		h.dropped.Store(r.Message)
	}
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

// A call that logs without end logs at most its budget (lines, bytes),
// then one line saying how many were dropped.
func TestPluginLogVolumeIsCapped(t *testing.T) {
	t.Parallel()
	lines := stuckSpec("chatty", time.Minute, nil)
	lines.Grants.LogLines = 1000
	bytes := stuckSpec("wordy", time.Minute, nil)
	bytes.Grants.LogBytes = 64 << 10
	m := mustLoad(t, lines, bytes)
	for _, tc := range []struct {
		plugin       string
		lines, size  int
		kept         int64
		lineL, byteL int
	}{
		{"chatty", 3000, 100, 1000, 1000, DefaultLogBytes},
		{"wordy", 500, 1000, 64 << 10 / 1006, DefaultLogLines, 64 << 10},
	} {
		c, err := m.GetCustomPlugin(tc.plugin)
		if err != nil {
			t.Fatal(err)
		}
		h := &countingHandler{}
		ctx := WithLogger(context.Background(), slog.New(h))
		if err := stuckCall(ctx, c, "logflood", map[string]any{"lines": fmt.Sprint(tc.lines), "bytes": fmt.Sprint(tc.size)}); err != nil {
			t.Fatal(err)
		}
		msg, _ := h.dropped.Load().(string)
		want := fmt.Sprintf("%d lines dropped (the plugin logged more than %d lines or %d bytes in one call)", int64(tc.lines)-tc.kept, tc.lineL, tc.byteL)
		if n := h.n.Load(); n != tc.kept+1 || msg != want {
			t.Errorf("%s: %d records, the last %q; want %d and %q", tc.plugin, n, msg, tc.kept+1, want)
		}
	}
}

// A plugin whose stack runs out overflowed its stack: it did not run out of
// memory, and the outcome says so by its reason, not only in words.
func TestStackOverflowIsNotOutOfMemory(t *testing.T) {
	t.Parallel()
	m := mustLoad(t, stuckSpec("deep", time.Minute, nil))
	c, err := m.GetCustomPlugin("deep")
	if err != nil {
		t.Fatal(err)
	}
	err = stuckCall(context.Background(), c, "overflow", nil)
	var e *Error
	if !errors.As(err, &e) || e.Reason != ErrStackOverflow || errors.Is(err, ErrOutOfMemory) ||
		err.Error() != "plugin deep overflowed its stack in execute" {
		t.Fatalf("stack overflow: %v", err)
	}
}

// A module over max_module_bytes is refused from its size, before it is
// read: a 200 MB file dropped in a watched folder, or a configured module.
func TestModuleSizeRefusedBeforeReading(t *testing.T) {
	t.Parallel()
	m := newTestManager(t)
	events := recordEvents(t, m)
	dir := t.TempDir()
	big := filepath.Join(dir, "big.wasm")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(200 << 20); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	f.Close()
	if err := m.StartAutoWatch([]string{dir}, ""); err != nil {
		t.Fatal(err)
	}
	e, _ := events.wait(t, 0, 30*time.Second, func(e Event) bool { return e.Plugin == "big" })
	want := fmt.Sprintf("%s is %d bytes, more than max_module_bytes (%d)", big, 200<<20, DefaultMaxModuleBytes)
	if e.Type != EventFailed || !errors.Is(e.Err, ErrInvalidModule) || !strings.Contains(e.Err.Error(), want) {
		t.Fatalf("a 200 MB module: %s %v", e.Type, e.Err)
	}

	m2 := newTestManager(t)
	path := writeConfig(t, t.TempDir(), Config{MaxModuleBytes: 1 << 20, Plugins: []Spec{kitchen("kitchen")}})
	if err := m2.LoadPluginsFromConfig(path); err != nil {
		t.Fatal(err)
	}
	if err := m2.Init(context.Background()); !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), "more than max_module_bytes (1048576)") {
		t.Fatalf("a module over max_module_bytes: %v", err)
	}
}
