package pdktest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-arcade/arcade/host"
	"github.com/go-arcade/arcade/host/pdktest"
	"github.com/go-arcade/arcade/pdk"
)

func TestMain(m *testing.M) { pdktest.Main(m) }

func probe(t testing.TB) string { return pdktest.Build(t, "./testdata/probe") }

func execute(t testing.TB, p *pdktest.Plugin, action string, params pdk.Params) (pdk.Params, error) {
	t.Helper()
	var resp pdk.ExecuteResponse
	err := p.Call("execute", pdk.ExecuteRequest{Action: action, Params: params}, &resp)
	return resp.Result, err
}

func mustExecute(t testing.TB, p *pdktest.Plugin, action string, params pdk.Params) pdk.Params {
	t.Helper()
	r, err := execute(t, p, action, params)
	if err != nil {
		t.Fatalf("%s: %v", action, err)
	}
	return r
}

// TestEcho moves inputs of awkward sizes both ways, through the kernel
// (an instance's first call) and through the fast path (every later call).
func TestEcho(t *testing.T) {
	p := pdktest.Load(t, probe(t), pdktest.Options{MaxInstances: 1})
	if got := mustExecute(t, p, "transport", nil)["transport"]; got != "arcade" {
		t.Fatalf("an instance's second call went through %v, want the fast path", got)
	}
	// Later, small inputs go through the kernel and large ones do not.
	if got := mustExecute(t, p, "transport", nil)["transport"]; got != "kernel" {
		t.Fatalf("small input went through %v, want the kernel", got)
	}
	pad := strings.Repeat("x", 600)
	if got := mustExecute(t, p, "transport", pdk.Params{"pad": pad})["transport"]; got != "arcade" {
		t.Fatalf("large input went through %v, want the fast path", got)
	}
	// Small input, large output; large input, small output.
	if got := mustExecute(t, p, "repeat", pdk.Params{"text": "ab", "n": 100000})["text"]; got != strings.Repeat("ab", 100000) {
		t.Fatalf("repeat: %d bytes", len(got.(string)))
	}
	if got := mustExecute(t, p, "upper", pdk.Params{"text": "ok", "pad": pad})["text"]; got != "OK" {
		t.Fatalf("upper: %v", got)
	}
	for _, n := range []int{0, 1, 7, 8, 9, 511, 512, 513, 4095, 65536 + 3, 1<<20 + 5} {
		in := make([]byte, n)
		for i := range in {
			in[i] = byte(i*7 + n)
		}
		out, err := p.Plugin.Call(t.Context(), "echo", in)
		if err != nil {
			t.Fatalf("echo %d bytes: %v", n, err)
		}
		if !bytes.Equal(in, out) {
			t.Fatalf("echo %d bytes: got %d bytes back, different", n, len(out))
		}
	}
}

// TestRawExport: an export that uses Input and Output without Run never
// sees another call's input, whichever way the data go.
func TestRawExport(t *testing.T) {
	p := pdktest.Load(t, probe(t), pdktest.Options{MaxInstances: 1})
	for i, n := range []int{3, 5000, 4, 0, 700, 600, 2} {
		in := bytes.Repeat([]byte{byte('a' + i)}, n)
		out, err := p.Plugin.Call(t.Context(), "rawecho", in)
		if err != nil || !bytes.Equal(in, out) {
			t.Fatalf("call %d (%d bytes): %v, got %d bytes", i, n, err, len(out))
		}
	}
}

// TestKernelPath moves the same inputs through the kernel, as any other
// Extism runtime does: an instance's first call goes that way, so each
// round first breaks the instance (exit), and the echo runs on a new one.
func TestKernelPath(t *testing.T) {
	p := pdktest.Load(t, probe(t), pdktest.Options{MaxInstances: 1})
	for _, n := range []int{0, 9, 70000} {
		if _, err := execute(t, p, "exit", nil); !errors.Is(err, host.ErrCrashed) {
			t.Fatalf("exit: %v", err)
		}
		in := bytes.Repeat([]byte("k"), n)
		out, err := p.Plugin.Call(t.Context(), "echo", in)
		if err != nil || !bytes.Equal(in, out) {
			t.Fatalf("echo %d bytes through the kernel: %v (got %d bytes)", n, err, len(out))
		}
	}
}

