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

// TestIdentityMigration: a database from before migration 20261206030000
// (no secrets, tokens, audit log, trust columns) gets them, on SQLite and
// PostgreSQL, and rows from before read as untrusted with no references.
func TestIdentityMigration(t *testing.T) {
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
			back := []string{
				"DROP TABLE secrets", "DROP TABLE api_tokens", "DROP TABLE audit_events", "DROP TABLE trusted_labels",
				"DROP TABLE settings", "DROP TABLE keyring_replicas",
				"ALTER TABLE agents DROP COLUMN trust_marked", "ALTER TABLE agents DROP COLUMN trusted",
				"ALTER TABLE jobs DROP COLUMN secret_refs", "ALTER TABLE jobs DROP COLUMN trusted_agents", "ALTER TABLE jobs DROP COLUMN trust_reason",
				"ALTER TABLE pipelines DROP COLUMN trusted_agents", "ALTER TABLE pipelines DROP COLUMN trusted_branches",
				"ALTER TABLE pipeline_runs DROP COLUMN untrusted_origin", "ALTER TABLE pipeline_runs DROP COLUMN source",
				"ALTER TABLE pipeline_runs DROP COLUMN branch", "ALTER TABLE pipeline_runs DROP COLUMN trusted_agents",
				"ALTER TABLE pipeline_runs DROP COLUMN trust_reason",
				"DELETE FROM bun_migrations WHERE name = '20261206030000'",
				// A job and an agent from before.
				"INSERT INTO jobs (id, name, status, commands, env, timeout_ms, image, retries, selector, labels, created_at, updated_at, agent_id, agent_name, exit_code, attempt, message, cancel_requested, pipeline_id, run_id, stage, log_archived_attempts, end_reason) " +
					"VALUES ('old', 'old', 'pending', '[]', '{}', 0, '', 0, '', '{}', '2026-11-28 12:00:00', '2026-11-28 12:00:00', '', '', 0, 1, '', FALSE, '', '', '', 0, '')",
			}
			for _, q := range back {
				if _, err := s.db.ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			if err := s.Migrate(ctx); err != nil {
				t.Fatalf("upgrade: %v", err)
			}
			j, err := s.GetJob(ctx, "old")
			if err != nil || j.TrustedAgents || len(j.SecretRefs) != 0 {
				t.Errorf("a job from before: %+v %v", j, err)
			}
			if err := s.CreateSecret(ctx, &Secret{ID: "s", Name: "S", Scope: ScopeGlobal, Value: []byte("x"), Version: 1, CreatedAt: time.Now(), UpdatedAt: time.Now()}); err != nil {
				t.Errorf("secret after the upgrade: %v", err)
			}
			if err := s.AddAuditEvents(ctx, []*AuditEvent{{ID: "e", At: time.Now(), Actor: "a"}}); err != nil {
				t.Errorf("audit after the upgrade: %v", err)
			}
			if _, err := s.SetTrustedLabels(ctx, []TrustedLabel{{Key: "k", Value: "v"}}); err != nil {
				t.Errorf("trust after the upgrade: %v", err)
			}
			if id, err := s.InitPrimaryKey(ctx, "k1"); err != nil || id != "k1" {
				t.Errorf("primary key after the upgrade: %q %v", id, err)
			}
		})
	}
}
