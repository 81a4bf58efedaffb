package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun/driver/sqliteshim"

	"github.com/go-arcade/arcade/internal/tmpfs"
	"github.com/go-arcade/arcade/server/store"
)

// holdWriteLock takes SQLite's write lock on the database file from a
// connection of its own, as another process would, until release is called.
func holdWriteLock(t *testing.T, path string) (release func()) {
	t.Helper()
	db, err := sql.Open(sqliteshim.ShimName, "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	return func() {
		conn.ExecContext(context.Background(), "COMMIT") //nolint:errcheck // nothing was written
		conn.Close()
		db.Close()
	}
}

// A writer that holds SQLite's lock past the store's busy wait makes the
// store's transaction retry, not fail; one that holds it past every retry
// gives an error the store calls Busy.
func TestBusyTransactionsRetried(t *testing.T) {
	path := filepath.Join(t.TempDir(), "arcade.db")
	ctx := context.Background()
	s, err := store.Open(ctx, "sqlite://"+path, nil, store.WithBusyWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	p := &store.Pipeline{ID: "p1", Name: "p1", Spec: []byte("{}"), CreatedAt: t0, UpdatedAt: t0}
	release := holdWriteLock(t, path)
	go func() { time.Sleep(250 * time.Millisecond); release() }()
	if err := s.CreatePipeline(ctx, p); err != nil {
		t.Fatalf("a transaction behind a writer holding the lock 250 ms (busy wait 100 ms): %v", err)
	}

	release = holdWriteLock(t, path)
	defer release()
	err = s.CreatePipeline(ctx, &store.Pipeline{ID: "p2", Name: "p2", Spec: []byte("{}"), CreatedAt: t0, UpdatedAt: t0})
	if !store.Busy(err) || store.StorageFull(err) {
		t.Fatalf("behind a writer that never lets go: %v (busy %v)", err, store.Busy(err))
	}
}

// On a full disk (a real, small tmpfs) writes fail with an error the store
// calls StorageFull, and CheckWrite says the database cannot write while
// reads still work; once there is room again, it can.
func TestFullDisk(t *testing.T) {
	dir := tmpfs.Mount(t, 2<<20)
	ctx := context.Background()
	s := open(t, "sqlite://"+filepath.Join(dir, "arcade.db"))
	if err := s.CheckWrite(ctx, "me"); err != nil {
		t.Fatalf("before: %v", err)
	}
	free := tmpfs.Fill(t, dir)
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		j := newJob(fmt.Sprintf("j%04d", i), t0)
		j.Commands = []string{strings.Repeat("x", 4000)}
		err = s.CreateJob(ctx, j)
	}
	if !store.StorageFull(err) || store.Busy(err) {
		t.Fatalf("a write to a full disk: %v", err)
	}
	err = s.CheckWrite(ctx, "me")
	if !store.StorageFull(err) || !errors.Is(err, store.ErrStorageFull) {
		t.Fatalf("CheckWrite on a full disk: %v", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("reads on a full disk: %v", err)
	}
	free()
	deadline := time.Now().Add(30 * time.Second)
	for s.CheckWrite(ctx, "me") != nil {
		if time.Now().After(deadline) {
			t.Fatalf("CheckWrite after freeing room: %v", s.CheckWrite(ctx, "me"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := s.CreateJob(ctx, newJob("after", t0)); err != nil {
		t.Fatalf("a write after freeing room: %v", err)
	}
}
