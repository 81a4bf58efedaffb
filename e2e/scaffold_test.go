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

	"github.com/go-arcade/arcade/internal/dockertest"

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

// TestScaffoldedPluginsThroughOCI: the ci and notify plugins `arcade plugin
// new` writes, built outside the repository, are pushed signed to a real
// registry and loaded by a server from oci:// under require_signatures.
// A pipeline step uses the ci plugin, and a failed run's notification goes
// out through the notify plugin. The author then renames the ci plugin's
// param and pushes again: signed by another key, the push is refused and
// the old version keeps serving; signed by the trusted key, the server
// swaps to it, and the next run of the pipeline stored against the old
// version ends FAILED when it is planned, before any of its jobs runs,
// naming the job, the step, the new version and the key.
func TestScaffoldedPluginsThroughOCI(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	reg := dockertest.StartRegistry(t, dockertest.RegistryOptions{})
	work := t.TempDir()
	env := append(os.Environ(), "GOPROXY=off", "GOFLAGS=", "GOWORK=off", "GOTOOLCHAIN=local", "GOCACHE="+goCache(t))
	run := func(dir string, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tail(out, 4000))
		}
		return string(out)
	}
	run(work, arcadeBin, "plugin", "new", "check-files", "--kind", "ci")
	run(work, arcadeBin, "plugin", "new", "hook", "--kind", "notify")
	parallelDone(
		func() { run(filepath.Join(work, "check-files"), "make", "build") },
		func() { run(filepath.Join(work, "hook"), "make", "build") },
	)
	if t.Failed() {
		return
	}
	pub := strings.TrimSpace(run(work, arcadeBin, "plugin", "keygen", "--out", "plugin.key"))
	run(work, arcadeBin, "plugin", "keygen", "--out", "other.key")
	push := func(project, key string) {
		t.Helper()
		out := run(work, arcadeBin, "plugin", "push", "--plain-http", "--key", key,
			filepath.Join(project, project+".wasm"), reg.Addr+"/team/"+project+":stable")
		if !strings.Contains(out, "pushed") {
			t.Fatalf("push %s: %s", project, out)
		}
	}
	push("check-files", "plugin.key")
	push("hook", "plugin.key")

	dir := t.TempDir()
	recv := newReceiver(t, 0, false)
	pluginsPath := filepath.Join(dir, "plugins.yaml")
	if err := os.WriteFile(pluginsPath, []byte(fmt.Sprintf(`trusted_keys: [%s]
require_signatures: true
oci: {plain_http: true, poll_interval: 1s}
plugins:
  - name: check-files
    source: oci://%[2]s/team/check-files:stable
    kind: ci
  - name: hook
    source: oci://%[2]s/team/hook:stable
    kind: notify
    config: {url: "%[3]s/hook"}
    grants: {allowed_hosts: [127.0.0.1], timeout: 10s}
`, pub, reg.Addr, recv.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	serverPath := filepath.Join(dir, "server.yaml")
	if err := os.WriteFile(serverPath, []byte("notify:\n  - name: failures\n    on: [pipeline.failed]\n    plugin: hook\n"+
		"    template: \"# {{.Pipeline}} failed\\n{{.Message}}\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, "sqlite://"+filepath.Join(dir, "arcade.db"), "--config", serverPath, "--plugins-config", pluginsPath)
	c.startAgent("worker", 1)
	plugins := pluginv1.NewPluginServiceClient(c.conn)
	info := func(name string) *pluginv1.PluginInfo {
		t.Helper()
		r, err := plugins.GetPlugin(context.Background(), &pluginv1.GetPluginRequest{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetPlugin()
	}
	for _, name := range []string{"check-files", "hook"} {
		if p := info(name); p.GetState() != pluginv1.PluginState_PLUGIN_STATE_LOADED || p.GetMetadata().GetVersion() != "0.1.0" {
			t.Fatalf("%s from oci:// is %s %s: %s", name, p.GetState(), p.GetMetadata().GetVersion(), p.GetLastError())
		}
	}

	c.createPipeline(`name: files
stages:
  - name: prepare
    jobs:
      - name: readme
        commands: [echo prepared]
  - name: check
    jobs:
      - name: files
        steps:
          - run: echo hello > README.md
          - uses: check-files
            with: {require: README.md}
`)
	if r := c.waitRun(c.trigger("files", nil).GetId()); r.GetStatus() != success {
		t.Fatalf("files: %v %s", r.GetStatus(), r.GetMessage())
	}
	c.createPipeline(`name: missing
stages:
  - name: check
    jobs:
      - name: files
        steps:
          - uses: check-files
            with: {require: LICENSE}
`)
	r := c.waitRun(c.trigger("missing", nil).GetId())
	if r.GetStatus() != failed || !strings.Contains(r.GetJobs()[0].GetMessage(), "plugin check-files reported failure: 1 of 1 required file(s) missing") {
		t.Fatalf("missing: %v %v", r.GetStatus(), r.GetJobs())
	}
	c.waitFor("the notification through the pulled hook", func() bool { b, _ := recv.received(); return len(b) == 1 })

	// The author renames the param (require → files) and releases 0.2.0.
	src := filepath.Join(work, "check-files", "main.go")
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.NewReplacer(`Version:     "0.1.0"`, `Version:     "0.2.0"`, `Name: "require"`, `Name: "files"`,
		`req.Params.String("require"`, `req.Params.String("files"`).Replace(string(b))
	if edited == string(b) || strings.Count(edited, `"files"`) != 2 {
		t.Fatalf("the scaffold's main.go no longer reads as this test expects:\n%s", b)
	}
	if err := os.WriteFile(src, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	run(filepath.Join(work, "check-files"), "make", "build")

	// Signed by a key the server does not trust: refused, 0.1.0 serves on.
	push("check-files", "other.key")
	c.waitFor("the refusal of the untrusted signature", func() bool {
		return strings.Contains(info("check-files").GetLastError(), "signature not by a trusted key")
	})
	if p := info("check-files"); p.GetMetadata().GetVersion() != "0.1.0" {
		t.Fatalf("after a refused push check-files serves %s", p.GetMetadata().GetVersion())
	}
	if r := c.waitRun(c.trigger("files", nil).GetId()); r.GetStatus() != success {
		t.Fatalf("files after the refused push: %v %s", r.GetStatus(), r.GetMessage())
	}

	// Signed by the trusted key: the server swaps to 0.2.0, and the stored
	// pipeline's with: no longer fits it. The run ends when it is planned.
	push("check-files", "plugin.key")
	c.waitFor("check-files 0.2.0 from the moved tag", func() bool { return info("check-files").GetMetadata().GetVersion() == "0.2.0" })
	r = c.waitRun(c.trigger("files", nil).GetId())
	want := "job files step 2 (check-files): plugin check-files 0.2.0 refuses its with: require: unknown param"
	if r.GetStatus() != failed || !strings.Contains(r.GetMessage(), want) {
		t.Fatalf("files after the swap: %v %q, want FAILED with %q", r.GetStatus(), r.GetMessage(), want)
	}
	for _, j := range r.GetJobs() {
		if j.GetStatus() != skipped || !strings.Contains(j.GetMessage(), "not run: "+want) {
			t.Errorf("job %s of the refused run: %v %q, want SKIPPED, not run", j.GetName(), j.GetStatus(), j.GetMessage())
		}
	}
	c.waitFor("the refused run's notification", func() bool { b, _ := recv.received(); return len(b) == 2 })
	bodies, _ := recv.received()
	if body := fmt.Sprint(bodies[1]["body"]); !strings.Contains(body, want) {
		t.Errorf("the refused run's notification: %v", bodies[1])
	}

	// The pipeline updated to the new param runs green.
	c.createPipeline(`name: files-renamed
stages:
  - name: check
    jobs:
      - name: files
        steps:
          - run: echo hello > README.md
          - uses: check-files
            with: {files: README.md}
`)
	if r := c.waitRun(c.trigger("files-renamed", nil).GetId()); r.GetStatus() != success {
		t.Fatalf("files-renamed: %v %s", r.GetStatus(), r.GetMessage())
	}
}
