package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/uptrace/bun"
)

// Claim is a job handed to an agent by ClaimBatch.
type Claim struct {
	Job   *Job
	Agent *Agent
}

// ClaimBatch leases pending jobs to waiting agents in one transaction:
// pick is shown the pending jobs in queue order, a page at a time, and
// returns the agent each job goes to (nil: the job stays pending); the
// chosen jobs become RUNNING on their agents until leaseUntil. Pages follow
// while pick reports more room (wantMore). On PostgreSQL the page is read
// with FOR UPDATE SKIP LOCKED, so replicas claiming at once never wait for
// each other nor take the same job; on SQLite the immediate transaction
// serialises claimers.
//
// One transaction for every job a round hands out, rather than one per
// claim, is what lets dispatch keep up with many agents.
func (s *Store) ClaimBatch(ctx context.Context, now, leaseUntil time.Time, pick func(*Job) *Agent, wantMore func() bool) ([]Claim, error) {
	var claims []Claim
	// Not runTx: pick changes the agents' free slots, so a round that lost
	// to other writers is not run again here; the next round claims.
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		claims = claims[:0]
		// A few rows first: most pending jobs match most agents, and a
		// round usually wants a few jobs. Rows claimed in a page are no
		// longer pending, so the next page starts after the rows passed over.
		offset, batch := 0, 16
		for ; wantMore(); batch = min(batch*4, 1024) {
			var jobs []*Job
			// A held job (an approval, or one waiting for its
			// concurrency group) goes to no agent.
			q := tx.NewSelect().Model(&jobs).Where("status = ? AND hold = ?", statusPending, HoldNone).
				Order("created_at ASC", "id ASC").Offset(offset).Limit(batch)
			if s.postgres {
				q = q.For("UPDATE SKIP LOCKED")
			}
			if err := q.Scan(ctx); err != nil {
				return err
			}
			byAgent := map[*Agent][]string{}
			var order []*Agent
			claimed := 0
			for _, j := range jobs {
				a := pick(j)
				if a == nil {
					continue
				}
				if _, ok := byAgent[a]; !ok {
					order = append(order, a)
				}
				byAgent[a] = append(byAgent[a], j.ID)
				claimed++
				j.Status, j.AgentID, j.AgentName = statusRunning, a.ID, a.Name
				j.StartedAt, j.UpdatedAt, j.LeaseExpiresAt, j.AcceptedAt = now, now, leaseUntil, time.Time{}
				claims = append(claims, Claim{Job: j, Agent: a})
			}
			refused := map[string]bool{}
			for _, a := range order {
				// A trusted agent takes only jobs that may use trusted
				// agents, judged by the agent row as it is now: whatever the
				// caller's copy of the agent says, no job slips past a trust
				// given a moment ago.
				res, err := tx.NewUpdate().Model((*Job)(nil)).
					Set("status = ?", statusRunning).
					Set("agent_id = ?", a.ID).
					Set("agent_name = ?", a.Name).
					Set("started_at = ?", now).
					Set("updated_at = ?", now).
					Set("lease_expires_at = ?", leaseUntil).
					Set("accepted_at = NULL").
					Where("id IN (?)", bun.In(byAgent[a])).
					Where("status = ? AND hold = ?", statusPending, HoldNone).
					Where("(trusted_agents = ? OR NOT EXISTS (SELECT 1 FROM agents WHERE agents.id = ? AND agents.trusted = ?))", true, a.ID, true).
					Exec(ctx)
				if err != nil {
					return err
				}
				if n, _ := res.RowsAffected(); int(n) < len(byAgent[a]) {
					var left []string
					if err := tx.NewSelect().Model((*Job)(nil)).Column("id").Where("id IN (?)", bun.In(byAgent[a])).
						Where("status = ?", statusPending).Scan(ctx, &left); err != nil {
						return err
					}
					for _, id := range left {
						refused[id] = true
					}
				}
			}
			if len(refused) > 0 {
				claims = slices.DeleteFunc(claims, func(c Claim) bool {
					if !refused[c.Job.ID] {
						return false
					}
					c.Job.Status, c.Job.AgentID, c.Job.AgentName = statusPending, "", ""
					c.Job.StartedAt, c.Job.LeaseExpiresAt = time.Time{}, time.Time{}
					return true
				})
				claimed -= len(refused)
			}
			if len(jobs) < batch {
				return nil
			}
			offset += len(jobs) - claimed
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim jobs: %w", err)
	}
	return claims, nil
}

// GetAgents loads the agents with the given ids; unknown ids are left out.
func (s *Store) GetAgents(ctx context.Context, ids []string) ([]*Agent, error) {
	var out []*Agent
	if len(ids) == 0 {
		return nil, nil
	}
	if err := s.db.NewSelect().Model(&out).Where("id IN (?)", bun.In(ids)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("get agents: %w", err)
	}
	return out, nil
}
