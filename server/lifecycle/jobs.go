package lifecycle

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/jobstate"
	"github.com/go-arcade/arcade/core/pipeline"
	"github.com/go-arcade/arcade/server/store"
)

// CreateJob stores a new job from its definition (j's fields other than
// its state) as PENDING, attempt 1, and tells the dispatcher.
func (l *Lifecycle) CreateJob(ctx context.Context, j *store.Job) error {
	now := l.now()
	if j.ID == "" {
		j.ID = newID()
	}
	j.Status, j.Attempt, j.CreatedAt, j.UpdatedAt = jobstate.Name(jobstate.Pending), 1, now, now
	if err := l.store.CreateJob(ctx, j); err != nil {
		return err
	}
	l.fx.Wake()
	l.fx.JobEvent(j, jobv1.EventType_EVENT_TYPE_JOB_CREATED, "")
	l.log.Debug("job created", "job", j.ID, "name", j.Name, "selector", j.Selector)
	return nil
}

// EditJob changes the definition of a pending job: edit is given the stored
// job and may refuse (its error is returned as is).
func (l *Lifecycle) EditJob(ctx context.Context, id string, edit func(*store.Job) error) (*store.Job, error) {
	j, err := l.store.ModifyJob(ctx, id, func(j *store.Job) error {
		if j.Status != jobstate.Name(jobstate.Pending) {
			return refuse(ErrInvalidTransition, "job %s is %s: only a pending job can be updated", j.ID, j.Status)
		}
		if err := edit(j); err != nil {
			return err
		}
		j.UpdatedAt = l.now()
		return nil
	})
	if err != nil {
		return nil, err
	}
	l.fx.Wake()
	return j, nil
}

// Report is what an agent says of an attempt it runs.
type Report struct {
	AgentID string
	JobID   string
	Attempt int32
	// Status is RUNNING or a final status other than SKIPPED.
	Status jobstate.Status
	// Began is when the agent began the attempt, with RUNNING; zero when
	// it does not say.
	Began    time.Time
	ExitCode int32
	Message  string
	// Reason is the agent's typed reason of a FAILED attempt (a step
	// failed, the container engine was lost...); ReasonNone: a step.
	Reason jobstate.Reason
	// Artifacts are the files the attempt kept, with a final status.
	// JobID and Attempt are filled in; a zero CreatedAt becomes now.
	Artifacts []store.Artifact
	// Outputs are what a successful attempt set, of the names the job
	// declares; SecretOutputs those holding a secret.
	Outputs       map[string]string
	SecretOutputs []string
	// LogLines is how many log lines the attempt wrote, with a final
	// status: no line past it is taken afterwards (MayLog).
	LogLines int64
}

