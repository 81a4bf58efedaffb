package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/client"
)

// rawCodec sends and receives wire bytes as they are, to say what no Go
// client would (a string that is not UTF-8).
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}
func (rawCodec) Name() string { return "proto" }

func manyLabels(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("k%d", i)] = "v"
	}
	return m
}

// TestRequestBounds sends requests over every kind of bound, and text with
// NUL or invalid UTF-8, over real gRPC (and HTTP): each is refused with
// InvalidArgument naming the field and the limit, nothing is stored, and
// the job listing keeps working for everyone.
func TestRequestBounds(t *testing.T) {
	httpAddr := freeAddr(t)
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db", "--http-listen", httpAddr)
	ctx := context.Background()
	c.create(&jobv1.CreateJobRequest{Name: "fine", Commands: []string{"true"}, Selector: "none=here"})
	exprs := make([]*agentv1.LabelSelectorRequirement, 100_000)
	for i := range exprs {
		exprs[i] = &agentv1.LabelSelectorRequirement{Key: "k", Operator: agentv1.LabelOperator_LABEL_OPERATOR_EXISTS}
	}
	commands := make([]string, 100_000)
	for i := range commands {
		commands[i] = "true"
	}
	registrar, err := client.Dial(c.addr, client.Static(agentToken))
	if err != nil {
		t.Fatal(err)
	}
	defer registrar.Close()
	agent, err := agentv1.NewAgentServiceClient(registrar).Register(ctx, &agentv1.RegisterRequest{Name: "small", Labels: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	agentConn, err := client.Dial(c.addr, client.Static(agent.GetAgentToken()))
	if err != nil {
		t.Fatal(err)
	}
	defer agentConn.Close()
	create := func(req *jobv1.CreateJobRequest) func() error {
		return func() error { _, err := c.jobs.CreateJob(ctx, req); return err }
	}
	cases := []struct {
		name, field, say string
		call             func() error
	}{
		{"a 10 MB name", "CreateJobRequest", "more than the limit of 1048576", create(&jobv1.CreateJobRequest{Name: strings.Repeat("n", 10<<20), Commands: []string{"true"}})},
		{"a 3 MB command", "CreateJobRequest", "more than the limit of 1048576", create(&jobv1.CreateJobRequest{Commands: []string{strings.Repeat("c", 3<<20)}})},
		{"100,000 commands", "commands", "100000 entries, more than the limit of 1000", create(&jobv1.CreateJobRequest{Commands: commands})},
		{"50,000 env", "env", "50000 entries, more than the limit of 1000", create(&jobv1.CreateJobRequest{Commands: []string{"true"}, Env: manyLabels(50_000)})},
		{"10,000 labels", "labels", "10000 entries, more than the limit of 100", create(&jobv1.CreateJobRequest{Commands: []string{"true"}, Labels: manyLabels(10_000)})},
		{"a 100,000-term selector", "label_selector.match_expressions", "100000 entries, more than the limit of 100",
			create(&jobv1.CreateJobRequest{Commands: []string{"true"}, LabelSelector: &agentv1.LabelSelector{MatchExpressions: exprs}})},
		{"NUL in the name", "name", "NUL", create(&jobv1.CreateJobRequest{Name: "nul\x00name2", Commands: []string{"true"}})},
		{"NUL in a command", "commands[0]", "NUL", create(&jobv1.CreateJobRequest{Commands: []string{"printf %s a\x00b"}})},
		{"NUL in env", `env["A"]`, "NUL", create(&jobv1.CreateJobRequest{Commands: []string{"true"}, Env: map[string]string{"A": "c\x00d"}})},
		{"NUL in a label", `labels["l"]`, "NUL", create(&jobv1.CreateJobRequest{Commands: []string{"true"}, Labels: map[string]string{"l": "\x00"}})},
		{"an agent registering 10,000 labels", "labels", "10000 entries", func() error {
			_, err := agentv1.NewAgentServiceClient(registrar).Register(ctx, &agentv1.RegisterRequest{Name: "big", Labels: manyLabels(10_000)})
			return err
		}},
		{"a heartbeat with 101 labels", "labels", "101 entries, more than the limit of 100", func() error {
			_, err := agentv1.NewAgentServiceClient(agentConn).Heartbeat(ctx, &agentv1.HeartbeatRequest{AgentId: agent.GetAgentId(), Labels: manyLabels(101)})
			return err
		}},
		{"labels updated with a 300-byte value", `labels["k"]`, "300 bytes, more than the limit of 256", func() error {
			_, err := c.agentsC.UpdateLabels(ctx, &agentv1.UpdateLabelsRequest{AgentId: agent.GetAgentId(), Labels: map[string]string{"k": strings.Repeat("v", 300)}})
			return err
		}},
		{"a channel heartbeat with 200 labels", "heartbeat.labels", "200 entries", func() error {
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			stream, err := jobv1.NewStreamServiceClient(agentConn).AgentChannel(cctx)
			if err != nil {
				return err
			}
			stream.Send(&jobv1.AgentChannelRequest{Payload: &jobv1.AgentChannelRequest_Heartbeat{Heartbeat: &agentv1.HeartbeatRequest{
				AgentId: agent.GetAgentId(), Labels: manyLabels(200)}}}) //nolint:errcheck // the answer is in Recv
			for {
				if _, err := stream.Recv(); err != nil {
					return err
				}
			}
		}},
		{"a pipeline stage over pipeline_limits.jobs", "pipeline.stages[0].jobs", "(pipeline_limits.jobs)", func() error {
			st := &jobv1.Stage{Name: "s"}
			for i := range 10_001 {
				st.Jobs = append(st.Jobs, &jobv1.PipelineJob{Name: fmt.Sprint(i), Commands: []string{"true"}})
			}
			_, err := c.jobs.CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Pipeline: &jobv1.PipelineDetail{Name: "p", Stages: []*jobv1.Stage{st}}})
			return err
		}},
		{"a command that is not UTF-8", "commands[0]", "UTF-8", func() error {
			var req []byte
			req = protowire.AppendTag(req, 2, protowire.BytesType)
			req = protowire.AppendBytes(req, []byte("echo \xff"))
			var resp []byte
			return c.conn.Invoke(ctx, "/arcade.job.v1.JobService/CreateJob", &req, &resp, grpc.ForceCodecV2(rawCodec{}))
		}},
	}
	for _, tc := range cases {
		err := tc.call()
		st := status.Convert(err)
		if st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), tc.field+": ") || !strings.Contains(st.Message(), tc.say) {
			t.Errorf("%s: got %s %.200s; want InvalidArgument on %s saying %q", tc.name, st.Code(), st.Message(), tc.field, tc.say)
		}
	}
	// The same NUL through the HTTP API.
	body := `{"name":"nul\u0000name2","commands":["printf %s a\u0000b"],"env":{"A":"c\u0000d"}}`
	req, _ := http.NewRequest(http.MethodPost, "http://"+httpAddr+"/v1/jobs", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "name: must not hold a NUL byte") {
		t.Errorf("HTTP with NUL: %d %.300s", resp.StatusCode, b)
	}
	// Nothing was stored, and listing works.
	list, err := c.jobs.ListJobs(ctx, &jobv1.ListJobsRequest{})
	if err != nil || list.GetTotalSize() != 1 || list.GetJobs()[0].GetName() != "fine" {
		t.Fatalf("after the refusals: %d jobs stored, %v", list.GetTotalSize(), err)
	}
	agents, err := c.agentsC.ListAgents(ctx, &agentv1.ListAgentsRequest{})
	if err != nil || len(agents.GetAgents()) != 1 || len(agents.GetAgents()[0].GetLabels()) != 1 {
		t.Fatalf("agents after the refusals: %v %v", agents, err)
	}
}

