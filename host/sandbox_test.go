package host

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
)

// execute calls the kitchen plugin's custom execute with an action.
func execute(ctx context.Context, t testing.TB, m *Manager, name, action string, params map[string]any) (*pluginv1.ExecuteResponse, error) {
	t.Helper()
	c, err := m.GetCustomPlugin(name)
	if err != nil {
		t.Fatal(err)
	}
	p, err := structpb.NewStruct(params)
	if err != nil {
		t.Fatal(err)
	}
	return c.Execute(ctx, &pluginv1.ExecuteRequest{Action: action, Params: p})
}

// mustEcho checks that a plugin still answers.
func mustEcho(t testing.TB, m *Manager, name string) {
	t.Helper()
	resp, err := execute(context.Background(), t, m, name, "echo", map[string]any{"x": "y"})
	if err != nil {
		t.Fatalf("plugin %s no longer serves: %v", name, err)
	}
	if resp.GetStatus() != pluginv1.Status_STATUS_SUCCESS {
		t.Fatalf("echo status %v", resp.GetStatus())
	}
}

// wantErr checks a call error's reason and message.
func wantErr(t testing.TB, err error, reason Reason, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want %q error, got none", reason)
	}
	if !errors.Is(err, reason) {
		t.Fatalf("want reason %q, got %v", reason, err)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Fatalf("error %q does not contain %q", err, msg)
	}
	if strings.Contains(err.Error(), "wasm stack trace") || strings.Count(err.Error(), "\n") > 0 {
		t.Fatalf("error is not condensed: %q", err)
	}
}

func TestSandboxInfiniteLoopStopsAtTimeout(t *testing.T) {
	t.Parallel()
	hostile := kitchen("hostile")
	hostile.Grants.Timeout = Duration(300 * time.Millisecond)
	m := mustLoad(t, hostile, kitchen("bystander"))

	// While the loop spins, the other plugin keeps serving.
	var wg sync.WaitGroup
	var loopErr error
	var took time.Duration
	wg.Go(func() {
		start := time.Now()
		_, loopErr = execute(context.Background(), t, m, "hostile", "loop", nil)
		took = time.Since(start)
	})
	for range 20 {
		mustEcho(t, m, "bystander")
	}
	wg.Wait()
	wantErr(t, loopErr, ErrTimeout, "plugin hostile timed out after 300ms")
	if !errors.Is(loopErr, context.DeadlineExceeded) {
		t.Errorf("timeout does not answer context.DeadlineExceeded: %v", loopErr)
	}
	if took > 5*time.Second {
		t.Errorf("loop stopped after %s", took)
	}
	mustEcho(t, m, "hostile") // the closed instance was replaced
}

func TestSandboxCallerCancelStopsCall(t *testing.T) {
	t.Parallel()
	m := mustLoad(t, kitchen("hostile"))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := execute(ctx, t, m, "hostile", "loop", nil)
	wantErr(t, err, ErrCanceled, "plugin hostile: canceled")
	mustEcho(t, m, "hostile")
}

func TestSandboxMemoryLimit(t *testing.T) {
	t.Parallel()
	hog := kitchen("hog")
	hog.Grants.MemoryLimitMiB = 16
	roomy := kitchen("roomy")
	roomy.Grants.MemoryLimitMiB = 16
	m := mustLoad(t, hog, roomy)

	_, err := execute(context.Background(), t, m, "hog", "hog", nil)
	wantErr(t, err, ErrOutOfMemory, "plugin hog ran out of memory (limit 16 MiB)")
	mustEcho(t, m, "hog")
	// Allowed: a plugin working within its limit.
	mustEcho(t, m, "roomy")
}

