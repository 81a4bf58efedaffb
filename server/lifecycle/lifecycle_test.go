package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/jobstate"
	"github.com/go-arcade/arcade/core/pipeline"
	"github.com/go-arcade/arcade/internal/pgtest"
	"github.com/go-arcade/arcade/server/store"
	"github.com/go-arcade/arcade/server/trigger"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const leaseTTL = 15 * time.Second

// fixture is a life cycle over a real store, with a clock the test moves
// and the effects it asked for recorded.
type fixture struct {
	t     *testing.T
	ctx   context.Context
	st    *store.Store
	l     *Lifecycle
	fx    *recorder
	clock time.Time
	agent *store.Agent
}

// eachStore runs a test against SQLite and PostgreSQL.
func eachStore(t *testing.T, test func(f *fixture)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		test(newFixture(t, "sqlite://"+filepath.Join(t.TempDir(), "arcade.db")))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		test(newFixture(t, pgtest.Start(t)))
	})
}

func newFixture(t *testing.T, dsn string) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, ctx: ctx, st: st, fx: &recorder{}, clock: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	f.l = New(Config{LeaseTTL: leaseTTL, TimeoutGrace: 30 * time.Second}, st, f.fx, func() time.Time { return f.clock }, nil)
	f.agent, err = st.RegisterAgent(ctx, &store.Agent{ID: "agent-1", Name: "a1", Labels: map[string]string{}, MaxJobs: 4,
		Online: true, RegisteredAt: f.clock, LastHeartbeatAt: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// recorder keeps the effects asked for.
type recorder struct {
	mu      sync.Mutex
	wakes   int
	cancels []string
	events  []string // "JOB_CREATED name", "RUN success"…
	ended   []string // job ids whose attempt ended
}

func (r *recorder) Wake() { r.mu.Lock(); r.wakes++; r.mu.Unlock() }
func (r *recorder) Cancel(agentID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cancels = append(r.cancels, agentID)
}
func (r *recorder) AttemptEnded(j *store.Job) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended = append(r.ended, j.ID)
}
func (r *recorder) JobEvent(j *store.Job, typ jobv1.EventType, _ string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, strings.TrimPrefix(typ.String(), "EVENT_TYPE_")+" "+j.Name)
}
func (r *recorder) RunEvent(run *store.PipelineRun) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if run.JustStarted {
		r.events = append(r.events, "RUN "+run.Status+" (started)")
		return
	}
	r.events = append(r.events, "RUN "+run.Status)
}

// took returns the events recorded since the last call.
func (r *recorder) took() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

func (f *fixture) advance(d time.Duration) { f.clock = f.clock.Add(d) }

// createJob creates a job of commands named name with retries.
func (f *fixture) createJob(name string, retries int32) *store.Job {
	f.t.Helper()
	j := &store.Job{Name: name, Commands: []string{"true"}, Env: map[string]string{}, Labels: map[string]string{}, Retries: retries}
	if err := f.l.CreateJob(f.ctx, j); err != nil {
		f.t.Fatal(err)
	}
	return j
}

// claim leases the pending job id to the fixture's agent, as the
// dispatcher does.
func (f *fixture) claim(id string) *store.Job {
	f.t.Helper()
	asked := false
	claims, err := f.st.ClaimBatch(f.ctx, f.clock, f.clock.Add(leaseTTL), func(j *store.Job) *store.Agent {
		if j.ID == id {
			return f.agent
		}
		return nil
	}, func() bool { was := asked; asked = true; return !was })
	if err != nil || len(claims) != 1 {
		f.t.Fatalf("claim %s: %d claims, %v", id, len(claims), err)
	}
	return claims[0].Job
}

func (f *fixture) report(j *store.Job, to jobstate.Status, exit int32, msg string) (*store.Job, error) {
	return f.l.Report(f.ctx, Report{AgentID: f.agent.ID, JobID: j.ID, Attempt: j.Attempt, Status: to, ExitCode: exit, Message: msg})
}

func (f *fixture) mustReport(j *store.Job, to jobstate.Status, exit int32, msg string) *store.Job {
	f.t.Helper()
	got, err := f.report(j, to, exit, msg)
	if err != nil {
		f.t.Fatalf("report %s on %s: %v", jobstate.Name(to), j.Name, err)
	}
	return got
}