// TestPagesFitTheMessageLimit fills listings with items near their bounds:
// read by a client that accepts gRPC's default 4 MiB per message, every
// page fits, and paging reaches every item (jobs and log lines alike).
func TestPagesFitTheMessageLimit(t *testing.T) {
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db")
	ctx := context.Background()
	big := make([]string, 14) // 14 × 64 KiB: under the 1 MiB of a job
	for i := range big {
		big[i] = "echo " + strings.Repeat("x", 64<<10-5)
	}
	for range 10 {
		c.create(&jobv1.CreateJobRequest{Commands: big, Selector: "none=here"})
	}
	c.startAgent("printer", 1)
	printer := c.create(&jobv1.CreateJobRequest{Commands: []string{`for i in $(seq 100); do printf "%060000d\n" $i; done`}})
	c.waitStatus(printer.GetId(), agentv1.JobStatus_JOB_STATUS_SUCCESS)

	small, err := client.Dial(c.addr, client.Static(apiToken), grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(4<<20)))
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	jobs := jobv1.NewJobServiceClient(small)
	seen, pages, token := 0, 0, ""
	for {
		resp, err := jobs.ListJobs(ctx, &jobv1.ListJobsRequest{PageSize: 50, PageToken: token})
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		seen += len(resp.GetJobs())
		pages++
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if seen != 11 || pages < 3 {
		t.Errorf("listed %d jobs in %d pages; want 11 in several", seen, pages)
	}
	lines, next := 0, int64(1)
	for pages = 0; ; pages++ {
		resp, err := jobs.GetJobLog(ctx, &jobv1.GetJobLogRequest{JobId: printer.GetId(), FromLine: next})
		if err != nil {
			t.Fatalf("log page %d: %v", pages, err)
		}
		for _, l := range resp.GetLines() {
			if len(l.GetContent()) == 60000 {
				lines++
			}
		}
		next = resp.GetNextLine()
		if resp.GetComplete() {
			break
		}
		if len(resp.GetLines()) == 0 {
			t.Fatal("an empty log page that is not complete")
		}
	}
	if lines != 100 || pages < 1 {
		t.Errorf("read %d long log lines in %d pages; want 100 in several", lines, pages+1)
	}
}

