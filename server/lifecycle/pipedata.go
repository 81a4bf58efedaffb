package lifecycle

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/expr"
	"github.com/go-arcade/arcade/core/jobstate"
	"github.com/go-arcade/arcade/core/pipeline"
	"github.com/go-arcade/arcade/server/store"
)

// This file holds what pipelines carry between jobs and around them, as
// runs move: a run's definition expanded when it starts, its concurrency
// group, the data of each job filled in when it is created (if:, env from
// upstream outputs, its cache, inputs and outputs), fail_fast matrices,
// approval jobs, and the concurrency groups of jobs.

// DefaultApprovalTimeout is how long an approval job waits when neither its
// timeout nor the server's configuration says.
const DefaultApprovalTimeout = 24 * time.Hour

// expandRun sets the definition a run follows: its pipeline's, expanded
// (includes, templates, matrices), and the run's concurrency group. The
// definition was checked, within the server's limits, when it was stored;
// it is not held to them (or to the defaults) again. One with nothing to
// expand is kept as stored (planning and encoding a large pipeline again
// would only cost time).
func expandRun(ctx context.Context, r *store.PipelineRun, spec *jobv1.PipelineDetail) (*jobv1.PipelineDetail, error) {
	if !pipeline.IsExpanded(spec) {
		plan, err := pipeline.Replan(ctx, spec)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, refuse(ErrInvalidArgument, "pipeline %s: %v", r.PipelineName, err)
		}
		spec = plan.Spec
		r.Spec = EncodeSpec(spec)
	}
	if c := spec.GetConcurrency(); c != nil {
		env := maps.Clone(spec.GetEnv())
		if env == nil {
			env = map[string]string{}
		}
		maps.Copy(env, r.Params)
		g, err := fill(c.GetGroup(), serverContext{vals: runValues(r), env: env})
		if err != nil {
			return nil, refuse(ErrInvalidArgument, "concurrency.group: %v", err)
		}
		r.ConcurrencyGroup = strings.TrimSpace(g)
	}
	return spec, nil
}

// runValues are the arcade.* names of a run.
func runValues(r *store.PipelineRun) map[string]string {
	return map[string]string{
		"arcade.pipeline":   r.PipelineName,
		"arcade.run_number": strconv.FormatInt(r.Number, 10),
		"arcade.branch":     r.Branch,
		"arcade.trigger":    r.Trigger,
	}
}

// serverContext is what expressions evaluated by the server read.
type serverContext struct {
	vals map[string]string // arcade.*, matrix.*
	env  map[string]string
	jobs map[string]*store.Job
}

func (c serverContext) Lookup(p []string) (expr.Value, bool) {
	switch {
	case len(p) == 2 && p[0] == "env":
		v, ok := c.env[p[1]]
		return expr.Str(v), ok
	case len(p) >= 3 && p[0] == "jobs":
		j := c.jobs[p[1]]
		if j == nil {
			return expr.Value{}, false
		}
		if len(p) == 3 && p[2] == "status" {
			return expr.Str(j.Status), true
		}
		if len(p) == 4 && p[2] == "outputs" {
			v, ok := j.Outputs[p[3]]
			return expr.Str(v), ok
		}
		return expr.Value{}, false
	}
	v, ok := c.vals[strings.Join(p, ".")]
	return expr.Str(v), ok
}

func (serverContext) HashFiles([]string) (string, error) {
	return "", fmt.Errorf("hashFiles is evaluated on the agent only")
}

func fill(s string, c expr.Context) (string, error) {
	if !expr.HasExpr(s) {
		return s, nil
	}
	t, err := expr.ParseTemplate(s)
	if err != nil {
		return "", err
	}
	return t.Eval(c)
}

