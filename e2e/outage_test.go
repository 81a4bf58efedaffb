package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/internal/pgtest"
	"github.com/go-arcade/arcade/internal/tmpfs"
)

// The outages below last longer than the lease: the server must not judge
// agents it could not hear. Heartbeats every 2 s and leases of three
// heartbeats, as in production (5 s and 15 s there): housekeeping, every
// second, sees a lease before the heartbeat that would renew it.
var outageFlags = []string{"--heartbeat-interval", "2s", "--lease-ttl", "6s"}

const (
	outage = 20 * time.Second
	// outageLines is how many numbered lines each job prints, one every
	// 150 ms, before it appends its id to the file of runs.
	outageLines = 30
)

// outagePipeline is a pipeline whose first stage runs three jobs of about
// 4.5 s and one that lasts the whole outage, and whose second stage runs
// one more. Every job prints outageLines numbered lines and then appends
// "ID ATTEMPT" to ran: a job that ran twice shows there twice. A job lost
// with its agent is retried (on: [agent_lost]), as a real pipeline would.
func outagePipeline(ran string, longSecs int) string {
	job := func(name string, extra int) string {
		return fmt.Sprintf(`      - name: %s
        retry: {max_attempts: 2, on: [agent_lost]}
        commands: ["i=1; while [ $i -le %d ]; do echo line $i; i=$((i+1)); sleep 0.15; done; sleep %d; echo \"$ARCADE_JOB_ID $ARCADE_JOB_ATTEMPT\" >> %s"]
`, name, outageLines, extra, ran)
	}
	return "name: outage\nstages:\n  - name: first\n    jobs:\n" + job("a", 0) + job("b", 0) + job("c", 0) + job("long", longSecs) +
		"  - name: second\n    jobs:\n" + job("d", 0)
}

// startOutagePipeline starts two agents of two slots and a run of
// outagePipeline, and waits until four jobs run and have printed a line.
func startOutagePipeline(t *testing.T, c *cluster, ran string, longSecs int) *jobv1.PipelineRun {
	t.Helper()
	parallelDone(
		func() { c.startAgent("o1", 2) },
		func() { c.startAgent("o2", 2) },
	)
	c.createPipeline(outagePipeline(ran, longSecs))
	r := c.trigger("outage", nil)
	c.waitFor("four jobs running, each with a line", func() bool {
		n := 0
		for _, j := range c.run(r.GetId()).GetJobs() {
			if j.GetStatus() == running && len(c.logOf(j.GetId(), 1)) > 0 {
				n++
			}
		}
		return n == 4
	})
	return r
}

// checkRanOnce checks that a run succeeded with every job at attempt 1, a
// whole log, and one line in ran: each job ran exactly once and kept its
// true outcome.
func checkRanOnce(t *testing.T, c *cluster, r *jobv1.PipelineRun, ran string) {
	t.Helper()
	done := c.waitRunWithin(r.GetId(), 2*time.Minute)
	b, _ := os.ReadFile(ran)
	lines := strings.Fields(strings.ReplaceAll(string(b), "\n", " "))
	if done.GetStatus() != success {
		t.Errorf("run %v, want success", done.GetStatus())
	}
	for _, j := range done.GetJobs() {
		if j.GetStatus() != success || j.GetAttempt() != 1 {
			t.Errorf("job %s: %v attempt %d (%s), want SUCCESS at attempt 1", j.GetName(), j.GetStatus(), j.GetAttempt(), j.GetMessage())
		}
		runs := 0
		for i := 0; i+1 < len(lines); i += 2 {
			if lines[i] == j.GetId() {
				runs++
			}
		}
		if runs != 1 {
			t.Errorf("job %s ran %d times (runs recorded: %q)", j.GetName(), runs, b)
		}
		var got []string
		for _, l := range c.logOf(j.GetId(), 1) {
			if l.GetStream() == agentv1.LogStream_LOG_STREAM_STDOUT {
				got = append(got, l.GetContent())
			}
		}
		want := make([]string, outageLines)
		for i := range want {
			want[i] = fmt.Sprint("line ", i+1)
		}
		if !slices.Equal(got, want) {
			t.Errorf("job %s: log of %d stdout lines, want %d: %q", j.GetName(), len(got), outageLines, got)
		}
	}
}

// TestOutagesLoseNoJob: a server, or its database, that goes away for
// longer than a lease and comes back leaves every job with its true
// outcome, run once. The four scenarios run side by side (they mostly
// wait).
func TestOutagesLoseNoJob(t *testing.T) {
	parallelDone(
		func() {
			t.Run("server-restart/sqlite", func(t *testing.T) { serverOutage(t, "sqlite://"+filepath.Join(t.TempDir(), "arcade.db")) })
		},
		func() { t.Run("server-restart/postgres", func(t *testing.T) { serverOutage(t, pgtest.Start(t)) }) },
		func() { t.Run("postgres-stopped", databaseOutage) },
		func() { t.Run("disk-full", diskFull) },
	)
}

