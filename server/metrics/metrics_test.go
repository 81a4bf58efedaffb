package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/uptrace/bun"
	"google.golang.org/grpc"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/host"
	"github.com/go-arcade/arcade/server/store"
)

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newMetrics(t *testing.T) (*Metrics, *prometheus.Registry, *clock) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := New(reg)
	c := &clock{t: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	m.now = c.now
	return m, reg, c
}

func TestJobLifecycle(t *testing.T) {
	m, reg, c := newMetrics(t)
	created := c.t
	j := &store.Job{ID: "j1", Attempt: 1, Status: "pending", CreatedAt: created}
	m.JobEvent(j, jobv1.EventType_EVENT_TYPE_JOB_CREATED)

	c.t = created.Add(3 * time.Second)
	j.Status = "running"
	m.JobLeased(j)
	c.t = c.t.Add(500 * time.Millisecond)
	m.JobEvent(j, jobv1.EventType_EVENT_TYPE_JOB_STARTED)
	m.JobEvent(j, jobv1.EventType_EVENT_TYPE_JOB_STARTED) // a repeated report observes nothing

	// The attempt fails and is retried automatically: back to pending.
	j.Status = "pending"
	m.JobEvent(j, jobv1.EventType_EVENT_TYPE_JOB_FINISHED)
	j.Attempt, j.Status = 2, "running"
	m.JobLeased(j) // not a first attempt: no queue wait
	j.Status = "success"
	m.JobEvent(j, jobv1.EventType_EVENT_TYPE_JOB_FINISHED)                                                  // ended before its running report
	m.JobEvent(&store.Job{ID: "j2", Attempt: 2, Status: "pending"}, jobv1.EventType_EVENT_TYPE_JOB_CREATED) // a retry by request
	m.JobEvent(&store.Job{ID: "j3", Attempt: 1, Status: "cancelled"}, jobv1.EventType_EVENT_TYPE_JOB_CANCELLED)

	if got := testutil.ToFloat64(m.jobsCreated); got != 1 {
		t.Errorf("jobs created = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.jobRetries); got != 2 {
		t.Errorf("retries = %v, want 2 (one automatic, one by request)", got)
	}
	want := `
# HELP arcade_jobs_finished_total Jobs that reached a final status on this server, by status.
# TYPE arcade_jobs_finished_total counter
arcade_jobs_finished_total{status="cancelled"} 1
arcade_jobs_finished_total{status="failed"} 0
arcade_jobs_finished_total{status="success"} 1
arcade_jobs_finished_total{status="timeout"} 0
# HELP arcade_job_queue_wait_seconds Time a job waited pending, from its creation to being handed to an agent (first attempts).
# TYPE arcade_job_queue_wait_seconds histogram
arcade_job_queue_wait_seconds_bucket{le="0.005"} 0
arcade_job_queue_wait_seconds_bucket{le="0.01"} 0
arcade_job_queue_wait_seconds_bucket{le="0.025"} 0
arcade_job_queue_wait_seconds_bucket{le="0.05"} 0
arcade_job_queue_wait_seconds_bucket{le="0.1"} 0
arcade_job_queue_wait_seconds_bucket{le="0.25"} 0
arcade_job_queue_wait_seconds_bucket{le="0.5"} 0
arcade_job_queue_wait_seconds_bucket{le="1"} 0
arcade_job_queue_wait_seconds_bucket{le="2.5"} 0
arcade_job_queue_wait_seconds_bucket{le="5"} 1
arcade_job_queue_wait_seconds_bucket{le="10"} 1
arcade_job_queue_wait_seconds_bucket{le="30"} 1
arcade_job_queue_wait_seconds_bucket{le="60"} 1
arcade_job_queue_wait_seconds_bucket{le="120"} 1
arcade_job_queue_wait_seconds_bucket{le="300"} 1
arcade_job_queue_wait_seconds_bucket{le="600"} 1
arcade_job_queue_wait_seconds_bucket{le="1800"} 1
arcade_job_queue_wait_seconds_bucket{le="+Inf"} 1
arcade_job_queue_wait_seconds_sum 3
arcade_job_queue_wait_seconds_count 1
# HELP arcade_job_dispatch_latency_seconds Time from a job attempt being handed to an agent to the agent's report that it runs.
# TYPE arcade_job_dispatch_latency_seconds histogram
arcade_job_dispatch_latency_seconds_bucket{le="0.005"} 0
arcade_job_dispatch_latency_seconds_bucket{le="0.01"} 0
arcade_job_dispatch_latency_seconds_bucket{le="0.025"} 0
arcade_job_dispatch_latency_seconds_bucket{le="0.05"} 0
arcade_job_dispatch_latency_seconds_bucket{le="0.1"} 0
arcade_job_dispatch_latency_seconds_bucket{le="0.25"} 0
arcade_job_dispatch_latency_seconds_bucket{le="0.5"} 1
arcade_job_dispatch_latency_seconds_bucket{le="1"} 1
arcade_job_dispatch_latency_seconds_bucket{le="2.5"} 1
arcade_job_dispatch_latency_seconds_bucket{le="5"} 1
arcade_job_dispatch_latency_seconds_bucket{le="10"} 1
arcade_job_dispatch_latency_seconds_bucket{le="30"} 1
arcade_job_dispatch_latency_seconds_bucket{le="60"} 1
arcade_job_dispatch_latency_seconds_bucket{le="120"} 1
arcade_job_dispatch_latency_seconds_bucket{le="300"} 1
arcade_job_dispatch_latency_seconds_bucket{le="600"} 1
arcade_job_dispatch_latency_seconds_bucket{le="1800"} 1
arcade_job_dispatch_latency_seconds_bucket{le="+Inf"} 1
arcade_job_dispatch_latency_seconds_sum 0.5
arcade_job_dispatch_latency_seconds_count 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"arcade_jobs_finished_total", "arcade_job_queue_wait_seconds", "arcade_job_dispatch_latency_seconds"); err != nil {
		t.Error(err)
	}
	m.mu.Lock()
	left := len(m.leased)
	m.mu.Unlock()
	if left != 0 {
		t.Errorf("%d lease times kept after the job ended, want none", left)
	}
}

func TestNilMetricsDoNothing(t *testing.T) {
	var m *Metrics
	j := &store.Job{ID: "j", Attempt: 1, Status: "success"}
	m.JobEvent(j, jobv1.EventType_EVENT_TYPE_JOB_FINISHED)
	m.JobLeased(j)
	m.LogIngested(3, 10)
	m.PluginCall(host.CallRecord{Plugin: "p"})
	m.QueryHook().AfterQuery(context.Background(), &bun.QueryEvent{})
	err := m.StreamInterceptor()(nil, nil, &grpc.StreamServerInfo{FullMethod: "/x.StreamService/StreamJobLog"},
		func(any, grpc.ServerStream) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
}

func TestLogIngested(t *testing.T) {
	m, _, _ := newMetrics(t)
	m.LogIngested(100, 2048)
	m.LogIngested(1, 20)
	if got := testutil.ToFloat64(m.logLines); got != 101 {
		t.Errorf("lines = %v, want 101", got)
	}
	if got := testutil.ToFloat64(m.logBytes); got != 2068 {
		t.Errorf("bytes = %v, want 2068", got)
	}
}

func TestStreamSubscribers(t *testing.T) {
	m, _, _ := newMetrics(t)
	icpt := m.StreamInterceptor()
	gauge := m.subscribers.WithLabelValues("job_log")
	var during float64
	err := icpt(nil, nil, &grpc.StreamServerInfo{FullMethod: "/arcade.job.v1.StreamService/StreamJobLog"},
		func(any, grpc.ServerStream) error {
			during = testutil.ToFloat64(gauge)
			return io.EOF
		})
	if !errors.Is(err, io.EOF) {
		t.Errorf("the handler's error was not passed on: %v", err)
	}
	if during != 1 {
		t.Errorf("job_log subscribers while the stream is open = %v, want 1", during)
	}
	if got := testutil.ToFloat64(gauge); got != 0 {
		t.Errorf("job_log subscribers after the stream ended = %v, want 0", got)
	}
	// Unknown streams (an upload) are not counted.
	icpt(nil, nil, &grpc.StreamServerInfo{FullMethod: "/arcade.job.v1.StreamService/UploadJobLog"},
		func(any, grpc.ServerStream) error {
			if n := testutil.CollectAndCount(m.subscribers); n != len(streamKinds) {
				t.Errorf("subscriber series = %d, want only the %d known kinds", n, len(streamKinds))
			}
			return nil
		})
}

func TestPluginCalls(t *testing.T) {
	m, reg, _ := newMetrics(t)
	m.PluginCall(host.CallRecord{Plugin: "notify", Function: "send", Duration: 2 * time.Millisecond})
	m.PluginCall(host.CallRecord{Plugin: "notify", Function: "send", Duration: 3 * time.Second,
		Err: &host.Error{Plugin: "notify", Function: "send", Reason: host.ErrTimeout}})
	m.PluginCall(host.CallRecord{Plugin: "notify", Function: "send", Err: errors.New("odd")})
	want := `
# HELP arcade_plugin_calls_total Plugin calls, by plugin and outcome (ok, error).
# TYPE arcade_plugin_calls_total counter
arcade_plugin_calls_total{outcome="error",plugin="notify"} 2
arcade_plugin_calls_total{outcome="ok",plugin="notify"} 1
# HELP arcade_plugin_call_errors_total Failed plugin calls, by plugin and reason.
# TYPE arcade_plugin_call_errors_total counter
arcade_plugin_call_errors_total{plugin="notify",reason="error"} 1
arcade_plugin_call_errors_total{plugin="notify",reason="timed out"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "arcade_plugin_calls_total", "arcade_plugin_call_errors_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.pluginDuration); n != 1 {
		t.Errorf("duration series = %d, want 1 (notify)", n)
	}
}

// fakeState is a State with fixed answers.
type fakeState struct {
	jobs, agents map[string]int
	err          error
}

func (f fakeState) JobsByStatus(context.Context) (map[string]int, error)   { return f.jobs, f.err }
func (f fakeState) AgentsByStatus(context.Context) (map[string]int, error) { return f.agents, f.err }

func TestStateGauges(t *testing.T) {
	reg := prometheus.NewRegistry()
	WatchState(reg, fakeState{
		jobs:   map[string]int{"pending": 4, "running": 2, "success": 10},
		agents: map[string]int{"idle": 1, "busy": 2},
	}, time.Second, slog.New(slog.DiscardHandler))
	want := `
# HELP arcade_agents Registered agents by status (offline, idle, online, busy).
# TYPE arcade_agents gauge
arcade_agents{status="busy"} 2
arcade_agents{status="idle"} 1
arcade_agents{status="offline"} 0
arcade_agents{status="online"} 0
# HELP arcade_job_queue_depth Pending jobs waiting for an agent.
# TYPE arcade_job_queue_depth gauge
arcade_job_queue_depth 4
# HELP arcade_jobs Jobs by current status (all servers sharing the database).
# TYPE arcade_jobs gauge
arcade_jobs{status="cancelled"} 0
arcade_jobs{status="failed"} 0
arcade_jobs{status="pending"} 4
arcade_jobs{status="running"} 2
arcade_jobs{status="skipped"} 0
arcade_jobs{status="success"} 10
arcade_jobs{status="timeout"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}

	// A database that does not answer leaves the gauges out, rather than
	// showing zeros that look true.
	down := prometheus.NewRegistry()
	WatchState(down, fakeState{err: errors.New("connection refused")}, time.Second, slog.New(slog.DiscardHandler))
	if n, err := testutil.GatherAndCount(down); err != nil || n != 0 {
		t.Errorf("gauges with the database down: %d series, %v; want none", n, err)
	}
}

func TestStoreQueryLatency(t *testing.T) {
	m, reg, _ := newMetrics(t)
	m.now = time.Now
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "arcade.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.AddQueryHook(m.QueryHook())
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	before := testutil.ToFloat64(m.storeErrors.WithLabelValues("SELECT"))
	if _, err := st.CountJobsByStatus(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetJob(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetJob(missing) = %v, want not found", err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var selects uint64
	for _, mf := range mfs {
		if mf.GetName() != "arcade_store_query_duration_seconds" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			if mt.GetLabel()[0].GetValue() == "SELECT" {
				selects = mt.GetHistogram().GetSampleCount()
			}
		}
	}
	if selects < 2 {
		t.Errorf("SELECT queries timed = %d, want at least 2", selects)
	}
	if got := testutil.ToFloat64(m.storeErrors.WithLabelValues("SELECT")); got != before {
		t.Errorf("a row not found counted as a query error (%v → %v)", before, got)
	}
}

func TestOperation(t *testing.T) {
	for in, want := range map[string]string{"SELECT": "SELECT", "insert": "INSERT", "PRAGMA": "OTHER", "": "OTHER", "TRUNCATE": "DELETE"} {
		if got := operation(in); got != want {
			t.Errorf("operation(%q) = %q, want %q", in, got, want)
		}
	}
}
