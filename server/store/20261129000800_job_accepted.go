package store

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

func init() {
	migrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		// The first migration creates tables from today's models, which may
		// already have the column: add it only where it is missing.
		if _, err := db.ExecContext(ctx, "SELECT accepted_at FROM jobs LIMIT 0"); err == nil {
			return nil
		}
		typ := "TIMESTAMPTZ"
		if db.Dialect().Name().String() == "sqlite" {
			typ = "TIMESTAMP"
		}
		if _, err := db.NewAddColumn().Model((*Job)(nil)).ColumnExpr("accepted_at " + typ).Exec(ctx); err != nil {
			return fmt.Errorf("add jobs.accepted_at: %w", err)
		}
		// Jobs running when this version starts were accepted.
		if _, err := db.NewUpdate().Model((*Job)(nil)).Set("accepted_at = started_at").Where("status = 'running'").Exec(ctx); err != nil {
			return fmt.Errorf("fill jobs.accepted_at: %w", err)
		}
		return nil
	}, func(ctx context.Context, db *bun.DB) error {
		_, err := db.NewDropColumn().Model((*Job)(nil)).Column("accepted_at").Exec(ctx)
		return err
	})
}
