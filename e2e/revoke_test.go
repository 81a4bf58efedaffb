package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
)

// TestRevokeAgent: a revoked agent is refused at once, its channel closed
// and its job requeued; it stops instead of registering again, and a new
// process under its name is refused too.
func TestRevokeAgent(t *testing.T) {
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db")
	bad := c.startAgent("compromised", 1, "pool=x")
	j := c.create(&jobv1.CreateJobRequest{Name: "long", Commands: []string{`test "$ARCADE_JOB_ATTEMPT" = 2 || sleep 60`},
		Selector: "pool", Retries: 1})
	c.waitStatus(j.GetId(), running)
	id := c.agent("compromised").GetId()

	cmd := exec.Command(arcadeBin, "agent", "revoke", id, "--reason", "key leaked")
	cmd.Env = append(os.Environ(), "ARCADE_SERVER="+c.addr, "ARCADE_API_TOKEN="+apiToken)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "revoked") {
		t.Fatalf("arcade agent revoke: %v\n%s", err, out)
	}
	select {
	case <-bad.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the revoked agent is still running")
	}
	if len(bad.grepLog("the server refuses this agent; stopping")) == 0 {
		t.Error("the revoked agent did not say why it stopped")
	}
	// The job went back to the queue and runs elsewhere.
	c.startAgent("clean", 1, "pool=y")
	if got := c.waitStatus(j.GetId(), success, failed); got.GetStatus() != success || got.GetAgentName() != "clean" || got.GetAttempt() != 2 {
		t.Errorf("requeued job: %v on %s attempt %d", got.GetStatus(), got.GetAgentName(), got.GetAttempt())
	}
	a, err := c.agentsC.GetAgent(context.Background(), &agentv1.GetAgentRequest{AgentId: id})
	if err != nil || !a.GetAgent().GetRevoked() || a.GetAgent().GetStatus() != agentv1.AgentStatus_AGENT_STATUS_OFFLINE {
		t.Errorf("revoked agent: %v, %v", a.GetAgent(), err)
	}
	// A new process under the revoked name is refused.
	again := exec.Command(arcadeBin, "agent", "--server", c.addr, "--name", "compromised", "--work-dir", t.TempDir(), "--config", os.DevNull)
	again.Env = append(os.Environ(), "ARCADE_AGENT_TOKEN="+agentToken)
	if out, err := again.CombinedOutput(); err == nil || !strings.Contains(string(out), "revoked") {
		t.Errorf("re-registering a revoked agent: %v\n%s", err, out)
	}
}
