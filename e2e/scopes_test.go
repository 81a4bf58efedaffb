package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/client"
	"github.com/go-arcade/arcade/server/auth"
)

// TestScopedAPITokens: tokens from server.yaml (one plain, one given only
// by its sha256) can do what their scope allows and no more.
func TestScopedAPITokens(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "server.yaml")
	yaml := fmt.Sprintf("api_tokens:\n  - {token: reader-token, scope: read}\n  - {sha256: %s, scope: write}\n", auth.Hash("writer-token"))
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db", "--config", cfg)
	ctx := context.Background()
	as := func(token string) (jobv1.JobServiceClient, agentv1.AgentServiceClient) {
		conn, err := client.Dial(c.addr, client.Static(token))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return jobv1.NewJobServiceClient(conn), agentv1.NewAgentServiceClient(conn)
	}
	readJobs, _ := as("reader-token")
	writeJobs, writeAgents := as("writer-token")
	if _, err := readJobs.ListJobs(ctx, &jobv1.ListJobsRequest{}); err != nil {
		t.Errorf("read token listing: %v", err)
	}
	if _, err := readJobs.CreateJob(ctx, &jobv1.CreateJobRequest{Commands: []string{"true"}}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("read token creating: %v, want PermissionDenied", err)
	}
	if _, err := writeJobs.CreateJob(ctx, &jobv1.CreateJobRequest{Commands: []string{"true"}}); err != nil {
		t.Errorf("write token creating: %v", err)
	}
	if _, err := writeAgents.RevokeAgent(ctx, &agentv1.RevokeAgentRequest{AgentId: "x"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("write token revoking: %v, want PermissionDenied", err)
	}
	// The environment's API token is the admin token.
	if _, err := c.agentsC.RevokeAgent(ctx, &agentv1.RevokeAgentRequest{AgentId: "x"}); status.Code(err) != codes.NotFound {
		t.Errorf("admin token revoking an unknown agent: %v, want NotFound", err)
	}
}

// TestRateLimitPerClient: past its burst an API client gets
// ResourceExhausted, while another client and the agents are not affected.
func TestRateLimitPerClient(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "server.yaml")
	if err := os.WriteFile(cfg, []byte("api_tokens:\n  - {token: second-client, scope: read}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db", "--config", cfg, "--rate-limit", "2", "--rate-burst", "5")
	ctx := context.Background()
	limited := 0
	for range 20 {
		if _, err := c.jobs.ListJobs(ctx, &jobv1.ListJobsRequest{}); status.Code(err) == codes.ResourceExhausted {
			limited++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if limited < 10 {
		t.Errorf("%d of 20 rapid calls limited, want most past the burst of 5", limited)
	}
	conn, err := client.Dial(c.addr, client.Static("second-client"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	second := agentv1.NewAgentServiceClient(conn)
	if _, err := jobv1.NewJobServiceClient(conn).ListJobs(ctx, &jobv1.ListJobsRequest{}); err != nil {
		t.Errorf("a second client is held by the first one's limit: %v", err)
	}
	// An agent (registration, heartbeats, channel) is not limited.
	start(t, "agent", "agent", "--server", c.addr, "--name", "unlimited", "--work-dir", t.TempDir(), "--config", os.DevNull)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := second.ListAgents(ctx, &agentv1.ListAgentsRequest{})
		if err == nil && len(resp.GetAgents()) == 1 && resp.GetAgents()[0].GetStatus() != agentv1.AgentStatus_AGENT_STATUS_OFFLINE {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not come up: %v %v", resp, err)
		}
		time.Sleep(600 * time.Millisecond) // within the second client's rate
	}
}
