package store

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// jobs.no_cache_write and pipeline_runs.no_cache_write go: they always
// equalled the run's untrusted_origin, which is what hands a job
// cache_read_only (its cache restored, never saved). One flag remains.
func init() {
	migrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		for _, table := range []string{"jobs", "pipeline_runs"} {
			if _, err := db.ExecContext(ctx, "SELECT no_cache_write FROM "+table+" LIMIT 0"); err != nil {
				continue // never added
			}
			if _, err := db.ExecContext(ctx, "ALTER TABLE "+table+" DROP COLUMN no_cache_write"); err != nil {
				return fmt.Errorf("drop %s.no_cache_write: %w", table, err)
			}
		}
		return nil
	}, func(ctx context.Context, db *bun.DB) error {
		for _, table := range []string{"jobs", "pipeline_runs"} {
			if _, err := db.ExecContext(ctx, "ALTER TABLE "+table+" ADD COLUMN no_cache_write BOOLEAN NOT NULL DEFAULT FALSE"); err != nil {
				return fmt.Errorf("add %s.no_cache_write: %w", table, err)
			}
		}
		return nil
	})
}
