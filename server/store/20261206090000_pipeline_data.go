package store

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// Pipeline data: job outputs, inputs and caches, approvals, concurrency
// groups of jobs and runs, and the cache entries.
func init() {
	migrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		for _, model := range []any{(*CacheEntry)(nil), (*concurrencyGroup)(nil)} {
			if _, err := db.NewCreateTable().Model(model).IfNotExists().Exec(ctx); err != nil {
				return fmt.Errorf("create table for %T: %w", model, err)
			}
		}
		blob, stamp := "BYTEA", "TIMESTAMPTZ"
		if db.Dialect().Name().String() == "sqlite" {
			blob, stamp = "BLOB", "TIMESTAMP"
		}
		add := []struct {
			model      any
			table, col string
			expr       string
		}{
			{(*Job)(nil), "jobs", "outputs", "outputs VARCHAR"},
			{(*Job)(nil), "jobs", "secret_outputs", "secret_outputs VARCHAR"},
			{(*Job)(nil), "jobs", "output_names", "output_names VARCHAR"},
			{(*Job)(nil), "jobs", "needs_artifacts", "needs_artifacts VARCHAR"},
			{(*Job)(nil), "jobs", "cache", "cache " + blob},
			{(*Job)(nil), "jobs", "expr_context", "expr_context VARCHAR"},
			{(*Job)(nil), "jobs", "secret_env", "secret_env VARCHAR"},
			{(*Job)(nil), "jobs", "matrix", "matrix " + blob},
			{(*Job)(nil), "jobs", "job_type", "job_type VARCHAR NOT NULL DEFAULT ''"},
			{(*Job)(nil), "jobs", "hold", "hold VARCHAR NOT NULL DEFAULT ''"},
			{(*Job)(nil), "jobs", "concurrency_group", "concurrency_group VARCHAR NOT NULL DEFAULT ''"},
			{(*Job)(nil), "jobs", "approval_decision", "approval_decision VARCHAR NOT NULL DEFAULT ''"},
			{(*Job)(nil), "jobs", "approval_by", "approval_by VARCHAR NOT NULL DEFAULT ''"},
			{(*Job)(nil), "jobs", "approval_comment", "approval_comment VARCHAR NOT NULL DEFAULT ''"},
			{(*Job)(nil), "jobs", "approval_at", "approval_at " + stamp},
			{(*Job)(nil), "jobs", "approval_expires_at", "approval_expires_at " + stamp},
			{(*PipelineRun)(nil), "pipeline_runs", "concurrency_group", "concurrency_group VARCHAR NOT NULL DEFAULT ''"},
			{(*PipelineRun)(nil), "pipeline_runs", "concurrency_held", "concurrency_held BOOLEAN NOT NULL DEFAULT FALSE"},
		}
		for _, a := range add {
			if _, err := db.ExecContext(ctx, "SELECT "+a.col+" FROM "+a.table+" LIMIT 0"); err == nil {
				continue
			}
			if _, err := db.NewAddColumn().Model(a.model).ColumnExpr(a.expr).Exec(ctx); err != nil {
				return fmt.Errorf("add %s.%s: %w", a.table, a.col, err)
			}
		}
		for _, ix := range []struct{ name, table, cols string }{
			{"cache_entries_scope", "cache_entries", "pipeline_id, branch, cache_key"},
			{"cache_entries_used", "cache_entries", "last_used_at"},
			{"jobs_concurrency_group", "jobs", "concurrency_group, status"},
			{"pipeline_runs_concurrency_group", "pipeline_runs", "concurrency_group, status"},
		} {
			if _, err := db.NewCreateIndex().Table(ix.table).Index(ix.name).IfNotExists().ColumnExpr(ix.cols).Exec(ctx); err != nil {
				return fmt.Errorf("create index %s: %w", ix.name, err)
			}
		}
		return nil
	}, func(ctx context.Context, db *bun.DB) error {
		for _, model := range []any{(*CacheEntry)(nil), (*concurrencyGroup)(nil)} {
			if _, err := db.NewDropTable().Model(model).IfExists().Exec(ctx); err != nil {
				return err
			}
		}
		return nil
	})
}