func (f *fixture) job(id string) *store.Job {
	f.t.Helper()
	j, err := f.st.GetJob(f.ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return j
}

// want checks a stored job's status, reason, attempt and message.
func (f *fixture) want(id string, st jobstate.Status, reason jobstate.Reason, attempt int32, msg string) *store.Job {
	f.t.Helper()
	j := f.job(id)
	if j.Status != jobstate.Name(st) || j.EndReason != reason || j.Attempt != attempt || (msg != "" && j.Message != msg) {
		f.t.Fatalf("job %s: %s (%q) attempt %d %q; want %s (%q) attempt %d %q",
			j.Name, j.Status, j.EndReason, j.Attempt, j.Message, jobstate.Name(st), reason, attempt, msg)
	}
	return j
}

func wantEvents(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
}

func TestReportEndsAnAttempt(t *testing.T) {
	eachStore(t, func(f *fixture) {
		t := f.t
		j := f.createJob("build", 0)
		f.claim(j.ID)
		began := f.clock.Add(time.Second)
		f.advance(2 * time.Second)
		got, err := f.l.Report(f.ctx, Report{AgentID: f.agent.ID, JobID: j.ID, Attempt: 1, Status: jobstate.Running, Began: began})
		if err != nil {
			t.Fatal(err)
		}
		if !got.StartedAt.Equal(began) || !got.AcceptedAt.Equal(f.clock) || !got.LeaseExpiresAt.Equal(f.clock.Add(leaseTTL)) {
			t.Fatalf("running: started %v accepted %v lease %v", got.StartedAt, got.AcceptedAt, got.LeaseExpiresAt)
		}
		f.mustReport(j, jobstate.Success, 0, "done")
		f.want(j.ID, jobstate.Success, jobstate.ReasonNone, 1, "done")
		wantEvents(t, f.fx.took(), "JOB_CREATED build", "JOB_STARTED build", "JOB_FINISHED build")
		if len(f.fx.ended) != 1 {
			t.Fatalf("log followers told %d times", len(f.fx.ended))
		}

		// A repeated final report changes nothing and says nothing.
		f.mustReport(j, jobstate.Success, 0, "again")
		f.want(j.ID, jobstate.Success, jobstate.ReasonNone, 1, "done")
		wantEvents(t, f.fx.took())

		// Refusals are typed.
		_, err = f.report(j, jobstate.Failed, 1, "late")
		if !errors.Is(err, ErrInvalidTransition) || !strings.Contains(err.Error(), "job cannot go from success to failed") {
			t.Fatalf("failed after success: %v", err)
		}
		_, err = f.l.Report(f.ctx, Report{AgentID: "someone-else", JobID: j.ID, Attempt: 1, Status: jobstate.Failed})
		if !errors.Is(err, ErrNotLeased) || !strings.Contains(err.Error(), "attempt 1 is not leased to this agent") {
			t.Fatalf("report by another agent: %v", err)
		}
		_, err = f.l.Report(f.ctx, Report{AgentID: f.agent.ID, JobID: "nope", Attempt: 1, Status: jobstate.Failed})
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("report on an unknown job: %v", err)
		}
		f.want(j.ID, jobstate.Success, jobstate.ReasonNone, 1, "done")
	})
}

func TestReportedFailureRetriesWithinBudget(t *testing.T) {
	eachStore(t, func(f *fixture) {
		t := f.t
		j := f.createJob("flaky", 1)
		f.claim(j.ID)
		f.mustReport(j, jobstate.Running, 0, "")
		f.mustReport(j, jobstate.Failed, 2, "boom")
		f.want(j.ID, jobstate.Pending, jobstate.ReasonNone, 2, "attempt 1 ended failed (boom); retrying")

		j = f.claim(j.ID)
		f.mustReport(j, jobstate.Running, 0, "")
		f.mustReport(j, jobstate.Timeout, -1, "too slow")
		got := f.want(j.ID, jobstate.Timeout, jobstate.ReasonTimeout, 2, "too slow")
		if got.ExitCode != -1 || got.FinishedAt.IsZero() {
			t.Fatalf("ended attempt: exit %d finished %v", got.ExitCode, got.FinishedAt)
		}

		// A failure reported after a cancel was asked for is a cancellation.
		c := f.createJob("stopped", 3)
		f.claim(c.ID)
		f.mustReport(c, jobstate.Running, 0, "")
		if _, err := f.l.CancelJob(f.ctx, c.ID, "  "); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(f.fx.cancels, []string{f.agent.ID}) {
			t.Fatalf("agents told to stop: %v", f.fx.cancels)
		}
		f.mustReport(c, jobstate.Failed, 143, "killed")
		f.want(c.ID, jobstate.Cancelled, jobstate.ReasonCancelled, 1, "killed")
	})
}

func TestReportKeepsArtifacts(t *testing.T) {
	eachStore(t, func(f *fixture) {
		t := f.t
		j := f.createJob("art", 0)
		f.claim(j.ID)
		_, err := f.l.Report(f.ctx, Report{AgentID: f.agent.ID, JobID: j.ID, Attempt: 1, Status: jobstate.Success,
			Artifacts: []store.Artifact{{Path: "out/a.txt", SizeBytes: 3, SHA256: "abc"}}})
		if err != nil {
			t.Fatal(err)
		}
		arts, err := f.st.JobArtifacts(f.ctx, j.ID)
		if err != nil || len(arts) != 1 || arts[0].Path != "out/a.txt" || !arts[0].CreatedAt.Equal(f.clock) {
			t.Fatalf("artifacts %+v %v", arts, err)
		}

		k := f.createJob("bad-art", 0)
		f.claim(k.ID)
		_, err = f.l.Report(f.ctx, Report{AgentID: f.agent.ID, JobID: k.ID, Attempt: 1, Status: jobstate.Success,
			Artifacts: []store.Artifact{{Path: "ok"}, {Path: ""}}})
		if !errors.Is(err, ErrInvalidArgument) || err.Error() != "artifacts[1].path: must not be empty" {
			t.Fatalf("empty artifact path: %v", err)
		}
	})
}

