package pgtest_test

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-arcade/arcade/internal/pgtest"
	"github.com/uptrace/bun/driver/pgdriver"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func open(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(dsn)))
	t.Cleanup(func() { _ = db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("ping %s: %v", dsn, err)
	}
	return db
}

func TestStartGivesIndependentDatabases(t *testing.T) {
	dsn1 := pgtest.Start(t)
	dsn2 := pgtest.Start(t)
	if dsn1 == dsn2 {
		t.Fatalf("two Start calls returned the same DSN %s", dsn1)
	}
	for _, dsn := range []string{dsn1, dsn2} {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		if u.Scheme != "postgres" || u.User.Username() != pgtest.Superuser || u.Hostname() != "127.0.0.1" ||
			u.Port() == "" || u.Query().Get("sslmode") != "disable" || len(u.Path) < 2 {
			t.Errorf("unexpected DSN %s", dsn)
		}
	}

	ctx := context.Background()
	db1, db2 := open(t, dsn1), open(t, dsn2)

	var name1, name2, addr string
	if err := db1.QueryRowContext(ctx, "SELECT current_database(), host(inet_server_addr())").Scan(&name1, &addr); err != nil {
		t.Fatal(err)
	}
	if err := db2.QueryRowContext(ctx, "SELECT current_database()").Scan(&name2); err != nil {
		t.Fatal(err)
	}
	if name1 == name2 || !strings.HasSuffix(dsn1, "/"+name1+"?sslmode=disable") || !strings.HasSuffix(dsn2, "/"+name2+"?sslmode=disable") {
		t.Errorf("databases %q and %q for DSNs %s and %s", name1, name2, dsn1, dsn2)
	}
	if addr != "127.0.0.1" {
		t.Errorf("server address %q, want 127.0.0.1", addr)
	}

	// Fresh and empty: no tables of ours.
	for _, db := range []*sql.DB{db1, db2} {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("new database has %d tables", n)
		}
	}

	if _, err := db1.ExecContext(ctx, "CREATE TABLE jobs (id int PRIMARY KEY, name text)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db1.ExecContext(ctx, "INSERT INTO jobs VALUES (1, 'build')"); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := db1.QueryRowContext(ctx, "SELECT name FROM jobs WHERE id = 1").Scan(&got); err != nil || got != "build" {
		t.Fatalf("read back %q, %v", got, err)
	}

	// The other database does not see the table, and can make its own.
	_, err := db2.ExecContext(ctx, "SELECT * FROM jobs")
	var pgErr pgdriver.Error
	if !errors.As(err, &pgErr) || pgErr.Field('C') != "42P01" { // undefined_table
		t.Fatalf("jobs in the second database: got %v, want undefined_table", err)
	}
	if _, err := db2.ExecContext(ctx, "CREATE TABLE jobs (id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
}

func TestStartInParallel(t *testing.T) {
	for i := range 4 {
		t.Run(string(rune('a'+i)), func(t *testing.T) {
			t.Parallel()
			db := open(t, pgtest.Start(t))
			if _, err := db.Exec("CREATE TABLE t (x int)"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestAvailable(t *testing.T) {
	if !pgtest.Available() {
		t.Skip("PostgreSQL binaries not installed")
	}
	// Start must not skip when Available says the binaries are there.
	_ = pgtest.Start(t)
}

// TestPrivateServerStopsAndStarts: a test's own server refuses connections
// while stopped and serves the same data once started again, while the
// shared cluster goes on serving.
func TestPrivateServerStopsAndStarts(t *testing.T) {
	shared := open(t, pgtest.Start(t))
	srv := pgtest.StartServer(t)
	db := open(t, srv.DSN)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	srv.Stop(t)
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := db.PingContext(qctx); err == nil {
		t.Fatal("a stopped server answered")
	}
	if err := shared.PingContext(qctx); err != nil {
		t.Fatalf("the shared cluster stopped too: %v", err)
	}
	srv.Start(t)
	var x int
	if err := db.QueryRowContext(ctx, "SELECT x FROM kept").Scan(&x); err != nil || x != 42 {
		t.Fatalf("after the start: %d, %v", x, err)
	}
}
