package lifecycle

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/jobstate"
	"github.com/go-arcade/arcade/internal/pgtest"
	"github.com/go-arcade/arcade/internal/tmpfs"
	"github.com/go-arcade/arcade/server/store"
)

// restart gives the fixture a new life cycle over the same store, as a
// server started again at the fixture's clock has.
func (f *fixture) restart() {
	f.l = New(Config{LeaseTTL: leaseTTL, TimeoutGrace: 30 * time.Second}, f.st, f.fx, func() time.Time { return f.clock }, nil)
}

// reap is one round of what housekeeping asks of the life cycle.
func (f *fixture) reap() {
	f.t.Helper()
	if err := f.l.ExpireLeases(f.ctx, f.clock); err != nil {
		f.t.Fatal(err)
	}
	if err := f.l.EndOverdue(f.ctx, f.clock); err != nil {
		f.t.Fatal(err)
	}
	if err := f.l.AdvanceRuns(f.ctx); err != nil {
		f.t.Fatal(err)
	}
}

// TestNoLeaseExpiresInTheGraceAfterAStart: a server started again after an
// outage longer than the lease ends no job before its agents had a full
// lease to come back: no event, no failed run, no retry. What an agent
// reports within the grace is kept; an agent that does not come back loses
// its job once the grace is over.
func TestNoLeaseExpiresInTheGraceAfterAStart(t *testing.T) {
	eachStore(t, func(f *fixture) {
		t := f.t
		p := f.createPipeline(`name: p
stages: [{name: s, jobs: [
  {name: back, commands: [x], retry: {max_attempts: 2, on: [agent_lost]}},
  {name: gone, commands: [x], timeout: 1s}]}]`)
		r, err := f.l.StartRun(f.ctx, p, jobv1.TriggerType_TRIGGER_TYPE_MANUAL, "test", nil)
		if err != nil {
			t.Fatal(err)
		}
		back, gone := f.runJob(r.ID, "back"), f.runJob(r.ID, "gone")
		for _, j := range []*store.Job{back, gone} {
			f.claim(j.ID)
			f.mustReport(j, jobstate.Running, 0, "")
		}
		if err := f.l.AdvanceRuns(f.ctx); err != nil {
			t.Fatal(err)
		}
		f.fx.took()

		// The server is away for 20 s past the leases, then starts again.
		f.advance(leaseTTL + 20*time.Second)
		f.restart()
		if in, until := f.l.Grace(f.clock); !in || !until.Equal(f.clock.Add(leaseTTL)) {
			t.Fatalf("grace after a start: %v until %v", in, until)
		}
		for range 2 {
			f.reap()
			f.advance(leaseTTL/2 - time.Second)
		}
		f.want(back.ID, jobstate.Running, jobstate.ReasonNone, 1, "")
		f.want(gone.ID, jobstate.Running, jobstate.ReasonNone, 1, "")
		wantEvents(t, f.fx.took())
		if st := f.run(r.ID).Status; st != "running" {
			t.Fatalf("run %s in the grace", st)
		}

		// One agent comes back within the grace and reports the truth.
		f.mustReport(back, jobstate.Success, 0, "done")
		f.want(back.ID, jobstate.Success, jobstate.ReasonNone, 1, "done")

		// The other stays silent: its job is lost once the grace is over.
		f.advance(3 * time.Second)
		f.reap()
		f.want(gone.ID, jobstate.Failed, jobstate.ReasonAgentLost, 1, "agent lost: lease expired")
		if st := f.run(r.ID).Status; st != "failed" {
			t.Fatalf("run %s after the grace, want failed", st)
		}
	})
}

