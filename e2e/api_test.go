package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/client"
)

func expr(key string, op agentv1.LabelOperator, values ...string) *agentv1.LabelSelector {
	return &agentv1.LabelSelector{MatchExpressions: []*agentv1.LabelSelectorRequirement{{Key: key, Operator: op, Values: values}}}
}

func TestBadInputAndAuth(t *testing.T) {
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db")
	ctx := context.Background()
	cmd := []string{"true"}
	invalid := []struct {
		name  string
		call  func() error
		field string
	}{
		{"GT with a non-integer", func() error {
			_, err := c.jobs.CreateJob(ctx, &jobv1.CreateJobRequest{Commands: cmd, LabelSelector: expr("cpu-cores", agentv1.LabelOperator_LABEL_OPERATOR_GT, "many")})
			return err
		}, "label_selector.match_expressions[0].values"},
		{"IN with no values", func() error {
			_, err := c.jobs.CreateJob(ctx, &jobv1.CreateJobRequest{Commands: cmd, LabelSelector: expr("env", agentv1.LabelOperator_LABEL_OPERATOR_IN)})
			return err
		}, "label_selector.match_expressions[0].values"},
		{"a bad label key", func() error {
			_, err := c.jobs.CreateJob(ctx, &jobv1.CreateJobRequest{Commands: cmd, LabelSelector: &agentv1.LabelSelector{MatchLabels: map[string]string{"Bad Key": "x"}}})
			return err
		}, `label_selector.match_labels["Bad Key"]`},
		{"a bad selector text", func() error {
			_, err := c.jobs.CreateJob(ctx, &jobv1.CreateJobRequest{Commands: cmd, Selector: "env in (a,"})
			return err
		}, "selector"},
		{"empty commands", func() error {
			_, err := c.jobs.CreateJob(ctx, &jobv1.CreateJobRequest{Name: "nothing"})
			return err
		}, "commands"},
		{"negative timeout", func() error {
			_, err := c.jobs.CreateJob(ctx, &jobv1.CreateJobRequest{Commands: cmd, Timeout: durationpb.New(-time.Second)})
			return err
		}, "timeout"},
		{"page_size < 0", func() error {
			_, err := c.jobs.ListJobs(ctx, &jobv1.ListJobsRequest{PageSize: -1})
			return err
		}, "page_size"},
		{"a forged page token", func() error {
			_, err := c.jobs.ListJobs(ctx, &jobv1.ListJobsRequest{PageToken: "garbage"})
			return err
		}, "page_token"},
		{"an unknown sort field", func() error {
			_, err := c.jobs.ListJobs(ctx, &jobv1.ListJobsRequest{OrderBy: "color"})
			return err
		}, "order_by"},
		{"agents: page_size < 0", func() error {
			_, err := c.agentsC.ListAgents(ctx, &agentv1.ListAgentsRequest{PageSize: -5})
			return err
		}, "page_size"},
	}
	for _, tc := range invalid {
		err := tc.call()
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tc.field) {
			t.Errorf("%s: %v; want InvalidArgument naming %s", tc.name, err, tc.field)
		}
	}
	// Nothing was stored by the refused calls.
	if resp, err := c.jobs.ListJobs(ctx, &jobv1.ListJobsRequest{}); err != nil || resp.GetTotalSize() != 0 {
		t.Errorf("after refused creates: %d jobs, %v", resp.GetTotalSize(), err)
	}

	notFound := map[string]func() error{
		"GetJob": func() error { _, err := c.jobs.GetJob(ctx, &jobv1.GetJobRequest{JobId: "no-such-job"}); return err },
		"CancelJob": func() error {
			_, err := c.jobs.CancelJob(ctx, &jobv1.CancelJobRequest{JobId: "no-such-job"})
			return err
		},
		"RetryJob": func() error { _, err := c.jobs.RetryJob(ctx, &jobv1.RetryJobRequest{JobId: "no-such-job"}); return err },
		"DeleteJob": func() error {
			_, err := c.jobs.DeleteJob(ctx, &jobv1.DeleteJobRequest{JobId: "no-such-job"})
			return err
		},
		"GetJobLog": func() error {
			_, err := c.jobs.GetJobLog(ctx, &jobv1.GetJobLogRequest{JobId: "no-such-job"})
			return err
		},
		"GetAgent": func() error {
			_, err := c.agentsC.GetAgent(ctx, &agentv1.GetAgentRequest{AgentId: "no-such-agent"})
			return err
		},
	}
	for name, call := range notFound {
		if err := call(); status.Code(err) != codes.NotFound {
			t.Errorf("%s of an unknown id: %v, want NotFound", name, err)
		}
	}

	// Tokens: none, wrong, and the agent token on the API.
	for name, token := range map[string]string{"no token": "", "wrong token": "nope", "agent token": agentToken} {
		conn, err := client.Dial(c.addr, client.Static(token))
		if err != nil {
			t.Fatal(err)
		}
		_, err = jobv1.NewJobServiceClient(conn).ListJobs(ctx, &jobv1.ListJobsRequest{})
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("ListJobs with %s: %v, want Unauthenticated", name, err)
		}
		_, err = agentv1.NewAgentServiceClient(conn).Register(ctx, &agentv1.RegisterRequest{Name: "intruder"})
		if token != agentToken && status.Code(err) != codes.Unauthenticated {
			t.Errorf("Register with %s: %v, want Unauthenticated", name, err)
		}
		// Health answers without a token, as probes expect.
		if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Errorf("health with %s: %v", name, err)
		}
		conn.Close()
	}
	// Server reflection lists the services, without a token, for grpcurl.
	rconn, _ := client.Dial(c.addr, client.Static(""))
	defer rconn.Close()
	rs, err := reflectionpb.NewServerReflectionClient(rconn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	rresp, err := rs.Recv()
	if err != nil {
		t.Fatalf("reflection: %v", err)
	}
	var services []string
	for _, s := range rresp.GetListServicesResponse().GetService() {
		services = append(services, s.GetName())
	}
	for _, want := range []string{"arcade.agent.v1.AgentService", "arcade.job.v1.JobService", "arcade.plugin.v1.PluginService", "grpc.health.v1.Health"} {
		if !slices.Contains(services, want) {
			t.Errorf("reflection lists %v, missing %s", services, want)
		}
	}
	rs.CloseSend()

	// The registration token does not work as an agent token.
	conn, _ := client.Dial(c.addr, client.Static(agentToken))
	defer conn.Close()
	if _, err := agentv1.NewAgentServiceClient(conn).FetchJob(ctx, &agentv1.FetchJobRequest{AgentId: "x"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("FetchJob with the registration token: %v, want Unauthenticated", err)
	}
}

func TestListJobsPagesAndFilters(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		c := newCluster(t, dsn)
		ctx := context.Background()
		const total = 250
		created := make([]string, 0, total)
		teamA, cancelledN := 0, 0
		for i := range total {
			team := "b"
			if i%3 == 0 {
				team = "a"
				teamA++
			}
			// No agent runs here: every job stays pending unless cancelled.
			j := c.create(&jobv1.CreateJobRequest{Name: fmt.Sprintf("job-%03d", i), Commands: []string{"true"},
				Labels: map[string]string{"team": team, "index": fmt.Sprint(i)}})
			created = append(created, j.GetId())
			if i%7 == 0 {
				if _, err := c.jobs.CancelJob(ctx, &jobv1.CancelJobRequest{JobId: j.GetId()}); err != nil {
					t.Fatal(err)
				}
				cancelledN++
			}
		}
		// Every job once, newest first, over pages of 40.
		seen := map[string]bool{}
		var order []string
		req := &jobv1.ListJobsRequest{PageSize: 40}
		pages := 0
		for {
			resp, err := c.jobs.ListJobs(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			if resp.GetTotalSize() != total {
				t.Fatalf("total_size %d, want %d", resp.GetTotalSize(), total)
			}
			for _, j := range resp.GetJobs() {
				if seen[j.GetId()] {
					t.Fatalf("job %s listed twice", j.GetId())
				}
				seen[j.GetId()] = true
				order = append(order, j.GetId())
			}
			if resp.GetNextPageToken() == "" {
				break
			}
			req.PageToken = resp.GetNextPageToken()
		}
		if len(order) != total || pages != 7 {
			t.Fatalf("listed %d jobs in %d pages, want %d in 7", len(order), pages, total)
		}
		for i, id := range order {
			if id != created[total-1-i] {
				t.Fatalf("position %d: %s, want %s (newest first)", i, id, created[total-1-i])
			}
		}
		// Sort by name ascending.
		resp, err := c.jobs.ListJobs(ctx, &jobv1.ListJobsRequest{PageSize: 3, OrderBy: "name"})
		if err != nil || resp.GetJobs()[0].GetName() != "job-000" || resp.GetJobs()[2].GetName() != "job-002" {
			t.Errorf("order_by name: %v %v", resp.GetJobs(), err)
		}

		count := func(req *jobv1.ListJobsRequest, check func(*jobv1.JobDetail) bool) int {
			n := 0
			req.PageSize = 25
			for {
				resp, err := c.jobs.ListJobs(ctx, req)
				if err != nil {
					t.Fatal(err)
				}
				for _, j := range resp.GetJobs() {
					if !check(j) {
						t.Fatalf("filter let through %s (%v, %v)", j.GetName(), j.GetStatus(), j.GetLabels())
					}
					n++
				}
				if resp.GetNextPageToken() == "" {
					if int(resp.GetTotalSize()) != n {
						t.Errorf("total_size %d, listed %d", resp.GetTotalSize(), n)
					}
					return n
				}
				req.PageToken = resp.GetNextPageToken()
			}
		}
		if n := count(&jobv1.ListJobsRequest{Statuses: []agentv1.JobStatus{cancelled}},
			func(j *jobv1.JobDetail) bool { return j.GetStatus() == cancelled }); n != cancelledN {
			t.Errorf("status filter: %d cancelled, want %d", n, cancelledN)
		}
		if n := count(&jobv1.ListJobsRequest{LabelSelector: "team=a"},
			func(j *jobv1.JobDetail) bool { return j.GetLabels()["team"] == "a" }); n != teamA {
			t.Errorf("label filter: %d in team a, want %d", n, teamA)
		}
		both := 0
		for i := range total {
			if i%3 == 0 && i%7 == 0 {
				both++
			}
		}
		if n := count(&jobv1.ListJobsRequest{LabelSelector: "team in (a),index>-1", Statuses: []agentv1.JobStatus{cancelled}},
			func(j *jobv1.JobDetail) bool { return j.GetLabels()["team"] == "a" && j.GetStatus() == cancelled }); n != both {
			t.Errorf("label and status filter: %d, want %d", n, both)
		}
	})
}

