// Package pdktest runs a plugin under Arcade's real host in an ordinary
// go test: it builds the plugin from source (once per test binary), loads
// it into a host.Manager with the grants a test asks for — a temporary
// workspace, configuration, allowed hosts — and calls it.
//
//	func TestMain(m *testing.M) { pdktest.Main(m) }
//
//	func TestLint(t *testing.T) {
//		wasm := pdktest.Build(t, ".")
//		p := pdktest.Load(t, wasm, pdktest.Options{
//			Kind:      "ci",
//			Workspace: map[string]string{"main.go": "package main\n"},
//		})
//		var resp pdk.StepResponse
//		err := p.Call("lint", pdk.StepRequest{Context: &pdk.StepContext{Workspace: pdktest.WorkspaceGuest}}, &resp)
//		…
//	}
//
// Unlike pdk, this package imports the host: it is for tests only.
package pdktest

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
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

	"github.com/go-arcade/arcade/host"
)

// WorkspaceGuest is where Options.Workspace appears inside the sandbox.
const WorkspaceGuest = "/workspace"

var shared struct {
	once sync.Once
	dir  string // builds and the compilation cache, removed by Main
	err  error

	mu     sync.Mutex
	builds map[string]*build
}

type build struct {
	once sync.Once
	path string
	err  error
}

func sharedDir() (string, error) {
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "arcade-pdktest-")
	})
	return shared.dir, shared.err
}

// Main runs the tests and removes the builds and the compilation cache
// afterwards. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// Build compiles the plugin package pkg (a folder or import path, relative
// to the test's folder) with GOOS=wasip1 GOARCH=wasm -buildmode=c-shared
// and returns the .wasm path. Each package is built once per test binary,
// however many tests ask; concurrent callers wait for the one build.
func Build(t testing.TB, pkg string, ldflags ...string) string {
	t.Helper()
	path, err := BuildErr(pkg, ldflags...)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// BuildErr is Build without a testing.TB, for TestMain.
func BuildErr(pkg string, ldflags ...string) (string, error) {
	dir, err := sharedDir()
	if err != nil {
		return "", fmt.Errorf("pdktest: %w", err)
	}
	abs := pkg
	if strings.HasPrefix(pkg, ".") {
		if abs, err = filepath.Abs(pkg); err != nil {
			return "", fmt.Errorf("pdktest: %w", err)
		}
	}
	key := abs + "\x00" + strings.Join(ldflags, " ")
	shared.mu.Lock()
	if shared.builds == nil {
		shared.builds = map[string]*build{}
	}
	b := shared.builds[key]
	if b == nil {
		b = &build{path: filepath.Join(dir, fmt.Sprintf("plugin-%d.wasm", len(shared.builds)))}
		shared.builds[key] = b
	}
	shared.mu.Unlock()
	b.once.Do(func() { b.err = goBuild(b.path, pkg, ldflags) })
	return b.path, b.err
}

func goBuild(out, pkg string, ldflags []string) error {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	args := []string{"build", "-buildmode=c-shared", "-trimpath", "-o", out}
	if len(ldflags) > 0 {
		args = append(args, "-ldflags", strings.Join(ldflags, " "))
	}
	cmd := exec.Command(goBin, append(args, pkg)...)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pdktest: building %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// CacheDir is the wazero compilation cache the loads share: by default
// $XDG_CACHE_HOME/arcade/pdktest, kept between runs, since compiling a
// plugin takes seconds (tens under the race detector) and a cached one
// loads in milliseconds; entries are keyed by the module's content and the
// wazero version. ARCADE_PDKTEST_CACHE names another folder, or "-" for a
// cache that lives as long as the test binary. A test that starts its own
// host.Manager can pass it to host.WithCacheDir.
func CacheDir() string {
	if env := os.Getenv("ARCADE_PDKTEST_CACHE"); env != "" && env != "-" {
		return env
	}
	if os.Getenv("ARCADE_PDKTEST_CACHE") == "" {
		if dir, err := os.UserCacheDir(); err == nil {
			dir = filepath.Join(dir, "arcade", "pdktest")
			pruneOnce.Do(func() { prune(dir, 3*24*time.Hour) })
			return dir
		}
	}
	dir, err := sharedDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "cache")
}

var pruneOnce sync.Once

// prune removes cache entries not written for maxAge: every edit of a
// plugin adds entries, and nothing else would remove them.
func prune(dir string, maxAge time.Duration) {
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil && time.Since(info.ModTime()) > maxAge {
			_ = os.Remove(path)
		}
		return nil
	})
}

