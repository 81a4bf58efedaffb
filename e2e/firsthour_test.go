package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// firstParty are the plugins of plugins/, built once per test binary into
// the binary's temporary folder.
var firstParty struct {
	once sync.Once
	dir  string
	err  error
}

// firstPartyPlugins returns a folder holding NAME.wasm for every
// first-party plugin, built from source, as `make plugins` does.
func firstPartyPlugins(t testing.TB) string {
	t.Helper()
	firstParty.once.Do(func() {
		firstParty.dir = filepath.Join(filepath.Dir(arcadeBin), "plugins")
		if err := os.MkdirAll(firstParty.dir, 0o755); err != nil {
			firstParty.err = err
			return
		}
		entries, err := os.ReadDir(filepath.Join("..", "plugins"))
		if err != nil {
			firstParty.err = err
			return
		}
		var (
			mu   sync.Mutex
			wg   sync.WaitGroup
			errs []error
			sem  = make(chan struct{}, 2)
		)
		for _, e := range entries {
			if _, err := os.Stat(filepath.Join("..", "plugins", e.Name(), "main.go")); !e.IsDir() || err != nil {
				continue
			}
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				err := compileWasm("../plugins/"+e.Name(), filepath.Join(firstParty.dir, e.Name()+".wasm"), "-s", "-w")
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			})
		}
		wg.Wait()
		firstParty.err = errors.Join(errs...)
	})
	if firstParty.err != nil {
		t.Fatal(firstParty.err)
	}
	return firstParty.dir
}

// compiled is a compilation cache that holds the first-party plugins
// compiled (set once a test has compiled them), so that later tests of the
// shipped set-up do not compile them again; "" until then.
var compiled struct {
	sync.Mutex
	dir string
}

// reuseCompiled points dir's data/wazero-cache at the compiled plugins,
// when a test compiled them already.
func reuseCompiled(t *testing.T, dir string) {
	t.Helper()
	compiled.Lock()
	defer compiled.Unlock()
	if compiled.dir == "" {
		return
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(compiled.dir, filepath.Join(dir, "data", "wazero-cache")); err != nil {
		t.Fatal(err)
	}
}

// shippedSetUp is a folder laid out like a checkout after `make plugins`:
// the shipped conf.d and the first-party plugins beside it.
func shippedSetUp(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, sub := range []string{"conf.d", "plugins"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"server.yaml", "agent.yaml", "plugins.yaml"} {
		copyFile(t, filepath.Join("..", "conf.d", name), filepath.Join(dir, "conf.d", name))
	}
	built := firstPartyPlugins(t)
	entries, err := os.ReadDir(built)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		copyFile(t, filepath.Join(built, e.Name()), filepath.Join(dir, "plugins", e.Name()))
	}
	return dir
}

// records reads JSON log lines; other lines are returned as they are.
func records(b []byte) (recs []map[string]any, other []string) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] != nil {
			recs = append(recs, rec)
		} else {
			other = append(other, sc.Text())
		}
	}
	return recs, other
}

