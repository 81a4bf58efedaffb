package e2e

import (
	"context"
	"strings"
	"testing"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/client"
)

// TestLostAssignmentRunsAsTheSameAttempt: a job handed to an agent that
// never starts it (the assignment went down with a server replica, say)
// returns to the queue when its lease ends and runs elsewhere as the same
// attempt; it is not "agent lost", which would fail it without retries.
func TestLostAssignmentRunsAsTheSameAttempt(t *testing.T) {
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db", "--lease-ttl", "2s")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// A client in an agent's place takes the job and goes away without
	// saying it started it.
	reg, err := client.Dial(c.addr, client.Static(agentToken))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	r, err := agentv1.NewAgentServiceClient(reg).Register(ctx, &agentv1.RegisterRequest{
		Name: "vanishing", Labels: map[string]string{"pool": "x"}, MaxConcurrentJobs: 1})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := client.Dial(c.addr, client.Static(r.GetAgentToken()))
	if err != nil {
		t.Fatal(err)
	}
	stream, err := jobv1.NewStreamServiceClient(conn).AgentChannel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*jobv1.AgentChannelRequest{
		{Payload: &jobv1.AgentChannelRequest_Hello{Hello: &jobv1.ChannelHello{AgentId: r.GetAgentId()}}},
		{Payload: &jobv1.AgentChannelRequest_JobRequest{JobRequest: &jobv1.JobRequest{MaxJobs: 1}}},
	} {
		if err := stream.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	j := c.create(&jobv1.CreateJobRequest{Name: "once", Commands: []string{"echo ran once"}, Selector: "pool=x"})
	for {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if a := resp.GetJobAssignment(); a != nil {
			if a.GetJob().GetId() != j.GetId() {
				t.Fatalf("assigned %s, want %s", a.GetJob().GetId(), j.GetId())
			}
			break
		}
	}
	conn.Close()

	c.waitStatus(j.GetId(), pending)
	c.startAgent("steady", 1, "pool=x")
	done := c.waitStatus(j.GetId(), success, failed)
	if done.GetStatus() != success || done.GetAttempt() != 1 || done.GetAgentName() != "steady" {
		t.Fatalf("job %v attempt %d on %q (%s), want SUCCESS as attempt 1 on steady", done.GetStatus(), done.GetAttempt(), done.GetAgentName(), done.GetMessage())
	}
	var log []string
	for _, l := range c.logOf(j.GetId(), 1) {
		log = append(log, l.GetContent())
	}
	if !strings.Contains(strings.Join(log, "\n"), "ran once") {
		t.Errorf("log of attempt 1:\n%s", strings.Join(log, "\n"))
	}
}
