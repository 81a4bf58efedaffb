package lifecycle

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/jobimage"
	"github.com/go-arcade/arcade/core/jobstate"
	"github.com/go-arcade/arcade/core/jobstep"
	"github.com/go-arcade/arcade/core/pipeline"
	"github.com/go-arcade/arcade/server/store"
)

// A run's jobs are rows of jobs created only when they are ready (their
// dependencies are done), so the dispatcher never sees a job before its
// time. Everything that moves a run — a job attempt ending, the
// housekeeping tick, StopRun — holds the run's row lock (store.ModifyRun).

// StartRun creates a run of p, triggered by typ (cause says by what), with
// params as env overriding the pipeline's, and its first jobs. The run is
// of no particular origin (manual, cron, API, pipeline triggers): see
// StartRunFrom.
func (l *Lifecycle) StartRun(ctx context.Context, p *store.Pipeline, typ jobv1.TriggerType, cause string, params map[string]string) (*store.PipelineRun, error) {
	return l.StartRunFrom(ctx, p, typ, cause, params, RunOrigin{})
}

// StartRunFrom is StartRun for a run from origin (its repository, branch,
// and whether it is of untrusted origin). A run of untrusted origin gets no
// secrets and no trusted agents; a run whose pipeline references stored
// secrets that do not exist (deleted since), or whose plugin steps the
// plugins served now refuse (StepChecker), ends FAILED at once, saying
// which.
func (l *Lifecycle) StartRunFrom(ctx context.Context, p *store.Pipeline, typ jobv1.TriggerType, cause string, params map[string]string, origin RunOrigin) (*store.PipelineRun, error) {
	if origin.Event == "" {
		origin.Event = pipeline.TriggerName(typ)
	}
	if l.sources != nil {
		if err := l.sources.Prepare(ctx, p, &origin); err != nil {
			return nil, err
		}
	}
	now := l.now()
	r := &store.PipelineRun{
		ID: newID(), PipelineID: p.ID, PipelineName: p.Name, Status: jobstate.Name(jobstate.Pending),
		Trigger: pipeline.TriggerName(typ), TriggeredBy: cause, Params: nonNil(params), Spec: p.Spec, Secrets: p.Secrets,
		CreatedAt: now, UpdatedAt: now,
	}
	l.applyOrigin(r, p, origin)
	// The run's definition: the stored one, or what its source read (from
	// the repository, or with the repository's includes, expanded).
	spec, err := DecodeSpec(r.Spec)
	if err != nil {
		return nil, err
	}
	if spec, err = expandRun(ctx, r, spec); err != nil {
		return nil, err
	}
	missing, err := l.missingRunSecrets(ctx, r)
	if err != nil {
		return nil, err
	}
	if missing == "" && l.steps != nil {
		missing = l.steps.CheckSteps(spec)
	}
	if err := l.store.CreateRun(ctx, r); err != nil {
		return nil, err
	}
	l.log.Info("pipeline run created", "pipeline", p.Name, "run", r.ID, "number", r.Number, "trigger", r.Trigger, "by", cause,
		"trusted_agents", r.TrustedAgents, "untrusted_origin", r.UntrustedOrigin)
	l.fx.RunEvent(r)
	if origin.DefinitionError != "" {
		missing = origin.DefinitionError
	}
	if missing != "" {
		if err := l.failRunAtStart(ctx, r.ID, missing); err != nil {
			return nil, err
		}
		return l.store.GetRun(ctx, r.ID)
	}
	if r.ConcurrencyGroup != "" && spec.GetConcurrency().GetCancelInProgress() {
		l.cancelOlderRuns(ctx, r)
	}
	if err := l.AdvanceRun(ctx, r.ID); err != nil {
		return nil, err
	}
	return l.store.GetRun(ctx, r.ID)
}

