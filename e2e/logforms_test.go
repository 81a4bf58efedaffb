package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/client"
	"github.com/go-arcade/arcade/core/logpack"
)

// TestReportJobLogForms: a simple client may send one message per line or
// packed lines; both are stored in order, resending is harmless, and bad
// batches are refused naming the field.
func TestReportJobLogForms(t *testing.T) {
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db", "--lease-ttl", "10m")
	ctx := context.Background()
	reg, err := client.Dial(c.addr, client.Static(agentToken))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	r, err := agentv1.NewAgentServiceClient(reg).Register(ctx, &agentv1.RegisterRequest{Name: "simple", Labels: map[string]string{"simple": "yes"}})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := client.Dial(c.addr, client.Static(r.GetAgentToken()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	agents := agentv1.NewAgentServiceClient(conn)
	j := c.create(&jobv1.CreateJobRequest{Name: "by hand", Commands: []string{"true"}, Selector: "simple"})
	if f, err := agents.FetchJob(ctx, &agentv1.FetchJobRequest{AgentId: r.GetAgentId(), Wait: durationpb.New(5 * time.Second)}); err != nil || f.GetJob().GetId() != j.GetId() {
		t.Fatalf("lease: %v %v", f, err)
	}
	report := func(req *agentv1.ReportJobLogRequest) (int64, error) {
		req.AgentId, req.JobId, req.Attempt = r.GetAgentId(), j.GetId(), 1
		resp, err := agents.ReportJobLog(ctx, req)
		return resp.GetLastLine(), err
	}
	chunk := func(n int64, text string) *agentv1.LogChunk {
		return &agentv1.LogChunk{LineNumber: n, Content: text, Stream: agentv1.LogStream_LOG_STREAM_STDOUT}
	}
	if last, err := report(&agentv1.ReportJobLogRequest{Chunks: []*agentv1.LogChunk{chunk(1, "one"), chunk(2, "two")}}); err != nil || last != 2 {
		t.Fatalf("chunks: %d, %v", last, err)
	}
	packed := logpack.Encode([]logpack.Line{{Line: 2, Content: "two"}, {Line: 3, Content: "three"}, {Line: 4, Content: "four"}})
	if last, err := report(&agentv1.ReportJobLogRequest{Packed: packed, FirstLine: 2}); err != nil || last != 4 {
		t.Fatalf("packed, overlapping: %d, %v", last, err)
	}
	if last, err := report(&agentv1.ReportJobLogRequest{Chunks: []*agentv1.LogChunk{chunk(9, "nine")}}); err != nil || last != 4 {
		t.Errorf("past a gap: %d, %v; want 4 and nothing stored", last, err)
	}
	bad := []struct {
		req   *agentv1.ReportJobLogRequest
		field string
	}{
		{&agentv1.ReportJobLogRequest{Chunks: []*agentv1.LogChunk{chunk(5, "a"), chunk(7, "b")}}, "chunks[1].line_number"},
		{&agentv1.ReportJobLogRequest{Packed: packed[:len(packed)-2], FirstLine: 5}, "packed"},
		{&agentv1.ReportJobLogRequest{Packed: packed, FirstLine: 0}, "first_line"},
	}
	for _, tc := range bad {
		if _, err := report(tc.req); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("bad batch: %v, want InvalidArgument naming %s", err, tc.field)
		}
	}
	var got []string
	for _, l := range c.logOf(j.GetId(), 1) {
		got = append(got, l.GetContent())
	}
	if strings.Join(got, ",") != "one,two,three,four" {
		t.Errorf("stored log: %v", got)
	}
}
