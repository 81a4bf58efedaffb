package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-arcade/arcade/internal/pgtest"
)

// TestArtifactColumnsMigration: a database from before migration
// 20261129000600 (no artifact storage columns, no log archive mark, no
// leases) gets them, on SQLite and PostgreSQL.
func TestArtifactColumnsMigration(t *testing.T) {
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
			// Back to the schema before the migration.
			for _, q := range []string{
				"ALTER TABLE job_artifacts DROP COLUMN stored",
				"ALTER TABLE job_artifacts DROP COLUMN storage_key",
				"ALTER TABLE job_artifacts DROP COLUMN parts",
				"ALTER TABLE job_artifacts DROP COLUMN claimed_at",
				"ALTER TABLE jobs DROP COLUMN log_archived_attempts",
				"DROP TABLE leases",
				"DELETE FROM bun_migrations WHERE name = '20261129000600'",
			} {
				if _, err := s.db.ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			if err := s.Migrate(ctx); err != nil {
				t.Fatalf("upgrade: %v", err)
			}
			j := &Job{ID: "j", Name: "j", Status: "success", Commands: []string{}, Env: map[string]string{}, Labels: map[string]string{},
				CreatedAt: time.Now(), UpdatedAt: time.Now(), Attempt: 1}
			if err := s.CreateJob(ctx, j); err != nil {
				t.Fatal(err)
			}
			if err := s.SaveArtifact(ctx, &Artifact{JobID: "j", Attempt: 1, Path: "a", SHA256: "x", CreatedAt: time.Now(),
				Stored: true, StorageKey: "artifacts/j/1/a", Parts: 2}); err != nil {
				t.Fatal(err)
			}
			if a, err := s.GetArtifact(ctx, "j", 0, "a"); err != nil || !a.Stored || a.Parts != 2 {
				t.Errorf("artifact after the upgrade: %+v %v", a, err)
			}
			if ok, err := s.TryAcquire(ctx, "sweep", "me", time.Minute); err != nil || !ok {
				t.Errorf("lease after the upgrade: %v %v", ok, err)
			}
			if ok, err := s.MarkLogArchived(ctx, "j", 1); err != nil || !ok {
				t.Errorf("archive mark after the upgrade: %v %v", ok, err)
			}
		})
	}
}