// StopRun ends a run CANCELLED at once: its pending jobs are cancelled, its
// running jobs are told to stop (their agents report CANCELLED), and jobs
// not created yet are recorded as cancelled. reason defaults to "pipeline
// stopped by request".
func (l *Lifecycle) StopRun(ctx context.Context, runID, reason string) (*store.PipelineRun, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		reason = "pipeline stopped by request"
	}
	rp, err := l.runPlan(ctx, runID)
	if err != nil {
		return nil, err
	}
	now := l.now()
	var agents []string
	r, err := l.store.ModifyRun(ctx, runID, func(r *store.PipelineRun, jobs []*store.Job) (store.RunChange, error) {
		var ch store.RunChange
		agents = agents[:0]
		if err := setRunStatus(r, jobstate.Cancelled, now); err != nil {
			return ch, refuse(ErrInvalidTransition, "run %s: %v", r.ID, err)
		}
		r.Message = reason
		have := map[string]bool{}
		for _, j := range jobs {
			have[j.Name] = true
			switch status(j) {
			case jobstate.Pending:
				j.Status, j.EndReason, j.FinishedAt = jobstate.Name(jobstate.Cancelled), jobstate.ReasonCancelled, now
			case jobstate.Running:
				j.CancelRequested = true
				agents = append(agents, j.AgentID)
			default:
				continue
			}
			j.Message, j.UpdatedAt = reason, now
			ch.Update = append(ch.Update, j)
		}
		for _, n := range rp.plan.Nodes {
			if !have[n.Name] {
				j := newRunJob(r, rp.spec, n, now)
				j.Status, j.EndReason, j.FinishedAt, j.Message = jobstate.Name(jobstate.Cancelled), jobstate.ReasonCancelled, now, reason+" before the job started"
				ch.Insert = append(ch.Insert, j)
			}
		}
		return ch, nil
	})
	if err != nil {
		return nil, err
	}
	l.plans.forget(runID)
	for _, a := range agents {
		l.fx.Cancel(a)
	}
	l.fx.RunEvent(r)
	l.log.Info("pipeline run stopped", "pipeline", r.PipelineName, "run", r.ID, "number", r.Number, "running_jobs", len(agents))
	return r, nil
}

// setRunStatus moves a run along its life cycle, refusing what it forbids;
// now is when the change happened (a job's start or end).
func setRunStatus(r *store.PipelineRun, to jobstate.Status, now time.Time) error {
	if err := pipeline.CheckRun(runStatus(r), to); err != nil {
		return err
	}
	r.Status, r.UpdatedAt = jobstate.Name(to), now
	switch {
	case to == jobstate.Running && r.StartedAt.IsZero():
		r.StartedAt, r.JustStarted = now, true
	case pipeline.RunTerminal(to):
		r.FinishedAt = now
	}
	return nil
}

// RunPlan returns the definition a run started with and its plan, planned
// once per run: a run's definition is a snapshot that never changes.
func (l *Lifecycle) RunPlan(ctx context.Context, r *store.PipelineRun) (*jobv1.PipelineDetail, *pipeline.Plan, error) {
	rp, err := l.plans.get(ctx, r.ID, func() (*store.PipelineRun, error) { return r, nil })
	if err != nil {
		return nil, nil, err
	}
	return rp.spec, rp.plan, nil
}

// runPlan is the plan of the run runID, read from the store only when it is
// not planned yet. Planning happens here, before any transaction.
func (l *Lifecycle) runPlan(ctx context.Context, runID string) (*runPlan, error) {
	return l.plans.get(ctx, runID, func() (*store.PipelineRun, error) { return l.store.GetRun(ctx, runID) })
}