func TestLeaseExpiryLosesTheJobWithATypedReason(t *testing.T) {
	eachStore(t, func(f *fixture) {
		t := f.t
		// Never started by its agent: back in the queue as the same attempt.
		unstarted := f.createJob("unstarted", 0)
		f.claim(unstarted.ID)
		// Started: fails as lost, with the budget spent.
		lost := f.createJob("lost", 0)
		f.claim(lost.ID)
		f.mustReport(lost, jobstate.Running, 0, "")
		// Started, with retries left: requeued as its next attempt.
		again := f.createJob("again", 1)
		f.claim(again.ID)
		f.mustReport(again, jobstate.Running, 0, "")
		f.fx.took()

		// Nothing expires within the lease.
		f.advance(leaseTTL - time.Second)
		if err := f.l.ExpireLeases(f.ctx, f.clock); err != nil {
			t.Fatal(err)
		}
		f.want(lost.ID, jobstate.Running, jobstate.ReasonNone, 1, "")

		f.advance(2 * time.Second)
		if err := f.l.ExpireLeases(f.ctx, f.clock); err != nil {
			t.Fatal(err)
		}
		got := f.want(unstarted.ID, jobstate.Pending, jobstate.ReasonNone, 1,
			"handed to agent a1, which never started it (agent lost: lease expired); back in the queue")
		if got.AgentID != "" || !got.StartedAt.IsZero() {
			t.Fatalf("unstarted job still on agent %q since %v", got.AgentID, got.StartedAt)
		}
		got = f.want(lost.ID, jobstate.Failed, jobstate.ReasonAgentLost, 1, "agent lost: lease expired")
		if got.ExitCode != -1 {
			t.Fatalf("lost job exit code %d", got.ExitCode)
		}
		f.want(again.ID, jobstate.Pending, jobstate.ReasonNone, 2, "attempt 1: agent lost: lease expired; requeued")
		events := f.fx.took()
		slices.Sort(events)
		wantEvents(t, events, "JOB_FINISHED again", "JOB_FINISHED lost")
		if len(f.fx.cancels) != 2 {
			t.Fatalf("agent told to stop %d times, want 2 (the started jobs)", len(f.fx.cancels))
		}
	})
}

func TestAgentGoneLosesItsJobs(t *testing.T) {
	eachStore(t, func(f *fixture) {
		t := f.t
		revoked := f.createJob("revoked", 0)
		f.claim(revoked.ID)
		f.mustReport(revoked, jobstate.Running, 0, "")
		cancelling := f.createJob("cancelling", 0)
		f.claim(cancelling.ID)
		f.mustReport(cancelling, jobstate.Running, 0, "")
		if _, err := f.l.CancelJob(f.ctx, cancelling.ID, "no longer wanted"); err != nil {
			t.Fatal(err)
		}
		n, err := f.l.LoseAgentJobs(f.ctx, f.agent.ID, jobstate.ReasonAgentRevoked, "agent revoked")
		if err != nil || n != 2 {
			t.Fatalf("lose agent jobs: %d %v", n, err)
		}
		f.want(revoked.ID, jobstate.Failed, jobstate.ReasonAgentRevoked, 1, "agent revoked")
		f.want(cancelling.ID, jobstate.Cancelled, jobstate.ReasonCancelled, 1, "no longer wanted (agent revoked)")
	})
}

func TestOverdueJobEndsAsTimeout(t *testing.T) {
	eachStore(t, func(f *fixture) {
		t := f.t
		j := &store.Job{Name: "slow", Commands: []string{"sleep 9"}, Env: map[string]string{}, Labels: map[string]string{}, TimeoutMS: 1000}
		if err := f.l.CreateJob(f.ctx, j); err != nil {
			t.Fatal(err)
		}
		f.claim(j.ID)
		f.mustReport(j, jobstate.Running, 0, "")
		f.advance(30 * time.Second)
		if err := f.l.EndOverdue(f.ctx, f.clock); err != nil {
			t.Fatal(err)
		}
		f.want(j.ID, jobstate.Running, jobstate.ReasonNone, 1, "")
		f.advance(2 * time.Second)
		if err := f.l.EndOverdue(f.ctx, f.clock); err != nil {
			t.Fatal(err)
		}
		f.want(j.ID, jobstate.Timeout, jobstate.ReasonTimeout, 1, "timed out after 1s (ended by the server: the agent did not stop it)")
	})
}