// fillJob fills in the data of a pipeline job being created, from the
// run's jobs so far (by name): its env values that read expressions, its
// if:, its concurrency group and hold, its cache, inputs, outputs and the
// names its agent-side expressions read. It returns why the job is not to
// run ("" when it is): its if: is false.
func (l *Lifecycle) fillJob(r *store.PipelineRun, n *pipeline.Node, byName map[string]*store.Job, j *store.Job, now time.Time) (skip string, err error) {
	pj := n.Job
	vals := runValues(r)
	if mi := pj.GetMatrixInstance(); mi != nil {
		for _, v := range mi.GetValues() {
			vals["matrix."+v.GetName()] = v.GetValue()
		}
		j.Matrix, _ = protojson.Marshal(mi)
	}
	ctx := serverContext{vals: vals, env: j.Env, jobs: byName}
	filled := map[string]string{}
	for k, v := range j.Env {
		if !expr.HasExpr(v) {
			continue
		}
		out, err := fill(v, ctx)
		if err != nil {
			return "", fmt.Errorf("env %s: %v", k, err)
		}
		filled[k] = out
		for _, x := range mustTemplate(v).Exprs() {
			for _, ref := range x.Refs() {
				if len(ref.Path) == 4 && ref.Path[0] == "jobs" && holdsSecret(byName[ref.Path[1]], ref.Path[3]) {
					j.SecretEnv = append(j.SecretEnv, k)
				}
			}
		}
	}
	maps.Copy(j.Env, filled)
	slices.Sort(j.SecretEnv)
	j.SecretEnv = slices.Compact(j.SecretEnv)
	if cond := strings.TrimSpace(pj.GetIf()); cond != "" {
		x, err := expr.Parse(cond)
		if err != nil {
			return "", fmt.Errorf("if: %v", err)
		}
		v, err := x.Eval(ctx)
		if err != nil {
			return "", fmt.Errorf("if: %v", err)
		}
		if !v.Truthy() {
			return fmt.Sprintf("skipped: if: %s is false", cond), nil
		}
	}
	if c := pj.GetConcurrency(); c != nil {
		g, err := fill(c.GetGroup(), ctx)
		if err != nil {
			return "", fmt.Errorf("concurrency.group: %v", err)
		}
		j.ConcurrencyGroup = strings.TrimSpace(g)
		if j.ConcurrencyGroup != "" {
			j.Hold = store.HoldConcurrency
		}
	}
	if pj.GetType() == jobv1.JobType_JOB_TYPE_APPROVAL {
		j.Type, j.Hold = store.HoldApproval, store.HoldApproval
		wait := l.cfg.ApprovalTimeout
		if d := pj.GetTimeout().AsDuration(); d > 0 {
			wait = d
		}
		if wait <= 0 {
			wait = DefaultApprovalTimeout
		}
		j.ApprovalExpiresAt = now.Add(wait)
		j.TimeoutMS = 0
		j.Message = "waiting for approval until " + j.ApprovalExpiresAt.UTC().Format(time.RFC3339)
	}
	if c := pj.GetCache(); c != nil {
		j.Cache, _ = protojson.Marshal(c)
	}
	j.NeedsArtifacts = slices.Clone(pj.GetNeedsArtifacts())
	j.OutputNames = slices.Clone(pj.GetOutputs())
	j.ExprContext = vals
	return "", nil
}

func mustTemplate(s string) *expr.Template {
	t, err := expr.ParseTemplate(s)
	if err != nil {
		return &expr.Template{}
	}
	return t
}

// holdsSecret reports whether output of job j holds a secret.
func holdsSecret(j *store.Job, output string) bool {
	return j != nil && slices.Contains(j.SecretOutputs, output)
}

// failFast stops what a fail_fast matrix with a failed combination must
// not go on with: its pending combinations are cancelled, its running ones
// told to stop, and those not created yet recorded cancelled. It returns
// the agents to tell.
func failFast(r *store.PipelineRun, spec *jobv1.PipelineDetail, plan *pipeline.Plan, outcomes map[string]pipeline.Outcome,
	byName map[string]*store.Job, ch *store.RunChange, now time.Time) (agents []string, dirty bool) {
	for _, name := range plan.FailFast(outcomes) {
		n := plan.Node(name)
		group := n.Job.GetMatrixInstance().GetGroup()
		why := fmt.Sprintf("cancelled: another combination of matrix %s failed (fail_fast)", group)
		j := byName[name]
		switch {
		case j == nil:
			j = newRunJob(r, spec, n, now)
			j.Status, j.EndReason, j.FinishedAt, j.Message = jobstate.Name(jobstate.Cancelled), jobstate.ReasonCancelled, now, why
			ch.Insert = append(ch.Insert, j)
			outcomes[name] = pipeline.Cancelled
		case status(j) == jobstate.Pending:
			j.Status, j.EndReason, j.FinishedAt, j.Message, j.UpdatedAt = jobstate.Name(jobstate.Cancelled), jobstate.ReasonCancelled, now, why, now
			ch.Update = append(ch.Update, j)
			outcomes[name] = pipeline.Cancelled
		case status(j) == jobstate.Running && !j.CancelRequested:
			j.CancelRequested, j.Message, j.UpdatedAt = true, why, now
			ch.Update = append(ch.Update, j)
			agents = append(agents, j.AgentID)
		default:
			continue
		}
		dirty = true
	}
	return agents, dirty
}

