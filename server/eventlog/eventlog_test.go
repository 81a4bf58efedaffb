package eventlog

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/events"
	"github.com/go-arcade/arcade/server/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "arcade.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}

var base = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)

func event(id string, sec int, typ jobv1.EventType, status string) *jobv1.Event {
	e := &jobv1.Event{Id: id, Type: typ, ResourceType: "job", ResourceId: "j-" + id,
		Timestamp: timestamppb.New(base.Add(time.Duration(sec) * time.Second)), Attributes: map[string]string{"status": status}}
	e.Name = string(events.Of(e))
	return e
}

func ids(es []*jobv1.Event) string {
	var out []string
	for _, e := range es {
		out = append(out, e.GetId())
	}
	return strings.Join(out, " ")
}

// The history a replica reads is what the database holds plus the events
// it saw relayed that their replica has not written yet, in time order,
// each once; what it recorded itself is written before it reads.
func TestReadMergesStoredAndRelayed(t *testing.T) {
	st := openStore(t)
	l, err := New(Config{MaxEvents: 100}, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	l.Record(event("e1", 1, jobv1.EventType_EVENT_TYPE_JOB_CREATED, "pending"))
	l.Record(event("e3", 3, jobv1.EventType_EVENT_TYPE_JOB_FINISHED, "failed"))
	// e2 happened on another replica, which has not written it yet; e4 it
	// has written (and it was relayed too).
	l.Seen(event("e2", 2, jobv1.EventType_EVENT_TYPE_JOB_STARTED, "running"))
	e4 := event("e4", 4, jobv1.EventType_EVENT_TYPE_JOB_FINISHED, "success")
	if err := st.AppendEvents(context.Background(), []*store.Event{toStore(e4)}); err != nil {
		t.Fatal(err)
	}
	l.Seen(e4)

	got, err := l.Read(context.Background(), Query{SinceTime: base})
	if err != nil || ids(got) != "e1 e2 e3 e4" {
		t.Fatalf("since the start: %q %v", ids(got), err)
	}
	got, _ = l.Read(context.Background(), Query{SinceID: "e2"})
	if ids(got) != "e3 e4" {
		t.Errorf("after e2 (relayed, not stored): %q", ids(got))
	}
	got, _ = l.Read(context.Background(), Query{Last: 2})
	if ids(got) != "e3 e4" {
		t.Errorf("last 2: %q", ids(got))
	}
	got, _ = l.Read(context.Background(), Query{SinceTime: base, Names: []events.Name{events.JobFailed, events.JobStarted}})
	if ids(got) != "e2 e3" {
		t.Errorf("job.failed and job.started: %q", ids(got))
	}
	if _, err := l.Read(context.Background(), Query{SinceID: "nope"}); err != ErrUnknownEvent {
		t.Errorf("since an unknown event: %v", err)
	}
	// What this replica recorded is in the database now.
	stored, _ := st.LastEvents(context.Background(), 10, store.EventFilter{})
	if len(stored) != 3 {
		t.Errorf("stored %d events, want e1 e3 e4", len(stored))
	}
}

// A full queue never blocks the publisher: the event stays out of the
// history (and is counted).
func TestRecordNeverBlocks(t *testing.T) {
	l, err := New(Config{}, openStore(t), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for i := range queueSize + 10 { // no writer runs
		l.Record(event("x", i, jobv1.EventType_EVENT_TYPE_JOB_CREATED, "pending"))
	}
	if l.dropped != 10 {
		t.Errorf("dropped %d, want 10", l.dropped)
	}
}