// TestStoreTroubleStartsAGrace: queries the database fails for want of a
// working database (PostgreSQL stopped; SQLite on a full disk) start a
// grace of a full lease after the last of them, whatever the leases say.
func TestStoreTroubleStartsAGrace(t *testing.T) {
	scenario := func(f *fixture, outage func() (restore func())) {
		t := f.t
		j := f.createJob("through", 0)
		f.claim(j.ID)
		f.mustReport(j, jobstate.Running, 0, "")
		// Well after the start's grace, the lease has run out while the
		// database was failing (no heartbeat could be stored).
		f.advance(leaseTTL + 5*time.Second)
		restore := outage()
		if _, err := f.l.Report(f.ctx, Report{AgentID: f.agent.ID, JobID: j.ID, Attempt: 1, Status: jobstate.Success}); err == nil {
			t.Fatal("a report was stored during the outage")
		}
		restore()
		if in, _ := f.l.Grace(f.clock); !in {
			t.Fatal("no grace after the database failed")
		}
		f.advance(leaseTTL - time.Second)
		f.reap()
		f.want(j.ID, jobstate.Running, jobstate.ReasonNone, 1, "")
		f.mustReport(j, jobstate.Success, 0, "finished during the outage")
		f.want(j.ID, jobstate.Success, jobstate.ReasonNone, 1, "finished during the outage")

		// Without trouble the grace ends and leases expire as before.
		k := f.createJob("silent", 0)
		f.claim(k.ID)
		f.mustReport(k, jobstate.Running, 0, "")
		f.advance(leaseTTL + time.Second)
		f.reap()
		f.want(k.ID, jobstate.Failed, jobstate.ReasonAgentLost, 1, "agent lost: lease expired")
	}
	t.Run("postgres-stopped", func(t *testing.T) {
		t.Parallel()
		srv := pgtest.StartServer(t)
		f := newFixture(t, srv.DSN)
		scenario(f, func() func() {
			srv.Stop(t)
			return func() { srv.Start(t) }
		})
	})
	t.Run("sqlite-disk-full", func(t *testing.T) {
		t.Parallel()
		dir := tmpfs.Mount(t, 4<<20)
		f := newFixture(t, "sqlite://"+filepath.Join(dir, "arcade.db"))
		scenario(f, func() func() {
			free := tmpfs.Fill(t, dir)
			// Grow the database until it cannot: SQLite may still write into
			// pages it has, so the report alone might pass.
			for i := 0; ; i++ {
				if i == 1000 {
					t.Fatal("1,000 big jobs fit a full disk")
				}
				big := &store.Job{Name: "filler", Commands: []string{strings.Repeat("x", 64<<10)}, Env: map[string]string{}, Labels: map[string]string{}}
				if err := f.l.CreateJob(f.ctx, big); err != nil {
					if !store.Trouble(err) {
						t.Fatalf("a write to a full disk: %v, not counted as trouble", err)
					}
					break
				}
			}
			return free
		})
	})
}

// TestLateResultIsRecordedNotApplied: once a lease really expired (after
// the grace), the server acted on the loss; a result the agent sends later
// is refused and written as the last line of its attempt's log, whether the
// job was requeued or failed for good. Only the agent that lost the attempt
// can have its result recorded.
func TestLateResultIsRecordedNotApplied(t *testing.T) {
	eachStore(t, func(f *fixture) {
		t := f.t
		requeued := f.createJob("requeued", 1)
		failed := f.createJob("failed", 0)
		for _, j := range []*store.Job{requeued, failed} {
			f.claim(j.ID)
			f.mustReport(j, jobstate.Running, 0, "")
			if _, err := f.st.AppendLogs(f.ctx, j.ID, 1, []store.LogLine{{Line: 1, Time: f.clock, Content: "working"}}); err != nil {
				t.Fatal(err)
			}
		}
		f.advance(leaseTTL + time.Second)
		f.reap()
		f.want(requeued.ID, jobstate.Pending, jobstate.ReasonNone, 2, "attempt 1: agent lost: lease expired; requeued")
		f.want(failed.ID, jobstate.Failed, jobstate.ReasonAgentLost, 1, "agent lost: lease expired")
		f.fx.took()

		// Someone else's "late result" is a plain refusal, and leaves no line.
		_, err := f.l.Report(f.ctx, Report{AgentID: "intruder", JobID: requeued.ID, Attempt: 1, Status: jobstate.Success})
		if !errors.Is(err, ErrNotLeased) || strings.Contains(err.Error(), "recorded") {
			t.Fatalf("a result from another agent: %v", err)
		}

		for _, j := range []*store.Job{requeued, failed} {
			_, err := f.l.Report(f.ctx, Report{AgentID: f.agent.ID, JobID: j.ID, Attempt: 1, Status: jobstate.Success, ExitCode: 0, LogLines: 1})
			if !errors.Is(err, ErrNotLeased) || !strings.Contains(err.Error(), "recorded in the attempt's log, not applied") {
				t.Fatalf("late result on %s: %v", j.Name, err)
			}
			lines, err := f.st.ReadLogs(f.ctx, j.ID, 1, 1, 10)
			if err != nil || len(lines) != 2 || !strings.Contains(lines[1].Content, "late result from this attempt's agent") ||
				!strings.Contains(lines[1].Content, "success, exit code 0") {
				t.Fatalf("log of %s attempt 1: %+v %v", j.Name, lines, err)
			}
		}
		f.want(requeued.ID, jobstate.Pending, jobstate.ReasonNone, 2, "attempt 1: agent lost: lease expired; requeued")
		f.want(failed.ID, jobstate.Failed, jobstate.ReasonAgentLost, 1, "agent lost: lease expired")
		wantEvents(t, f.fx.took())
	})
}