func TestErrorIsShownVerbatim(t *testing.T) {
	p := pdktest.Load(t, probe(t), pdktest.Options{})
	const msg = "deploy target prod-eu is frozen until 14:00 (ticket OPS-1234)"
	_, err := execute(t, p, "fail", pdk.Params{"message": msg})
	if err == nil || !strings.Contains(err.Error(), msg) {
		t.Fatalf("error = %v, want it to contain %q", err, msg)
	}
	if !errors.Is(err, host.ErrPluginFailed) {
		t.Fatalf("error = %v, want host.ErrPluginFailed", err)
	}
	// An error is retryable unless the plugin marks it permanent, and the
	// mark holds for that call only (the instance is reused).
	var he *host.Error
	if !errors.As(err, &he) || he.Permanent() {
		t.Fatalf("a plain error: %#v, want a retryable *host.Error", err)
	}
	_, err = execute(t, p, "fail", pdk.Params{"message": "receiver answered 400", "permanent": true})
	if !errors.As(err, &he) || !he.Permanent() || !strings.Contains(err.Error(), "receiver answered 400") {
		t.Fatalf("a permanent error: %#v", err)
	}
	if _, err = execute(t, p, "fail", nil); !errors.As(err, &he) || he.Permanent() {
		t.Fatalf("the error after a permanent one: %#v", err)
	}
	// A panic is reported, and the instance keeps serving.
	_, err = execute(t, p, "panic", nil)
	if err == nil || !strings.Contains(err.Error(), "probe panicked on purpose") {
		t.Fatalf("panic: error = %v", err)
	}
	if got := mustExecute(t, p, "upper", pdk.Params{"text": "ok"})["text"]; got != "OK" {
		t.Fatalf("after a panic: %v", got)
	}
}

func TestConfigAndVars(t *testing.T) {
	p := pdktest.Load(t, probe(t), pdktest.Options{Config: map[string]string{"channel": "#builds"}, MaxInstances: 1})
	if r := mustExecute(t, p, "config", pdk.Params{"key": "channel"}); r["value"] != "#builds" || r["set"] != true {
		t.Fatalf("config channel = %v", r)
	}
	if r := mustExecute(t, p, "config", pdk.Params{"key": "missing"}); r["set"] != false {
		t.Fatalf("config missing = %v", r)
	}
	mustExecute(t, p, "setvar", pdk.Params{"key": "n", "value": "42"})
	if r := mustExecute(t, p, "getvar", pdk.Params{"key": "n"}); r["value"] != "42" {
		t.Fatalf("var n = %v", r)
	}
}

// recorder keeps log records for assertions.
type recorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec)
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

func (r *recorder) levelOf(msg string) (slog.Level, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.records {
		if rec.Message == msg {
			return rec.Level, true
		}
	}
	return 0, false
}

func TestLogLevels(t *testing.T) {
	rec := &recorder{}
	p := pdktest.Load(t, probe(t), pdktest.Options{Logger: slog.New(rec)})
	for _, tc := range []struct {
		level string
		want  slog.Level
	}{{"debug", slog.LevelDebug}, {"info", slog.LevelInfo}, {"warn", slog.LevelWarn}, {"error", slog.LevelError}} {
		msg := "line at " + tc.level
		mustExecute(t, p, "log", pdk.Params{"level": tc.level, "message": msg})
		if got, ok := rec.levelOf(msg); !ok || got != tc.want {
			t.Errorf("%s: logged=%v at %v, want %v", tc.level, ok, got, tc.want)
		}
	}
	// Log(LogTrace) goes out at debug level (see TestTraceUsesLogTrace for
	// Tracef).
	mustExecute(t, p, "log", pdk.Params{"level": "trace", "message": "line at trace"})
	if got, ok := rec.levelOf("line at trace"); !ok || got != slog.LevelDebug {
		t.Errorf("Log(LogTrace): logged=%v at %v, want debug", ok, got)
	}
}

// TestTraceUsesLogTrace: Tracef goes through the kernel's log_trace, never
// log_error (the slip of the official Go PDK), and only a plugin that calls
// Tracef imports it.
func TestTraceUsesLogTrace(t *testing.T) {
	wasm := pdktest.Build(t, "./testdata/trace")
	imports, err := wasmImports(wasm)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(imports, "extism:host/env.log_trace") || slices.Contains(imports, "extism:host/env.log_error") {
		t.Fatalf("trace plugin imports %v", imports)
	}
	rec := &recorder{}
	p := pdktest.Load(t, wasm, pdktest.Options{Logger: slog.New(rec)})
	if err := p.Call("execute", nil, nil); err != nil {
		t.Fatal(err)
	}
	if got, ok := rec.levelOf("a trace line"); ok && got > slog.LevelDebug {
		t.Fatalf("trace line logged at %v", got)
	}
}