// TestPipelineLimits sets pipeline_limits in server.yaml: a pipeline over
// one (jobs over all stages, depends_on entries, stages, the file's size),
// counted once its matrices are expanded, is refused with InvalidArgument
// naming the limit; one within is stored.
func TestPipelineLimits(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "server.yaml")
	if err := os.WriteFile(conf, []byte("pipeline_limits: {jobs: 5, stages: 3, edges: 2, yaml_bytes: 2048}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db", "--config", conf)
	ctx := context.Background()
	stage := func(name string, jobs ...string) string {
		var js []string
		for _, j := range jobs {
			js = append(js, fmt.Sprintf("{name: %s, commands: [true]}", j))
		}
		return fmt.Sprintf("  - {name: %s, jobs: [%s]}\n", name, strings.Join(js, ", "))
	}
	for _, tc := range []struct{ name, yaml, say string }{
		{"jobs", "name: p\nstages:\n" + stage("a", "a1", "a2", "a3") + stage("b", "b1", "b2", "b3"), "stages: 6 jobs, more than the limit of 5 (pipeline_limits.jobs)"},
		{"stages", "name: p\nstages:\n" + stage("a", "a1") + stage("b", "b1") + stage("c", "c1") + stage("d", "d1"), "stages: 4 stages, more than the limit of 3 (pipeline_limits.stages)"},
		{"edges", "name: p\nstages:\n  - {name: a, jobs: [{name: x, commands: [true]}, {name: y, commands: [true], depends_on: [x]}, {name: z, commands: [true], depends_on: [x, y]}]}\n",
			"stages: 3 depends_on entries, more than the limit of 2 (pipeline_limits.edges)"},
		{"bytes", "name: p\n# " + strings.Repeat("-", 2100) + "\nstages:\n" + stage("a", "a1"), "yaml: 2"},
		// The limits count the pipeline as it runs: matrices expanded.
		{"matrix", "name: p\nstages:\n  - {name: a, jobs: [{name: m, commands: [true], matrix: {n: ['1', '2', '3', '4', '5', '6']}}]}\n",
			"6 matrix combinations, more than the limit of 5 (pipeline_limits.jobs)"},
		{"matrix and jobs", "name: p\nstages:\n  - {name: a, jobs: [{name: m, commands: [true], matrix: {n: ['1', '2', '3']}}]}\n" + stage("b", "b1", "b2", "b3"),
			"6 jobs once matrices are expanded, more than the limit of 5 (pipeline_limits.jobs)"},
		{"matrix edges", "name: p\nstages:\n  - {name: a, jobs: [{name: m, commands: [true], matrix: {n: ['1', '2', '3']}}, {name: after, commands: [true], depends_on: [m]}]}\n",
			"3 depends_on entries, more than the limit of 2 (pipeline_limits.edges)"},
	} {
		_, err := c.jobs.CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Yaml: tc.yaml})
		st := status.Convert(err)
		if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), tc.say) || (tc.name == "bytes" && !strings.Contains(st.Message(), "pipeline_limits.yaml_bytes")) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if _, err := c.jobs.CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Yaml: "name: ok\nstages:\n" + stage("a", "a1", "a2") + stage("b", "b1", "b2", "b3")}); err != nil {
		t.Fatalf("a pipeline within the limits: %v", err)
	}
}
