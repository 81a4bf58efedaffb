package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
)

// TestJobWhy: `arcade job why` names the selector terms an agent fails
// with the agent's values, shows a matching agent that is full, and the
// job's place in the queue; a read token may ask.
func TestJobWhy(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "server.yaml")
	if err := os.WriteFile(cfg, []byte("api_tokens:\n  - {token: reader-token, scope: read}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, "sqlite://"+filepath.Join(t.TempDir(), "arcade.db"), "--config", cfg)
	c.startAgent("dev-box", 1, "env=dev", "cores=4")
	ctx := context.Background()
	why := func(token, job string) string {
		t.Helper()
		cmd := exec.Command(arcadeBin, "job", "why", job)
		cmd.Env = append(os.Environ(), "ARCADE_SERVER="+c.addr, "ARCADE_API_TOKEN="+token)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("arcade job why %s: %v\n%s", job, err, out)
		}
		return string(out)
	}

	// No agent matches: each failing term with the agent's value.
	stuck := c.create(&jobv1.CreateJobRequest{Name: "needs-prod", Commands: []string{"true"}, Selector: "env in (prod),cores>8,gpu"})
	out := why("reader-token", stuck.GetId())
	t.Logf("arcade job why %s:\n%s", stuck.GetId(), out)
	for _, want := range []string{"no online agent matches", "env in (prod): agent has env=dev", "cores>8: agent has cores=4",
		"gpu (exists): label missing", "dev-box", "Queue: 1 of 1 pending"} {
		if !strings.Contains(out, want) {
			t.Errorf("arcade job why lacks %q:\n%s", want, out)
		}
	}

	// A matching agent busy with another job is full.
	busy := c.create(&jobv1.CreateJobRequest{Name: "busy", Commands: []string{"sleep 60"}, Selector: "env=dev"})
	c.waitStatus(busy.GetId(), running)
	waiting := c.create(&jobv1.CreateJobRequest{Name: "waits", Commands: []string{"true"}, Selector: "env=dev"})
	out = why(apiToken, waiting.GetId())
	t.Logf("arcade job why %s:\n%s", waiting.GetId(), out)
	for _, want := range []string{"1 agent matches but is full", "full", "running 1 of 1 jobs", "Queue: 2 of 2 pending"} {
		if !strings.Contains(out, want) {
			t.Errorf("arcade job why for a full agent lacks %q:\n%s", want, out)
		}
	}
	resp, err := c.jobs.ExplainJob(ctx, &jobv1.ExplainJobRequest{JobId: waiting.GetId()})
	if err != nil || len(resp.GetAgents()) != 1 || !resp.GetAgents()[0].GetMatches() || !resp.GetAgents()[0].GetFull() ||
		resp.GetQueuePosition() != 2 || resp.GetQueueLength() != 2 {
		t.Errorf("ExplainJob: %v %v", resp, err)
	}

	// A job that does not wait says what it is doing; an unknown one is
	// NotFound.
	if out := why(apiToken, busy.GetId()); !strings.Contains(out, "not waiting: the job is RUNNING on agent dev-box") {
		t.Errorf("arcade job why for a running job:\n%s", out)
	}
	if _, err := c.jobs.ExplainJob(ctx, &jobv1.ExplainJobRequest{JobId: "no-such-job"}); status.Code(err) != codes.NotFound {
		t.Errorf("ExplainJob of an unknown job: %v, want NotFound", err)
	}
	if _, err := c.jobs.CancelJob(ctx, &jobv1.CancelJobRequest{JobId: busy.GetId()}); err != nil {
		t.Fatal(err)
	}
	c.waitStatus(waiting.GetId(), success)
}
