package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-arcade/arcade/internal/pgtest"
)

// TestLogLinesMigration: a database from before migration 20261206011000
// gets jobs.log_lines, lost_attempt and lost_agent_id, zero and empty for
// the jobs it holds, and they are stored from then on.
func TestLogLinesMigration(t *testing.T) {
	for name, dsn := range map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "arcade.db") },
		"postgres": func(t *testing.T) string { return pgtest.Start(t) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s, err := Open(ctx, dsn(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			if err := s.CreateJob(ctx, &Job{ID: "old", Name: "old", Status: "success", Commands: []string{}, Env: map[string]string{},
				Labels: map[string]string{}, CreatedAt: now, UpdatedAt: now, AgentID: "a1", Attempt: 1}); err != nil {
				t.Fatal(err)
			}
			// Back to the schema before the migration.
			for _, q := range []string{
				"ALTER TABLE jobs DROP COLUMN log_lines",
				"ALTER TABLE jobs DROP COLUMN lost_attempt",
				"ALTER TABLE jobs DROP COLUMN lost_agent_id",
				"DELETE FROM bun_migrations WHERE name = '20261206011000'",
			} {
				if _, err := s.db.ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			if err := s.Migrate(ctx); err != nil {
				t.Fatalf("upgrade: %v", err)
			}
			old, err := s.GetJob(ctx, "old")
			if err != nil || old.LogLines != 0 || old.LostAttempt != 0 || old.LostAgentID != "" {
				t.Fatalf("a job from before: %+v, %v", old, err)
			}
			if _, err := s.ModifyJob(ctx, "old", func(j *Job) error {
				j.LogLines, j.LostAttempt, j.LostAgentID = 12, 1, "a1"
				j.UpdatedAt = time.Now()
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if j, err := s.GetJob(ctx, "old"); err != nil || j.LogLines != 12 || j.LostAttempt != 1 || j.LostAgentID != "a1" {
				t.Fatalf("after a change: %+v, %v", j, err)
			}
		})
	}
}
