package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// Test plugins are built from source once per test binary, into a temporary
// folder removed when the tests end.
var testWasm struct {
	dir      string
	kitchen  string // kitchen 1.0.0, a custom plugin by default
	kitchen2 string // kitchen 2.0.0
	bare     string // declares lint, does not export it
	stuck    string // does not end, in metadata or execute (testdata/stuck)
	cache    string // compilation cache shared by the tests
}

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "arcade-host-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	testWasm.dir = dir
	testWasm.kitchen = filepath.Join(dir, "kitchen-1.wasm")
	testWasm.kitchen2 = filepath.Join(dir, "kitchen-2.wasm")
	testWasm.bare = filepath.Join(dir, "bare.wasm")
	testWasm.stuck = filepath.Join(dir, "stuck.wasm")
	testWasm.cache = filepath.Join(dir, "cache")
	builds := []struct{ out, pkg, ldflags string }{
		{testWasm.kitchen, "./testdata/kitchen", ""},
		{testWasm.kitchen2, "./testdata/kitchen", "-X main.version=2.0.0"},
		{testWasm.bare, "./testdata/bare", ""},
		{testWasm.stuck, "./testdata/stuck", ""},
	}
	// The first build fills the build cache; the others mostly link.
	if err := buildWasm(builds[0].out, builds[0].pkg, builds[0].ldflags); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var wg sync.WaitGroup
	errs := make([]error, len(builds))
	for i, b := range builds[1:] {
		wg.Go(func() { errs[i+1] = buildWasm(b.out, b.pkg, b.ldflags) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := warmCache(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// warmCache compiles the test modules into the shared compilation cache, in
// parallel, so that tests measure loads rather than cold compiles (which
// take many seconds under the race detector).
func warmCache() error {
	var wg sync.WaitGroup
	paths := []string{testWasm.kitchen, testWasm.kitchen2, testWasm.bare, testWasm.stuck}
	errs := make([]error, len(paths))
	for i, path := range paths {
		wg.Go(func() {
			m := NewManager(nil, WithCacheDir(testWasm.cache), WithCompilationWorkers(1))
			defer m.Close(context.Background())
			spec := Spec{Name: fmt.Sprintf("warm%d", i), Path: path}
			spec.applyLimits(Limits{Timeout: Duration(time.Minute), MemoryLimitMiB: 64, MaxInstances: 1})
			m.opMu.Lock()
			m.compilationCache()
			m.opMu.Unlock()
			v, err := m.loadVersion(context.Background(), spec)
			if err != nil && !errors.Is(err, ErrMissingFunction) {
				errs[i] = err
			}
			if v != nil {
				v.close()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func buildWasm(out, pkg, ldflags string) error {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	args := []string{"build", "-buildmode=c-shared", "-o", out}
	if ldflags != "" {
		args = append(args, "-ldflags", ldflags)
	}
	cmd := exec.Command(goBin, append(args, pkg)...)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// testLogger logs to the test's output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newTestManager returns a Manager closed at the end of the test, using the
// shared compilation cache.
func newTestManager(t testing.TB, opts ...Option) *Manager {
	t.Helper()
	opts = append([]Option{WithCacheDir(testWasm.cache), WithDebounce(40 * time.Millisecond)}, opts...)
	m := NewManager(testLogger(t), opts...)
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return m
}

// writeConfig writes cfg as plugins.yaml in a temp folder and returns its path.
func writeConfig(t testing.TB, dir string, cfg Config) string {
	t.Helper()
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "plugins.yaml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// loadSpecs starts a Manager with the given plugins and returns it with the
// error of Init.
func loadSpecs(t testing.TB, specs ...Spec) (*Manager, error) {
	t.Helper()
	m := newTestManager(t)
	path := writeConfig(t, t.TempDir(), Config{Plugins: specs})
	if err := m.LoadPluginsFromConfig(path); err != nil {
		t.Fatal(err)
	}
	return m, m.Init(context.Background())
}

// mustLoad is loadSpecs that fails the test on a load error.
func mustLoad(t testing.TB, specs ...Spec) *Manager {
	t.Helper()
	m, err := loadSpecs(t, specs...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// kitchen returns a spec for the kitchen plugin under name.
func kitchen(name string) Spec {
	return Spec{Name: name, Path: testWasm.kitchen, Kind: "custom"}
}

// copyFile copies src to dst, replacing dst in place (not atomically), the
// way cp does.
func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// eventLog records events for a test to wait on.
type eventLog struct {
	mu     sync.Mutex
	events []Event
	signal chan struct{}
}

func recordEvents(t testing.TB, m *Manager) *eventLog {
	l := &eventLog{signal: make(chan struct{}, 1)}
	t.Cleanup(m.Subscribe(func(e Event) {
		l.mu.Lock()
		l.events = append(l.events, e)
		l.mu.Unlock()
		select {
		case l.signal <- struct{}{}:
		default:
		}
	}))
	return l
}

// wait returns the first event after index from that matches, failing the
// test after timeout. It returns the event and the index after it.
func (l *eventLog) wait(t testing.TB, from int, timeout time.Duration, match func(Event) bool) (Event, int) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		l.mu.Lock()
		for i := from; i < len(l.events); i++ {
			if match(l.events[i]) {
				e := l.events[i]
				l.mu.Unlock()
				return e, i + 1
			}
		}
		l.mu.Unlock()
		select {
		case <-l.signal:
		case <-deadline:
			l.mu.Lock()
			defer l.mu.Unlock()
			var seen []string
			for _, e := range l.events[from:] {
				seen = append(seen, fmt.Sprintf("%s %s %s %v", e.Type, e.Plugin, e.Version, e.Err))
			}
			t.Fatalf("no matching event within %s; saw: %s", timeout, strings.Join(seen, "; "))
		}
	}
}

func (l *eventLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.events)
}

// syncBuffer is a goroutine-safe bytes.Buffer for log assertions.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
