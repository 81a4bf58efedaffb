package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/uptrace/bun"
)

// AgentColumns are the columns agents may be sorted by.
var AgentColumns = []string{"name", "registered_at", "last_heartbeat_at"}

// RegisterAgent stores a newly registered agent. An agent registering under a
// name already known takes that record over (same id, new token), so a
// restarted agent keeps its identity.
func (s *Store) RegisterAgent(ctx context.Context, a *Agent) (*Agent, error) {
	return s.RegisterAgentIf(ctx, a, nil)
}

// RegisterAgentIf is RegisterAgent, where admit, when set, sees the record
// already held under the name (nil when there is none) in the same
// transaction, locked, and may refuse the registration (its error is
// returned as is, wrapped) or change a before it is written.
func (s *Store) RegisterAgentIf(ctx context.Context, a *Agent, admit func(old *Agent) error) (*Agent, error) {
	err := s.runTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var old Agent
		err := tx.NewSelect().Model(&old).Where("name = ?", a.Name).Apply(s.lockRows).Scan(ctx)
		switch {
		case err == nil:
			// An admin's mark and labels outlive restarts (admit may drop
			// them for a newcomer under the name).
			a.TrustMarked, a.AdminLabels = old.TrustMarked, old.AdminLabels
			if admit != nil {
				if err := admit(&old); err != nil {
					return err
				}
			}
			a.Labels = WithAdminLabels(a.Labels, a.AdminLabels)
			a.ID = old.ID
			a.RegisteredAt = old.RegisteredAt
			if err := setTrusted(ctx, tx, a); err != nil {
				return err
			}
			_, err = tx.NewUpdate().Model(a).WherePK().Exec(ctx)
			return err
		case notFound(err) == ErrNotFound:
			if admit != nil {
				if err := admit(nil); err != nil {
					return err
				}
			}
			if err := setTrusted(ctx, tx, a); err != nil {
				return err
			}
			_, err = tx.NewInsert().Model(a).Exec(ctx)
			return err
		default:
			return err
		}
	})
	if err != nil {
		return nil, fmt.Errorf("register agent %q: %w", a.Name, err)
	}
	return a, nil
}

// GetAgent loads one agent.
func (s *Store) GetAgent(ctx context.Context, id string) (*Agent, error) {
	a := new(Agent)
	if err := s.db.NewSelect().Model(a).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, fmt.Errorf("get agent %s: %w", id, notFound(err))
	}
	return a, nil
}

// AgentByName loads the agent registered under name.
func (s *Store) AgentByName(ctx context.Context, name string) (*Agent, error) {
	a := new(Agent)
	if err := s.db.NewSelect().Model(a).Where("name = ?", name).Scan(ctx); err != nil {
		return nil, fmt.Errorf("get agent %q: %w", name, notFound(err))
	}
	return a, nil
}

// AgentByTokenHash finds the agent holding a token.
func (s *Store) AgentByTokenHash(ctx context.Context, hash string) (*Agent, error) {
	a := new(Agent)
	if err := s.db.NewSelect().Model(a).Where("token_hash = ?", hash).Scan(ctx); err != nil {
		return nil, fmt.Errorf("find agent by token: %w", notFound(err))
	}
	return a, nil
}

// AgentFilter narrows ListAgents.
type AgentFilter struct {
	Online *bool
	// Match, when set, keeps only agents it accepts (label selectors).
	Match func(*Agent) bool
}

// ListAgents returns a page of agents and the number of agents matching.
func (s *Store) ListAgents(ctx context.Context, f AgentFilter, p Page) ([]*Agent, int, error) {
	q := func(q *bun.SelectQuery) *bun.SelectQuery {
		if f.Online != nil {
			q = q.Where("online = ?", *f.Online)
		}
		return q.Order(p.Order.sql(), "id ASC")
	}
	var agents []*Agent
	if err := q(s.db.NewSelect().Model(&agents)).Scan(ctx); err != nil {
		return nil, 0, fmt.Errorf("list agents: %w", err)
	}
	if f.Match != nil {
		kept := agents[:0]
		for _, a := range agents {
			if f.Match(a) {
				kept = append(kept, a)
			}
		}
		agents = kept
	}
	total := len(agents)
	return window(agents, p), total, nil
}

