package store

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

func init() {
	migrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		blob := "BYTEA"
		if db.Dialect().Name().String() == "sqlite" {
			blob = "BLOB"
		}
		// The first migration creates tables from today's models, which may
		// already have the columns: add them only where they are missing.
		for table, m := range map[string]any{"pipelines": (*Pipeline)(nil), "pipeline_runs": (*PipelineRun)(nil)} {
			if _, err := db.ExecContext(ctx, "SELECT secrets FROM "+table+" LIMIT 0"); err == nil {
				continue
			}
			if _, err := db.NewAddColumn().Model(m).ColumnExpr("secrets " + blob).Exec(ctx); err != nil {
				return fmt.Errorf("add %s.secrets: %w", table, err)
			}
		}
		return nil
	}, func(ctx context.Context, db *bun.DB) error {
		for _, m := range []any{(*Pipeline)(nil), (*PipelineRun)(nil)} {
			if _, err := db.NewDropColumn().Model(m).Column("secrets").Exec(ctx); err != nil {
				return err
			}
		}
		return nil
	})
}
