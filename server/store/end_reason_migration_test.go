package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-arcade/arcade/core/jobstate"
	"github.com/go-arcade/arcade/internal/pgtest"
)

// TestEndReasonMigration: a database from before migration 20261206010000
// gets jobs.end_reason, filled from what status, exit code and message
// said before: the attempts that retry policies took for lost agents
// become agent_lost, and only those.
func TestEndReasonMigration(t *testing.T) {
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
			cases := []struct {
				status  string
				exit    int32
				message string
				want    jobstate.Reason
			}{
				{"failed", -1, "agent lost: lease expired", jobstate.ReasonAgentLost},
				{"failed", -1, "agent unregistered", jobstate.ReasonAgentLost},
				{"failed", -1, "Agent Lost", jobstate.ReasonStepFailed},
				{"failed", 2, "agent lost", jobstate.ReasonStepFailed},
				{"failed", -1, "agent revoked", jobstate.ReasonAgentRevoked},
				{"failed", 1, "exit status 1", jobstate.ReasonStepFailed},
				{"timeout", -1, "timed out after 1s", jobstate.ReasonTimeout},
				{"cancelled", 0, "cancelled by request", jobstate.ReasonCancelled},
				{"success", 0, "", jobstate.ReasonNone},
				{"skipped", 0, "skipped: a did not succeed", jobstate.ReasonNone},
				{"pending", 0, "attempt 1: agent lost: lease expired; requeued", jobstate.ReasonNone},
			}
			now := time.Now()
			for i, c := range cases {
				j := &Job{ID: string(rune('a' + i)), Name: "j", Status: c.status, ExitCode: c.exit, Message: c.message,
					Commands: []string{}, Env: map[string]string{}, Labels: map[string]string{}, CreatedAt: now, UpdatedAt: now, Attempt: 1}
				if err := s.CreateJob(ctx, j); err != nil {
					t.Fatal(err)
				}
			}
			// Back to the schema before the migration.
			for _, q := range []string{
				"ALTER TABLE jobs DROP COLUMN end_reason",
				"DELETE FROM bun_migrations WHERE name = '20261206010000'",
			} {
				if _, err := s.db.ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			if err := s.Migrate(ctx); err != nil {
				t.Fatalf("upgrade: %v", err)
			}
			for i, c := range cases {
				j, err := s.GetJob(ctx, string(rune('a'+i)))
				if err != nil {
					t.Fatal(err)
				}
				if j.EndReason != c.want {
					t.Errorf("%s, exit %d, %q: end reason %q, want %q", c.status, c.exit, c.message, j.EndReason, c.want)
				}
			}
		})
	}
}
