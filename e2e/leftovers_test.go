package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
)

// procRunning reports whether pid is a live process (not a zombie).
func procRunning(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z'
}

// TestKilledAgentLeavesNothing: an agent killed with SIGKILL while its job
// runs leaves the job's processes running (a background child, a
// double-forked child, a setsid child) and its workspace; started again on
// the same folder, it ends them all and removes the workspace.
func TestKilledAgentLeavesNothing(t *testing.T) {
	c := newCluster(t, "sqlite://"+filepath.Join(t.TempDir(), "arcade.db"))
	work := t.TempDir()
	sweepAfter(t, work)
	args := []string{"agent", "--server", c.addr, "--name", "doomed", "--work-dir", work, "--config", os.DevNull}
	agent := start(t, "agent-doomed", args...)
	c.waitFor("agent doomed registered", func() bool {
		a := c.agent("doomed")
		return a != nil && a.GetStatus() != agentv1.AgentStatus_AGENT_STATUS_OFFLINE
	})
	pids := t.TempDir()
	j := c.create(&jobv1.CreateJobRequest{Name: "long", Env: map[string]string{"PIDS": pids}, Commands: []string{
		`sleep 300 & echo $! > "$PIDS/background"`,
		`sh -c 'sleep 301 & echo $! > "$PIDS/double-fork"' &`,
		`setsid sh -c 'echo $$ > "$PIDS/setsid"; exec sleep 302' &`,
		`echo $$ > "$PIDS/shell"; echo workspace > in-workspace.txt`,
		"sleep 303",
	}})
	left := map[string]int{}
	c.waitFor("the job's processes to start", func() bool {
		for _, name := range []string{"background", "double-fork", "setsid", "shell"} {
			b, err := os.ReadFile(filepath.Join(pids, name))
			pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil || perr != nil {
				return false
			}
			left[name] = pid
		}
		return true
	})
	t.Cleanup(func() { _ = syscall.Kill(-left["shell"], syscall.SIGKILL) }) // the job's own group, if left
	for name, pid := range left {
		t.Cleanup(func() {
			if procRunning(pid) {
				t.Errorf("the %s process (pid %d) was left running", name, pid)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		})
	}
	workspaces, _ := filepath.Glob(filepath.Join(work, "jobs", j.GetId()+"-*"))
	if len(workspaces) != 1 {
		t.Fatalf("workspaces %v", workspaces)
	}

	// kill -9 of the agent alone: nothing of it runs to clean up.
	if err := agent.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-agent.done
	time.Sleep(200 * time.Millisecond)
	for name, pid := range left {
		if !procRunning(pid) {
			t.Logf("the %s process (pid %d) ended with the agent", name, pid)
		}
	}
	if _, err := os.Stat(workspaces[0]); err != nil {
		t.Fatalf("the workspace went with the agent: %v", err)
	}

	// The same agent, started again on the same folders.
	again := start(t, "agent-doomed-again", args...)
	c.waitFor("the leftovers to be ended", func() bool {
		for _, pid := range left {
			if procRunning(pid) {
				return false
			}
		}
		_, err := os.Stat(workspaces[0])
		return os.IsNotExist(err)
	})
	if recs := again.grepLog("ended what an earlier run of this agent left"); len(recs) != 1 {
		t.Errorf("the restarted agent logged %d sweeps, want 1", len(recs))
	}
	// The job itself is the server's to settle: its lease runs out and it
	// is retried or failed; it never finishes on the killed agent.
	if got := c.get(j.GetId()); got.GetStatus() == agentv1.JobStatus_JOB_STATUS_SUCCESS {
		t.Errorf("job %s succeeded", j.GetId())
	}
}

// TestStoppedAgentLeavesNothing: an agent stopped (SIGTERM) while its job
// runs ends the job and everything it started, a setsid child included,
// before it exits.
func TestStoppedAgentLeavesNothing(t *testing.T) {
	c := newCluster(t, "sqlite://"+filepath.Join(t.TempDir(), "arcade.db"))
	agent := c.startAgent("stopping", 1)
	pids := t.TempDir()
	j := c.create(&jobv1.CreateJobRequest{Name: "long", Env: map[string]string{"PIDS": pids}, Commands: []string{
		`setsid sh -c 'echo $$ > "$PIDS/setsid"; exec sleep 304' &`,
		`sh -c 'sleep 305 & echo $! > "$PIDS/double-fork"' &`,
		"sleep 306",
	}})
	left := map[string]int{}
	c.waitFor("the job's processes to start", func() bool {
		for _, name := range []string{"setsid", "double-fork"} {
			b, err := os.ReadFile(filepath.Join(pids, name))
			pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil || perr != nil {
				return false
			}
			left[name] = pid
		}
		return true
	})
	for _, pid := range left {
		t.Cleanup(func() {
			if procRunning(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		})
	}
	if err := agent.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-agent.done
	for name, pid := range left {
		if procRunning(pid) {
			t.Errorf("the %s process (pid %d) outlived the agent", name, pid)
		}
	}
	if got := c.get(j.GetId()); got.GetStatus() == agentv1.JobStatus_JOB_STATUS_SUCCESS {
		t.Errorf("job %s succeeded", j.GetId())
	}
}
