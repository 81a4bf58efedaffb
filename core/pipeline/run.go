package pipeline

import (
	"fmt"
	"maps"
	"time"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/jobstate"
)

// Outcome is where a job of a run stands, as the plan sees it.
type Outcome int

const (
	// Waiting: not created yet (its dependencies are not done).
	Waiting Outcome = iota
	// Active: pending, running, or ended badly with a retry to come.
	Active
	Succeeded
	// Failed: failed or timed out for good.
	Failed
	// Cancelled: cancelled by request.
	Cancelled
	Skipped
)

// Done reports whether the outcome is final.
func (o Outcome) Done() bool { return o >= Succeeded }

func (o Outcome) bad() bool { return o == Failed || o == Cancelled }

// OutcomeOf maps a job's final status to an outcome; non-final statuses are
// Active.
func OutcomeOf(s jobstate.Status) Outcome {
	switch s {
	case jobstate.Success:
		return Succeeded
	case jobstate.Failed, jobstate.Timeout:
		return Failed
	case jobstate.Cancelled:
		return Cancelled
	case jobstate.Skipped:
		return Skipped
	}
	return Active
}

// Step is what a run does next.
type Step struct {
	// Start are the jobs to create now, in plan order.
	Start []string
	// Skip are the jobs that will not run, with the reason.
	Skip map[string]string
	// Done is set when every job is final; Status is then the run's end:
	// FAILED when any job failed, timed out or was cancelled, else SUCCESS.
	Done   bool
	Status jobstate.Status
}

// Next decides, from the outcome of each job (missing names are Waiting),
// which jobs start and which are skipped. A waiting job is decided once all
// its Deps are final:
//   - on_success (the default) runs when nothing upstream of it failed;
//     a dependency that was skipped because its own condition did not apply
//     (an on_failure job in a good run) does not block it;
//   - on_failure runs when something upstream failed;
//   - always runs in any case (clean-up).
//
// Otherwise the job is skipped. Skips are decided in the same call, so a
// failure skips its whole downstream at once. One call is linear in jobs +
// edges: whether a vertex is final and the first failure upstream of it are
// carried along the topological order, never collected per job.
func (p *Plan) Next(outcomes map[string]Outcome) Step {
	step := Step{Skip: map[string]string{}}
	cur := make([]Outcome, len(p.deps))
	for v := 0; v < p.jobs; v++ {
		cur[v] = outcomes[p.names[v]]
	}
	// final[v]: the vertex is done (a barrier: every job before it is);
	// failed[v]: the first job upstream of v that failed, "" if none.
	final := make([]bool, len(p.deps))
	failed := make([]string, len(p.deps))
	for _, v := range p.order {
		ready := true
		for _, d := range p.deps[v] {
			if !final[d] {
				ready = false
			}
			if failed[v] != "" {
				continue
			}
			if d < int32(p.jobs) && cur[d].bad() {
				failed[v] = p.names[d]
			} else {
				failed[v] = failed[d]
			}
		}
		if int(v) >= p.jobs { // a barrier
			final[v] = ready
			continue
		}
		if cur[v] == Waiting && ready {
			n := p.byName[p.names[v]]
			run, reason := false, ""
			switch n.Job.GetWhen() {
			case jobv1.RunCondition_RUN_CONDITION_ALWAYS:
				run = true
			case jobv1.RunCondition_RUN_CONDITION_ON_FAILURE:
				run = failed[v] != ""
				reason = "skipped: nothing upstream failed (when: on_failure)"
			default:
				run = failed[v] == ""
				reason = fmt.Sprintf("skipped: %s did not succeed", failed[v])
			}
			if run {
				step.Start = append(step.Start, n.Name)
				cur[v] = Active
			} else {
				step.Skip[n.Name] = reason
				cur[v] = Skipped
			}
		}
		final[v] = cur[v].Done()
	}
	step.Done, step.Status = true, jobstate.Success
	for v := 0; v < p.jobs; v++ {
		switch o := cur[v]; {
		case !o.Done():
			step.Done = false
		case o.bad():
			step.Status = jobstate.Failed
		}
	}
	if !step.Done {
		step.Status = 0
	}
	return step
}

// EnvFor merges the env of a job: pipeline, then stage, then job, then the
// run's parameters (trigger parameters and webhook env); later wins.
func EnvFor(p *jobv1.PipelineDetail, n *Node, params map[string]string) map[string]string {
	env := map[string]string{}
	maps.Copy(env, p.GetEnv())
	if st := p.GetStages(); n.StageIndex < len(st) && st[n.StageIndex].GetName() == n.Stage {
		maps.Copy(env, st[n.StageIndex].GetEnv())
	}
	maps.Copy(env, n.Job.GetEnv())
	maps.Copy(env, params)
	return env
}

// RetryAfter decides whether an attempt (from 1) of job j that ended with
// status s (lost: its agent, or its container engine, vanished) runs again,
// and after how long. With
// no policy a job runs once. A policy with max_attempts > 1 and no outcome
// chosen retries every bad outcome. The backoff doubles with each attempt,
// capped at one hour.
func RetryAfter(j *jobv1.PipelineJob, s jobstate.Status, lost bool, attempt int32) (time.Duration, bool) {
	r := j.GetRetry()
	if r == nil || attempt >= r.GetMaxAttempts() {
		return 0, false
	}
	all := !r.GetOnFailure() && !r.GetOnTimeout() && !r.GetOnAgentLost()
	ok := false
	switch {
	case lost:
		ok = all || r.GetOnAgentLost()
	case s == jobstate.Failed:
		ok = all || r.GetOnFailure()
	case s == jobstate.Timeout:
		ok = all || r.GetOnTimeout()
	}
	if !ok {
		return 0, false
	}
	wait := r.GetBackoff().AsDuration()
	for i := int32(1); i < attempt && wait < time.Hour; i++ {
		wait *= 2
	}
	return min(wait, time.Hour), true
}

// The run life cycle: pending → running → success | failed | cancelled;
// a pending run may also be cancelled before anything starts.
var runTransitions = map[jobstate.Status][]jobstate.Status{
	jobstate.Pending: {jobstate.Running, jobstate.Cancelled},
	jobstate.Running: {jobstate.Success, jobstate.Failed, jobstate.Cancelled},
}

// RunTransitionError is a run status change the life cycle forbids.
type RunTransitionError struct{ From, To jobstate.Status }

func (e *RunTransitionError) Error() string {
	return fmt.Sprintf("run cannot go from %s to %s", jobstate.Name(e.From), jobstate.Name(e.To))
}

// CheckRun returns a *RunTransitionError unless a run in status from may
// move to to.
func CheckRun(from, to jobstate.Status) error {
	for _, next := range runTransitions[from] {
		if next == to {
			return nil
		}
	}
	return &RunTransitionError{From: from, To: to}
}

// RunTerminal reports whether a run status is final.
func RunTerminal(s jobstate.Status) bool {
	return s == jobstate.Success || s == jobstate.Failed || s == jobstate.Cancelled
}
