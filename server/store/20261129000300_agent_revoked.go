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
		if _, err := db.ExecContext(ctx, "SELECT revoked FROM agents LIMIT 0"); err == nil {
			return nil
		}
		if _, err := db.NewAddColumn().Model((*Agent)(nil)).ColumnExpr("revoked BOOLEAN NOT NULL DEFAULT FALSE").Exec(ctx); err != nil {
			return fmt.Errorf("add agents.revoked: %w", err)
		}
		return nil
	}, func(ctx context.Context, db *bun.DB) error {
		_, err := db.NewDropColumn().Model((*Agent)(nil)).Column("revoked").Exec(ctx)
		return err
	})
}
