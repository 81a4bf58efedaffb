package e2e

import (
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