func TestSandboxPathGrants(t *testing.T) {
	t.Parallel()
	ws := t.TempDir()
	if err := os.WriteFile(filepath.Join(ws, "hello.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "secret.txt")
	if err := os.WriteFile(secret, []byte("s3cr3t"), 0o644); err != nil {
		t.Fatal(err)
	}
	ro := kitchen("reader")
	ro.Grants.AllowedPaths = []PathGrant{{Host: ws, Guest: "/workspace"}} // ro by default
	rw := kitchen("writer")
	rw.Grants.AllowedPaths = []PathGrant{{Host: ws, Guest: "/workspace", Mode: "rw"}}
	none := kitchen("nopaths")
	m := mustLoad(t, ro, rw, none)
	ctx := context.Background()

	t.Run("read granted", func(t *testing.T) {
		resp, err := execute(ctx, t, m, "reader", "read", map[string]any{"path": "/workspace/hello.txt"})
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.GetResult().GetFields()["content"].GetStringValue(); got != "hello" {
			t.Fatalf("read %q", got)
		}
	})
	t.Run("read outside grants", func(t *testing.T) {
		_, err := execute(ctx, t, m, "reader", "read", map[string]any{"path": secret})
		wantErr(t, err, ErrPathNotGranted, "plugin reader: path not granted: open "+secret)
	})
	t.Run("read with no grant", func(t *testing.T) {
		_, err := execute(ctx, t, m, "nopaths", "read", map[string]any{"path": "/workspace/hello.txt"})
		wantErr(t, err, ErrPathNotGranted, "plugin nopaths: path not granted")
	})
	t.Run("write to read-only grant", func(t *testing.T) {
		_, err := execute(ctx, t, m, "reader", "write", map[string]any{"path": "/workspace/out.txt", "content": "x"})
		if err == nil {
			t.Fatal("write to a read-only grant succeeded")
		}
		if !errors.Is(err, ErrPluginFailed) && !errors.Is(err, ErrPathNotGranted) {
			t.Fatalf("unexpected reason: %v", err)
		}
		if _, serr := os.Stat(filepath.Join(ws, "out.txt")); serr == nil {
			t.Fatal("file written through a read-only grant")
		}
	})
	t.Run("write to read-write grant", func(t *testing.T) {
		if _, err := execute(ctx, t, m, "writer", "write", map[string]any{"path": "/workspace/out.txt", "content": "x"}); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(ws, "out.txt")); err != nil || string(b) != "x" {
			t.Fatalf("written file: %q %v", b, err)
		}
	})
}

func TestSandboxHostGrants(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("pong"))
	}))
	defer srv.Close()
	granted := kitchen("granted")
	granted.Grants.AllowedHosts = []string{"127.0.0.1"}
	m := mustLoad(t, granted, kitchen("denied"))
	ctx := context.Background()

	resp, err := execute(ctx, t, m, "granted", "http", map[string]any{"url": srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if body := resp.GetResult().GetFields()["body"].GetStringValue(); body != "pong" {
		t.Fatalf("body %q", body)
	}
	_, err = execute(ctx, t, m, "denied", "http", map[string]any{"url": srv.URL})
	wantErr(t, err, ErrHostNotGranted, "plugin denied: host not granted: 127.0.0.1")
	// A granted plugin asking for another host is refused too.
	_, err = execute(ctx, t, m, "granted", "http", map[string]any{"url": strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)})
	wantErr(t, err, ErrHostNotGranted, "plugin granted: host not granted: localhost")
	mustEcho(t, m, "denied")
	mustEcho(t, m, "granted")
}

func TestSandboxRedirectToHostNotGranted(t *testing.T) {
	t.Parallel()
	inner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("internal"))
	}))
	defer inner.Close()
	outer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		to := inner.URL
		if r.URL.Query().Get("escape") != "" {
			to = strings.Replace(inner.URL, "127.0.0.1", "localhost", 1)
		}
		http.Redirect(w, r, to, http.StatusFound)
	}))
	defer outer.Close()
	s := kitchen("redirected")
	s.Grants.AllowedHosts = []string{"127.0.0.1"}
	m := mustLoad(t, s)
	ctx := context.Background()

	// Allowed: a redirect that stays on a granted host.
	resp, err := execute(ctx, t, m, "redirected", "http", map[string]any{"url": outer.URL})
	if err != nil || resp.GetResult().GetFields()["body"].GetStringValue() != "internal" {
		t.Fatalf("granted redirect: %v %v", resp, err)
	}
	// Denied: a redirect to a host not granted.
	_, err = execute(ctx, t, m, "redirected", "http", map[string]any{"url": outer.URL + "/?escape=1"})
	wantErr(t, err, ErrHostNotGranted, "plugin redirected: host not granted: localhost (reached through a redirect)")
	mustEcho(t, m, "redirected")
}

func TestSandboxPanicAndTrapFailOneCall(t *testing.T) {
	t.Parallel()
	m := mustLoad(t, kitchen("crashy"), kitchen("bystander"))
	ctx := context.Background()
	_, err := execute(ctx, t, m, "crashy", "panic", nil)
	wantErr(t, err, ErrCrashed, "plugin crashy crashed in execute: panic: boom")
	mustEcho(t, m, "bystander")
	mustEcho(t, m, "crashy")

	_, err = execute(ctx, t, m, "crashy", "trap", nil)
	wantErr(t, err, ErrCrashed, "out of bounds memory access")
	mustEcho(t, m, "crashy")
}

