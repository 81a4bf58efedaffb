package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun/driver/pgdriver"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/client"
	"github.com/go-arcade/arcade/internal/pgtest"
)

// simAgent is an agent simulated in the test process: it speaks the
// AgentChannel like the real one but runs nothing. A job assigned to it is
// reported RUNNING and SUCCESS at once, so the server's own costs are what a
// benchmark of it measures.
type simAgent struct {
	id     string
	conn   *grpc.ClientConn
	stream grpc.BidiStreamingClient[jobv1.AgentChannelRequest, jobv1.AgentChannelResponse]
	sendMu sync.Mutex
	// done counts jobs whose SUCCESS the server acknowledged.
	done *atomic.Int64
}

// simulateAgent registers an agent named name with slots job slots and opens
// its channel; noop says whether it runs (reports) the jobs it receives.
func simulateAgent(tb testing.TB, ctx context.Context, addr, name string, slots int, done *atomic.Int64) *simAgent {
	tb.Helper()
	reg, err := client.Dial(addr, client.Static(agentToken))
	if err != nil {
		tb.Fatal(err)
	}
	defer reg.Close()
	resp, err := agentv1.NewAgentServiceClient(reg).Register(ctx, &agentv1.RegisterRequest{
		Name: name, Hostname: name, Os: "linux", Arch: "amd64", MaxConcurrentJobs: int32(slots)})
	if err != nil {
		tb.Fatalf("register %s: %v", name, err)
	}
	conn, err := client.Dial(addr, client.Static(resp.GetAgentToken()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	stream, err := jobv1.NewStreamServiceClient(conn).AgentChannel(ctx)
	if err != nil {
		tb.Fatalf("channel of %s: %v", name, err)
	}
	a := &simAgent{id: resp.GetAgentId(), conn: conn, stream: stream, done: done}
	a.send(&jobv1.AgentChannelRequest{Payload: &jobv1.AgentChannelRequest_Hello{Hello: &jobv1.ChannelHello{AgentId: a.id}}})
	if slots > 0 {
		a.send(jobRequest(slots))
	}
	go a.serve()
	return a
}

func jobRequest(n int) *jobv1.AgentChannelRequest {
	return &jobv1.AgentChannelRequest{Payload: &jobv1.AgentChannelRequest_JobRequest{JobRequest: &jobv1.JobRequest{MaxJobs: int32(n)}}}
}

func (a *simAgent) send(m *jobv1.AgentChannelRequest) {
	a.sendMu.Lock()
	defer a.sendMu.Unlock()
	a.stream.Send(m) //nolint:errcheck // a broken stream shows in Recv
}

func (a *simAgent) heartbeat() {
	a.send(&jobv1.AgentChannelRequest{Payload: &jobv1.AgentChannelRequest_Heartbeat{Heartbeat: &agentv1.HeartbeatRequest{AgentId: a.id}}})
}

func (a *simAgent) status(job *agentv1.Job, st agentv1.JobStatus) {
	a.send(&jobv1.AgentChannelRequest{Payload: &jobv1.AgentChannelRequest_StatusUpdate{StatusUpdate: &agentv1.ReportJobStatusRequest{
		AgentId: a.id, JobId: job.GetId(), Attempt: job.GetAttempt(), Status: st, Timestamp: timestamppb.Now()}}})
}

func (a *simAgent) serve() {
	for {
		resp, err := a.stream.Recv()
		if err != nil {
			return
		}
		switch p := resp.GetPayload().(type) {
		case *jobv1.AgentChannelResponse_JobAssignment:
			job := p.JobAssignment.GetJob()
			a.status(job, agentv1.JobStatus_JOB_STATUS_RUNNING)
			a.status(job, agentv1.JobStatus_JOB_STATUS_SUCCESS)
			a.send(jobRequest(1))
		case *jobv1.AgentChannelResponse_StatusAck:
			if p.StatusAck.GetStatus() == agentv1.JobStatus_JOB_STATUS_SUCCESS {
				a.done.Add(1)
			}
		}
	}
}

// BenchmarkNoopThroughput measures no-op jobs end to end (CreateJob →
// dispatched → SUCCESS stored) with 50 agents of 4 slots each on SQLite and
// on PostgreSQL, and dispatch latency (created → the RUNNING report stored)
// at that load. On PostgreSQL it also runs the baseline: a bare durable
// claim loop (INSERT, then UPDATE … FOR UPDATE SKIP LOCKED, one transaction
// per claim) with 1 and with 50 workers. Arcade's rate is reported as a
// fraction of the 50-worker baseline.
func BenchmarkNoopThroughput(b *testing.B) {
	const jobs = 4000
	b.Run("sqlite", func(b *testing.B) { benchNoop(b, "sqlite://"+b.TempDir()+"/arcade.db", jobs) })
	b.Run("postgres", func(b *testing.B) {
		dsn := pgtest.Start(b)
		base1 := claimLoop(b, dsn, jobs, 1)
		base50 := claimLoop(b, dsn, jobs, 50)
		rate := benchNoop(b, dsn, jobs)
		b.ReportMetric(base1, "bare-1worker-jobs/s")
		b.ReportMetric(base50, "bare-50workers-jobs/s")
		b.Logf("bare INSERT + SKIP LOCKED claim loop: %.0f jobs/s with 1 worker, %.0f with 50; Arcade %.0f jobs/s = %.2f× the 50-worker loop, %.2f× the 1-worker loop",
			base1, base50, rate, rate/base50, rate/base1)
	})
}

// creators is how many clients create the benchmark's jobs at once.
const creators = 32

func benchNoop(b *testing.B, dsn string, jobs int) float64 {
	args := []string{"--heartbeat-interval", "5s", "--rate-limit", "0"}
	if addr := os.Getenv("ARCADE_BENCH_PPROF"); addr != "" {
		args = append(args, "--pprof-listen", addr) // go tool pprof http://ADDR/debug/pprof/profile?seconds=2
	}
	c := newCluster(b, dsn, args...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var done atomic.Int64
	for i := range 50 {
		simulateAgent(b, ctx, c.addr, fmt.Sprintf("sim-%02d", i), 4, &done)
	}
	var rate float64
	b.ResetTimer()
	for range b.N {
		done.Store(0)
		cpu0, self0 := cpuTime(b, c.server.cmd.Process.Pid), cpuTime(b, os.Getpid())
		t0 := time.Now()
		var wg sync.WaitGroup
		for w := range creators {
			wg.Go(func() {
				for i := w; i < jobs; i += creators {
					if _, err := c.jobs.CreateJob(ctx, &jobv1.CreateJobRequest{Name: "noop", Commands: []string{"true"}}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		created := time.Since(t0)
		deadline := time.Now().Add(5 * time.Minute)
		for done.Load() < int64(jobs) {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d jobs done", done.Load(), jobs)
			}
			time.Sleep(time.Millisecond)
		}
		total := time.Since(t0)
		cpu := cpuTime(b, c.server.cmd.Process.Pid) - cpu0
		self := cpuTime(b, os.Getpid()) - self0
		rate = float64(jobs) / total.Seconds()
		b.StopTimer()
		lat := dispatchLatencies(b, c, jobs)
		b.ReportMetric(rate, "jobs/s")
		b.ReportMetric(float64(cpu/time.Microsecond)/float64(jobs), "server-cpu-µs/job")
		b.ReportMetric(ms(percentile(lat, 50)), "dispatch-p50-ms")
		b.ReportMetric(ms(percentile(lat, 99)), "dispatch-p99-ms")
		b.Logf("%d no-op jobs, 50 agents × 4 slots, %d creators: %.0f jobs/s end to end (creating alone took %s); created→running p50 %s p99 %s; server CPU %s per job (the simulated agents and creators in the test process: %s per job)",
			jobs, creators, rate, created.Round(time.Millisecond), percentile(lat, 50), percentile(lat, 99), cpu/time.Duration(jobs), self/time.Duration(jobs))
		b.StartTimer()
	}
	return rate
}

// dispatchLatencies reads the last n jobs and returns created → started.
func dispatchLatencies(b *testing.B, c *cluster, n int) []time.Duration {
	var lat []time.Duration
	token := ""
	for len(lat) < n {
		resp, err := c.jobs.ListJobs(context.Background(), &jobv1.ListJobsRequest{PageSize: 500, PageToken: token, OrderBy: "created_at desc"})
		if err != nil {
			b.Fatal(err)
		}
		for _, j := range resp.GetJobs() {
			lat = append(lat, j.GetStartedAt().AsTime().Sub(j.GetCreatedAt().AsTime()))
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	return lat
}

// claimLoop is the baseline: one producer INSERTs n jobs (a transaction
// each) while workers claim them with UPDATE … FOR UPDATE SKIP LOCKED and
// mark them done, a transaction per step, on the same PostgreSQL. It returns
// jobs/s from the first insert to the last job done.
func claimLoop(b *testing.B, dsn string, n, workers int) float64 {
	db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(dsn)))
	defer db.Close()
	db.SetMaxOpenConns(workers + 1)
	ctx := context.Background()
	table := fmt.Sprintf("bench_claims_%d", workers)
	for _, q := range []string{
		"DROP TABLE IF EXISTS " + table,
		"CREATE TABLE " + table + " (id bigserial PRIMARY KEY, status text NOT NULL, payload text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())",
		"CREATE INDEX ON " + table + " (status, id)",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	var done atomic.Int64
	t0 := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() {
		for range n {
			if _, err := db.ExecContext(ctx, "INSERT INTO "+table+" (status, payload) VALUES ('pending', 'true')"); err != nil {
				b.Error(err)
				return
			}
		}
	})
	for range workers {
		wg.Go(func() {
			for done.Load() < int64(n) {
				var id int64
				err := db.QueryRowContext(ctx, "UPDATE "+table+" SET status = 'running' WHERE id = (SELECT id FROM "+table+
					" WHERE status = 'pending' ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING id").Scan(&id)
				if err == sql.ErrNoRows {
					time.Sleep(time.Millisecond)
					continue
				}
				if err != nil {
					b.Error(err)
					return
				}
				if _, err := db.ExecContext(ctx, "UPDATE "+table+" SET status = 'done' WHERE id = $1", id); err != nil {
					b.Error(err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(n) / time.Since(t0).Seconds()
}

// procStatus reads a field of /proc/PID/status in KiB (VmRSS, VmHWM).
func procStatus(b *testing.B, pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// cpuTime is the user+system CPU time a process used so far.
func cpuTime(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) start at ") ".
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// BenchmarkManyAgents connects 1,000 simulated agents to one server (SQLite)
// and reports the server's memory per connected agent and the CPU time it
// spends per heartbeat.
func BenchmarkManyAgents(b *testing.B) {
	const agents = 1000
	c := newCluster(b, "sqlite://"+b.TempDir()+"/arcade.db", "--heartbeat-interval", "5s")
	pid := c.server.cmd.Process.Pid
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.Sleep(time.Second)
	before := procStatus(b, pid, "VmRSS")
	var done atomic.Int64
	sims := make([]*simAgent, 0, agents)
	for i := range agents {
		sims = append(sims, simulateAgent(b, ctx, c.addr, fmt.Sprintf("many-%04d", i), 0, &done))
	}
	// Every channel is open once the server lists every agent online.
	c.waitFor("1,000 agents connected", func() bool {
		all, err := c.agentsC.ListAgents(ctx, &agentv1.ListAgentsRequest{PageSize: 1})
		if err != nil || all.GetTotalSize() < agents {
			return false
		}
		off, err := c.agentsC.ListAgents(ctx, &agentv1.ListAgentsRequest{PageSize: 1, Status: agentv1.AgentStatus_AGENT_STATUS_OFFLINE})
		return err == nil && off.GetTotalSize() == 0
	})
	time.Sleep(time.Second)
	after := procStatus(b, pid, "VmRSS")
	perAgent := float64(after-before) / agents
	b.ResetTimer()
	var beats int
	var cpu time.Duration
	for range b.N {
		cpu0 := cpuTime(b, pid)
		for round := range 5 {
			for _, a := range sims {
				a.heartbeat()
			}
			beats += len(sims)
			_ = round
			time.Sleep(200 * time.Millisecond)
		}
		time.Sleep(time.Second) // let the last ones be handled
		cpu += cpuTime(b, pid) - cpu0
	}
	b.StopTimer()
	perBeat := cpu / time.Duration(beats)
	b.ReportMetric(perAgent, "KiB/agent")
	b.ReportMetric(float64(perBeat)/float64(time.Microsecond), "cpu-µs/heartbeat")
	b.Logf("%d agents connected: server RSS %d → %d KiB, %.1f KiB per agent; %d heartbeats cost %s CPU, %s each",
		agents, before, after, perAgent, beats, cpu, perBeat)
}

// BenchmarkLogFlood runs 10 jobs printing 1,000 lines/s each (10,000
// lines/s together) on a real agent for 20 s while one subscriber follows a
// job's log slowly (one line every 10 ms), and reports the server's peak
// resident memory (VmHWM) and its resident memory before the flood.
func BenchmarkLogFlood(b *testing.B) {
	c := newCluster(b, "sqlite://"+b.TempDir()+"/arcade.db")
	c.startAgent("flood", 10)
	pid := c.server.cmd.Process.Pid
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.Sleep(time.Second)
	idle := procStatus(b, pid, "VmRSS")
	b.ResetTimer()
	for range b.N {
		var ids []string
		for i := range 10 {
			j := c.create(&jobv1.CreateJobRequest{Name: fmt.Sprintf("flood-%d", i), Commands: []string{
				`for s in $(seq 1 20); do seq -f "second $s line %g of a flood of log lines, 80 bytes or so ........" 1 1000; sleep 1; done`}})
			ids = append(ids, j.GetId())
		}
		stream, err := jobv1.NewStreamServiceClient(c.conn).StreamJobLog(ctx, &jobv1.StreamJobLogRequest{JobId: ids[0], Follow: true})
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			for {
				if _, err := stream.Recv(); err != nil {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		for _, id := range ids {
			c.waitFor("flood job", func() bool { return c.get(id).GetFinishedAt() != nil })
		}
	}
	b.StopTimer()
	peak := procStatus(b, pid, "VmHWM")
	b.ReportMetric(float64(peak)/1024, "peak-rss-MiB")
	b.Logf("10 jobs × 1,000 lines/s × 20 s with one slow follower: server RSS idle %d KiB, peak %d KiB (%.1f MiB)", idle, peak, float64(peak)/1024)
}