// Report applies an agent's report on an attempt leased to it: RUNNING
// confirms the attempt started, a final status ends it (or starts the next
// attempt when its retries allow). A repeated final report changes nothing.
// It returns the job as stored.
//
// A final result of an attempt that was taken from its agent (its lease
// expired after the grace, see Grace) comes too late to be applied: the
// server already acted on the loss (the next attempt may run elsewhere, or
// the job and its run failed and people were told). It is refused
// (ErrNotLeased) and recorded as the last line of that attempt's log.
func (l *Lifecycle) Report(ctx context.Context, rep Report) (*store.Job, error) {
	to := rep.Status
	now := l.now()
	var retried, changed bool
	var late *store.Job // the job as it stood when a late result came
	j, err := l.store.ModifyJob(ctx, rep.JobID, func(j *store.Job) error {
		lost := j.LostAttempt == rep.Attempt && j.LostAgentID == rep.AgentID && rep.AgentID != "" &&
			(j.Attempt != rep.Attempt || jobstate.Terminal(status(j)))
		if lost && jobstate.Terminal(to) {
			c := *j
			late = &c
			return refuse(ErrNotLeased, "job %s attempt %d was taken from this agent before its result came (%s); the result is recorded in the attempt's log, not applied",
				j.ID, rep.Attempt, lostBecause(j))
		}
		if j.AgentID != rep.AgentID || j.Attempt != rep.Attempt {
			return refuse(ErrNotLeased, "job %s attempt %d is not leased to this agent", j.ID, rep.Attempt)
		}
		from := status(j)
		if from == to && to != jobstate.Running {
			if rep.LogLines > j.LogLines {
				j.LogLines = rep.LogLines // a repeat may count lines the first did not
			}
			return nil // a repeated report
		}
		if err := jobstate.Check(from, to); err != nil {
			return refuse(ErrInvalidTransition, "job %s: %v", j.ID, err)
		}
		changed = true
		j.UpdatedAt = now
		if j.AcceptedAt.IsZero() {
			j.AcceptedAt = now
		}
		if to == jobstate.Running {
			// started_at becomes the moment the agent began, as it reports it.
			if t := rep.Began; !t.IsZero() && !t.Before(j.StartedAt) && !t.After(now) {
				j.StartedAt = t
			}
			j.LeaseExpiresAt = now.Add(l.cfg.LeaseTTL)
			return nil
		}
		if j.CancelRequested && to != jobstate.Success {
			to = jobstate.Cancelled
		}
		j.ExitCode = rep.ExitCode
		j.Message = rep.Message
		if to == jobstate.Success && len(rep.Outputs) > 0 {
			out, secret, err := keepOutputs(j, rep.Outputs, rep.SecretOutputs)
			if err != nil {
				return err
			}
			j.Outputs, j.SecretOutputs = out, secret
		}
		j.LogLines = rep.LogLines
		reason := reportedReason(to)
		if to == jobstate.Failed && rep.Reason != jobstate.ReasonNone {
			reason = rep.Reason
		}
		retried = finish(j, to, reason, now)
		return nil
	})
	if late != nil {
		l.recordLate(ctx, late, rep)
	}
	if err != nil {
		return nil, err
	}
	if changed && to == jobstate.Running {
		l.fx.JobEvent(j, jobv1.EventType_EVENT_TYPE_JOB_STARTED, "")
		if j.RunID != "" {
			// The run is running from its first job's start, not from the
			// next advance (its "running" state reaches the forge then).
			if err := l.AdvanceRun(ctx, j.RunID); err != nil && ctx.Err() == nil {
				l.log.Warn("advance pipeline run", "run", j.RunID, "job", j.ID, "err", err)
			}
		}
	}
	if changed && jobstate.Terminal(to) {
		if err := l.recordArtifacts(ctx, j.ID, rep.Attempt, rep.Artifacts); err != nil {
			return nil, err
		}
		l.log.Info("job attempt ended", "job", j.ID, "attempt", rep.Attempt, "status", jobstate.Name(to),
			"exit_code", rep.ExitCode, "agent", j.AgentName, "retried", retried)
		l.fx.Wake() // a slot is free
		l.jobEnded(ctx, j)
	}
	return j, nil
}

// reportedReason is the reason of an attempt its agent ended in status s.
func reportedReason(s jobstate.Status) jobstate.Reason {
	switch s {
	case jobstate.Failed:
		return jobstate.ReasonStepFailed
	case jobstate.Timeout:
		return jobstate.ReasonTimeout
	case jobstate.Cancelled:
		return jobstate.ReasonCancelled
	}
	return jobstate.ReasonNone
}

func (l *Lifecycle) recordArtifacts(ctx context.Context, jobID string, attempt int32, in []store.Artifact) error {
	var arts []store.Artifact
	now := l.now()
	for i, a := range in {
		if a.Path == "" {
			return refuse(ErrInvalidArgument, "artifacts[%d].path: must not be empty", i)
		}
		if a.CreatedAt.IsZero() {
			a.CreatedAt = now
		}
		a.JobID, a.Attempt = jobID, attempt
		arts = append(arts, a)
	}
	if err := l.store.AddArtifacts(ctx, arts); err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	return nil
}

// CancelJob cancels a job: a pending one ends at once; a running one is
// stopped by its agent, which reports CANCELLED. reason defaults to
// "cancelled by request".
func (l *Lifecycle) CancelJob(ctx context.Context, id, reason string) (*store.Job, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		reason = "cancelled by request"
	}
	now := l.now()
	j, err := l.store.ModifyJob(ctx, id, func(j *store.Job) error {
		switch status(j) {
		case jobstate.Pending:
			j.Status = jobstate.Name(jobstate.Cancelled)
			j.EndReason = jobstate.ReasonCancelled
			j.FinishedAt = now
		case jobstate.Running:
			j.CancelRequested = true
		default:
			return refuse(ErrInvalidTransition, "job %s already ended (%s)", j.ID, j.Status)
		}
		j.Message = reason
		j.UpdatedAt = now
		return nil
	})
	if err != nil {
		return nil, err
	}
	if j.AgentID != "" && j.CancelRequested {
		l.fx.Cancel(j.AgentID)
	}
	if jobstate.Terminal(status(j)) {
		l.jobEnded(ctx, j)
	}
	l.log.Info("job cancel requested", "job", j.ID, "status", j.Status, "reason", reason)
	return j, nil
}

