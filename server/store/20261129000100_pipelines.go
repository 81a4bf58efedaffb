package store

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

func init() {
	migrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		for _, model := range []any{(*Pipeline)(nil), (*PipelineRun)(nil)} {
			if _, err := db.NewCreateTable().Model(model).IfNotExists().Exec(ctx); err != nil {
				return fmt.Errorf("create table for %T: %w", model, err)
			}
		}
		indexes := []struct {
			name, table string
			unique      bool
			cols        []string
		}{
			{"pipeline_runs_number", "pipeline_runs", true, []string{"pipeline_id", "number"}},
			{"pipeline_runs_status", "pipeline_runs", false, []string{"status"}},
			{"jobs_pipeline", "jobs", false, []string{"pipeline_id"}},
		}
		for _, ix := range indexes {
			q := db.NewCreateIndex().Table(ix.table).Index(ix.name).IfNotExists()
			if ix.unique {
				q = q.Unique()
			}
			for _, c := range ix.cols {
				q = q.Column(c)
			}
			if _, err := q.Exec(ctx); err != nil {
				return fmt.Errorf("create index %s: %w", ix.name, err)
			}
		}
		return nil
	}, func(ctx context.Context, db *bun.DB) error {
		for _, model := range []any{(*PipelineRun)(nil), (*Pipeline)(nil)} {
			if _, err := db.NewDropTable().Model(model).IfExists().Exec(ctx); err != nil {
				return fmt.Errorf("drop table for %T: %w", model, err)
			}
		}
		return nil
	})
}
