package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
)

// stopWithin sends SIGTERM to p and reports how long it took to exit, or
// false when it had not exited after limit (then it is killed).
func stopWithin(p *proc, limit time.Duration) (time.Duration, bool) {
	start := time.Now()
	syscall.Kill(p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
		return time.Since(start), true
	case <-time.After(limit):
		p.stop(syscall.SIGKILL)
		return time.Since(start), false
	}
}

// TestStuckPluginsDoNotHoldShutdown: an agent whose job's plugin step sleeps
// for an hour, and a server serving a plugin call that sleeps for an hour,
// each end on SIGTERM well within 10 s (the job is reported as stopped
// with the agent).
func TestStuckPluginsDoNotHoldShutdown(t *testing.T) {
	pluginDir := t.TempDir()
	buildPlugin(t, "../host/testdata/stuck", filepath.Join(pluginDir, "stuck.wasm"))
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db", "--plugin-dirs", pluginDir)
	c.waitFor("the stuck plugin to load", func() bool {
		out, _ := c.cli("plugin", "info", "stuck", "-o", "json")
		return strings.Contains(out, `"version": "1.0.0"`)
	})
	agent := c.startAgent("sleeper", 1)
	j := c.create(&jobv1.CreateJobRequest{Name: "stuck step", Steps: []*agentv1.Step{{Uses: "stuck", With: map[string]string{"action": "sleep"}}}})
	c.waitStatus(j.GetId(), agentv1.JobStatus_JOB_STATUS_RUNNING)
	time.Sleep(time.Second) // the step is in its plugin call
	took, ok := stopWithin(agent, 10*time.Second)
	if !ok {
		t.Fatalf("the agent was still running %s after SIGTERM, its plugin step asleep", took)
	}
	t.Logf("agent with a sleeping plugin step stopped in %s", took)
	done := c.waitStatus(j.GetId(), agentv1.JobStatus_JOB_STATUS_FAILED, agentv1.JobStatus_JOB_STATUS_CANCELLED)
	t.Logf("the job: %s %q", done.GetStatus(), done.GetMessage())

	// A plugin call on the server, asleep.
	go c.cli("plugin", "call", "stuck", "execute", "--action", "sleep") //nolint:errcheck // ends with the server
	time.Sleep(2 * time.Second)
	took, ok = stopWithin(c.server, 10*time.Second)
	if !ok {
		t.Fatalf("the server was still running %s after SIGTERM, a plugin call asleep", took)
	}
	t.Logf("server with a sleeping plugin call stopped in %s", took)
}

// TestStuckMetadataDoesNotHoldShutdown: plugins added to the watched
// plugins config whose metadata sleeps for an hour or waits on an HTTP
// server that never answers neither hold each other up nor keep the server
// from ending on SIGTERM within 10 s.
func TestStuckMetadataDoesNotHoldShutdown(t *testing.T) {
	wasm := filepath.Join(t.TempDir(), "stuck.wasm")
	buildPlugin(t, "../host/testdata/stuck", wasm)
	asked := make(chan struct{}, 1)
	done := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case asked <- struct{}{}:
		default:
		}
		select { // never answers while the test runs
		case <-done:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(done); ts.Close() })

	config := filepath.Join(t.TempDir(), "plugins.yaml")
	if err := os.WriteFile(config, []byte("plugins: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db", "--plugins-config", config)
	stuck := fmt.Sprintf(`plugins:
  - name: asleep
    path: %[1]s
    kind: custom
    config: {stuck: sleep, ms: "3600000"}
    grants: {timeout: 1h}
  - name: waiting
    path: %[1]s
    kind: custom
    config: {stuck: http, url: %[2]q}
    grants: {timeout: 1h, allowed_hosts: [127.0.0.1]}
`, wasm, ts.URL+"/never")
	if err := os.WriteFile(config, []byte(stuck), 0o644); err != nil {
		t.Fatal(err)
	}
	// The second plugin's metadata asks its server while the first one
	// sleeps in its own: the loads run side by side.
	select {
	case <-asked:
	case <-time.After(60 * time.Second):
		t.Error("the plugin waiting on HTTP never got to its metadata: the sleeping one held it up")
	}
	took, ok := stopWithin(c.server, 10*time.Second)
	if !ok {
		t.Fatalf("the server was still running %s after SIGTERM, plugins stuck in metadata", took)
	}
	t.Logf("server with plugins stuck in metadata stopped in %s", took)
}
