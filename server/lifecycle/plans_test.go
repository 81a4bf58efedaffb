package lifecycle

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun/driver/sqliteshim"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/jobstate"
	"github.com/go-arcade/arcade/server/store"
)

// syncBuffer is a log sink safe for the goroutines a test runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// A run is planned once, when it starts, however often it advances; and
// housekeeping neither plans it again nor takes the database's write lock
// for a run with nothing to do, so a writer holding the lock (another
// user's job, say) does not make it wait or fail.
func TestRunsArePlannedOnceAndHousekeepingLocksOnlyWhatMoves(t *testing.T) {
	path := filepath.Join(t.TempDir(), "arcade.db")
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite://"+path, nil, store.WithBusyWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	f := &fixture{t: t, ctx: ctx, st: st, fx: &recorder{}, clock: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	f.l = New(Config{LeaseTTL: leaseTTL, TimeoutGrace: 30 * time.Second}, st, f.fx, func() time.Time { return f.clock },
		slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	f.agent, err = st.RegisterAgent(ctx, &store.Agent{ID: "agent-1", Name: "a1", Labels: map[string]string{}, MaxJobs: 4,
		Online: true, RegisteredAt: f.clock, LastHeartbeatAt: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	p := f.createPipeline(`name: p
stages:
  - {name: one, jobs: [{name: a, commands: [x]}, {name: b, commands: [y], depends_on: [a]}]}
  - {name: two, jobs: [{name: c, commands: [z]}]}`)
	r, err := f.l.StartRun(ctx, p, jobv1.TriggerType_TRIGGER_TYPE_MANUAL, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if kept, made := f.l.plans.planned(r.ID); !kept || made != 1 {
		t.Fatalf("after the start: kept %v, %d plans made", kept, made)
	}

	// Another writer holds SQLite's lock; housekeeping has nothing to do.
	db, err := sql.Open(sqliteshim.ShimName, "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := f.l.AdvanceRuns(ctx); err != nil {
			t.Fatal(err)
		}
	}
	conn.ExecContext(ctx, "COMMIT") //nolint:errcheck // nothing written
	conn.Close()
	if strings.Contains(logs.String(), "advance pipeline run") || strings.Contains(logs.String(), "busy") {
		t.Fatalf("housekeeping waited for the lock on a run with nothing to do:\n%s", logs.String())
	}

	// The run moves on as its jobs end; still one plan.
	a := f.runJob(r.ID, "a")
	f.claim(a.ID)
	f.mustReport(a, jobstate.Success, 0, "")
	b := f.runJob(r.ID, "b")
	f.claim(b.ID)
	f.mustReport(b, jobstate.Success, 0, "")
	if err := f.l.AdvanceRuns(ctx); err != nil {
		t.Fatal(err)
	}
	c := f.runJob(r.ID, "c")
	f.claim(c.ID)
	f.mustReport(c, jobstate.Success, 0, "")
	if got := f.run(r.ID).Status; got != "success" {
		t.Fatalf("run %s", got)
	}
	// An ended run's plan is let go.
	if kept, made := f.l.plans.planned(r.ID); kept || made != 1 {
		t.Fatalf("after the end: kept %v, %d plans made", kept, made)
	}
}
