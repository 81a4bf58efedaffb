package store

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"
)

// migrations is the schema history; each file named TIMESTAMP_comment.go in
// this package registers one step.
var migrations = migrate.NewMigrations()

func init() {
	migrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		for _, model := range []any{(*Agent)(nil), (*Job)(nil), (*logChunk)(nil), (*Artifact)(nil)} {
			if _, err := db.NewCreateTable().Model(model).IfNotExists().Exec(ctx); err != nil {
				return fmt.Errorf("create table for %T: %w", model, err)
			}
		}
		indexes := []struct {
			name, table string
			cols        []string
		}{
			{"jobs_status_created", "jobs", []string{"status", "created_at", "id"}},
			{"jobs_created", "jobs", []string{"created_at", "id"}},
			{"jobs_agent_status", "jobs", []string{"agent_id", "status"}},
			{"jobs_run", "jobs", []string{"run_id"}},
			{"agents_token", "agents", []string{"token_hash"}},
			{"job_log_chunks_last", "job_log_chunks", []string{"job_id", "attempt", "last_line"}},
		}
		for _, ix := range indexes {
			q := db.NewCreateIndex().Table(ix.table).Index(ix.name).IfNotExists()
			for _, c := range ix.cols {
				q = q.Column(c)
			}
			if _, err := q.Exec(ctx); err != nil {
				return fmt.Errorf("create index %s: %w", ix.name, err)
			}
		}
		return nil
	}, func(ctx context.Context, db *bun.DB) error {
		for _, model := range []any{(*Artifact)(nil), (*logChunk)(nil), (*Job)(nil), (*Agent)(nil)} {
			if _, err := db.NewDropTable().Model(model).IfExists().Exec(ctx); err != nil {
				return fmt.Errorf("drop table for %T: %w", model, err)
			}
		}
		return nil
	})
}