// TestMakeRunTwice runs what `make run` runs — arcade up with the example
// pipeline, the shipped configuration and the first-party plugins — twice
// in one folder, as a new user does, and checks what they met in the first
// hour: the first start says once that it compiles the plugins, nothing
// warns about capabilities the shipped configuration does not grant, each
// plugin event is logged once with one component key, the run's
// notification is delivered before arcade up exits (the second run's too),
// and no token is printed.
func TestMakeRunTwice(t *testing.T) {
	dir := shippedSetUp(t)
	pipelineFile, err := filepath.Abs(filepath.Join("..", "examples", "pipelines", "ci.arcade.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ARCADE_") || strings.HasPrefix(kv, "ARCADE_CONTAINER_RUNTIME=") {
			env = append(env, kv) // no tokens: up generates them, as on a first start
		}
	}
	up := func(run int) (stdout string, recs []map[string]any, raw string) {
		t.Helper()
		cmd := exec.Command(arcadeBin, "up", "--data-dir", "data", "--run", pipelineFile,
			"--listen", freeAddr(t), "--http-listen", freeAddr(t), "--work-dir", t.TempDir(), "--log-format", "json")
		cmd.Dir, cmd.Env = dir, env
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("run %d: arcade up: %v\nstdout:\n%s\nstderr:\n%s", run, err, out.String(), errb.String())
		}
		recs, _ = records(errb.Bytes())
		return out.String(), recs, errb.String()
	}
	count := func(recs []map[string]any, match func(map[string]any) bool) int {
		n := 0
		for _, r := range recs {
			if match(r) {
				n++
			}
		}
		return n
	}
	msg := func(r map[string]any) string { s, _ := r["msg"].(string); return s }

	for run := 1; run <= 2; run++ {
		stdout, recs, raw := up(run)
		if want := "ci run #" + string(rune('0'+run)) + "  SUCCESS"; !strings.Contains(stdout, want) {
			t.Fatalf("run %d: no %q:\n%s", run, want, stdout)
		}
		compiling := count(recs, func(r map[string]any) bool { return strings.HasPrefix(msg(r), "compiling 6 plugins, first start only") })
		if run == 1 && compiling != 1 {
			t.Errorf("first start: %d lines say it compiles the plugins, want 1", compiling)
		}
		if run == 2 && compiling != 0 {
			t.Errorf("second start (compilation cache warm): %d lines say it compiles the plugins", compiling)
		}
		// Every plugin has had its load when the server says so: nothing
		// the server needs is reported not ready while it still compiles.
		if n := count(recs, func(r map[string]any) bool { return strings.Contains(msg(r), "not ready") }); n != 0 {
			t.Errorf("run %d: %d warnings of a plugin not ready", run, n)
		}
		for _, r := range recs {
			if msg(r) == "plugins loaded" && r["loaded"] != float64(6) {
				t.Errorf("run %d: the server says the plugins loaded with %v of 6 loaded", run, r["loaded"])
			}
		}
		if n := count(recs, func(r map[string]any) bool { return strings.Contains(msg(r), "not granted") }); n != 0 {
			t.Errorf("run %d: %d capability warnings under the shipped configuration", run, n)
		}
		// The plugins the run uses loaded, each logged once; the others may
		// still compile when up stops.
		for _, p := range []string{"go-lint", "junit", "secret-scan", "log-notify", "fs-store", "semver"} {
			n := count(recs, func(r map[string]any) bool {
				return r["plugin"] == p && strings.HasPrefix(msg(r), "plugin ") && r["event"] == "loaded"
			})
			needed := p != "junit" && p != "semver"
			if n > 1 || (needed && n != 1) {
				t.Errorf("run %d: plugin %s's load logged %d times, want once", run, p, n)
			}
		}
		for _, line := range strings.Split(raw, "\n") {
			if strings.Count(line, `"component":`) > 1 {
				t.Errorf("run %d: a repeated component key: %s", run, line)
				break
			}
		}
		// The notification of the run, written by log-notify before up
		// exits.
		note := "ci run #" + string(rune('0'+run)) + " success"
		if n := count(recs, func(r map[string]any) bool { return msg(r) == note }); n != 1 {
			t.Errorf("run %d: the notification %q logged %d times, want once", run, note, n)
		}
		if n := count(recs, func(r map[string]any) bool { return msg(r) == "notification delivered" }); n != 1 {
			t.Errorf("run %d: %d notifications delivered, want 1", run, n)
		}
		if strings.Contains(raw, "context canceled") || strings.Contains(raw, "carrying on") {
			t.Errorf("run %d: a call cut by the stop:\n%s", run, raw)
		}
		if run == 1 {
			// The next tests of the shipped set-up start with the plugins
			// compiled (a copy: this test's folder goes away).
			cache := filepath.Join(filepath.Dir(arcadeBin), "wazero-cache")
			if err := os.CopyFS(cache, os.DirFS(filepath.Join(dir, "data", "wazero-cache"))); err == nil {
				compiled.Lock()
				compiled.dir = cache
				compiled.Unlock()
			}
		}
		creds, err := os.ReadFile(filepath.Join(dir, "data", "credentials.env"))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(creds), "\n") {
			if _, tok, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") && (strings.Contains(raw, tok) || strings.Contains(stdout, tok)) {
				t.Errorf("run %d: a token of credentials.env is printed", run)
			}
		}
	}
}
