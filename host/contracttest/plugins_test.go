package contracttest_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	"github.com/go-arcade/arcade/host"
	"github.com/go-arcade/arcade/host/contracttest"
	"github.com/go-arcade/arcade/host/pdktest"
	"github.com/go-arcade/arcade/internal/scaffold"
)

func TestMain(m *testing.M) { pdktest.Main(m) }

// receiver is a local endpoint that accepts any request, for the plugins
// that send one (webhook, http-deploy, forge-status).
func receiver(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"contract"}`))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestFirstPartyPlugins builds every plugin of plugins/ from source and
// runs the contract suite of its kind over it, with the config and grants
// it needs to load.
func TestFirstPartyPlugins(t *testing.T) {
	url := receiver(t)
	local := []string{"127.0.0.1"}
	plugins := map[string]pdktest.Options{
		"go-lint":      {Kind: "ci", Workspace: map[string]string{"go.mod": "module x\n"}},
		"junit":        {Kind: "ci", Workspace: map[string]string{}},
		"http-deploy":  {Kind: "cd", Hosts: local, Config: map[string]string{"endpoint": url + "/api", "service": "web"}},
		"secret-scan":  {Kind: "security", Workspace: map[string]string{"main.go": "package main\n"}},
		"webhook":      {Kind: "notify", Hosts: local, Config: map[string]string{"url": url + "/hook"}},
		"log-notify":   {Kind: "notify"},
		"forge-status": {Kind: "notify", Hosts: local, Config: map[string]string{"forge": "github", "api_url": url, "token": "t"}},
		"fs-store":     {Kind: "storage", Paths: []host.PathGrant{{Host: t.TempDir(), Guest: "/store", Mode: "rw"}}},
		// No S3 server: each call ends in a typed error (unreachable),
		// which the contract allows; plugins/storage_test.go runs it
		// against one.
		"s3-store": {Kind: "storage", Hosts: local, Config: map[string]string{"endpoint": "http://127.0.0.1:9", "bucket": "b",
			"access_key_id": "k", "secret_access_key": "s"}},
		"semver": {Kind: "custom"},
	}
	dirs, err := os.ReadDir("../../plugins")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range dirs {
		if d.IsDir() {
			names = append(names, d.Name())
		}
	}
	for name := range plugins {
		if !slices.Contains(names, name) {
			t.Errorf("plugins/%s is gone: drop it from this test", name)
		}
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			opts, ok := plugins[name]
			if !ok {
				t.Fatalf("plugins/%s: not in this test; add it with its kind", name)
			}
			opts.Name = name
			contracttest.Run(t, pdktest.Build(t, "../../plugins/"+name), opts)
		})
	}
}

// TestExamples runs the suite over the example plugins in every language
// tested here: the C and AssemblyScript examples, and the projects
// `arcade plugin new` writes for each kind and language. C and
// AssemblyScript skip without clang or node (and the example's npm ci),
// unless ARCADE_REQUIRE_FOREIGN=1.
func TestExamples(t *testing.T) {
	url := receiver(t)
	t.Run("c/examples-plugin-c", func(t *testing.T) {
		wasm := pdktest.BuildC(t, "../../examples/plugin-c/src/slugify.c", "../../pdk/c")
		contracttest.Run(t, wasm, pdktest.Options{Kind: "custom"})
	})
	t.Run("assemblyscript/examples-plugin-as", func(t *testing.T) {
		wasm := pdktest.BuildAssemblyScript(t, "../../examples/plugin-as")
		contracttest.Run(t, wasm, pdktest.Options{Kind: "custom"})
	})
	for _, kind := range scaffold.Kinds {
		t.Run("go/plugin-new-"+kind, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "contract-"+kind)
			if _, err := scaffold.Write(dir, scaffold.Options{Name: "contract-" + kind, Kind: kind, Lang: "go"}); err != nil {
				t.Fatal(err)
			}
			opts := pdktest.Options{Kind: kind, Workspace: map[string]string{}}
			if kind == "notify" {
				opts.Config, opts.Hosts = map[string]string{"url": url + "/hook"}, []string{"127.0.0.1"}
			}
			contracttest.Run(t, buildGo(t, dir), opts)
		})
	}
	for _, kind := range []string{"ci", "custom"} {
		t.Run("c/plugin-new-"+kind, func(t *testing.T) {
			name := "contract-" + kind
			dir := filepath.Join(t.TempDir(), name)
			if _, err := scaffold.Write(dir, scaffold.Options{Name: name, Kind: kind, Lang: "c"}); err != nil {
				t.Fatal(err)
			}
			wasm := pdktest.BuildC(t, filepath.Join(dir, "src", name+".c"), filepath.Join(dir, "include"))
			contracttest.Run(t, wasm, pdktest.Options{Kind: kind, Workspace: map[string]string{}})
		})
	}
}

// buildGo builds the Go plugin project in dir as its Makefile does, with
// no module proxy (the project carries the PDK).
func buildGo(t *testing.T, dir string) string {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out := filepath.Join(t.TempDir(), "plugin.wasm")
	cmd := exec.Command(goBin, "build", "-buildmode=c-shared", "-trimpath", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOWORK=off", "GOPROXY=off", "GOFLAGS=-mod=mod")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build in %s: %v\n%s", dir, err, b)
	}
	return out
}

// TestSuiteFindsBreaches runs the suite's checks over a plugin that breaks
// the contract on purpose: each breach is reported, naming it.
func TestSuiteFindsBreaches(t *testing.T) {
	p := pdktest.Load(t, pdktest.Build(t, "./testdata/broken"), pdktest.Options{Kind: "custom"})
	var got []string
	for _, err := range contracttest.Check(p, pluginv1.Kind_KIND_CUSTOM) {
		got = append(got, err.Error())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		`metadata version "latest": want MAJOR.MINOR.PATCH`,
		"metadata description: empty",
		`execute answered status "STATUS_MAYBE", not one of the contract's`,
		"execute with a request that does not parse: ",
		"the plugin broke (crashed)",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("the suite did not report %q; it reported:\n%s", want, all)
		}
	}
}
