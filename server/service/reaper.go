package service

import (
	"context"
	"time"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
)

// Dispatch hands out jobs to the agents connected through AgentChannel
// until ctx ends (see dispatch.Dispatcher.Run).
func (s *Service) Dispatch(ctx context.Context) {
	s.dispatch.Run(ctx, min(s.cfg.MaxPollWait, 5*time.Second))
}

// ReapOnce runs one round of the housekeeping that keeps the queue honest:
// agents silent for a lease go offline, jobs whose lease expired go back to
// the queue (or fail when out of retries), jobs far past their timeout end
// as TIMEOUT, and pipeline runs advance. In the grace (after the server
// starts, and after the database failed: lifecycle.Grace) no agent goes
// offline and no lease expires. The server runs it every reap interval on
// one replica at a time.
func (s *Service) ReapOnce(ctx context.Context) error {
	now := s.now()
	if in, _ := s.life.Grace(now); !in {
		gone, err := s.store.MarkAgentsOffline(ctx, now.Add(-s.cfg.LeaseTTL))
		if err != nil {
			return err
		}
		for _, a := range gone {
			s.log.Warn("agent offline: no heartbeat", "agent", a.Name, "id", a.ID, "last_heartbeat", a.LastHeartbeatAt)
			s.publishAgent(a, jobv1.EventType_EVENT_TYPE_AGENT_OFFLINE, "no heartbeat")
		}
	}
	if err := s.life.ExpireLeases(ctx, now); err != nil {
		return err
	}
	if err := s.life.EndOverdue(ctx, now); err != nil {
		return err
	}
	return s.life.AdvanceRuns(ctx)
}
