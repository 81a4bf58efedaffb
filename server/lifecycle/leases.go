package lifecycle

import (
	"context"
	"fmt"
	"time"

	"github.com/go-arcade/arcade/core/jobstate"
	"github.com/go-arcade/arcade/server/store"
)

// The grace. A lease says an agent was heard from lately; it only means
// the agent is gone when the server was there to hear it and could store
// what it heard. So no lease expires, no agent goes offline and no job is
// ended as overdue while the server is in its grace: for a full lease
// period after the life cycle starts (a server start, or restart) and after
// the last query the store failed for want of a working database
// (store.Trouble: unreachable, full, failing I/O). Agents that come back
// within it renew their leases with their first heartbeat and report what
// their jobs did; an agent that stays silent loses its jobs once the grace
// is over.

// Grace reports whether now falls in the grace, and when the grace ends.
func (l *Lifecycle) Grace(now time.Time) (bool, time.Time) {
	l.graceMu.Lock()
	defer l.graceMu.Unlock()
	in := now.Before(l.graceUntil)
	if !in && l.troubled {
		l.troubled = false
		l.log.Info("the grace after the database failed is over: leases expire again", "grace_until", l.graceUntil)
	}
	return in, l.graceUntil
}

// StoreTrouble records that the store failed at the time at for want of a
// working database (err says how): the grace lasts until a full lease
// period after it.
func (l *Lifecycle) StoreTrouble(at time.Time, err error) {
	until := at.Add(l.cfg.LeaseTTL)
	l.graceMu.Lock()
	if until.After(l.graceUntil) {
		l.graceUntil = until
	}
	first := !l.troubled
	l.troubled = true
	l.graceMu.Unlock()
	if first {
		// Said once per grace, not for every failed query.
		l.log.Warn("the database failed; no lease expires before agents had a full lease period to be heard",
			"grace_until", until, "err", err)
	}
}

// ExpireLeases takes the running jobs whose lease ended before now away
// from their agents (see LoseJob), as lost with their agent; it does
// nothing in the grace.
func (l *Lifecycle) ExpireLeases(ctx context.Context, now time.Time) error {
	if in, _ := l.Grace(now); in {
		return nil
	}
	expired, err := l.store.ExpiredLeases(ctx, now)
	if err != nil {
		return err
	}
	for _, j := range expired {
		l.LoseJob(ctx, j, jobstate.ReasonAgentLost, "agent lost: lease expired")
	}
	return nil
}

// LoseAgentJobs takes every job an agent runs away from it (see LoseJob):
// the agent unregistered (reason ReasonAgentLost) or was revoked
// (ReasonAgentRevoked). It returns how many jobs the agent ran.
func (l *Lifecycle) LoseAgentJobs(ctx context.Context, agentID string, reason jobstate.Reason, msg string) (int, error) {
	running, err := l.store.RunningJobs(ctx, agentID)
	if err != nil {
		return 0, err
	}
	for _, j := range running {
		l.LoseJob(ctx, j, reason, msg)
	}
	return len(running), nil
}

