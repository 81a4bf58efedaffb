package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-arcade/arcade/internal/pgtest"
)

// TestOneCacheFlagMigration: a database from before migration
// 20261206121500 (jobs and runs carrying no_cache_write) loses the column,
// keeping its rows, on SQLite and PostgreSQL.
func TestOneCacheFlagMigration(t *testing.T) {
	for name, dsn := range map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "arcade.db") },
		"postgres": func(t *testing.T) string { return pgtest.Start(t) },
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(ctx, dsn(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			j := &Job{ID: "j", Name: "j", Status: "success", Commands: []string{}, Env: map[string]string{}, Labels: map[string]string{},
				CreatedAt: time.Now(), UpdatedAt: time.Now(), Attempt: 1}
			if err := s.CreateJob(ctx, j); err != nil {
				t.Fatal(err)
			}
			// Back to the schema before the migration.
			for _, q := range []string{
				"ALTER TABLE jobs ADD COLUMN no_cache_write BOOLEAN NOT NULL DEFAULT FALSE",
				"ALTER TABLE pipeline_runs ADD COLUMN no_cache_write BOOLEAN NOT NULL DEFAULT FALSE",
				"DELETE FROM bun_migrations WHERE name = '20261206121500'",
			} {
				if _, err := s.db.ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			if err := s.Migrate(ctx); err != nil {
				t.Fatalf("upgrade: %v", err)
			}
			for _, table := range []string{"jobs", "pipeline_runs"} {
				if _, err := s.db.ExecContext(ctx, "SELECT no_cache_write FROM "+table+" LIMIT 0"); err == nil {
					t.Errorf("%s.no_cache_write is still there", table)
				}
			}
			if got, err := s.GetJob(ctx, "j"); err != nil || got.Name != "j" {
				t.Errorf("job after the upgrade: %+v %v", got, err)
			}
		})
	}
}
