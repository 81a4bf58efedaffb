package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
)

// makeTest runs `make test` in a scaffolded project as its author would:
// outside this repository, with the module proxy off, arcade taken from
// ARCADE; compiled modules are cached in cache (XDG_CACHE_HOME). It returns
// the CPU time the command and its children used.
func makeTest(t testing.TB, dir, cache string) time.Duration {
	t.Helper()
	cmd := exec.Command("make", "test", "ARCADE="+arcadeBin)
	cmd.Dir = dir
	// XDG_CACHE_HOME moves arcade's compiled-module cache; GOCACHE keeps
	// Go's build cache where it is (by default it lives under
	// XDG_CACHE_HOME too, and a fresh one rebuilds the standard library).
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=", "GOWORK=off", "GOTOOLCHAIN=local", "XDG_CACHE_HOME="+cache, "GOCACHE="+goCache(t))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make test in %s: %v\n%s", dir, err, tail(out, 4000))
	}
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// TestScaffoldedPlugins: a ci and a notify plugin written by `arcade plugin
// new` outside the repository pass their own `make test` (which runs them
// through `arcade plugin run`) with no module proxy, then a server loads
// them: a pipeline step using the ci plugin fails and passes, and the
// failed run's notification reaches a local receiver through the notify
// plugin. The other kinds' projects pass their own make test too.
func TestScaffoldedPlugins(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	work := t.TempDir()
	type project struct{ name, kind, lang string }
	projects := []project{{"check-files", "ci", "go"}, {"hook", "notify", "go"}}
	if !testing.Short() {
		projects = append(projects, project{"marker-scan", "security", "go"}, project{"recorder", "cd", "go"}, project{"greet", "custom", "go"})
	}
	if cToolchain(t) {
		projects = append(projects, project{"c-check", "ci", "c"}, project{"c-greet", "custom", "c"})
	}
	if npmAvailable(t) {
		projects = append(projects, project{"as-greet", "custom", "assemblyscript"})
	}
	for _, p := range projects {
		cmd := exec.Command(arcadeBin, "plugin", "new", p.name, "--kind", p.kind, "--lang", p.lang)
		cmd.Dir = work
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "next: cd "+p.name+" && make test") {
			t.Fatalf("plugin new %s: %v\n%s", p.name, err, out)
		}
	}
	parallel := make([]func(), 0, len(projects))
	for _, p := range projects {
		parallel = append(parallel, func() { makeTest(t, filepath.Join(work, p.name), filepath.Join(work, "cache-"+p.name)) })
	}
	parallelDone(parallel...)
	if t.Failed() {
		return
	}

	// pdk/README.md's commands, after plugin new and make test.
	run := exec.Command(arcadeBin, "plugin", "run", "check-files.wasm", "lint", "--workspace", ".", "--with", "require=README.md")
	run.Dir = filepath.Join(work, "check-files")
	run.Env = append(os.Environ(), "XDG_CACHE_HOME="+filepath.Join(work, "cache-check-files"))
	if out, err := run.CombinedOutput(); err != nil || !strings.Contains(string(out), "result: SUCCESS: all 1 required file(s) present") {
		t.Fatalf("plugin run check-files.wasm lint: %v\n%s", err, out)
	}

	dir := t.TempDir()
	recv := newReceiver(t, 0, false)
	// A receiver that refuses every request: the scaffold's plugin marks
	// the 400 permanent, and the server does not try again.
	var refusedMu sync.Mutex
	refusedCalls := 0
	refuser := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		refusedMu.Lock()
		refusedCalls++
		refusedMu.Unlock()
		http.Error(w, "malformed", http.StatusBadRequest)
	}))
	defer refuser.Close()
	plugins := fmt.Sprintf(`plugins:
  - name: check-files
    path: %[1]s/check-files/check-files.wasm
    kind: ci
  - name: hook
    path: %[1]s/hook/hook.wasm
    kind: notify
    config: {url: "%[2]s/hook"}
    grants: {allowed_hosts: [127.0.0.1], timeout: 10s}
  - name: hook-refused
    path: %[1]s/hook/hook.wasm
    kind: notify
    config: {url: "%[3]s/hook"}
    grants: {allowed_hosts: [127.0.0.1], timeout: 10s}
  - name: hook-typo
    path: %[1]s/hook/hook.wasm
    kind: notify
    config: {url: "%[2]s/hook", ulr: "%[2]s/hook"}
`, work, recv.URL, refuser.URL)
	pluginsPath := filepath.Join(dir, "plugins.yaml")
	serverPath := filepath.Join(dir, "server.yaml")
	if err := os.WriteFile(pluginsPath, []byte(plugins), 0o644); err != nil {
		t.Fatal(err)
	}
	server := "notify:\n  - name: failures\n    on: [pipeline.failed]\n    plugin: hook\n    template: \"# {{.Pipeline}} failed\\n{{.Pipeline}} run #{{.Run}} {{.Status}}: {{.Message}}\"\n" +
		"  - name: refused\n    on: [pipeline.succeeded]\n    plugin: hook-refused\n" +
		"notify_delivery: {attempts: 3, backoff: 100ms, max_backoff: 200ms}\n"
	if err := os.WriteFile(serverPath, []byte(server), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, "sqlite://"+filepath.Join(dir, "arcade.db"), "--config", serverPath, "--plugins-config", pluginsPath)
	c.startAgent("worker", 1)
	events := c.followEvents("notification")

	// Declared inputs: a misspelt config key keeps the plugin from loading,
	// a misspelt with: key keeps the pipeline from being stored.
	typo, err := pluginv1.NewPluginServiceClient(c.conn).GetPlugin(context.Background(), &pluginv1.GetPluginRequest{Name: "hook-typo"})
	if err != nil || typo.GetPlugin().GetState() != pluginv1.PluginState_PLUGIN_STATE_FAILED ||
		!strings.Contains(typo.GetPlugin().GetLastError(), "ulr: unknown config key; did you mean url?") {
		t.Errorf("hook-typo: %v %v", typo.GetPlugin(), err)
	}
	_, err = c.jobs.CreatePipeline(context.Background(), &jobv1.CreatePipelineRequest{Yaml: `name: misspelt
stages:
  - name: check
    jobs:
      - name: files
        steps:
          - uses: check-files
            with: {requre: README.md}
`})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "with.requre") || !strings.Contains(err.Error(), "did you mean require?") {
		t.Errorf("a misspelt with: key: %v", err)
	}

	c.createPipeline(`name: checked
stages:
  - name: check
    jobs:
      - name: files
        steps:
          - run: echo hello > README.md
          - uses: check-files
            with: {require: README.md}
`)
	c.createPipeline(`name: unchecked
stages:
  - name: check
    jobs:
      - name: files
        steps:
          - run: echo hello > README.md
          - uses: check-files
            with: {require: "README.md,LICENSE"}
`)
	if r := c.waitRun(c.trigger("checked", nil).GetId()); r.GetStatus() != success {
		t.Fatalf("checked: %v %s", r.GetStatus(), r.GetMessage())
	}
	// The refused notification: one attempt, its event says permanent.
	c.waitFor("the refused notification's outcome", func() bool { return events.find("refused", "notification.failed") != nil })
	if e := events.find("refused", "notification.failed"); e.GetAttributes()["permanent"] != "true" || !strings.Contains(e.GetAttributes()["error"], "400") {
		t.Errorf("the refused notification's event: %v", e.GetAttributes())
	}
	refusedMu.Lock()
	if refusedCalls != 1 {
		t.Errorf("the refusing receiver got %d requests, want 1", refusedCalls)
	}
	refusedMu.Unlock()

	r := c.waitRun(c.trigger("unchecked", nil).GetId())
	if r.GetStatus() != failed || len(r.GetJobs()) != 1 ||
		!strings.Contains(r.GetJobs()[0].GetMessage(), "plugin check-files reported failure: 1 of 2 required file(s) missing") {
		t.Fatalf("unchecked: %v %v", r.GetStatus(), r.GetJobs())
	}
	c.waitFor("the notification", func() bool { b, _ := recv.received(); return len(b) == 1 })
	bodies, _ := recv.received()
	b := bodies[0]
	if b["title"] != "unchecked failed" || !strings.Contains(fmt.Sprint(b["body"]), fmt.Sprintf("unchecked run #%d failed", r.GetNumber())) {
		t.Errorf("the receiver got %v", b)
	}
	if ev, _ := b["event"].(map[string]any); ev["type"] != "pipeline.failed" || ev["status"] != "failed" {
		t.Errorf("the event: %v", b["event"])
	}
}