// LoseJob takes running attempt j away from its agent for reason (msg says
// it to people). An attempt its agent never started goes back to the queue
// as the same attempt; one whose cancel was asked for ends CANCELLED; any
// other fails, which counts against its retry budget like any failure
// (the next attempt is queued when the budget allows). Nothing changes when
// the attempt moved on meanwhile.
func (l *Lifecycle) LoseJob(ctx context.Context, j *store.Job, reason jobstate.Reason, msg string) {
	now := l.now()
	var retried, unstarted bool
	lost, err := l.store.ModifyJob(ctx, j.ID, func(cur *store.Job) error {
		if cur.Status != jobstate.Name(jobstate.Running) || cur.Attempt != j.Attempt {
			return fmt.Errorf("changed meanwhile: %w", store.ErrConflict)
		}
		cur.UpdatedAt = now
		if cur.AcceptedAt.IsZero() && !cur.CancelRequested {
			// The agent never said it started the job (its assignment was
			// lost, with a server replica say): nothing ran, so the job goes
			// back to the queue as the same attempt.
			unstarted = true
			cur.Message = fmt.Sprintf("handed to agent %s, which never started it (%s); back in the queue", cur.AgentName, msg)
			cur.Status = jobstate.Name(jobstate.Pending)
			cur.AgentID, cur.AgentName = "", ""
			cur.StartedAt, cur.LeaseExpiresAt = time.Time{}, time.Time{}
			return nil
		}
		// A result its agent sends late is recorded, not applied (Report).
		cur.LostAttempt, cur.LostAgentID = cur.Attempt, cur.AgentID
		if cur.CancelRequested {
			cur.Status = jobstate.Name(jobstate.Cancelled)
			cur.EndReason = jobstate.ReasonCancelled
			cur.FinishedAt = now
			cur.Message += " (" + msg + ")"
			return nil
		}
		// A lost agent counts like a failure against the retry budget.
		cur.Message = msg
		cur.ExitCode = -1
		retried = finish(cur, jobstate.Failed, reason, now)
		if retried {
			cur.Message = fmt.Sprintf("attempt %d: %s; requeued", cur.Attempt-1, msg)
		}
		return nil
	})
	if err != nil {
		l.log.Debug("lost job not requeued", "job", j.ID, "err", err)
		return
	}
	if unstarted {
		l.log.Warn("job never started by its agent; back in the queue", "job", j.ID, "agent", j.AgentName, "reason", msg)
		l.fx.Wake()
		return
	}
	l.log.Warn("job taken from its agent", "job", j.ID, "agent", j.AgentName, "reason", msg, "requeued", retried)
	l.fx.Cancel(j.AgentID)
	l.fx.Wake()
	l.jobEnded(ctx, lost)
}

// EndOverdue ends as TIMEOUT the running jobs that ran more than the
// timeout grace past their timeout at now without their agent reporting
// them; it does nothing in the lease grace (see Grace), when their agents
// may not have been heard.
func (l *Lifecycle) EndOverdue(ctx context.Context, now time.Time) error {
	if in, _ := l.Grace(now); in {
		return nil
	}
	running, err := l.store.RunningJobs(ctx, "")
	if err != nil {
		return err
	}
	for _, j := range running {
		if j.TimeoutMS <= 0 || j.CancelRequested {
			continue
		}
		limit := time.Duration(j.TimeoutMS) * time.Millisecond
		if now.Sub(j.StartedAt) > limit+l.cfg.TimeoutGrace {
			l.endOverdue(ctx, j, limit)
		}
	}
	return nil
}

func (l *Lifecycle) endOverdue(ctx context.Context, j *store.Job, limit time.Duration) {
	now := l.now()
	overdue, err := l.store.ModifyJob(ctx, j.ID, func(cur *store.Job) error {
		if cur.Status != jobstate.Name(jobstate.Running) || cur.Attempt != j.Attempt {
			return store.ErrConflict
		}
		cur.UpdatedAt = now
		cur.Message = fmt.Sprintf("timed out after %s (ended by the server: the agent did not stop it)", limit)
		cur.ExitCode = -1
		finish(cur, jobstate.Timeout, jobstate.ReasonTimeout, now)
		return nil
	})
	if err != nil {
		return
	}
	l.fx.Cancel(j.AgentID)
	l.fx.Wake()
	l.jobEnded(ctx, overdue)
}

// ExtendLeases renews, from now, the leases of the jobs an agent says it
// runs (a heartbeat); jobs no longer leased to it are left alone.
func (l *Lifecycle) ExtendLeases(ctx context.Context, agentID string, running []string, now time.Time) error {
	return l.store.ExtendLeases(ctx, agentID, running, now.Add(l.cfg.LeaseTTL))
}

// JobsToStop lists the jobs an agent says it runs that it should not:
// cancelled ones, and ones no longer leased to it (the server gave up on
// them).
func (l *Lifecycle) JobsToStop(ctx context.Context, agentID string, running []string) ([]string, error) {
	if len(running) == 0 {
		return nil, nil
	}
	mine, err := l.store.RunningJobs(ctx, agentID) // one query, not one per job
	if err != nil {
		return nil, err
	}
	keep := make(map[string]bool, len(mine))
	for _, j := range mine {
		keep[j.ID] = !j.CancelRequested
	}
	var stop []string
	for _, jobID := range running {
		if !keep[jobID] {
			stop = append(stop, jobID)
		}
	}
	return stop, nil
}
