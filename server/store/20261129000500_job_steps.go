package store

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

func init() {
	migrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		// The first migration creates tables from today's models, which may
		// already have the columns: add them only where they are missing.
		blob := "BYTEA"
		if db.Dialect().Name().String() == "sqlite" {
			blob = "BLOB"
		}
		if _, err := db.ExecContext(ctx, "SELECT steps FROM jobs LIMIT 0"); err != nil {
			for _, col := range []string{"steps " + blob, "plugins VARCHAR"} {
				if _, err := db.NewAddColumn().Model((*Job)(nil)).ColumnExpr(col).Exec(ctx); err != nil {
					return fmt.Errorf("add jobs.%s: %w", col, err)
				}
			}
		}
		if _, err := db.ExecContext(ctx, "SELECT plugins FROM agents LIMIT 0"); err != nil {
			if _, err := db.NewAddColumn().Model((*Agent)(nil)).ColumnExpr("plugins VARCHAR").Exec(ctx); err != nil {
				return fmt.Errorf("add agents.plugins: %w", err)
			}
		}
		return nil
	}, func(ctx context.Context, db *bun.DB) error {
		for _, col := range []string{"steps", "plugins"} {
			if _, err := db.NewDropColumn().Model((*Job)(nil)).Column(col).Exec(ctx); err != nil {
				return err
			}
		}
		_, err := db.NewDropColumn().Model((*Agent)(nil)).Column("plugins").Exec(ctx)
		return err
	})
}
