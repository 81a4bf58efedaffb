package service

import (
	"context"
	"fmt"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	"github.com/go-arcade/arcade/server/store"
)

// JobsByStatus counts the jobs in each status, for metrics.
func (s *Service) JobsByStatus(ctx context.Context) (map[string]int, error) {
	return s.store.CountJobsByStatus(ctx)
}

// agentStatusNames are the metric names of agent statuses.
var agentStatusNames = map[agentv1.AgentStatus]string{
	agentv1.AgentStatus_AGENT_STATUS_OFFLINE: "offline",
	agentv1.AgentStatus_AGENT_STATUS_IDLE:    "idle",
	agentv1.AgentStatus_AGENT_STATUS_ONLINE:  "online",
	agentv1.AgentStatus_AGENT_STATUS_BUSY:    "busy",
}

// AgentsByStatus counts the registered agents in each status (offline,
// idle, online, busy), as ListAgents shows them, for metrics.
func (s *Service) AgentsByStatus(ctx context.Context) (map[string]int, error) {
	agents, _, err := s.store.ListAgents(ctx, store.AgentFilter{}, store.Page{Order: store.Order{Column: "name"}})
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	running, err := s.store.RunningCounts(ctx)
	if err != nil {
		return nil, err
	}
	counts := make(map[string]int, len(agentStatusNames))
	for _, a := range agents {
		counts[agentStatusNames[agentStatus(a, running[a.ID])]]++
	}
	return counts, nil
}
