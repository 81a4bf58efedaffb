package service

import (
	"context"
	"fmt"
	"time"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/jobstate"
	"github.com/go-arcade/arcade/server/store"
)

// Dispatch hands out jobs to the agents connected through AgentChannel
// until ctx ends (see dispatch.Dispatcher.Run).
func (s *Service) Dispatch(ctx context.Context) {
	s.dispatch.Run(ctx, min(s.cfg.MaxPollWait, 5*time.Second))
}

// ReapOnce runs one round of the housekeeping that keeps the queue honest:
// agents silent for a lease go offline, jobs whose lease expired go back to
// the queue (or fail when out of retries), jobs far past their timeout end
// as TIMEOUT, and pipeline runs advance. The server runs it every reap
// interval on one replica at a time.
func (s *Service) ReapOnce(ctx context.Context) error {
	now := s.now()
	gone, err := s.store.MarkAgentsOffline(ctx, now.Add(-s.cfg.LeaseTTL))
	if err != nil {
		return err
	}
	for _, a := range gone {
		s.log.Warn("agent offline: no heartbeat", "agent", a.Name, "id", a.ID, "last_heartbeat", a.LastHeartbeatAt)
		s.publishAgent(a, jobv1.EventType_EVENT_TYPE_AGENT_OFFLINE, "no heartbeat")
	}
	expired, err := s.store.ExpiredLeases(ctx, now)
	if err != nil {
		return err
	}
	for _, j := range expired {
		s.loseJob(ctx, j, "agent lost: lease expired")
	}
	running, err := s.store.RunningJobs(ctx, "")
	if err != nil {
		return err
	}
	for _, j := range running {
		if j.TimeoutMS <= 0 || j.CancelRequested {
			continue
		}
		limit := time.Duration(j.TimeoutMS) * time.Millisecond
		if now.Sub(j.StartedAt) > limit+s.cfg.TimeoutGrace {
			s.endOverdue(ctx, j, limit)
		}
	}
	return s.AdvanceRuns(ctx)
}

// loseJob takes a running job away from its agent: it goes back to the queue
// as its next attempt, or fails when its retries are spent.
func (s *Service) loseJob(ctx context.Context, j *store.Job, reason string) {
	now := s.now()
	var retried, unstarted bool
	lost, err := s.store.ModifyJob(ctx, j.ID, func(cur *store.Job) error {
		if cur.Status != jobstate.Name(jobstate.Running) || cur.Attempt != j.Attempt {
			return fmt.Errorf("changed meanwhile: %w", store.ErrConflict)
		}
		cur.UpdatedAt = now
		if cur.AcceptedAt.IsZero() && !cur.CancelRequested {
			// The agent never said it started the job (its assignment was
			// lost, with a server replica say): nothing ran, so the job goes
			// back to the queue as the same attempt.
			unstarted = true
			cur.Message = fmt.Sprintf("handed to agent %s, which never started it (%s); back in the queue", cur.AgentName, reason)
			cur.Status = jobstate.Name(jobstate.Pending)
			cur.AgentID, cur.AgentName = "", ""
			cur.StartedAt, cur.LeaseExpiresAt = time.Time{}, time.Time{}
			return nil
		}
		if cur.CancelRequested {
			cur.Status = jobstate.Name(jobstate.Cancelled)
			cur.FinishedAt = now
			cur.Message += " (" + reason + ")"
			return nil
		}
		// A lost agent counts like a failure against the retry budget.
		cur.Message = reason
		cur.ExitCode = -1
		retried = s.finish(cur, jobstate.Failed, now)
		if retried {
			cur.Message = fmt.Sprintf("attempt %d: %s; requeued", cur.Attempt-1, reason)
		}
		return nil
	})
	if err != nil {
		s.log.Debug("lost job not requeued", "job", j.ID, "err", err)
		return
	}
	if unstarted {
		s.log.Warn("job never started by its agent; back in the queue", "job", j.ID, "agent", j.AgentName, "reason", reason)
		s.dispatch.Wake()
		return
	}
	s.log.Warn("job taken from its agent", "job", j.ID, "agent", j.AgentName, "reason", reason, "requeued", retried)
	s.requestCancel(j.AgentID)
	s.dispatch.Wake()
	s.jobEnded(ctx, lost)
}

// endOverdue ends a job that ran far past its timeout without its agent
// reporting it.
func (s *Service) endOverdue(ctx context.Context, j *store.Job, limit time.Duration) {
	now := s.now()
	overdue, err := s.store.ModifyJob(ctx, j.ID, func(cur *store.Job) error {
		if cur.Status != jobstate.Name(jobstate.Running) || cur.Attempt != j.Attempt {
			return store.ErrConflict
		}
		cur.UpdatedAt = now
		cur.Message = fmt.Sprintf("timed out after %s (ended by the server: the agent did not stop it)", limit)
		cur.ExitCode = -1
		s.finish(cur, jobstate.Timeout, now)
		return nil
	})
	if err != nil {
		return
	}
	s.requestCancel(j.AgentID)
	s.dispatch.Wake()
	s.jobEnded(ctx, overdue)
}