func TestSandboxGuestErrorShownVerbatim(t *testing.T) {
	t.Parallel()
	m := mustLoad(t, kitchen("picky"))
	_, err := execute(context.Background(), t, m, "picky", "fail", map[string]any{"reason": "no Dockerfile"})
	wantErr(t, err, ErrPluginFailed, "plugin picky: execute failed: refusing: no Dockerfile")
	p, _ := m.Get("picky")
	if n := p.Info().GetInstances(); n != 1 {
		t.Errorf("a plugin-reported error should keep the instance; instances = %d", n)
	}
}

func TestSandboxConfigHandedToPlugin(t *testing.T) {
	t.Parallel()
	withCfg := kitchen("configured")
	withCfg.Config = map[string]string{"channel": "#builds"}
	m := mustLoad(t, withCfg, kitchen("unconfigured"))
	ctx := context.Background()
	resp, err := execute(ctx, t, m, "configured", "config", map[string]any{"key": "channel"})
	if err != nil || resp.GetResult().GetFields()["value"].GetStringValue() != "#builds" {
		t.Fatalf("config value: %v %v", resp, err)
	}
	resp, err = execute(ctx, t, m, "unconfigured", "config", map[string]any{"key": "channel"})
	if err != nil || resp.GetResult().GetFields()["value"].GetStringValue() != "" {
		t.Fatalf("config leaked: %v %v", resp, err)
	}
}

func TestPoolBoundsInstances(t *testing.T) {
	t.Parallel()
	s := kitchen("bounded")
	s.Grants.MaxInstances = 2
	m := mustLoad(t, s)
	p, _ := m.Get("bounded")
	var wg sync.WaitGroup
	var mu sync.Mutex
	peak := int32(0)
	for range 16 {
		wg.Go(func() {
			for range 10 {
				if _, err := execute(context.Background(), t, m, "bounded", "spin", map[string]any{"ms": "1"}); err != nil {
					t.Error(err)
				}
				n := p.Info().GetInstances()
				mu.Lock()
				peak = max(peak, n)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if peak > 2 || peak < 1 {
		t.Fatalf("peak instances %d, want 1..2", peak)
	}
}

func TestLogsGoToCallLogger(t *testing.T) {
	t.Parallel()
	m := mustLoad(t, kitchen("chatty"))
	var buf syncBuffer
	jobLog := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})).With("job", "j-42")
	ctx := WithLogger(context.Background(), jobLog)
	if _, err := execute(ctx, t, m, "chatty", "log", nil); err != nil {
		t.Fatal(err)
	}
	_, _ = execute(ctx, t, m, "chatty", "panic", nil)
	out := buf.String()
	for _, want := range []string{
		`level=DEBUG msg="debug from kitchen 1.0.0"`,
		`level=INFO msg="info from kitchen 1.0.0"`,
		`level=WARN msg="warn from kitchen 1.0.0"`,
		`level=ERROR msg="error from kitchen 1.0.0"`,
		"job=j-42 plugin=chatty function=execute",
		`msg="panic: boom"`, // the guest's stderr
	} {
		if !strings.Contains(out, want) {
			t.Errorf("job log lacks %q:\n%s", want, out)
		}
	}
}

// executeWith calls execute through an already-fetched face.
func executeWith(c *CustomPlugin, action string, params map[string]any) (*pluginv1.ExecuteResponse, error) {
	p, err := structpb.NewStruct(params)
	if err != nil {
		return nil, err
	}
	return c.Execute(context.Background(), &pluginv1.ExecuteRequest{Action: action, Params: p})
}

func TestPoolWaitEndsWithCallerContext(t *testing.T) {
	t.Parallel()
	s := kitchen("single")
	s.Grants.MaxInstances = 1
	s.Grants.Timeout = Duration(2 * time.Second)
	m := mustLoad(t, s)
	busy := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		close(busy)
		_, _ = execute(context.Background(), t, m, "single", "spin", map[string]any{"ms": "1000"})
	})
	<-busy
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := execute(ctx, t, m, "single", "echo", nil)
	wantErr(t, err, ErrCanceled, "plugin single: canceled: waiting for a free instance")
	wg.Wait()
	mustEcho(t, m, "single")
}
