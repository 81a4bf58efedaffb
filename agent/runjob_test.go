package agent

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	"github.com/go-arcade/arcade/core/logpack"
)

// cancelOnStart is a server that hears of a cancel while the agent's
// "running" report is on its way, as when the cancel comes through the
// channel at that moment; it records the statuses reported.
type cancelOnStart struct {
	agentv1.AgentServiceClient
	a        *Agent
	mu       sync.Mutex
	statuses []string
}

func (s *cancelOnStart) ReportJobStatus(ctx context.Context, req *agentv1.ReportJobStatusRequest, _ ...grpc.CallOption) (*agentv1.ReportJobStatusResponse, error) {
	s.mu.Lock()
	s.statuses = append(s.statuses, req.GetStatus().String()+" "+req.GetMessage())
	s.mu.Unlock()
	if req.GetStatus() == agentv1.JobStatus_JOB_STATUS_RUNNING {
		s.a.cancelJob(req.GetJobId(), "cancelled by request")
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return &agentv1.ReportJobStatusResponse{}, nil
}

func (s *cancelOnStart) ReportJobLog(_ context.Context, req *agentv1.ReportJobLogRequest, _ ...grpc.CallOption) (*agentv1.ReportJobLogResponse, error) {
	n, err := logpack.Count(req.GetPacked())
	if err != nil {
		return nil, err
	}
	return &agentv1.ReportJobLogResponse{LastLine: req.GetFirstLine() + int64(n) - 1}, nil
}

// TestCancelDuringTheRunningReport: a cancel that comes while the job's
// "running" report is in flight ends the job CANCELLED with its reason at
// once; the report is not cut by the cancel, leaving the job to wait for
// its lease to expire on the server.
func TestCancelDuringTheRunningReport(t *testing.T) {
	a, err := New(Config{Server: "127.0.0.1:1", Token: "t", WorkDir: t.TempDir(), DataDir: t.TempDir(),
		ContainerRuntime: "none", Plugins: []string{"-"}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.conn.Close()
	defer a.tracker.Close()
	srv := &cancelOnStart{a: a}
	a.rpc = srv
	done := make(chan struct{})
	go func() {
		a.runJob(context.Background(), "agent-1", &agentv1.Job{Id: "job-1", Attempt: 1, Name: "sleeper", Commands: []string{"sleep 60"}})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the job did not end after its cancel")
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	want := []string{"JOB_STATUS_RUNNING ", "JOB_STATUS_CANCELLED cancelled by request"}
	if !slices.Equal(srv.statuses, want) {
		t.Errorf("reported %q, want %q", srv.statuses, want)
	}
}