// serverOutage kills the server (kill -9) while four jobs of a pipeline run
// and starts it again on the same database 20 s later, three leases on:
// the jobs that finished meanwhile keep their outcome, the one still
// running goes on, none runs twice, and the run succeeds.
func serverOutage(t *testing.T, dsn string) {
	c := newCluster(t, dsn, outageFlags...)
	ran := filepath.Join(t.TempDir(), "ran")
	r := startOutagePipeline(t, c, ran, int(outage/time.Second))
	c.server.stop(syscall.SIGKILL)
	time.Sleep(outage)
	c.startServer()
	checkRanOnce(t, c, r, ran)
}

// databaseOutage stops PostgreSQL (a cluster of the test's own) for 20 s
// under a server running a pipeline: what the agents said could not be
// stored, which is not their fault. Once the database is back no job is
// lost or repeated, and every log is whole.
func databaseOutage(t *testing.T) {
	srv := pgtest.StartServer(t)
	c := newCluster(t, srv.DSN, outageFlags...)
	ran := filepath.Join(t.TempDir(), "ran")
	r := startOutagePipeline(t, c, ran, int(outage/time.Second))
	srv.Stop(t)
	time.Sleep(outage)
	srv.Start(t)
	checkRanOnce(t, c, r, ran)
	if len(c.server.grepLog("the database failed; no lease expires before agents had a full lease period to be heard")) == 0 {
		t.Error("the server did not say it held the leases")
	}
}

// diskFull fills the disk under the server's SQLite database for about
// 15 s while a job runs and finishes: its heartbeats and its final report
// cannot be stored meanwhile. Once there is room again the job keeps its
// true outcome (SUCCESS, attempt 1, its whole log), though its lease ran
// out during the window.
func diskFull(t *testing.T) {
	dir := tmpfs.Mount(t, 16<<20)
	c := newCluster(t, "sqlite://"+filepath.Join(dir, "arcade.db"), outageFlags...)
	c.startAgent("full", 1, "pool=full")
	ran := filepath.Join(t.TempDir(), "ran")
	j := c.create(&jobv1.CreateJobRequest{Name: "through", Selector: "pool=full", Commands: []string{fmt.Sprintf(
		`i=1; while [ $i -le %d ]; do echo line $i; i=$((i+1)); sleep 0.15; done; echo "$ARCADE_JOB_ID $ARCADE_JOB_ATTEMPT" >> %s`, outageLines, ran)}})
	c.waitFor("the job's first lines", func() bool { return len(c.logOf(j.GetId(), 1)) > 0 })

	full := time.Now()
	free := tmpfs.Fill(t, dir)
	defer free()
	// Grow the database until it cannot (SQLite may write into pages it
	// has): jobs no agent takes, big enough to need new pages.
	ctx := context.Background()
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		_, err = c.jobs.CreateJob(ctx, &jobv1.CreateJobRequest{Name: "filler", Selector: "pool=nowhere",
			Commands: []string{strings.Repeat("x", 60<<10)}})
	}
	if err == nil {
		t.Fatal("1,000 jobs of 60 KiB fit a 16 MiB disk")
	}
	// The job ends while the disk is full; the window lasts 15 s.
	time.Sleep(time.Until(full.Add(15 * time.Second)))
	if _, err := c.jobs.CreateJob(ctx, &jobv1.CreateJobRequest{Name: "probe", Selector: "pool=nowhere", Commands: []string{"true"}}); err == nil {
		t.Fatal("a job was stored at the end of the window: the disk was not full")
	}
	if got := c.get(j.GetId()); got.GetStatus() != running {
		t.Fatalf("during the window the job is %v, want RUNNING (its report cannot be stored)", got.GetStatus())
	}
	free()

	got := c.waitStatus(j.GetId(), success, failed, cancelled)
	if got.GetStatus() != success || got.GetAttempt() != 1 {
		t.Errorf("job after the window: %v attempt %d (%s), want SUCCESS at attempt 1", got.GetStatus(), got.GetAttempt(), got.GetMessage())
	}
	if b, _ := os.ReadFile(ran); strings.Count(string(b), j.GetId()) != 1 {
		t.Errorf("runs recorded: %q, want the job once", b)
	}
	var n int
	for _, l := range c.logOf(j.GetId(), 1) {
		if l.GetStream() == agentv1.LogStream_LOG_STREAM_STDOUT {
			n++
		}
	}
	if n != outageLines {
		t.Errorf("log of %d stdout lines, want %d", n, outageLines)
	}
}

// waitRunWithin is waitRun with a deadline of its own: a job run twice
// makes a run last longer than waitFor waits.
func (c *cluster) waitRunWithin(id string, d time.Duration) *jobv1.PipelineRun {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		r := c.run(id)
		final := r.GetStatus() == success || r.GetStatus() == failed || r.GetStatus() == cancelled
		for _, j := range r.GetJobs() {
			if j.GetStatus() == pending || j.GetStatus() == running {
				final = false
			}
		}
		if final {
			return r
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("run %s did not end within %s: %v", id, d, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
