package store

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// jobs.log_lines (the line count of an attempt's final report) and
// jobs.lost_attempt, jobs.lost_agent_id (the attempt last taken from its
// agent, and that agent).
func init() {
	columns := []struct{ name, def string }{
		{"log_lines", "BIGINT NOT NULL DEFAULT 0"},
		{"lost_attempt", "INTEGER NOT NULL DEFAULT 0"},
		{"lost_agent_id", "VARCHAR NOT NULL DEFAULT ''"},
	}
	migrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		for _, c := range columns {
			// The first migration creates tables from today's models, which
			// may already have the column: add it only where it is missing.
			if _, err := db.ExecContext(ctx, "SELECT "+c.name+" FROM jobs LIMIT 0"); err == nil {
				continue
			}
			if _, err := db.NewAddColumn().Model((*Job)(nil)).ColumnExpr(c.name + " " + c.def).Exec(ctx); err != nil {
				return fmt.Errorf("add jobs.%s: %w", c.name, err)
			}
		}
		return nil
	}, func(ctx context.Context, db *bun.DB) error {
		for _, c := range columns {
			if _, err := db.NewDropColumn().Model((*Job)(nil)).Column(c.name).Exec(ctx); err != nil {
				return err
			}
		}
		return nil
	})
}