// newRunJob is the pending job row of a plan node.
func newRunJob(r *store.PipelineRun, spec *jobv1.PipelineDetail, n *pipeline.Node, now time.Time) *store.Job {
	env := pipeline.EnvFor(spec, n, r.Params)
	env["ARCADE_PIPELINE"] = r.PipelineName
	env["ARCADE_PIPELINE_ID"] = r.PipelineID
	env["ARCADE_RUN_ID"] = r.ID
	env["ARCADE_RUN_NUMBER"] = strconv.FormatInt(r.Number, 10)
	env["ARCADE_STAGE"] = n.Stage
	env["ARCADE_JOB"] = n.Name
	sel, _ := pipeline.Selector(n.Job) // validated with the pipeline
	var artifacts []byte
	if a := n.Job.GetArtifacts(); a != nil {
		artifacts, _ = protojson.Marshal(a)
	}
	steps := pipeline.Steps(n.Job)
	encoded, _ := EncodeSteps(steps) // validated with the pipeline
	commands := n.Job.GetCommands()
	if commands == nil {
		commands = []string{}
	}
	j := &store.Job{
		Steps: encoded, Plugins: jobstep.Plugins(steps),
		ID: newID(), Name: n.Name, Status: jobstate.Name(jobstate.Pending), Commands: commands,
		Env: env, TimeoutMS: n.Job.GetTimeout().AsDuration().Milliseconds(), Image: jobimage.Expand(strings.TrimSpace(n.Job.GetImage()), env),
		Container: containerBytes(jobimage.ExpandOptions(n.Job.GetContainer(), env)),
		Artifacts: artifacts, Selector: sel.String(), Labels: map[string]string{},
		CreatedAt: now, UpdatedAt: now, Attempt: 1,
		PipelineID: r.PipelineID, RunID: r.ID, Stage: n.Stage,
		Secrets: r.Secrets, SecretNames: spec.GetSecretNames(),
		TrustedAgents: r.TrustedAgents, TrustReason: r.TrustReason,
	}
	if r.UntrustedOrigin {
		j.Secrets, j.SecretNames = nil, nil // and no stored secrets either
	} else {
		j.SecretRefs = jobSecretRefs(spec, n.Job)
	}
	for k, v := range runSourceEnv(r) {
		if _, set := j.Env[k]; !set {
			j.Env[k] = v
		}
	}
	if src := spec.GetSource(); src != nil && r.Commit != "" && !n.Job.GetSkipCheckout() {
		j.Checkout, _ = protojson.Marshal(&agentv1.Checkout{Url: src.GetUrl(), Commit: r.Commit, Ref: r.Ref,
			Depth: src.GetDepth(), Submodules: src.GetSubmodules(), CredentialSecret: src.GetCredential()})
	}
	return j
}

// runSourceEnv is what a job learns of the commit its run builds.
func runSourceEnv(r *store.PipelineRun) map[string]string {
	env := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			env[k] = v
		}
	}
	set("ARCADE_EVENT", r.Event)
	set("ARCADE_COMMIT", r.Commit)
	set("ARCADE_REF", r.Ref)
	set("ARCADE_BRANCH", r.Branch)
	if strings.HasPrefix(r.Ref, "refs/tags/") {
		set("ARCADE_TAG", strings.TrimPrefix(r.Ref, "refs/tags/"))
	}
	set("ARCADE_AUTHOR", r.Author)
	set("ARCADE_REPOSITORY", r.Source)
	if r.PullRequest > 0 {
		set("ARCADE_PULL_REQUEST", strconv.FormatInt(r.PullRequest, 10))
	}
	return env
}

// retryAfter decides whether the attempt of pipeline job j, which ended
// badly, runs again under the job's retry policy, and after how long. The
// typed end reason says whether its agent was lost.
func retryAfter(n *pipeline.Node, j *store.Job) (time.Duration, bool) {
	return pipeline.RetryAfter(n.Job, status(j), j.EndReason.Lost(), j.Attempt)
}

// AdvanceRuns moves every run under way along: it starts retries whose
// backoff passed and notices jobs that ended while nobody advanced the run.
// Housekeeping calls it every tick. A run is looked at without a lock
// (the few columns of its jobs the plan needs) and locked only when it has
// something to do; its plan is the one made when it started.
func (l *Lifecycle) AdvanceRuns(ctx context.Context) error {
	l.housekeepData(ctx)
	runs, err := l.store.ActiveRunStatuses(ctx)
	if err != nil {
		return err
	}
	for _, r := range runs {
		if ctx.Err() != nil {
			return nil
		}
		rp, err := l.runPlan(ctx, r.ID)
		if err != nil {
			if ctx.Err() == nil {
				l.log.Warn("advance pipeline run", "run", r.ID, "err", err)
			}
			continue
		}
		jobs, err := l.store.RunJobStates(ctx, r.ID)
		if err != nil {
			if ctx.Err() == nil {
				l.log.Warn("advance pipeline run", "run", r.ID, "err", err)
			}
			continue
		}
		st, err := jobstate.Parse(r.Status)
		if err != nil {
			st = jobstate.Pending
		}
		if !wouldAdvance(rp.plan, st, jobs, l.now()) {
			continue
		}
		if err := l.AdvanceRun(ctx, r.ID); err != nil && ctx.Err() == nil {
			l.log.Warn("advance pipeline run", "run", r.ID, "err", err)
		}
	}
	return nil
}