func TestServerRestartKeepsJobsAndLogs(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		c := newCluster(t, dsn)
		c.startAgent("survivor", 1)
		done := c.create(&jobv1.CreateJobRequest{Name: "before", Commands: []string{"seq 1 500"}})
		c.waitStatus(done.GetId(), success)
		before := c.logOf(done.GetId(), 0)
		waiting := c.create(&jobv1.CreateJobRequest{Name: "waits for a gpu", Commands: []string{"echo gpu"}, Selector: "gpu"})

		c.server.stop(9) // SIGKILL: no chance to tidy up
		c.startServer()

		j := c.get(done.GetId())
		if j.GetStatus() != success || j.GetName() != "before" {
			t.Errorf("after restart: %v %q", j.GetStatus(), j.GetName())
		}
		after := c.logOf(done.GetId(), 0)
		if len(after) != len(before) || len(after) < 500 {
			t.Fatalf("log after restart: %d lines, before %d", len(after), len(before))
		}
		for i := range after {
			if after[i].GetContent() != before[i].GetContent() || after[i].GetLineNumber() != before[i].GetLineNumber() {
				t.Fatalf("line %d changed: %v → %v", i+1, before[i], after[i])
			}
		}
		if w := c.get(waiting.GetId()); w.GetStatus() != pending {
			t.Errorf("waiting job after restart: %v", w.GetStatus())
		}
		// The agent found the new server by itself and still works.
		again := c.create(&jobv1.CreateJobRequest{Name: "after", Commands: []string{"echo after"}})
		if j := c.waitStatus(again.GetId(), success, failed); j.GetAgentName() != "survivor" || j.GetStatus() != success {
			t.Errorf("job after restart: %v on %q", j.GetStatus(), j.GetAgentName())
		}
	})
}

// TestManyLabelsWarn: an agent over the recommended 20 labels is accepted
// with a warning in the server log.
func TestManyLabelsWarn(t *testing.T) {
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db")
	var labels []string
	for i := range 21 {
		labels = append(labels, fmt.Sprintf("extra-%d=yes", i))
	}
	c.startAgent("labelled", 1, labels...)
	c.waitFor("the warning", func() bool { return len(c.server.grepLog("agent has more labels than recommended")) > 0 })
}
