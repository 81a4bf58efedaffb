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
		if _, err := db.ExecContext(ctx, "SELECT container FROM jobs LIMIT 0"); err == nil {
			return nil
		}
		blob := "BYTEA"
		if db.Dialect().Name().String() == "sqlite" {
			blob = "BLOB"
		}
		if _, err := db.NewAddColumn().Model((*Job)(nil)).ColumnExpr("container " + blob).Exec(ctx); err != nil {
			return fmt.Errorf("add jobs.container: %w", err)
		}
		return nil
	}, func(ctx context.Context, db *bun.DB) error {
		_, err := db.NewDropColumn().Model((*Job)(nil)).Column("container").Exec(ctx)
		return err
	})
}