// wouldAdvance says whether AdvanceRun would change anything of a run in
// status st with these jobs: a retry due, a job to start or skip, the run
// to end, or a pending run whose jobs started.
func wouldAdvance(plan *pipeline.Plan, st jobstate.Status, jobs []*store.Job, now time.Time) bool {
	if pipeline.RunTerminal(st) {
		return false
	}
	outcomes := make(map[string]pipeline.Outcome, len(jobs))
	for _, j := range jobs {
		if st == jobstate.Pending && (!j.StartedAt.IsZero() || j.Attempt > 1) {
			return true
		}
		o := pipeline.OutcomeOf(status(j))
		if n := plan.Node(j.Name); n != nil && o == pipeline.Failed {
			if wait, ok := retryAfter(n, j); ok {
				if !now.Before(j.FinishedAt.Add(wait)) {
					return true
				}
				o = pipeline.Active
			}
		}
		outcomes[j.Name] = o
	}
	step := plan.Next(outcomes)
	return len(step.Start) > 0 || len(step.Skip) > 0 || step.Done
}

// AdvanceRun applies the plan to a run: retries due attempts, creates the
// jobs whose dependencies are done (or records them skipped), and ends the
// run when every job is final. A run that succeeds starts the pipelines
// triggered by its completion.
func (l *Lifecycle) AdvanceRun(ctx context.Context, runID string) error {
	rp, err := l.runPlan(ctx, runID)
	if err != nil {
		return err
	}
	spec, plan := rp.spec, rp.plan
	now := l.now()
	var wake, ended, changed, waiting bool
	var created []*store.Job
	var stop []string
	var planned *pipeline.Plan
	r, err := l.store.ModifyRun(ctx, runID, func(r *store.PipelineRun, jobs []*store.Job) (store.RunChange, error) {
		var ch store.RunChange
		wake, ended, changed, waiting, created, stop = false, false, false, false, nil, nil
		if pipeline.RunTerminal(runStatus(r)) {
			return ch, store.ErrUnchanged
		}
		if r.ConcurrencyGroup != "" && !r.ConcurrencyHeld {
			waiting = true
			return ch, store.ErrUnchanged
		}
		planned = plan
		dirty, started := false, false
		// The run starts when its first job starts and ends when its last
		// job ends, not when an advance happens to notice (a one-job run
		// used to last 0 s); how long it queued is CreatedAt to StartedAt.
		var firstStart, lastEnd time.Time
		for _, j := range jobs {
			if !j.StartedAt.IsZero() && (firstStart.IsZero() || j.StartedAt.Before(firstStart)) {
				firstStart = j.StartedAt
			}
			if !j.StartedAt.IsZero() && j.FinishedAt.After(lastEnd) {
				lastEnd = j.FinishedAt
			}
		}
		if firstStart.IsZero() || firstStart.After(now) {
			firstStart = now
		}
		if lastEnd.IsZero() || lastEnd.After(now) || lastEnd.Before(firstStart) {
			lastEnd = now
		}
		outcomes := map[string]pipeline.Outcome{}
		for _, j := range jobs {
			st := status(j)
			if !j.StartedAt.IsZero() || j.Attempt > 1 {
				started = true
			}
			o := pipeline.OutcomeOf(st)
			if n := plan.Node(j.Name); n != nil && o == pipeline.Failed {
				if wait, ok := retryAfter(n, j); ok {
					o = pipeline.Active
					if !now.Before(j.FinishedAt.Add(wait)) {
						msg := fmt.Sprintf("attempt %d ended %s (%s); retrying", j.Attempt, j.Status, j.Message)
						nextAttempt(j)
						j.Message, j.UpdatedAt = msg, now
						ch.Update = append(ch.Update, j)
						dirty, wake = true, true
					}
				}
			}
			outcomes[j.Name] = o
		}
		byName := make(map[string]*store.Job, len(jobs))
		for _, j := range jobs {
			byName[j.Name] = j
		}
		if agents, ff := failFast(r, spec, plan, outcomes, byName, &ch, now); ff {
			stop, dirty = agents, true
		}
		for range len(plan.Nodes) + 1 {
			step := plan.Next(outcomes)
			if len(step.Start) == 0 && len(step.Skip) == 0 {
				if step.Done {
					if runStatus(r) == jobstate.Pending {
						if err := setRunStatus(r, jobstate.Running, firstStart); err != nil {
							return ch, err
						}
					}
					if err := setRunStatus(r, step.Status, lastEnd); err != nil {
						return ch, err
					}
					r.UpdatedAt = now
					dirty, ended = true, true
				}
				break
			}
			starting := make(map[string]bool, len(step.Start))
			for _, name := range step.Start {
				starting[name] = true
			}
			for _, n := range plan.Nodes {
				reason, skip := step.Skip[n.Name]
				if !skip && !starting[n.Name] {
					continue
				}
				j := newRunJob(r, spec, n, now)
				if !skip {
					why, err := l.fillJob(r, n, byName, j, now)
					switch {
					case err != nil:
						j.Status, j.EndReason, j.FinishedAt, j.ExitCode = jobstate.Name(jobstate.Failed), jobstate.ReasonUnrunnable, now, -1
						j.Message = err.Error()
					case why != "":
						skip, reason = true, why
					}
				}
				switch {
				case skip:
					j.Status, j.FinishedAt, j.Message = jobstate.Name(jobstate.Skipped), now, reason
				case status(j) == jobstate.Pending:
					wake = true
					created = append(created, j)
				}
				outcomes[n.Name] = pipeline.OutcomeOf(status(j))
				byName[n.Name] = j
				ch.Insert = append(ch.Insert, j)
				dirty = true
			}
		}
		if started && runStatus(r) == jobstate.Pending {
			if err := setRunStatus(r, jobstate.Running, firstStart); err != nil {
				return ch, err
			}
			dirty = true
		}
		if !dirty {
			return ch, store.ErrUnchanged
		}
		r.UpdatedAt = now
		changed = true
		return ch, nil
	})
	if err != nil {
		return err
	}
	if waiting {
		held, err := l.acquireRunGroup(ctx, runID)
		if err != nil || !held {
			return err
		}
		return l.AdvanceRun(ctx, runID)
	}
	for _, a := range stop {
		l.fx.Cancel(a)
	}
	if changed {
		l.fx.RunEvent(r)
		for _, j := range created {
			l.fx.JobEvent(j, jobv1.EventType_EVENT_TYPE_JOB_CREATED, "")
			if j.ConcurrencyGroup != "" {
				cancel := planned.Node(j.Name).Job.GetConcurrency().GetCancelInProgress()
				l.jobGroupChanged(ctx, j.ConcurrencyGroup, j, cancel)
			}
		}
	}
	if wake {
		l.fx.Wake()
	}
	if ended && r.ConcurrencyGroup != "" {
		l.runGroupReleased(ctx, r.ConcurrencyGroup)
	}
	if ended {
		l.plans.forget(runID)
		l.log.Info("pipeline run ended", "pipeline", r.PipelineName, "run", r.ID, "number", r.Number, "status", r.Status)
		if runStatus(r) == jobstate.Success {
			l.pipelineCompleted(ctx, r)
		}
	}
	return nil
}

// containerBytes is the stored form of a job's container options.
func containerBytes(o *agentv1.ContainerOptions) []byte {
	if o == nil {
		return nil
	}
	b, _ := protojson.Marshal(o)
	return b
}
