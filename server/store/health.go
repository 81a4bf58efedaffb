package store

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/driver/pgdriver"
)

// writeProbe is the one row readiness writes to learn whether the database
// takes writes: a database that answers reads may still refuse every
// write (a full disk, a read-only file system).
type writeProbe struct {
	bun.BaseModel `bun:"table:write_probes"`

	Name   string    `bun:"name,pk"`
	Holder string    `bun:"holder,notnull"`
	At     time.Time `bun:"at,notnull"`
}

// ErrStorageFull marks an operation refused because the database has no
// room left (its disk is full).
var ErrStorageFull = errors.New("the database's storage is full")

// ErrBusy marks an operation that lost to other writers for longer than the
// server waits (SQLite's lock, PostgreSQL's lock timeouts and serialization
// failures): it may be retried.
var ErrBusy = errors.New("the database is busy")

// sqliteError is what SQLite drivers' errors answer (modernc.org/sqlite).
type sqliteError interface{ Code() int }

// SQLite result codes (primary codes: the low byte of extended ones).
const (
	sqliteBusy   = 5
	sqliteLocked = 6
	sqliteFull   = 13
)

func sqliteCode(err error) (int, bool) {
	var se sqliteError
	if errors.As(err, &se) {
		return se.Code() & 0xff, true
	}
	return 0, false
}

func pgCode(err error) (string, bool) {
	var pe pgdriver.Error
	if errors.As(err, &pe) {
		return pe.Field('C'), true
	}
	return "", false
}

// StorageFull reports whether err means the database ran out of room:
// SQLITE_FULL, or PostgreSQL's class 53 "insufficient resources" (disk full,
// out of memory, too many connections aside).
func StorageFull(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrStorageFull) {
		return true
	}
	if code, ok := sqliteCode(err); ok {
		return code == sqliteFull
	}
	if code, ok := pgCode(err); ok {
		return code == "53100" || code == "53000"
	}
	return false
}

// Busy reports whether err means the operation lost to other writers and
// may be retried: SQLITE_BUSY or SQLITE_LOCKED, PostgreSQL's
// lock_not_available, serialization_failure or deadlock_detected.
func Busy(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrBusy) {
		return true
	}
	if code, ok := sqliteCode(err); ok {
		return code == sqliteBusy || code == sqliteLocked
	}
	if code, ok := pgCode(err); ok {
		return code == "55P03" || code == "40001" || code == "40P01"
	}
	return false
}

// fullWatch notes when the database last refused a write for want of room,
// whichever query met it.
type fullWatch struct{ last atomic.Int64 }

func (f *fullWatch) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

func (f *fullWatch) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	if StorageFull(e.Err) {
		f.last.Store(time.Now().UnixNano())
	}
}

// fullRecently is how long a storage-full error met by any query keeps the
// database reported unable to write (a small write may pass where others need more room).
const fullRecently = 5 * time.Second

// CheckWrite reports whether the database takes writes now: it answers, it
// stores one small row, and no query met a full disk in the last 5 s (a
// write that fits in pages the database already has may pass while any
// growth fails). holder names the server writing.
func (s *Store) CheckWrite(ctx context.Context, holder string) error {
	if at := s.full.last.Load(); at != 0 && time.Since(time.Unix(0, at)) < fullRecently {
		return fmt.Errorf("write refused %s ago: %w", time.Since(time.Unix(0, at)).Round(time.Second), ErrStorageFull)
	}
	p := &writeProbe{Name: "readiness", Holder: holder, At: time.Now().UTC()}
	_, err := s.db.NewInsert().Model(p).On("CONFLICT (name) DO UPDATE").Set("holder = EXCLUDED.holder, at = EXCLUDED.at").Exec(ctx)
	if err != nil {
		return fmt.Errorf("write to the database: %w", err)
	}
	return nil
}