// goCache is the machine's Go build cache.
func goCache(t testing.TB) string {
	out, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		t.Fatalf("go env GOCACHE: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// BenchmarkPluginNewToRun is the figure of a plugin author's first minutes
// in Go: `arcade plugin new`, `make test` green (build, vet, the scaffold's
// test through arcade plugin run), then one `arcade plugin run`. Each
// iteration starts with no compiled-module cache; the Go build cache is the
// machine's (the standard library for wasip1 compiled once per machine).
// It reports wall seconds and the CPU seconds of every process.
func BenchmarkPluginNewToRun(b *testing.B) {
	if _, err := exec.LookPath("make"); err != nil {
		b.Skip("make is not installed")
	}
	for _, lang := range []string{"go", "c", "assemblyscript"} {
		b.Run(lang, func(b *testing.B) {
			if lang == "c" && !cToolchain(b) {
				b.Skip("no C toolchain")
			}
			if lang == "assemblyscript" && !npmAvailable(b) {
				b.Skip("no node and npm")
			}
			kind := "ci"
			if lang == "assemblyscript" {
				kind = "custom"
			}
			var cpu time.Duration
			for i := 0; i < b.N; i++ {
				work := b.TempDir()
				cache := filepath.Join(work, "cache")
				newCmd := exec.Command(arcadeBin, "plugin", "new", "bench-files", "--kind", kind, "--lang", lang)
				newCmd.Dir = work
				if out, err := newCmd.CombinedOutput(); err != nil {
					b.Fatalf("plugin new: %v\n%s", err, out)
				}
				cpu += newCmd.ProcessState.UserTime() + newCmd.ProcessState.SystemTime()
				dir := filepath.Join(work, "bench-files")
				cpu += makeTest(b, dir, cache)
				args := []string{"plugin", "run", "bench-files.wasm", "--workspace", "."}
				if kind == "custom" {
					args = []string{"plugin", "run", "bench-files.wasm", "--with", "action=greet"}
				}
				run := exec.Command(arcadeBin, args...)
				run.Dir = dir
				run.Env = append(os.Environ(), "XDG_CACHE_HOME="+cache)
				if out, err := run.CombinedOutput(); err != nil || !strings.Contains(string(out), "result: SUCCESS") {
					b.Fatalf("plugin run: %v\n%s", err, out)
				}
				cpu += run.ProcessState.UserTime() + run.ProcessState.SystemTime()
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "wall-s/op")
			b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
		})
	}
}

// cToolchain reports whether clang and wasi-libc can build C plugins; their
// absence fails the test under ARCADE_REQUIRE_FOREIGN=1.
func cToolchain(t testing.TB) bool {
	_, err := exec.LookPath("clang")
	if err == nil {
		_, err = os.Stat("/usr/lib/wasm32-wasi/crt1-reactor.o")
	}
	if err != nil && os.Getenv("ARCADE_REQUIRE_FOREIGN") == "1" {
		t.Fatalf("C toolchain required but unavailable: %v (apt-get install clang lld wasi-libc libclang-rt-dev-wasm32)", err)
	}
	return err == nil
}

// npmAvailable reports whether node and npm can build AssemblyScript
// plugins (npm fetches assemblyscript); their absence fails the test under
// ARCADE_REQUIRE_FOREIGN=1.
func npmAvailable(t testing.TB) bool {
	_, err := exec.LookPath("node")
	if err == nil {
		_, err = exec.LookPath("npm")
	}
	if err != nil && os.Getenv("ARCADE_REQUIRE_FOREIGN") == "1" {
		t.Fatalf("node and npm required but unavailable: %v", err)
	}
	return err == nil
}
