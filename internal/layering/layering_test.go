// Package layering holds the module's dependency direction in one test:
//
//   - core imports no server, agent, host, cmd or client package (only core
//     and the generated api packages of the module);
//   - server and agent never import each other (nor cmd);
//   - host and internal import no server, agent or cmd package;
//   - pdk, built for plugins, imports the standard library only (it is a
//     module of its own, ./pdk, which the main module replaces locally; its
//     test helper host/pdktest, which runs plugins in the host, lives in
//     the main module);
//   - plugins import pdk and the standard library only.
//
// It reads `go list -deps` and fails, never skips, when that cannot run.
package layering

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/go-arcade/arcade"

// pkg is one package as go list describes it.
type pkg struct {
	ImportPath string
	Standard   bool
	Deps       []string
}

// rule says what the packages under one folder may depend on: allowed
// reports whether a dependency (already known not to be the standard
// library, nor the package's own folder) is fine.
type rule struct {
	under   string // module-relative folder, "" for the whole module
	except  []string
	why     string
	allowed func(dep string) bool
}

func rel(p string) (string, bool) {
	if p == module {
		return "", true
	}
	r, ok := strings.CutPrefix(p, module+"/")
	return r, ok
}

func within(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// notUnder allows everything but module packages under the given folders.
func notUnder(dirs ...string) func(string) bool {
	return func(dep string) bool {
		r, ok := rel(dep)
		if !ok {
			return true
		}
		for _, d := range dirs {
			if within(r, d) {
				return false
			}
		}
		return true
	}
}

// hostRules apply to the module built for the machine the tests run on.
var hostRules = []rule{
	{under: "core", why: "core is pure: only core and the api types", allowed: func(dep string) bool {
		r, ok := rel(dep)
		return !ok || within(r, "core") || within(r, "api")
	}},
	{under: "server", why: "server never imports agent", allowed: notUnder("agent", "cmd")},
	{under: "agent", why: "agent never imports server", allowed: notUnder("server", "cmd")},
	{under: "host", why: "host serves server and agent, imports neither", allowed: notUnder("server", "agent", "cmd")},
	{under: "internal", why: "internal packages serve the others", allowed: notUnder("server", "agent", "cmd")},
}

// pluginRules apply to the module built for plugins (wasip1/wasm).
var pluginRules = []rule{
	{under: "pdk", why: "the PDK imports the standard library only", allowed: func(string) bool { return false }},
	{under: "plugins", why: "plugins import the PDK and the standard library only", allowed: func(dep string) bool {
		r, ok := rel(dep)
		return ok && (within(r, "pdk") || within(r, "plugins"))
	}},
}

// violations lists every dependency of pkgs that a rule forbids.
func violations(pkgs []pkg, rules []rule) []string {
	std := map[string]bool{}
	for _, p := range pkgs {
		std[p.ImportPath] = p.Standard
	}
	var out []string
	for _, p := range pkgs {
		r, ok := rel(p.ImportPath)
		if !ok {
			continue
		}
		for _, ru := range rules {
			if !within(r, ru.under) && ru.under != "" {
				continue
			}
			if slices.ContainsFunc(ru.except, func(e string) bool { return within(r, e) }) {
				continue
			}
			for _, dep := range p.Deps {
				if std[dep] || dep == p.ImportPath {
					continue
				}
				if !ru.allowed(dep) {
					out = append(out, fmt.Sprintf("%s depends on %s (%s)", r, dep, ru.why))
				}
			}
		}
	}
	return out
}

// list runs go list -deps over the module with extra environment.
func list(t *testing.T, env ...string) []pkg {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	cmd := exec.Command(goBin, "list", "-deps", "-json=ImportPath,Standard,Deps", module+"/...")
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v\n%s", env, err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no package")
	}
	return pkgs
}

// TestLayering holds the dependency direction of the whole module.
func TestLayering(t *testing.T) {
	for _, v := range violations(list(t), hostRules) {
		t.Error(v)
	}
	wasm := list(t, "GOOS=wasip1", "GOARCH=wasm")
	var seen []string
	for _, p := range wasm {
		if r, ok := rel(p.ImportPath); ok && (within(r, "pdk") || within(r, "plugins")) {
			seen = append(seen, r)
		}
	}
	if !slices.Contains(seen, "pdk") || !slices.ContainsFunc(seen, func(s string) bool { return strings.HasPrefix(s, "plugins/") }) {
		t.Fatalf("the wasip1 listing lacks pdk or the plugins: %v", seen)
	}
	for _, v := range violations(wasm, pluginRules) {
		t.Error(v)
	}
}

// TestLayeringRulesCatch shows each rule failing on a package that breaks
// it, and passing what it allows.
func TestLayeringRulesCatch(t *testing.T) {
	m := func(s string) string { return module + "/" + s }
	graph := []pkg{
		{ImportPath: "fmt", Standard: true},
		{ImportPath: "google.golang.org/grpc"},
		{ImportPath: m("core/pipeline"), Deps: []string{"fmt", m("api/job/v1"), m("core/labels"), m("host")}},
		{ImportPath: m("server/service"), Deps: []string{"google.golang.org/grpc", m("host"), m("agent/executor")}},
		{ImportPath: m("agent"), Deps: []string{m("host"), m("server/store")}},
		{ImportPath: m("host"), Deps: []string{m("internal/confine"), m("agent")}},
		{ImportPath: m("internal/confine"), Deps: []string{"fmt", m("server")}},
	}
	got := violations(graph, hostRules)
	want := []string{
		"core/pipeline depends on " + m("host"),
		"server/service depends on " + m("agent/executor"),
		"agent depends on " + m("server/store"),
		"host depends on " + m("agent"),
		"internal/confine depends on " + m("server"),
	}
	if len(got) != len(want) {
		t.Fatalf("violations\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]+" (") {
			t.Errorf("violation %d: %q, want %q", i, got[i], want[i])
		}
	}
	wasm := []pkg{
		{ImportPath: "os", Standard: true},
		{ImportPath: m("pdk"), Deps: []string{"os", "google.golang.org/protobuf"}},
		{ImportPath: m("plugins/junit"), Deps: []string{"os", m("pdk"), m("host")}},
	}
	got = violations(wasm, pluginRules)
	if len(got) != 2 || !strings.HasPrefix(got[0], "pdk depends on google.golang.org/protobuf") ||
		!strings.HasPrefix(got[1], "plugins/junit depends on "+m("host")) {
		t.Fatalf("plugin violations: %q", got)
	}
}