func TestCancelRetryAndEditByRequest(t *testing.T) {
	eachStore(t, func(f *fixture) {
		t := f.t
		j := f.createJob("queued", 0)
		if _, err := f.l.EditJob(f.ctx, j.ID, func(j *store.Job) error { j.Image = "alpine"; return nil }); err != nil {
			t.Fatal(err)
		}
		refused := errors.New("bad definition")
		if _, err := f.l.EditJob(f.ctx, j.ID, func(*store.Job) error { return refused }); !errors.Is(err, refused) {
			t.Fatalf("edit refused by its function: %v", err)
		}
		if f.job(j.ID).Image != "alpine" {
			t.Fatal("edit not stored")
		}
		f.fx.took()
		if _, err := f.l.CancelJob(f.ctx, j.ID, ""); err != nil {
			t.Fatal(err)
		}
		f.want(j.ID, jobstate.Cancelled, jobstate.ReasonCancelled, 1, "cancelled by request")
		wantEvents(t, f.fx.took(), "JOB_CANCELLED queued")
		if _, err := f.l.CancelJob(f.ctx, j.ID, ""); !errors.Is(err, ErrInvalidTransition) ||
			!strings.Contains(err.Error(), "already ended (cancelled)") {
			t.Fatalf("cancel twice: %v", err)
		}
		if _, err := f.l.EditJob(f.ctx, j.ID, func(*store.Job) error { return nil }); !errors.Is(err, ErrInvalidTransition) {
			t.Fatalf("edit of a cancelled job: %v", err)
		}
		if _, err := f.l.RetryJob(f.ctx, j.ID); err != nil {
			t.Fatal(err)
		}
		f.want(j.ID, jobstate.Pending, jobstate.ReasonNone, 2, "retried by request")
		if _, err := f.l.RetryJob(f.ctx, j.ID); !errors.Is(err, ErrInvalidTransition) {
			t.Fatalf("retry of a pending job: %v", err)
		}
		if _, err := f.l.CancelJob(f.ctx, "nope", ""); !errors.Is(err, ErrNotFound) {
			t.Fatalf("cancel of an unknown job: %v", err)
		}
	})
}

func TestFailClaimedIsUnrunnable(t *testing.T) {
	eachStore(t, func(f *fixture) {
		j := f.createJob("plugin-gone", 0)
		claimed := f.claim(j.ID)
		f.l.FailClaimed(f.ctx, claimed, `step 1 (lint): plugin "lint" is not loaded on this server`)
		f.want(j.ID, jobstate.Failed, jobstate.ReasonUnrunnable, 1, `step 1 (lint): plugin "lint" is not loaded on this server`)
		// A second attempt at it changes nothing.
		f.l.FailClaimed(f.ctx, claimed, "other")
		f.want(j.ID, jobstate.Failed, jobstate.ReasonUnrunnable, 1, `step 1 (lint): plugin "lint" is not loaded on this server`)
	})
}

// createPipeline stores a pipeline from YAML.
func (f *fixture) createPipeline(yaml string) *store.Pipeline {
	f.t.Helper()
	spec, err := pipeline.ParseYAML([]byte(yaml))
	if err != nil {
		f.t.Fatal(err)
	}
	p := &store.Pipeline{ID: newID(), Name: spec.GetName(), Spec: EncodeSpec(spec), CreatedAt: f.clock, UpdatedAt: f.clock}
	if err := f.st.CreatePipeline(f.ctx, p); err != nil {
		f.t.Fatal(err)
	}
	return p
}

// runJob returns the job named name of a run.
func (f *fixture) runJob(runID, name string) *store.Job {
	f.t.Helper()
	jobs, err := f.st.RunJobs(f.ctx, runID)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, j := range jobs {
		if j.Name == name {
			return j
		}
	}
	f.t.Fatalf("run %s has no job %s yet", runID, name)
	return nil
}