// TestImportsOnlyKernelAndWASI: a PDK plugin needs nothing but the Extism
// kernel and WASI, so any Extism runtime can load it.
func TestImportsOnlyKernelAndWASI(t *testing.T) {
	imports, err := wasmImports(probe(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range imports {
		if !strings.HasPrefix(imp, "extism:host/env.") && !strings.HasPrefix(imp, "wasi_snapshot_preview1.") {
			t.Errorf("probe imports %s", imp)
		}
	}
	if slices.Contains(imports, "extism:host/env.log_trace") {
		t.Errorf("probe imports log_trace without calling Tracef")
	}
	if slices.Contains(imports, "extism:host/env.http_headers") {
		t.Errorf("probe imports http_headers without calling FetchWithHeaders (some Extism runtimes lack it)")
	}
	t.Logf("%d imports: %v", len(imports), imports)
}

func TestHTTP(t *testing.T) {
	var got struct {
		sync.Mutex
		method, probe, body string
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := new(bytes.Buffer)
		_, _ = b.ReadFrom(r.Body)
		got.Lock()
		got.method, got.probe, got.body = r.Method, r.Header.Get("X-Probe"), b.String()
		got.Unlock()
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, "created")
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)

	p := pdktest.Load(t, probe(t), pdktest.Options{Hosts: []string{"127.0.0.1"}})
	r := mustExecute(t, p, "http", pdk.Params{"method": "POST", "url": srv.URL + "/hook", "body": "{\"a\":1}"})
	if r["status"] != float64(201) || r["body"] != "created" {
		t.Fatalf("response = %v", r)
	}
	got.Lock()
	if got.method != "POST" || got.probe != "1" || got.body != `{"a":1}` {
		t.Errorf("server saw %s X-Probe=%q body %q", got.method, got.probe, got.body)
	}
	got.Unlock()

	// localhost is the same server but not a granted host.
	other := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	_, err = execute(t, p, "http", pdk.Params{"url": other})
	if !errors.Is(err, host.ErrHostNotGranted) || !strings.Contains(err.Error(), "localhost") {
		t.Fatalf("ungranted host: error = %v, want host not granted naming localhost", err)
	}
}

// TestFetchWithHeaders: the response's headers reach the plugin (the host
// enables them), names in lower case; a server that does not answer ends
// the call as unreachable, naming the failure.
func TestFetchWithHeaders(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"abc123"`)
		w.Header().Add("X-Many", "one")
		w.Header().Add("X-Many", "two")
		fmt.Fprint(w, "tagged")
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	wasm := pdktest.Build(t, "./testdata/headers")
	if imports, err := wasmImports(wasm); err != nil || !slices.Contains(imports, "extism:host/env.http_headers") {
		t.Fatalf("imports %v %v", imports, err)
	}
	p := pdktest.Load(t, wasm, pdktest.Options{Hosts: []string{"127.0.0.1"}})
	r := mustExecute(t, p, "fetch", pdk.Params{"url": srv.URL})
	h, _ := r["headers"].(map[string]any)
	if r["status"] != float64(200) || r["body"] != "tagged" || h["etag"] != `"abc123"` || h["x-many"] != "one,two" {
		t.Fatalf("response %v", r)
	}
	closed := srv.URL
	srv.Close()
	_, err = execute(t, p, "fetch", pdk.Params{"url": closed})
	if !errors.Is(err, host.ErrUnreachable) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("closed server: %v, want unreachable", err)
	}
	t.Logf("closed server: %v", err)
}

func TestFiles(t *testing.T) {
	p := pdktest.Load(t, probe(t), pdktest.Options{Workspace: map[string]string{"src/a.txt": "alpha"}})
	if r := mustExecute(t, p, "read", pdk.Params{"path": "/workspace/src/a.txt"}); r["content"] != "alpha" {
		t.Fatalf("read = %v", r)
	}
	mustExecute(t, p, "write", pdk.Params{"path": "/workspace/out.txt", "content": "beta"})
	if b, err := os.ReadFile(filepath.Join(p.Workspace, "out.txt")); err != nil || string(b) != "beta" {
		t.Fatalf("written file: %q, %v", b, err)
	}
	_, err := execute(t, p, "read", pdk.Params{"path": "/etc/passwd"})
	if !errors.Is(err, host.ErrPathNotGranted) || !strings.Contains(err.Error(), "/etc/passwd") {
		t.Fatalf("ungranted path: error = %v, want path not granted naming /etc/passwd", err)
	}
}

// TestBoundedMemory makes 100,000 calls that each leave a goroutine holding
// 64 KiB (6.4 GB in all) under a 32 MiB memory limit. Plain Go under wasip1
// runs no other goroutine once an export returns; without the PDK's yield at
// the end of each call those goroutines, and their memory, pile up and the
// plugin runs out of memory after a few hundred calls.
func TestBoundedMemory(t *testing.T) {
	const calls = 100_000
	p := pdktest.Load(t, probe(t), pdktest.Options{MemoryLimitMiB: 32, MaxInstances: 1})
	in := []byte("ping")
	for i := range calls {
		out, err := p.Plugin.Call(t.Context(), "churn", in)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if string(out) != "ping" {
			t.Fatalf("call %d: %q", i, out)
		}
	}
	r := mustExecute(t, p, "stats", nil)
	t.Logf("after %d calls: heap_sys=%.1f MiB sys=%.1f MiB num_gc=%v goroutines=%v background jobs run=%v", calls,
		r["heap_sys"].(float64)/(1<<20), r["sys"].(float64)/(1<<20), r["num_gc"], r["goroutines"], r["done"])
	if g := r["goroutines"].(float64); g > 10 {
		t.Errorf("%v goroutines left waiting", g)
	}
	if sys := r["sys"].(float64); sys > 24<<20 {
		t.Fatalf("plugin memory grew to %.1f MiB", sys/(1<<20))
	}
}
