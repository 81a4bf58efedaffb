package store

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/driver/pgdriver"
)

// Trouble reports whether err means the database could not do its part —
// it is unreachable, out of room or failing to read or write its files —
// rather than refusing the operation (a constraint, a missing row) or the
// caller giving up (a cancelled context). While the database is in
// trouble, nothing stored says what agents did: heartbeats, status reports
// and log lines are refused without being their fault.
func Trouble(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if Unavailable(err) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	// SQLite: SQLITE_IOERR (10, with its extended codes), SQLITE_FULL (13),
	// SQLITE_CANTOPEN (14), SQLITE_READONLY (8: a file system remounted
	// read-only).
	var lite interface{ Code() int }
	if errors.As(err, &lite) {
		switch lite.Code() & 0xff {
		case 8, 10, 13, 14:
			return true
		}
		return false
	}
	// PostgreSQL: class 53 (insufficient resources: disk full, out of
	// memory, too many connections), 58 (system error: I/O), XX (internal
	// error), 25006 (read-only transaction: a standby after a failover).
	var pg pgdriver.Error
	if errors.As(err, &pg) {
		code := pg.Field('C')
		return strings.HasPrefix(code, "53") || strings.HasPrefix(code, "58") || strings.HasPrefix(code, "XX") || code == "25006"
	}
	return false
}

// OnTrouble has fn called after every query (the begin and commit of
// transactions included) that fails in a way Trouble recognises. fn runs
// on the query's goroutine and must not block or use the store.
func (s *Store) OnTrouble(fn func(err error)) {
	s.trouble.add(fn)
}

// troubleHook is a bun query hook that tells the OnTrouble functions.
type troubleHook struct {
	mu  sync.Mutex
	fns []func(error)
}

func (h *troubleHook) add(fn func(error)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fns = append(h.fns, fn)
}

func (h *troubleHook) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

func (h *troubleHook) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	if !Trouble(e.Err) {
		return
	}
	h.mu.Lock()
	fns := h.fns
	h.mu.Unlock()
	for _, fn := range fns {
		fn(e.Err)
	}
}
