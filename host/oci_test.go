package host

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-arcade/arcade/host/pluginoci"
	"github.com/go-arcade/arcade/internal/dockertest"
)

// A tag that moves while the registry fails to serve the new module is
// followed once the registry serves it again: a registry error is not a
// verdict on the version, which a refused signature is (see TestPluginOCI).
func TestOCITagFollowedAfterRegistryError(t *testing.T) {
	reg := dockertest.StartRegistry(t, dockertest.RegistryOptions{})
	target, _ := url.Parse("http://" + reg.Addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	var failBlobs atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failBlobs.Load() && r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	dir := t.TempDir()
	opts := pluginoci.Options{PlainHTTP: true, DockerConfig: dir + "/none.json"}
	ref := addr + "/arcade/kitchen:stable"
	push := func(path string) {
		t.Helper()
		module, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pluginoci.Push(context.Background(), ref, module, nil, opts); err != nil {
			t.Fatal(err)
		}
	}
	push(testWasm.kitchen)
	cfg := Config{OCI: OCIConfig{PlainHTTP: true, DockerConfig: opts.DockerConfig, PollInterval: Duration(time.Second)},
		Plugins: []Spec{{Name: "kitchen", Source: pluginoci.Scheme + ref, Kind: "custom"}}}
	m := newTestManager(t)
	if err := m.LoadPluginsFromConfig(writeConfig(t, dir, cfg)); err != nil {
		t.Fatal(err)
	}
	if err := m.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	version := func() string {
		p, err := m.Get("kitchen")
		if err != nil {
			return ""
		}
		return p.Info().GetMetadata().GetVersion()
	}
	if v := version(); v != "1.0.0" {
		t.Fatalf("kitchen from oci:// is %q", v)
	}

	failBlobs.Store(true)
	push(testWasm.kitchen2) // its blobs go up; downloads fail
	waitUntil(t, "the failed pull of 2.0.0", func() bool {
		p, _ := m.Get("kitchen")
		return p != nil && strings.Contains(p.Info().GetLastError(), "registry unavailable")
	})
	if v := version(); v != "1.0.0" {
		t.Fatalf("after a failed pull kitchen is %q, want 1.0.0 serving", v)
	}
	failBlobs.Store(false)
	waitUntil(t, "kitchen 2.0.0 once the registry serves it", func() bool { return version() == "2.0.0" })
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