// UpdateAgent writes the given columns of an agent.
func (s *Store) UpdateAgent(ctx context.Context, a *Agent, columns ...string) error {
	res, err := s.db.NewUpdate().Model(a).Column(columns...).WherePK().Exec(ctx)
	if err != nil {
		return fmt.Errorf("update agent %s: %w", a.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("update agent %s: %w", a.ID, ErrNotFound)
	}
	return nil
}

// ModifyAgent loads an agent, lets fn change it and writes the given columns
// back, in one transaction. Changed labels change the agent's trust too
// (trusted labels).
func (s *Store) ModifyAgent(ctx context.Context, id string, fn func(*Agent) error, columns ...string) (*Agent, error) {
	a := new(Agent)
	err := s.runTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if err := tx.NewSelect().Model(a).Where("id = ?", id).Apply(s.lockRows).Scan(ctx); err != nil {
			return notFound(err)
		}
		before, beforeAdmin := maps.Clone(a.Labels), maps.Clone(a.AdminLabels)
		if err := fn(a); err != nil {
			return err
		}
		a.Labels = WithAdminLabels(a.Labels, a.AdminLabels)
		cols := columns
		if slices.Contains(columns, "labels") && (labelsChanged(before, a.Labels) || labelsChanged(beforeAdmin, a.AdminLabels)) {
			if err := setTrusted(ctx, tx, a); err != nil {
				return err
			}
			cols = append(slices.Clip(columns), "trusted")
		}
		_, err := tx.NewUpdate().Model(a).Column(cols...).WherePK().Exec(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("update agent %s: %w", id, err)
	}
	return a, nil
}

// WithAdminLabels returns labels with the admin's over them (labels itself,
// changed, unless nil).
func WithAdminLabels(labels, admin map[string]string) map[string]string {
	if len(admin) == 0 {
		return labels
	}
	if labels == nil {
		labels = make(map[string]string, len(admin))
	}
	maps.Copy(labels, admin)
	return labels
}

// DeleteAgent removes an agent.
func (s *Store) DeleteAgent(ctx context.Context, id string) error {
	res, err := s.db.NewDelete().Model((*Agent)(nil)).Where("id = ?", id).Exec(ctx)
	if err != nil {
		return fmt.Errorf("delete agent %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete agent %s: %w", id, ErrNotFound)
	}
	return nil
}

// MarkAgentsOffline sets offline every online agent whose last heartbeat is
// before cutoff and returns them.
func (s *Store) MarkAgentsOffline(ctx context.Context, cutoff time.Time) ([]*Agent, error) {
	var stale []*Agent
	if err := s.db.NewSelect().Model(&stale).
		Where("online = ?", true).Where("last_heartbeat_at < ?", cutoff).Scan(ctx); err != nil {
		return nil, fmt.Errorf("find stale agents: %w", err)
	}
	var gone []*Agent
	for _, a := range stale {
		res, err := s.db.NewUpdate().Model((*Agent)(nil)).Set("online = ?", false).
			Where("id = ?", a.ID).Where("online = ?", true).Where("last_heartbeat_at < ?", cutoff).Exec(ctx)
		if err != nil {
			return gone, fmt.Errorf("mark agent %s offline: %w", a.ID, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			a.Online = false
			gone = append(gone, a)
		}
	}
	return gone, nil
}

// RunningCounts returns the number of running jobs per agent id.
func (s *Store) RunningCounts(ctx context.Context) (map[string]int, error) {
	var rows []struct {
		AgentID string `bun:"agent_id"`
		N       int    `bun:"n"`
	}
	if err := s.db.NewSelect().Model((*Job)(nil)).Column("agent_id").ColumnExpr("count(*) AS n").
		Where("status = ?", statusRunning).Group("agent_id").Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("count running jobs: %w", err)
	}
	counts := make(map[string]int, len(rows))
	for _, r := range rows {
		counts[r.AgentID] = r.N
	}
	return counts, nil
}

// lockRows locks the selected rows on PostgreSQL; SQLite's immediate
// transactions already hold the write lock.
func (s *Store) lockRows(q *bun.SelectQuery) *bun.SelectQuery {
	if s.postgres {
		return q.For("UPDATE")
	}
	return q
}

func window[T any](items []T, p Page) []T {
	if p.Offset >= len(items) {
		return nil
	}
	items = items[p.Offset:]
	if p.Limit > 0 && len(items) > p.Limit {
		items = items[:p.Limit]
	}
	return items
}