// RetryJob runs a job that ended without success again, as its next
// attempt; the logs of earlier attempts stay.
func (l *Lifecycle) RetryJob(ctx context.Context, id string) (*store.Job, error) {
	j, err := l.store.ModifyJob(ctx, id, func(j *store.Job) error {
		if !jobstate.CanRetryManually(status(j)) {
			return refuse(ErrInvalidTransition, "job %s is %s: only a failed, cancelled or timed-out job can be retried", j.ID, j.Status)
		}
		nextAttempt(j)
		j.Message = "retried by request"
		j.UpdatedAt = l.now()
		return nil
	})
	if err != nil {
		return nil, err
	}
	l.fx.Wake()
	l.fx.JobEvent(j, jobv1.EventType_EVENT_TYPE_JOB_CREATED, j.Message)
	return j, nil
}

// FailClaimed ends a job just claimed for an agent that cannot run (a
// plugin its steps use is gone), or starts its next attempt when its retries
// allow; msg says why.
func (l *Lifecycle) FailClaimed(ctx context.Context, j *store.Job, msg string) {
	now := l.now()
	failed, err := l.store.ModifyJob(context.WithoutCancel(ctx), j.ID, func(cur *store.Job) error {
		if cur.Status != jobstate.Name(jobstate.Running) || cur.Attempt != j.Attempt || cur.AgentID != j.AgentID {
			return store.ErrConflict
		}
		cur.UpdatedAt = now
		cur.Message = msg
		cur.ExitCode = -1
		finish(cur, jobstate.Failed, jobstate.ReasonUnrunnable, now)
		return nil
	})
	if err != nil {
		l.log.Warn("job that cannot run not ended", "job", j.ID, "err", err)
		return
	}
	l.log.Warn("job cannot run", "job", j.ID, "reason", msg)
	l.fx.Wake()
	l.jobEnded(ctx, failed)
}

// finish ends the current attempt of j in status to for reason, or starts
// the next attempt when the retry budget allows; it reports whether it
// retried.
func finish(j *store.Job, to jobstate.Status, reason jobstate.Reason, now time.Time) bool {
	j.LeaseExpiresAt = time.Time{}
	if jobstate.ShouldRetry(to, j.Attempt, j.Retries) {
		j.Message = fmt.Sprintf("attempt %d ended %s (%s); retrying", j.Attempt, jobstate.Name(to), j.Message)
		nextAttempt(j)
		return true
	}
	j.Status = jobstate.Name(to)
	j.EndReason = reason
	j.FinishedAt = now
	return false
}

// nextAttempt turns j into the next pending attempt.
func nextAttempt(j *store.Job) {
	j.Status = jobstate.Name(jobstate.Pending)
	j.Attempt++
	j.AgentID, j.AgentName = "", ""
	j.StartedAt, j.FinishedAt, j.LeaseExpiresAt = time.Time{}, time.Time{}, time.Time{}
	j.ExitCode = 0
	j.LogLines = 0
	j.EndReason = jobstate.ReasonNone
	j.CancelRequested = false
}

// jobEnded runs what follows the end of a job attempt: the followers of its
// log are told, an event is published, and its pipeline run moves on.
func (l *Lifecycle) jobEnded(ctx context.Context, j *store.Job) {
	if j == nil {
		return
	}
	l.fx.AttemptEnded(j)
	typ := jobv1.EventType_EVENT_TYPE_JOB_FINISHED
	if status(j) == jobstate.Cancelled {
		typ = jobv1.EventType_EVENT_TYPE_JOB_CANCELLED
	}
	l.fx.JobEvent(j, typ, j.Message)
	if j.ConcurrencyGroup != "" && jobstate.Terminal(status(j)) {
		l.jobGroupChanged(ctx, j.ConcurrencyGroup, nil, false)
	}
	if j.RunID == "" {
		return
	}
	if err := l.AdvanceRun(ctx, j.RunID); err != nil && ctx.Err() == nil {
		l.log.Warn("advance pipeline run", "run", j.RunID, "job", j.ID, "err", err)
	}
}

// keepOutputs checks the outputs an attempt reports against what its job
// declares and bounds.
func keepOutputs(j *store.Job, in map[string]string, secret []string) (map[string]string, []string, error) {
	size := 0
	out := make(map[string]string, len(in))
	for k, v := range in {
		if !slices.Contains(j.OutputNames, k) {
			return nil, nil, refuse(ErrInvalidArgument, "outputs[%q]: job %s declares no such output", k, j.Name)
		}
		if size += len(k) + len(v); size > pipeline.MaxOutputBytes {
			return nil, nil, refuse(ErrInvalidArgument, "outputs: more than %d bytes", pipeline.MaxOutputBytes)
		}
		out[k] = v
	}
	var keep []string
	for _, k := range secret {
		if _, ok := out[k]; ok && !slices.Contains(keep, k) {
			keep = append(keep, k)
		}
	}
	slices.Sort(keep)
	return out, keep, nil
}
