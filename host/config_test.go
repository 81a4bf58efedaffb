package host

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestShippedConfigIsValid(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	cfg, err := LoadConfig(filepath.Join(filepath.Dir(file), "..", "conf.d", "plugins.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(cfg.Defaults.Timeout) != 30*time.Second || cfg.Defaults.MaxInstances != 4 {
		t.Fatalf("defaults %+v", cfg.Defaults)
	}
}

func TestConfigDefaultsGrantNothing(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
plugins:
  - name: lint
    path: plugins/lint.wasm
    kind: ci
`), "/etc/arcade")
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Plugins[0]
	if s.Path != "/etc/arcade/plugins/lint.wasm" {
		t.Errorf("path %s", s.Path)
	}
	if len(s.Grants.AllowedHosts) != 0 || len(s.Grants.AllowedPaths) != 0 || len(s.Config) != 0 {
		t.Errorf("something granted by default: %+v", s.Grants)
	}
	if time.Duration(s.Grants.Timeout) != DefaultTimeout || s.Grants.MemoryLimitMiB != DefaultMemoryLimitMiB ||
		s.Grants.MaxInstances != DefaultMaxInstances {
		t.Errorf("limits %+v", s.Grants.Limits)
	}
	if !s.IsEnabled() || s.FailOpen() {
		t.Errorf("enabled %v, fail open %v", s.IsEnabled(), s.FailOpen())
	}
}

func TestConfigGrantsAndOverrides(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
defaults: {timeout: 5s, memory_limit_mib: 32, max_instances: 2}
plugins:
  - name: deploy
    path: /opt/deploy.wasm
    kind: cd
    failure_policy: fail_open
    enabled: false
    grants:
      allowed_hosts: ["*.example.com"]
      allowed_paths:
        - {host: ws, guest: /workspace}
        - {host: /tmp/out, guest: /out, mode: rw}
      timeout: 1m
`), "/base")
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Plugins[0]
	if time.Duration(s.Grants.Timeout) != time.Minute || s.Grants.MemoryLimitMiB != 32 || s.Grants.MaxInstances != 2 {
		t.Errorf("limits %+v", s.Grants.Limits)
	}
	if s.Grants.AllowedPaths[0].Mode != "ro" || s.Grants.AllowedPaths[0].Host != "/base/ws" || s.Grants.AllowedPaths[1].Mode != "rw" {
		t.Errorf("paths %+v", s.Grants.AllowedPaths)
	}
	if s.IsEnabled() || !s.FailOpen() {
		t.Errorf("enabled %v, fail open %v", s.IsEnabled(), s.FailOpen())
	}
}

func TestConfigRejectsMistakes(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{`plugins: [{path: a.wasm}]`, "name is required"},
		{`plugins: [{name: a}]`, "path or source is required"},
		{`plugins: [{name: a, path: a.wasm, source: "oci://127.0.0.1:5000/a:1"}]`, "path and source are both set"},
		{`plugins: [{name: a, source: "https://127.0.0.1:5000/a:1"}]`, "want oci://REGISTRY/REPOSITORY:TAG"},
		{`plugins: [{name: a, source: "oci://127.0.0.1:5000/a"}]`, "names no tag or digest"},
		{`{oci: {poll_interval: 10ms}, plugins: [{name: a, source: "oci://127.0.0.1:5000/a:1"}]}`, "oci.poll_interval 10ms: at least 1s"},
		{`plugins: [{name: a, path: a.wasm, kind: build}]`, `unknown kind "build"`},
		{`plugins: [{name: a, path: a.wasm}, {name: a, path: b.wasm}]`, "duplicate name"},
		{`plugins: [{name: a, path: a.wasm, sha256: abc}]`, "not 64 hex digits"},
		{`plugins: [{name: a, path: a.wasm, failure_policy: maybe}]`, "failure_policy"},
		{`plugins: [{name: a, path: a.wasm, grants: {memory_limit_mib: 1}}]`, "memory_limit_mib 1 out of range"},
		{`plugins: [{name: a, path: a.wasm, grants: {timeout: soon}}]`, "invalid duration"},
		{`plugins: [{name: a, path: a.wasm, grants: {allowed_hosts: ["http://x/"]}}]`, "is not a host name"},
		{`plugins: [{name: a, path: a.wasm, grants: {allowed_paths: [{host: /x, guest: rel}]}}]`, "not absolute"},
		{`plugins: [{name: a, path: a.wasm, grants: {allowed_paths: [{host: /x, guest: /g, mode: rwx}]}}]`, `mode "rwx"`},
		{`plugins: [{name: a, path: a.wasm, grant: {}}]`, "field grant not found"},
	} {
		_, err := ParseConfig([]byte(tc.yaml), "/")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

func TestParseKind(t *testing.T) {
	for in, want := range map[string]string{"ci": "ci", "KIND_NOTIFY": "notify", " Storage ": "storage"} {
		k, ok := ParseKind(in)
		if !ok || KindName(k) != want {
			t.Errorf("ParseKind(%q) = %v %v", in, k, ok)
		}
	}
	for _, in := range []string{"", "unspecified", "KIND_UNSPECIFIED", "lint"} {
		if _, ok := ParseKind(in); ok {
			t.Errorf("ParseKind(%q) accepted", in)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("plugins: [{name: a, path: a.wasm, kind: ci}]"))
	f.Add([]byte("defaults: {timeout: 1s}\nplugins: []"))
	f.Add([]byte("plugins: [{name: a, path: a.wasm, grants: {allowed_paths: [{host: x, guest: /g}]}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data, "/base")
		if err != nil {
			return
		}
		// Whatever parses is complete: every limit set, every path absolute.
		for _, s := range cfg.Plugins {
			if s.Grants.Timeout <= 0 || s.Grants.MemoryLimitMiB == 0 || s.Grants.MaxInstances <= 0 {
				t.Fatalf("limits missing: %+v", s.Grants.Limits)
			}
			if !filepath.IsAbs(s.Path) {
				t.Fatalf("relative path %q", s.Path)
			}
		}
	})
}
