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
		if _, err := db.ExecContext(ctx, "SELECT secrets FROM jobs LIMIT 0"); err == nil {
			return nil
		}
		blob := "BYTEA"
		if db.Dialect().Name().String() == "sqlite" {
			blob = "BLOB"
		}
		for _, col := range []string{"secrets " + blob, "secret_names VARCHAR"} {
			if _, err := db.NewAddColumn().Model((*Job)(nil)).ColumnExpr(col).Exec(ctx); err != nil {
				return fmt.Errorf("add jobs.%s: %w", col, err)
			}
		}
		return nil
	}, func(ctx context.Context, db *bun.DB) error {
		for _, col := range []string{"secrets", "secret_names"} {
			if _, err := db.NewDropColumn().Model((*Job)(nil)).Column(col).Exec(ctx); err != nil {
				return err
			}
		}
		return nil
	})
}