func (f *fixture) run(id string) *store.PipelineRun {
	f.t.Helper()
	r, err := f.st.GetRun(f.ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

func TestRunAdvancesAndCompletionTriggers(t *testing.T) {
	eachStore(t, func(f *fixture) {
		t := f.t
		up := f.createPipeline(`name: up
stages: [{name: s, jobs: [{name: a, commands: [echo a]}, {name: b, commands: [echo b], depends_on: [a]}]}]`)
		f.createPipeline(`name: down
triggers: [{type: pipeline, pipeline: up}]
stages: [{name: s, jobs: [{name: c, commands: [echo c]}]}]`)
		r, err := f.l.StartRun(f.ctx, up, jobv1.TriggerType_TRIGGER_TYPE_MANUAL, "test", map[string]string{"P": "1"})
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != "pending" || r.Number != 1 {
			t.Fatalf("new run %s #%d", r.Status, r.Number)
		}
		// Created, then advanced: its first job created.
		wantEvents(t, f.fx.took(), "RUN pending", "RUN pending", "JOB_CREATED a")
		a := f.runJob(r.ID, "a")
		if a.Env["P"] != "1" || a.Env["ARCADE_RUN_NUMBER"] != "1" || a.Env["ARCADE_JOB"] != "a" {
			t.Fatalf("job env %v", a.Env)
		}
		f.claim(a.ID)
		f.mustReport(a, jobstate.Running, 0, "")
		f.mustReport(a, jobstate.Success, 0, "")
		if st := f.run(r.ID).Status; st != "running" {
			t.Fatalf("run %s after a", st)
		}
		b := f.runJob(r.ID, "b")
		f.claim(b.ID)
		f.mustReport(b, jobstate.Success, 0, "")
		if st := f.run(r.ID).Status; st != "success" {
			t.Fatalf("run %s after b", st)
		}
		// The run's success started the pipeline triggered by it.
		ids, err := f.st.ActiveRuns(f.ctx)
		if err != nil || len(ids) != 1 {
			t.Fatalf("active runs %v %v", ids, err)
		}
		down := f.run(ids[0])
		if down.PipelineName != "down" || down.Trigger != "pipeline" || down.TriggeredBy != "pipeline up run #1 succeeded" {
			t.Fatalf("downstream run %+v", down)
		}
	})
}

func TestFailureSkipsDownstreamAndFailsTheRun(t *testing.T) {
	eachStore(t, func(f *fixture) {
		t := f.t
		p := f.createPipeline(`name: p
stages: [{name: s, jobs: [{name: a, commands: [x]}, {name: b, commands: [y], depends_on: [a]}]}]`)
		r, err := f.l.StartRun(f.ctx, p, jobv1.TriggerType_TRIGGER_TYPE_MANUAL, "test", nil)
		if err != nil {
			t.Fatal(err)
		}
		a := f.runJob(r.ID, "a")
		f.claim(a.ID)
		f.mustReport(a, jobstate.Failed, 1, "exit 1")
		got := f.run(r.ID)
		if got.Status != "failed" {
			t.Fatalf("run %s", got.Status)
		}
		b := f.runJob(r.ID, "b")
		if b.Status != "skipped" || b.EndReason != jobstate.ReasonNone || b.Message != "skipped: a did not succeed" {
			t.Fatalf("b: %s %q %q", b.Status, b.EndReason, b.Message)
		}
	})
}

// The retry policy of a pipeline job reads the typed end reason: an attempt
// lost with its agent is retried under on: [agent_lost]; a failure its agent
// reported is not, whatever its message says.
func TestRetryPolicyReadsTheReasonNotTheMessage(t *testing.T) {
	eachStore(t, func(f *fixture) {
		t := f.t
		p := f.createPipeline(`name: p
stages: [{name: s, jobs: [{name: a, commands: [x], retry: {max_attempts: 2, on: [agent_lost]}}]}]`)

		// Lost with its agent: the run retries the job.
		r, err := f.l.StartRun(f.ctx, p, jobv1.TriggerType_TRIGGER_TYPE_MANUAL, "test", nil)
		if err != nil {
			t.Fatal(err)
		}
		a := f.runJob(r.ID, "a")
		f.claim(a.ID)
		f.mustReport(a, jobstate.Running, 0, "")
		f.advance(leaseTTL + time.Second)
		if err := f.l.ExpireLeases(f.ctx, f.clock); err != nil {
			t.Fatal(err)
		}
		f.want(a.ID, jobstate.Pending, jobstate.ReasonNone, 2, "attempt 1 ended failed (agent lost: lease expired); retrying")
		if st := f.run(r.ID).Status; st != "running" {
			t.Fatalf("run %s while its job retries", st)
		}

		// A failure whose message reads like a lost agent: no retry.
		r, err = f.l.StartRun(f.ctx, p, jobv1.TriggerType_TRIGGER_TYPE_MANUAL, "test", nil)
		if err != nil {
			t.Fatal(err)
		}
		a = f.runJob(r.ID, "a")
		f.claim(a.ID)
		f.mustReport(a, jobstate.Failed, -1, "agent lost: the test said so")
		f.want(a.ID, jobstate.Failed, jobstate.ReasonStepFailed, 1, "agent lost: the test said so")
		if st := f.run(r.ID).Status; st != "failed" {
			t.Fatalf("run %s after a reported failure, want failed", st)
		}
	})
}

// TestEngineLostRetriesLikeALostAgent: an attempt its agent reports FAILED
// with the typed reason "engine lost" is retried by a policy on agent_lost;
// one that ran out of memory is not.
func TestEngineLostRetriesLikeALostAgent(t *testing.T) {
	eachStore(t, func(f *fixture) {
		t := f.t
		p := f.createPipeline(`name: p
stages: [{name: s, jobs: [{name: a, image: busybox, commands: [x], retry: {max_attempts: 2, on: [agent_lost]}}]}]`)
		for _, c := range []struct {
			reason jobstate.Reason
			retry  bool
		}{{jobstate.ReasonEngineLost, true}, {jobstate.ReasonOutOfMemory, false}} {
			r, err := f.l.StartRun(f.ctx, p, jobv1.TriggerType_TRIGGER_TYPE_MANUAL, "test", nil)
			if err != nil {
				t.Fatal(err)
			}
			a := f.runJob(r.ID, "a")
			f.claim(a.ID)
			f.mustReport(a, jobstate.Running, 0, "")
			_, err = f.l.Report(f.ctx, Report{AgentID: f.agent.ID, JobID: a.ID, Attempt: 1, Status: jobstate.Failed,
				ExitCode: -1, Message: "the step said: agent lost", Reason: c.reason})
			if err != nil {
				t.Fatal(err)
			}
			if c.retry {
				f.want(a.ID, jobstate.Pending, jobstate.ReasonNone, 2, "")
				if st := f.run(r.ID).Status; st != "running" {
					t.Errorf("run %s after an engine lost, want running (retried)", st)
				}
			} else {
				f.want(a.ID, jobstate.Failed, c.reason, 1, "")
				if st := f.run(r.ID).Status; st != "failed" {
					t.Errorf("run %s after %s, want failed", st, c.reason)
				}
			}
		}
	})
}

func TestRetryBackoffWaitsForHousekeeping(t *testing.T) {
	eachStore(t, func(f *fixture) {
		t := f.t
		p := f.createPipeline(`name: p
stages: [{name: s, jobs: [{name: a, commands: [x], retry: {max_attempts: 3, on: [failure], backoff: 10s}}]}]`)
		r, err := f.l.StartRun(f.ctx, p, jobv1.TriggerType_TRIGGER_TYPE_MANUAL, "test", nil)
		if err != nil {
			t.Fatal(err)
		}
		a := f.runJob(r.ID, "a")
		f.claim(a.ID)
		f.mustReport(a, jobstate.Failed, 1, "exit 1")
		f.want(a.ID, jobstate.Failed, jobstate.ReasonStepFailed, 1, "exit 1")
		f.advance(9 * time.Second)
		if err := f.l.AdvanceRuns(f.ctx); err != nil {
			t.Fatal(err)
		}
		f.want(a.ID, jobstate.Failed, jobstate.ReasonStepFailed, 1, "exit 1")
		f.advance(time.Second)
		if err := f.l.AdvanceRuns(f.ctx); err != nil {
			t.Fatal(err)
		}
		f.want(a.ID, jobstate.Pending, jobstate.ReasonNone, 2, "attempt 1 ended failed (exit 1); retrying")
	})
}

func TestStopRun(t *testing.T) {
	eachStore(t, func(f *fixture) {
		t := f.t
		p := f.createPipeline(`name: p
stages: [{name: s, jobs: [{name: a, commands: [x]}, {name: q, commands: [x]}, {name: b, commands: [y], depends_on: [a]}]}]`)
		r, err := f.l.StartRun(f.ctx, p, jobv1.TriggerType_TRIGGER_TYPE_MANUAL, "test", nil)
		if err != nil {
			t.Fatal(err)
		}
		a := f.runJob(r.ID, "a")
		f.claim(a.ID)
		f.mustReport(a, jobstate.Running, 0, "")
		stopped, err := f.l.StopRun(f.ctx, r.ID, "")
		if err != nil {
			t.Fatal(err)
		}
		if stopped.Status != "cancelled" || stopped.Message != "pipeline stopped by request" {
			t.Fatalf("stopped run %s %q", stopped.Status, stopped.Message)
		}
		if !f.job(a.ID).CancelRequested || !slices.Equal(f.fx.cancels, []string{f.agent.ID}) {
			t.Fatalf("running job not told to stop (agents told: %v)", f.fx.cancels)
		}
		q := f.runJob(r.ID, "q")
		f.want(q.ID, jobstate.Cancelled, jobstate.ReasonCancelled, 1, "pipeline stopped by request")
		b := f.runJob(r.ID, "b")
		f.want(b.ID, jobstate.Cancelled, jobstate.ReasonCancelled, 1, "pipeline stopped by request before the job started")
		_, err = f.l.StopRun(f.ctx, r.ID, "again")
		if !errors.Is(err, ErrInvalidTransition) || !strings.Contains(err.Error(), "run cannot go from cancelled to cancelled") {
			t.Fatalf("stop twice: %v", err)
		}
		if _, err := f.l.StopRun(f.ctx, "nope", ""); !errors.Is(err, ErrNotFound) {
			t.Fatalf("stop of an unknown run: %v", err)
		}
	})
}

func TestTriggerTargets(t *testing.T) {
	eachStore(t, func(f *fixture) {
		t := f.t
		f.createPipeline(`name: hooked
triggers: [{type: webhook, secret: s3cret, branches: [main]}, {type: cron, cron: "*/5 * * * *", timezone: Europe/Paris}]
stages: [{name: s, jobs: [{name: a, commands: [x]}]}]`)
		entries, err := f.l.CronEntries(f.ctx)
		if err != nil || len(entries) != 1 || entries[0].Expr != "*/5 * * * *" || entries[0].Timezone != "Europe/Paris" {
			t.Fatalf("cron entries %+v %v", entries, err)
		}
		for range 2 { // every replica fires; one run starts
			if err := f.l.FireCron(f.ctx, entries[0], f.clock); err != nil {
				t.Fatal(err)
			}
		}
		id, number, err := f.l.FireWebhook(f.ctx, "hooked", pushTo("main"))
		if err != nil || number != 2 {
			t.Fatalf("webhook run #%d %v", number, err)
		}
		r := f.run(id)
		want := fmt.Sprintf("push to main by ada (%s)", "0123456789ab")
		if r.Trigger != "webhook" || r.TriggeredBy != want || r.Params["ARCADE_BRANCH"] != "main" {
			t.Fatalf("webhook run %+v", r)
		}
	})
}

func pushTo(branch string) trigger.Push {
	return trigger.Push{Ref: "refs/heads/" + branch, Branch: branch, Commit: "0123456789abcdef", Author: "ada"}
}

func TestRunStateMachineRefusesBadTransitions(t *testing.T) {
	r := &store.PipelineRun{Status: "success"}
	if err := setRunStatus(r, jobstate.Running, time.Now()); err == nil || r.Status != "success" {
		t.Fatalf("success → running allowed: %v", err)
	}
	r = &store.PipelineRun{Status: "pending"}
	if err := setRunStatus(r, jobstate.Success, time.Now()); err == nil {
		t.Fatal("pending → success allowed")
	}
}

// A run starts when its first job starts and ends when its last job ends:
// it is RUNNING from its first job's start (not from the next advance),
// a one-job run lasts as long as its job, and the time queued before the
// first job started is CreatedAt to StartedAt.
func TestRunTiming(t *testing.T) {
	eachStore(t, func(f *fixture) {
		t := f.t
		t0 := f.clock
		p := f.createPipeline(`name: timed
stages: [{name: s, jobs: [{name: a, commands: [x]}, {name: b, commands: [y], depends_on: [a]}]}]`)
		r, err := f.l.StartRun(f.ctx, p, jobv1.TriggerType_TRIGGER_TYPE_MANUAL, "test", nil)
		if err != nil {
			t.Fatal(err)
		}
		f.advance(2 * time.Second) // queued
		a := f.claim(f.runJob(r.ID, "a").ID)
		began := f.clock.Add(500 * time.Millisecond)
		f.advance(time.Second)
		if _, err := f.l.Report(f.ctx, Report{AgentID: f.agent.ID, JobID: a.ID, Attempt: a.Attempt, Status: jobstate.Running, Began: began}); err != nil {
			t.Fatal(err)
		}
		got := f.run(r.ID)
		if got.Status != "running" || !got.StartedAt.Equal(began) {
			t.Fatalf("after its first job started the run is %s, started %v; want running, started %v", got.Status, got.StartedAt, began)
		}
		f.advance(time.Second)
		f.mustReport(a, jobstate.Success, 0, "")
		f.advance(10 * time.Second) // b waits for an agent
		b := f.claim(f.runJob(r.ID, "b").ID)
		f.mustReport(b, jobstate.Running, 0, "")
		f.advance(2 * time.Second)
		end := f.clock
		f.mustReport(b, jobstate.Success, 0, "")
		got = f.run(r.ID)
		if got.Status != "success" || !got.StartedAt.Equal(began) || !got.FinishedAt.Equal(end) || !got.CreatedAt.Equal(t0) {
			t.Fatalf("run %s created %v started %v finished %v; want success, %v, %v, %v", got.Status, got.CreatedAt, got.StartedAt, got.FinishedAt, t0, began, end)
		}

		// The run's events: it turned running once (the event notifying
		// pipeline.started), then moved on to b and ended.
		var runEvents []string
		for _, e := range f.fx.took() {
			if strings.HasPrefix(e, "RUN ") {
				runEvents = append(runEvents, e)
			}
		}
		if !slices.Equal(runEvents, []string{"RUN pending", "RUN pending", "RUN running (started)", "RUN running", "RUN success"}) {
			t.Fatalf("run events %v", runEvents)
		}

		// One job: the run lasts what its job lasted, though nothing
		// advanced the run while the job ran.
		one := f.createPipeline(`name: one
stages: [{name: s, jobs: [{name: only, commands: [x]}]}]`)
		r, err = f.l.StartRun(f.ctx, one, jobv1.TriggerType_TRIGGER_TYPE_MANUAL, "test", nil)
		if err != nil {
			t.Fatal(err)
		}
		f.advance(time.Second)
		j := f.claim(f.runJob(r.ID, "only").ID)
		start := j.StartedAt
		f.advance(858 * time.Millisecond)
		f.mustReport(j, jobstate.Success, 0, "")
		got = f.run(r.ID)
		if d := got.FinishedAt.Sub(got.StartedAt); got.Status != "success" || d != 858*time.Millisecond || !got.StartedAt.Equal(start) {
			t.Fatalf("one-job run %s lasted %v from %v; want 858ms from %v", got.Status, d, got.StartedAt, start)
		}
	})
}

// headSources stands in for the server's sources: it resolves every run of
// a pipeline with a source to head, and refuses when told to.
type headSources struct {
	head   string
	refuse error
	seen   []string
}

func (s *headSources) Prepare(_ context.Context, p *store.Pipeline, o *RunOrigin) error {
	s.seen = append(s.seen, p.Name+" "+o.Event)
	if s.refuse != nil {
		return s.refuse
	}
	if o.Commit == "" {
		o.Commit, o.Ref = s.head, "refs/heads/main"
	}
	return nil
}

// Cron and API runs of a pipeline with a source build the commit its
// source resolves when they start, and record it; a refusal starts no run.
func TestRunsOfASourceRecordTheirCommit(t *testing.T) {
	eachStore(t, func(f *fixture) {
		t := f.t
		src := &headSources{head: strings.Repeat("ab", 20)}
		f.l.UseSources(src)
		p := f.createPipeline(`name: built
source: {url: "https://git.example.com/acme/app.git"}
triggers: [{type: cron, cron: "*/5 * * * *"}]
stages: [{name: s, jobs: [{name: a, commands: [x]}]}]`)
		entries, err := f.l.CronEntries(f.ctx)
		if err != nil || len(entries) != 1 {
			t.Fatalf("cron entries %+v %v", entries, err)
		}
		if err := f.l.FireCron(f.ctx, entries[0], f.clock); err != nil {
			t.Fatal(err)
		}
		api, err := f.l.StartRun(f.ctx, p, jobv1.TriggerType_TRIGGER_TYPE_MANUAL, "api", nil)
		if err != nil {
			t.Fatal(err)
		}
		runs, _, err := f.st.ListRuns(f.ctx, p.ID, store.Page{})
		if err != nil || len(runs) != 2 {
			t.Fatalf("runs %v %v", runs, err)
		}
		for _, r := range runs {
			if r.Commit != src.head || r.Ref != "refs/heads/main" {
				t.Errorf("run %s (%s) at %q %q, want the head resolved when it started", r.ID, r.Event, r.Commit, r.Ref)
			}
		}
		if !slices.Equal(src.seen, []string{"built cron", "built manual"}) || f.run(api.ID).Event != "manual" {
			t.Fatalf("prepared %v", src.seen)
		}
		src.refuse = Refuse(ErrFailedPrecondition, "source: unreachable")
		if _, err := f.l.StartRun(f.ctx, p, jobv1.TriggerType_TRIGGER_TYPE_MANUAL, "api", nil); !errors.Is(err, ErrFailedPrecondition) {
			t.Fatalf("refused source: %v", err)
		}
		if runs, _, _ := f.st.ListRuns(f.ctx, p.ID, store.Page{}); len(runs) != 2 {
			t.Fatalf("a refused run was created: %d runs", len(runs))
		}
	})
}

// checkerFunc is a StepChecker.
type checkerFunc func(*jobv1.PipelineDetail) string

func (f checkerFunc) CheckSteps(spec *jobv1.PipelineDetail) string { return f(spec) }

// TestStepCheckAtRunStart: the step checker sees the run's definition as
// planned (matrix jobs expanded); a problem it finds ends the run FAILED at
// once with it, every job recorded SKIPPED and none handed out.
func TestStepCheckAtRunStart(t *testing.T) {
	eachStore(t, func(f *fixture) {
		t := f.t
		p := f.createPipeline(`name: p
stages:
  - {name: prepare, jobs: [{name: a, commands: [echo a]}]}
  - {name: check, jobs: [{name: b, matrix: {os: [x, y]}, steps: [{run: echo b}]}]}`)
		var seen []string
		problem := ""
		f.l.UseStepChecker(checkerFunc(func(spec *jobv1.PipelineDetail) string {
			seen = nil
			for _, st := range spec.GetStages() {
				for _, j := range st.GetJobs() {
					seen = append(seen, j.GetName())
				}
			}
			return problem
		}))
		r, err := f.l.StartRun(f.ctx, p, jobv1.TriggerType_TRIGGER_TYPE_MANUAL, "test", nil)
		if err != nil || r.Status != "pending" {
			t.Fatalf("run with no problem: %v %v", r, err)
		}
		if len(seen) != 3 {
			t.Fatalf("the checker saw jobs %v, want a and b's two matrix jobs", seen)
		}
		problem = "job b (os=x) step 1 (lint): plugin lint 2.0.0 refuses its with: level: unknown param"
		f.fx.took()
		r, err = f.l.StartRun(f.ctx, p, jobv1.TriggerType_TRIGGER_TYPE_MANUAL, "test", nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != "failed" || r.Message != problem {
			t.Fatalf("run with a problem: %s %q", r.Status, r.Message)
		}
		jobs, err := f.st.RunJobs(f.ctx, r.ID)
		if err != nil || len(jobs) != 3 {
			t.Fatalf("jobs %v %v", jobs, err)
		}
		for _, j := range jobs {
			if j.Status != "skipped" || j.Message != "not run: "+problem {
				t.Errorf("job %s: %s %q", j.Name, j.Status, j.Message)
			}
		}
	})
}
