package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/go-arcade/arcade/host/pdktest"
)

func TestMain(m *testing.M) { pdktest.Main(m) }

// runCmd runs the arcade command in-process; stdout and stderr apart.
func runCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := newRoot()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err = root.Execute()
	return out.String(), errb.String(), err
}

// TestPluginRunStep: a ci plugin run against a folder reads the folder at
// /workspace, shows its answer as the job's log would and fails the command
// when the step fails; without --workspace nothing is mounted.
func TestPluginRunStep(t *testing.T) {
	wasm := pdktest.Build(t, "../../plugins/go-lint")
	cache := pdktest.CacheDir()
	ws := t.TempDir()
	if err := os.WriteFile(filepath.Join(ws, "a.go"), []byte("package a\nfunc  x() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(ws)
	stdout, stderr, err := runCmd(t, "plugin", "run", wasm, "lint", "--name", "go-lint", "--workspace", ".", "--with", "exclude=vendor", "--cache-dir", cache)
	if err == nil || err.Error() != "exit status 1" {
		t.Fatalf("a failing lint: err %v\n%s", err, stderr)
	}
	for _, want := range []string{
		"result: FAILURE: 1 of 1 Go files need attention: a.go",
		"finding a.go:2: [gofmt] not gofmt-formatted (run gofmt -w a.go) (low)",
		"plugin go-lint reported failure: 1 of 1 Go files need attention: a.go",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if !strings.Contains(stdout, `"status": "STATUS_FAILURE"`) {
		t.Errorf("stdout is not the answer: %s", stdout)
	}

	if err := os.WriteFile(filepath.Join(ws, "a.go"), []byte("package a\n\nfunc x() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, err = runCmd(t, "plugin", "run", wasm, "lint", "--name", "go-lint", "--workspace", ws, "--cache-dir", cache)
	if err != nil || !strings.Contains(stderr, "result: SUCCESS") {
		t.Fatalf("a passing lint: %v\n%s", err, stderr)
	}

	_, _, err = runCmd(t, "plugin", "run", wasm, "lint", "--name", "go-lint", "--cache-dir", cache)
	if err == nil || !strings.Contains(err.Error(), "path not granted") {
		t.Fatalf("without --workspace: %v", err)
	}
}

// TestPluginRunGrants: config and granted hosts reach a notify plugin; a host
// not granted is refused; the limits of servers apply (timeout, memory,
// paths outside the workspace).
func TestPluginRunGrants(t *testing.T) {
	cache := pdktest.CacheDir()
	var (
		mu    sync.Mutex
		posts []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		posts = append(posts, string(b))
		mu.Unlock()
	}))
	defer srv.Close()
	webhook := pdktest.Build(t, "../../plugins/webhook")
	send := `{"title":"deployed","body":"v1.2 is live","severity":"SEVERITY_HIGH"}`
	_, stderr, err := runCmd(t, "plugin", "run", webhook, "send", "--cache-dir", cache,
		"--config", "url="+srv.URL+"/hook", "--allow-host", "127.0.0.1", "--input", send)
	if err != nil {
		t.Fatalf("send: %v\n%s", err, stderr)
	}
	mu.Lock()
	got := strings.Join(posts, "\n")
	mu.Unlock()
	if !strings.Contains(got, `"title":"deployed"`) || !strings.Contains(got, "v1.2 is live") {
		t.Fatalf("the receiver got %q", got)
	}
	_, _, err = runCmd(t, "plugin", "run", webhook, "send", "--cache-dir", cache,
		"--config", "url="+srv.URL+"/hook", "--input", send)
	if err == nil || !strings.Contains(err.Error(), "not granted") {
		t.Fatalf("an ungranted host: %v", err)
	}

	kitchen := pdktest.Build(t, "../../host/testdata/kitchen")
	ws := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--timeout", "500ms", "--input", `{"action":"loop"}`}, "timed out"},
		{[]string{"--memory-mib", "16", "--input", `{"action":"hog"}`}, "memory"},
		{[]string{"--workspace", ws, "--input", `{"action":"read","params":{"path":"/etc/hostname"}}`}, "not granted"},
		{[]string{"--config", "novalue"}, `--config "novalue": want K=V`},
	} {
		args := append([]string{"plugin", "run", kitchen, "execute", "--cache-dir", cache}, c.args...)
		_, stderr, err := runCmd(t, args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: want an error with %q, got %v\n%s", c.args, c.want, err, stderr)
		}
	}
}
