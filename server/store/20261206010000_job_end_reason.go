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
		if _, err := db.ExecContext(ctx, "SELECT end_reason FROM jobs LIMIT 0"); err == nil {
			return nil
		}
		if _, err := db.NewAddColumn().Model((*Job)(nil)).ColumnExpr("end_reason VARCHAR NOT NULL DEFAULT ''").Exec(ctx); err != nil {
			return fmt.Errorf("add jobs.end_reason: %w", err)
		}
		return backfillEndReasons(ctx, db)
	}, func(ctx context.Context, db *bun.DB) error {
		_, err := db.NewDropColumn().Model((*Job)(nil)).Column("end_reason").Exec(ctx)
		return err
	})
}

// backfillEndReasons gives the attempts that ended before end_reason existed
// the reason their status and message imply. Before, an attempt counted as
// lost with its agent when it failed with exit code -1 and its message said
// "agent lost" or "agent unregistered" (case-sensitive): exactly those
// become agent_lost, so retry policies decide as they did.
func backfillEndReasons(ctx context.Context, db *bun.DB) error {
	contains := "instr(message, ?) > 0" // SQLite; case-sensitive
	if db.Dialect().Name().String() != "sqlite" {
		contains = "strpos(message, ?) > 0"
	}
	steps := []struct {
		reason string
		where  string
		args   []any
	}{
		{"agent_lost", "status = 'failed' AND exit_code = -1 AND (" + contains + " OR " + contains + ")",
			[]any{"agent lost", "agent unregistered"}},
		{"agent_revoked", "status = 'failed' AND exit_code = -1 AND message = 'agent revoked'", nil},
		{"step_failed", "status = 'failed'", nil},
		{"timeout", "status = 'timeout'", nil},
		{"cancelled", "status = 'cancelled'", nil},
	}
	for _, st := range steps {
		_, err := db.NewUpdate().Model((*Job)(nil)).Set("end_reason = ?", st.reason).
			Where("end_reason = ''").Where(st.where, st.args...).Exec(ctx)
		if err != nil {
			return fmt.Errorf("fill jobs.end_reason (%s): %w", st.reason, err)
		}
	}
	return nil
}
