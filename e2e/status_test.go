package e2e

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
)

// TestStatusStreams: each status stream sends the current state first, then
// every change; the CLI's logs -f and watch follow along.
func TestStatusStreams(t *testing.T) {
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	streams := jobv1.NewStreamServiceClient(c.conn)

	// A job nobody can run yet: the stream starts at PENDING.
	j := c.create(&jobv1.CreateJobRequest{Name: "watched", Commands: []string{"sleep 0.3", "echo done"}})
	js, err := streams.StreamJobStatus(ctx, &jobv1.StreamJobStatusRequest{JobId: j.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	first, err := js.Recv()
	if err != nil || first.GetJob().GetStatus() != pending {
		t.Fatalf("first job status: %v, %v; want PENDING", first.GetJob().GetStatus(), err)
	}
	as, err := streams.StreamAgentStatus(ctx, &jobv1.StreamAgentStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	c.startAgent("watcher", 1)
	var seen []agentv1.JobStatus
	for {
		resp, err := js.Recv()
		if err != nil {
			break // the stream ends with the job
		}
		seen = append(seen, resp.GetJob().GetStatus())
	}
	if len(seen) < 2 || seen[len(seen)-1] != success || !slices.Contains(seen, running) {
		t.Errorf("job status stream after PENDING: %v, want RUNNING … SUCCESS", seen)
	}
	// The agent stream saw the agent arrive and get busy.
	var agentStates []agentv1.AgentStatus
	for len(agentStates) < 10 {
		resp, err := as.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetAgent().GetName() != "watcher" {
			continue
		}
		agentStates = append(agentStates, resp.GetAgent().GetStatus())
		if slices.Contains(agentStates, agentv1.AgentStatus_AGENT_STATUS_BUSY) && agentStates[len(agentStates)-1] == agentv1.AgentStatus_AGENT_STATUS_IDLE {
			break
		}
	}
	if !slices.Contains(agentStates, agentv1.AgentStatus_AGENT_STATUS_BUSY) {
		t.Errorf("agent stream: %v, want it BUSY while the job ran", agentStates)
	}

	// A pipeline run, streamed to its end, and the same run through arcade watch.
	if _, err := c.jobs.CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Yaml: `
name: tiny
stages:
  - name: one
    jobs:
      - name: a
        commands: ["echo a"]
  - name: two
    jobs:
      - name: b
        commands: ["echo b"]
`}); err != nil {
		t.Fatal(err)
	}
	pl, err := c.jobs.ListPipelines(ctx, &jobv1.ListPipelinesRequest{})
	if err != nil || len(pl.GetPipelines()) != 1 {
		t.Fatalf("pipelines: %v %v", pl, err)
	}
	tr, err := c.jobs.TriggerPipeline(ctx, &jobv1.TriggerPipelineRequest{PipelineId: pl.GetPipelines()[0].GetId()})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := streams.StreamPipelineStatus(ctx, &jobv1.StreamPipelineStatusRequest{RunId: tr.GetRun().GetId()})
	if err != nil {
		t.Fatal(err)
	}
	var runStates []agentv1.JobStatus
	for {
		resp, err := ps.Recv()
		if err != nil {
			break
		}
		runStates = append(runStates, resp.GetRun().GetStatus())
	}
	if len(runStates) < 2 || runStates[len(runStates)-1] != success {
		t.Errorf("run stream: %v, want … SUCCESS", runStates)
	}
	cli := func(args ...string) string {
		cmd := exec.CommandContext(ctx, arcadeBin, args...)
		cmd.Env = append(os.Environ(), "ARCADE_SERVER="+c.addr, "ARCADE_API_TOKEN="+apiToken)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("arcade %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := cli("watch", tr.GetRun().GetId()); !strings.Contains(out, "SUCCESS") || !strings.Contains(out, "b") {
		t.Errorf("arcade watch:\n%s", out)
	}
	if out := cli("logs", "-f", j.GetId()); !strings.Contains(out, "done") || !strings.Contains(out, "SUCCESS") {
		t.Errorf("arcade logs -f:\n%s", out)
	}
}