// acquireRunGroup tries to let a run waiting for its concurrency group
// hold it; it reports whether it does, and otherwise records why it waits.
func (l *Lifecycle) acquireRunGroup(ctx context.Context, runID string) (bool, error) {
	held, other, err := l.store.AcquireRunGroup(ctx, runID)
	if err != nil || held {
		return held, err
	}
	why := fmt.Sprintf("waiting for concurrency group %s", "")
	_, err = l.store.ModifyRun(ctx, runID, func(r *store.PipelineRun, _ []*store.Job) (store.RunChange, error) {
		why = fmt.Sprintf("waiting for concurrency group %s (held by %s run #%d)", r.ConcurrencyGroup, other.PipelineName, other.Number)
		if other.ConcurrencyHeld == false {
			why = fmt.Sprintf("waiting for concurrency group %s (%s run #%d waits before it)", r.ConcurrencyGroup, other.PipelineName, other.Number)
		}
		if r.Message == why || pipeline.RunTerminal(runStatus(r)) {
			return store.RunChange{}, store.ErrUnchanged
		}
		r.Message, r.UpdatedAt = why, l.now()
		return store.RunChange{}, nil
	})
	return false, err
}

// runGroupReleased lets the next run of a concurrency group go once a run
// of it ended.
func (l *Lifecycle) runGroupReleased(ctx context.Context, group string) {
	runs, err := l.store.GroupRuns(ctx, group)
	if err != nil {
		l.log.Warn("concurrency group", "group", group, "err", err)
		return
	}
	for _, r := range runs {
		if !r.ConcurrencyHeld {
			if err := l.AdvanceRun(ctx, r.ID); err != nil && ctx.Err() == nil {
				l.log.Warn("advance pipeline run", "run", r.ID, "err", err)
			}
			return
		}
	}
}

// cancelOlderRuns stops the runs of r's concurrency group older than r
// (cancel_in_progress).
func (l *Lifecycle) cancelOlderRuns(ctx context.Context, r *store.PipelineRun) {
	runs, err := l.store.GroupRuns(ctx, r.ConcurrencyGroup)
	if err != nil {
		l.log.Warn("concurrency group", "group", r.ConcurrencyGroup, "err", err)
		return
	}
	for _, o := range runs {
		if o.ID == r.ID || !o.CreatedAt.Before(r.CreatedAt) && !(o.CreatedAt.Equal(r.CreatedAt) && o.ID < r.ID) {
			continue
		}
		reason := fmt.Sprintf("cancelled by %s run #%d of concurrency group %s (cancel_in_progress)", r.PipelineName, r.Number, r.ConcurrencyGroup)
		if _, err := l.StopRun(ctx, o.ID, reason); err != nil && ctx.Err() == nil {
			l.log.Warn("cancel an older run of a concurrency group", "run", o.ID, "err", err)
		}
	}
}

// jobGroupChanged lets the next job of a concurrency group go when none of
// it runs; with cancel_in_progress (newest, a job just created), the
// group's older jobs are cancelled first.
func (l *Lifecycle) jobGroupChanged(ctx context.Context, group string, newest *store.Job, cancelOlder bool) {
	if group == "" {
		return
	}
	if cancelOlder && newest != nil {
		jobs, err := l.store.GroupJobs(ctx, group)
		if err != nil {
			l.log.Warn("concurrency group", "group", group, "err", err)
		}
		for _, o := range jobs {
			if o.ID == newest.ID || !o.CreatedAt.Before(newest.CreatedAt) {
				continue
			}
			reason := fmt.Sprintf("cancelled by job %s of concurrency group %s (cancel_in_progress)", newest.Name, group)
			if _, err := l.CancelJob(ctx, o.ID, reason); err != nil && ctx.Err() == nil {
				l.log.Debug("cancel an older job of a concurrency group", "job", o.ID, "err", err)
			}
		}
	}
	released, _, err := l.store.ReleaseGroupJob(ctx, group, l.now())
	if err != nil {
		l.log.Warn("concurrency group", "group", group, "err", err)
		return
	}
	if released != nil {
		l.log.Info("job let go by its concurrency group", "job", released.ID, "name", released.Name, "group", group)
		l.fx.Wake()
	}
}

