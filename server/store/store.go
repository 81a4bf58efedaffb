// Package store keeps Arcade's state (agents, jobs, logs, artifacts) in a SQL
// database through uptrace/bun. The same code serves embedded SQLite (the
// default, a file in the data directory) and PostgreSQL.
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/driver/pgdriver"
	"github.com/uptrace/bun/driver/sqliteshim"
	"github.com/uptrace/bun/migrate"
)

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a record changed under the caller (its status
// is no longer what the operation needs).
var ErrConflict = errors.New("conflict")

// Store is the database. It is safe for concurrent use.
type Store struct {
	db       *bun.DB
	postgres bool
	log      *slog.Logger

	// Group commit of the hottest writes (group.go).
	creates  group[*Job]
	modifies group[*modification]
	// full notes the last write refused for want of room (health.go).
	full fullWatch
	// busyRetries is how many times a transaction that lost to other
	// writers is run again.
	busyRetries int
	// trouble tells who asked (OnTrouble) of queries the database failed.
	trouble troubleHook
}

// Option tunes Open.
type Option func(*options)

type options struct{ busyWait time.Duration }

// WithBusyWait sets how long a SQLite writer waits for another's lock
// before its transaction is retried (default 10 s).
func WithBusyWait(d time.Duration) Option { return func(o *options) { o.busyWait = d } }

// Open connects to the database named by dsn: "sqlite://PATH" (or a bare
// path) for embedded SQLite, "postgres://…" or "postgresql://…" for
// PostgreSQL. It does not migrate; call Migrate.
func Open(ctx context.Context, dsn string, logger *slog.Logger, opts ...Option) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o := options{busyWait: 10 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	var (
		db       *bun.DB
		postgres bool
	)
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		sqldb := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(dsn)))
		sqldb.SetMaxOpenConns(32)
		sqldb.SetMaxIdleConns(16)
		db = bun.NewDB(sqldb, pgdialect.New())
		postgres = true
	default:
		path := strings.TrimPrefix(dsn, "sqlite://")
		if path == "" {
			return nil, fmt.Errorf("open database: empty sqlite path in %q", dsn)
		}
		if dir := filepath.Dir(path); dir != "." {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("open database: create %s: %w", dir, err)
			}
		}
		// WAL lets readers run beside the writer; busy_timeout makes writers
		// wait for each other instead of failing; immediate transactions take
		// the write lock up front so two of them never deadlock upgrading.
		conn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(" + strconv.FormatInt(o.busyWait.Milliseconds(), 10) + ")" +
			"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
		sqldb, err := sql.Open(sqliteshim.ShimName, conn)
		if err != nil {
			return nil, fmt.Errorf("open sqlite %s: %w", path, err)
		}
		sqldb.SetMaxOpenConns(4)
		sqldb.SetMaxIdleConns(4)
		db = bun.NewDB(sqldb, sqlitedialect.New())
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	s := &Store{db: db, postgres: postgres, log: logger, busyRetries: 3}
	db.AddQueryHook(&s.full)
	db.AddQueryHook(&s.trouble)
	s.creates.commit = s.createJobs
	s.modifies.commit = s.modifyJobs
	if postgres {
		// Rounds on different rows commit side by side; a few at once
		// keep the database busy while the next batch gathers.
		s.creates.max, s.modifies.max = 4, 4
	}
	return s, nil
}

// Postgres reports whether the store runs on PostgreSQL.
func (s *Store) Postgres() bool { return s.postgres }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Migrate brings the schema up to date. Several servers may call it at once:
// the migrator takes a lock.
func (s *Store) Migrate(ctx context.Context) error {
	m := migrate.NewMigrator(s.db, migrations, migrate.WithMarkAppliedOnSuccess(true))
	if err := m.Init(ctx); err != nil {
		return fmt.Errorf("migrate: init: %w", err)
	}
	if err := m.Lock(ctx); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	defer m.Unlock(ctx) //nolint:errcheck // best effort; the lock row is harmless
	group, err := m.Migrate(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if !group.IsZero() {
		s.log.Info("database migrated", "to", group.Migrations.LastGroup().String())
	}
	return nil
}

func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// ErrUnavailable marks errors that come from losing the database (a restart,
// a cut connection): the operation may be retried.
var ErrUnavailable = errors.New("database unavailable")

// Unavailable reports whether err means the database could not be reached
// or dropped the connection, rather than refusing the operation.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	var pgErr pgdriver.Error
	if errors.As(err, &pgErr) {
		code := pgErr.Field('C')
		// 08: connection exception; 57P: operator intervention (shutdown).
		return strings.HasPrefix(code, "08") || strings.HasPrefix(code, "57P")
	}
	var netErr net.Error
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.As(err, &netErr)
}

// runTx runs fn in a transaction, and again (up to busyRetries times, with
// a short pause) when it lost to other writers: SQLite's lock held past its
// wait, a PostgreSQL serialization failure or deadlock. fn must be safe to
// run again (each run starts from a rolled-back transaction).
func (s *Store) runTx(ctx context.Context, fn func(ctx context.Context, tx bun.Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := s.db.RunInTx(ctx, nil, fn)
		if !Busy(err) || attempt >= s.busyRetries || ctx.Err() != nil {
			return err
		}
		s.log.Debug("database busy; transaction retried", "attempt", attempt+1, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt+1) * 50 * time.Millisecond):
		}
	}
}
