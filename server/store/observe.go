package store

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// AddQueryHook makes h see every query bun runs (timings for metrics). Add
// hooks before the store is used by several goroutines.
func (s *Store) AddQueryHook(h bun.QueryHook) { s.db.AddQueryHook(h) }

// CountJobsByStatus returns the number of jobs in each status ("pending"
// …); statuses without jobs are absent.
func (s *Store) CountJobsByStatus(ctx context.Context) (map[string]int, error) {
	var rows []struct {
		Status string `bun:"status"`
		N      int    `bun:"n"`
	}
	if err := s.db.NewSelect().Model((*Job)(nil)).Column("status").ColumnExpr("count(*) AS n").
		Group("status").Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("count jobs by status: %w", err)
	}
	counts := make(map[string]int, len(rows))
	for _, r := range rows {
		counts[r.Status] = r.N
	}
	return counts, nil
}
