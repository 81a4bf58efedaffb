package store

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// QueuePlace returns a pending job's 1-based place among the pending jobs in
// the order the dispatcher offers them (oldest first), and how many jobs
// are pending.
func (s *Store) QueuePlace(ctx context.Context, j *Job) (place, length int, err error) {
	length, err = s.db.NewSelect().Model((*Job)(nil)).Where("status = ? AND hold = ?", statusPending, HoldNone).Count(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("count pending jobs: %w", err)
	}
	ahead, err := s.db.NewSelect().Model((*Job)(nil)).Where("status = ? AND hold = ?", statusPending, HoldNone).
		WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
			return q.Where("created_at < ?", j.CreatedAt).WhereOr("created_at = ? AND id < ?", j.CreatedAt, j.ID)
		}).Count(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("count jobs ahead of %s: %w", j.ID, err)
	}
	return ahead + 1, length, nil
}