// Options are the grants and settings a test loads a plugin with.
type Options struct {
	// Name defaults to "plugin"; Kind (ci, cd, …) to what the module declares.
	Name, Kind string
	// Config is the plugin's configuration (config_get).
	Config map[string]string
	// Hosts are the granted hosts (allowed_hosts).
	Hosts []string
	// Workspace files (relative path → content) are written into a
	// temporary folder mounted read-write at WorkspaceGuest. Nil mounts
	// nothing unless WorkspaceDir is set.
	Workspace map[string]string
	// WorkspaceDir mounts an existing folder at WorkspaceGuest instead.
	WorkspaceDir string
	// ReadOnly mounts the workspace read-only.
	ReadOnly bool
	// Paths are further path grants.
	Paths []host.PathGrant
	// Limits; zero values take the host's defaults.
	MemoryLimitMiB uint32
	Timeout        time.Duration
	MaxInstances   int
	// Logger receives the host's and the plugin's logs; default: the test's
	// output at debug level.
	Logger *slog.Logger
}

// Plugin is a plugin loaded under a host for one test.
type Plugin struct {
	*host.Plugin
	Manager *host.Manager
	// Workspace is the host folder mounted at WorkspaceGuest ("" if none).
	Workspace string
	t         testing.TB
}

// Load starts a host.Manager for the test, loads wasm with opts and
// returns the plugin. The manager closes when the test ends.
func Load(t testing.TB, wasm string, opts Options) *Plugin {
	t.Helper()
	p, err := LoadErr(t, wasm, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// LoadErr is Load returning the load error (e.g. to test a refused module).
func LoadErr(t testing.TB, wasm string, opts Options) (*Plugin, error) {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "plugin"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	spec := host.Spec{Name: opts.Name, Path: wasm, Kind: opts.Kind, Config: opts.Config}
	spec.Grants.AllowedHosts = opts.Hosts
	spec.Grants.AllowedPaths = opts.Paths
	spec.Grants.MemoryLimitMiB = opts.MemoryLimitMiB
	spec.Grants.Timeout = host.Duration(opts.Timeout)
	spec.Grants.MaxInstances = opts.MaxInstances
	ws := opts.WorkspaceDir
	if ws == "" && opts.Workspace != nil {
		ws = t.TempDir()
		if err := WriteFiles(ws, opts.Workspace); err != nil {
			return nil, err
		}
	}
	if ws != "" {
		mode := "rw"
		if opts.ReadOnly {
			mode = "ro"
		}
		spec.Grants.AllowedPaths = append(spec.Grants.AllowedPaths, host.PathGrant{Host: ws, Guest: WorkspaceGuest, Mode: mode})
	}
	cfgDir := t.TempDir()
	b, err := yaml.Marshal(host.Config{Plugins: []host.Spec{spec}})
	if err != nil {
		return nil, fmt.Errorf("pdktest: %w", err)
	}
	cfgPath := filepath.Join(cfgDir, "plugins.yaml")
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		return nil, fmt.Errorf("pdktest: %w", err)
	}
	m := host.NewManager(opts.Logger, host.WithCacheDir(CacheDir()))

	t.Cleanup(func() { _ = m.Close(context.Background()) })
	if err := m.LoadPluginsFromConfig(cfgPath); err != nil {
		return nil, err
	}
	if err := m.Init(t.Context()); err != nil {
		return nil, err
	}
	hp, err := m.Get(opts.Name)
	if err != nil {
		return nil, err
	}
	return &Plugin{Plugin: hp, Manager: m, Workspace: ws, t: t}, nil
}

// Call calls fn with in encoded as JSON (a []byte or json.RawMessage is sent
// as is) and decodes the output into out (nil: ignored). The error is the
// host's, as users would see it.
func (p *Plugin) Call(fn string, in, out any) error {
	var data []byte
	switch v := in.(type) {
	case []byte:
		data = v
	case json.RawMessage:
		data = v
	case nil:
	default:
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("pdktest: encoding input: %w", err)
		}
		data = b
	}
	raw, err := p.Plugin.Call(p.t.Context(), fn, data)
	if err != nil {
		return err
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("pdktest: decoding output of %s: %w\n%s", fn, err, raw)
		}
	}
	return nil
}

// WriteFiles writes files (relative path → content) under dir.
func WriteFiles(dir string, files map[string]string) error {
	for name, content := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("pdktest: %w", err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return fmt.Errorf("pdktest: %w", err)
		}
	}
	return nil
}