// TestMayLog: a log takes lines from its attempt's lease holder alone, and
// after the final report only up to the count it carried.
func TestMayLog(t *testing.T) {
	running := &store.Job{ID: "j", Status: "running", Attempt: 2, AgentID: "a1"}
	ended := &store.Job{ID: "j", Status: "success", Attempt: 2, AgentID: "a1", LogLines: 30}
	lost := &store.Job{ID: "j", Status: "failed", Attempt: 2, AgentID: "a1", LostAttempt: 2, LostAgentID: "a1", Message: "agent lost: lease expired"}
	requeued := &store.Job{ID: "j", Status: "pending", Attempt: 3, LostAttempt: 2, LostAgentID: "a1"}
	for _, tt := range []struct {
		name    string
		j       *store.Job
		agent   string
		attempt int32
		last    int64
		want    error
	}{
		{"holder", running, "a1", 2, 1000, nil},
		{"another agent", running, "a2", 2, 1, ErrForbidden},
		{"an earlier attempt", running, "a1", 1, 1, ErrForbidden},
		{"no agent", running, "", 2, 1, ErrForbidden},
		{"after the final report, within its count", ended, "a1", 2, 30, nil},
		{"after the final report, past its count", ended, "a1", 2, 31, ErrInvalidArgument},
		{"another agent after the end", ended, "a2", 2, 1, ErrForbidden},
		{"the agent that lost it", lost, "a1", 2, 1, ErrForbidden},
		{"the agent that lost it, requeued", requeued, "a1", 2, 1, ErrForbidden},
		{"pending", requeued, "", 3, 1, ErrForbidden},
	} {
		err := MayLog(tt.j, tt.agent, tt.attempt, tt.last)
		if (tt.want == nil) != (err == nil) || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}

// TestFinalReportCountsLogLines: the count of a final report is kept with
// the attempt and starts again with the next one.
func TestFinalReportCountsLogLines(t *testing.T) {
	eachStore(t, func(f *fixture) {
		t := f.t
		j := f.createJob("counted", 1)
		f.claim(j.ID)
		if _, err := f.l.Report(f.ctx, Report{AgentID: f.agent.ID, JobID: j.ID, Attempt: 1, Status: jobstate.Failed, ExitCode: 1, LogLines: 42}); err != nil {
			t.Fatal(err)
		}
		if got := f.job(j.ID); got.LogLines != 0 || got.Attempt != 2 {
			t.Fatalf("retried: attempt %d, %d lines", got.Attempt, got.LogLines)
		}
		j = f.claim(j.ID)
		if _, err := f.l.Report(f.ctx, Report{AgentID: f.agent.ID, JobID: j.ID, Attempt: 2, Status: jobstate.Success, LogLines: 7}); err != nil {
			t.Fatal(err)
		}
		if got := f.job(j.ID); got.LogLines != 7 {
			t.Fatalf("ended with %d lines, want 7", got.LogLines)
		}
	})
}
