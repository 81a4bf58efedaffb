package store

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

func init() {
	migrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		// The first migration creates tables from today's models, which may
		// already have these columns and tables: add only what is missing.
		ts := "TIMESTAMPTZ"
		if db.Dialect().Name().String() == "sqlite" {
			ts = "TIMESTAMP"
		}
		add := []struct {
			model any
			table string
			col   string
			expr  string
		}{
			{(*Artifact)(nil), "job_artifacts", "stored", "stored BOOLEAN NOT NULL DEFAULT FALSE"},
			{(*Artifact)(nil), "job_artifacts", "storage_key", "storage_key VARCHAR NOT NULL DEFAULT ''"},
			{(*Artifact)(nil), "job_artifacts", "parts", "parts INTEGER NOT NULL DEFAULT 0"},
			{(*Artifact)(nil), "job_artifacts", "claimed_at", "claimed_at " + ts},
			{(*Job)(nil), "jobs", "log_archived_attempts", "log_archived_attempts INTEGER NOT NULL DEFAULT 0"},
		}
		for _, a := range add {
			if _, err := db.ExecContext(ctx, "SELECT "+a.col+" FROM "+a.table+" LIMIT 0"); err == nil {
				continue
			}
			if _, err := db.NewAddColumn().Model(a.model).ColumnExpr(a.expr).Exec(ctx); err != nil {
				return fmt.Errorf("add %s.%s: %w", a.table, a.col, err)
			}
		}
		if _, err := db.NewCreateTable().Model((*lease)(nil)).IfNotExists().Exec(ctx); err != nil {
			return fmt.Errorf("create table leases: %w", err)
		}
		return nil
	}, func(ctx context.Context, db *bun.DB) error {
		if _, err := db.NewDropTable().Model((*lease)(nil)).IfExists().Exec(ctx); err != nil {
			return err
		}
		for _, col := range []string{"stored", "storage_key", "parts", "claimed_at"} {
			if _, err := db.NewDropColumn().Model((*Artifact)(nil)).Column(col).Exec(ctx); err != nil {
				return err
			}
		}
		_, err := db.NewDropColumn().Model((*Job)(nil)).Column("log_archived_attempts").Exec(ctx)
		return err
	})
}