// housekeepData ends approvals past their time and lets held jobs of
// free concurrency groups go (what a server that died between a job's end
// and the release left).
func (l *Lifecycle) housekeepData(ctx context.Context) {
	ids, err := l.store.ExpiredApprovals(ctx, l.now())
	if err != nil {
		l.log.Warn("expired approvals", "err", err)
	}
	for _, id := range ids {
		if _, err := l.decide(ctx, id, decisionTimedOut, "", ""); err != nil && ctx.Err() == nil {
			l.log.Debug("approval timeout", "job", id, "err", err)
		}
	}
	groups, err := l.store.HeldGroups(ctx)
	if err != nil {
		l.log.Warn("held concurrency groups", "err", err)
	}
	for _, g := range groups {
		l.jobGroupChanged(ctx, g, nil, false)
	}
}

// The decisions on an approval job.
const (
	decisionApproved = "approved"
	decisionRejected = "rejected"
	decisionTimedOut = "timed_out"
)

// ApproveJob approves the approval job name of run runID on behalf of by
// (a token's name): the job succeeds and the run goes on.
func (l *Lifecycle) ApproveJob(ctx context.Context, runID, name, by, comment string) (*store.Job, error) {
	return l.decideByName(ctx, runID, name, decisionApproved, by, comment)
}

// RejectJob rejects the approval job name of run runID: the job fails.
func (l *Lifecycle) RejectJob(ctx context.Context, runID, name, by, comment string) (*store.Job, error) {
	return l.decideByName(ctx, runID, name, decisionRejected, by, comment)
}

func (l *Lifecycle) decideByName(ctx context.Context, runID, name, decision, by, comment string) (*store.Job, error) {
	j, err := l.store.RunJobByName(ctx, runID, name)
	if err != nil {
		return nil, err
	}
	if j.Type != store.HoldApproval {
		return nil, refuse(ErrInvalidArgument, "job: %s is not an approval job", name)
	}
	return l.decide(ctx, j.ID, decision, by, comment)
}

func (l *Lifecycle) decide(ctx context.Context, id, decision, by, comment string) (*store.Job, error) {
	now := l.now()
	j, err := l.store.ModifyJob(ctx, id, func(j *store.Job) error {
		if j.Type != store.HoldApproval {
			return refuse(ErrInvalidArgument, "job %s is not an approval job", j.Name)
		}
		if status(j) != jobstate.Pending || j.Hold != store.HoldApproval {
			what := j.ApprovalDecision
			if what == "" {
				what = j.Status
			}
			return refuse(ErrInvalidTransition, "approval %s was already decided: %s", j.Name, what)
		}
		if decision == decisionTimedOut && now.Before(j.ApprovalExpiresAt) {
			return refuse(ErrInvalidTransition, "approval %s has not timed out", j.Name)
		}
		j.Hold, j.ApprovalDecision, j.ApprovalBy, j.ApprovalComment, j.ApprovalAt = store.HoldNone, decision, by, comment, now
		j.UpdatedAt, j.StartedAt, j.FinishedAt = now, now, now
		switch decision {
		case decisionApproved:
			j.Status, j.Message = jobstate.Name(jobstate.Success), "approved by "+by
		case decisionRejected:
			j.Status, j.EndReason, j.Message = jobstate.Name(jobstate.Failed), jobstate.ReasonRejected, "rejected by "+by
		default:
			j.Status, j.EndReason = jobstate.Name(jobstate.Timeout), jobstate.ReasonTimeout
			j.Message = "no decision before " + j.ApprovalExpiresAt.UTC().Format(time.RFC3339) + ": the approval timed out"
		}
		if comment != "" {
			j.Message += ": " + comment
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	l.log.Info("approval decided", "job", j.ID, "name", j.Name, "run", j.RunID, "decision", decision, "by", by)
	l.jobEnded(ctx, j)
	return j, nil
}
