// Package pgtest gives tests a throwaway PostgreSQL database.
//
// Each test binary gets one PostgreSQL cluster, created with initdb in a
// temporary directory and started on first use on a free port of 127.0.0.1
// (durability is switched off: fsync, synchronous_commit and
// full_page_writes are off). Every call to [Start] creates a new, empty
// database in that cluster and returns its DSN.
//
// A package whose tests call Start must stop the cluster when its tests are
// done, by calling [Main] from its TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// Start fails the test when the package's TestMain does not call Main.
//
// A test that stops the database under a running application (an outage)
// takes a server of its own with [StartServer], which it may Stop and
// Start again without touching other tests' databases.
//
// The PostgreSQL binaries (initdb, pg_ctl, postgres) are looked up through
// initdb in PATH, then in /usr/lib/postgresql/*/bin, highest version first.
// When they are missing Start skips the test, unless the environment
// variable ARCADE_REQUIRE_POSTGRES is 1, in which case it fails it.
//
// initdb refuses to run as root: when the tests run as root the cluster is
// created and run as the unprivileged user "postgres", or "nobody" when
// there is no such user. Whatever the operating-system user, the database
// superuser is "arcade" and local connections are trusted, so the DSN has
// no password.
//
// The server is started with a parent-death signal, so it shuts down even
// when the test binary is killed before Main can stop it; the directories of
// such clusters are removed by the next test binary that starts one.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// RequireEnv is the environment variable that, set to 1, turns missing
// PostgreSQL binaries from a skipped test into a failed one (for CI).
const RequireEnv = "ARCADE_REQUIRE_POSTGRES"

// Superuser is the database superuser of the test cluster, used in every DSN.
const Superuser = "arcade"

var (
	mainRunning atomic.Bool
	dbSeq       atomic.Int64

	clusterOnce sync.Once
	clusterMu   sync.Mutex
	shared      *cluster
	sharedErr   error
)

// Available reports whether the PostgreSQL binaries that Start needs were
// found. It does not start anything.
func Available() bool {
	_, err := lookupBinaries()
	return err == nil
}

// Start returns the DSN of a new, empty database,
// postgres://arcade@127.0.0.1:PORT/DBNAME?sslmode=disable, starting the
// test binary's cluster if it is not running yet. The database is dropped
// when the test and its subtests are done; the test must have closed its
// connections by then (cleanups registered after Start run before the
// drop).
//
// Start skips the test when the PostgreSQL binaries are missing, unless
// ARCADE_REQUIRE_POSTGRES=1, and fails it when the package's TestMain does
// not call [Main].
func Start(tb testing.TB) string {
	tb.Helper()
	bins, err := lookupBinaries()
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			tb.Fatalf("pgtest: PostgreSQL binaries not found, and %s=1: %v", RequireEnv, err)
		}
		tb.Skipf("pgtest: PostgreSQL binaries not found, skipping (install PostgreSQL, or set %s=1 to fail instead): %v", RequireEnv, err)
	}
	if !mainRunning.Load() {
		tb.Fatal("pgtest: Start needs the package's TestMain to call pgtest.Main(m)")
	}

	clusterOnce.Do(func() {
		c, err := startCluster(bins)
		clusterMu.Lock()
		shared, sharedErr = c, err
		clusterMu.Unlock()
	})
	clusterMu.Lock()
	c, err := shared, sharedErr
	clusterMu.Unlock()
	if err != nil {
		tb.Fatalf("pgtest: starting PostgreSQL: %v", err)
	}

	name := databaseName(tb.Name(), dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.createDatabase(ctx, name); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.dropDatabase(ctx, name); err != nil {
			tb.Logf("pgtest: %v", err)
		}
	})
	return c.dsn(name)
}

// Dir returns the directory of the test binary's cluster: its data (tables
// and write-ahead log) and its server log, for tests that check what
// PostgreSQL keeps on disk. Call it after Start.
func Dir(tb testing.TB) string {
	tb.Helper()
	clusterMu.Lock()
	c := shared
	clusterMu.Unlock()
	if c == nil {
		tb.Fatal("pgtest: Dir before Start")
	}
	return c.directory()
}

// Restart restarts the test binary's PostgreSQL server (a fast shutdown,
// then a start on the same port and data): every connection of every test
// is cut. Use it only in tests that do not run in parallel with others that
// use the cluster.
func Restart(tb testing.TB) {
	tb.Helper()
	clusterMu.Lock()
	c := shared
	clusterMu.Unlock()
	if c == nil {
		tb.Fatal("pgtest: Restart before Start")
	}
	if err := c.restart(); err != nil {
		tb.Fatalf("pgtest: restart: %v", err)
	}
}

// Outage stops the test binary's PostgreSQL server (a fast shutdown: every
// connection of every test is cut, new ones are refused) until the returned
// function starts it again on the same port and data; should the test end
// first, a cleanup starts it. Use it only in tests that do not run in
// parallel with others that use the cluster.
func Outage(tb testing.TB) (resume func()) {
	tb.Helper()
	clusterMu.Lock()
	c := shared
	clusterMu.Unlock()
	if c == nil {
		tb.Fatal("pgtest: Outage before Start")
	}
	c.halt()
	var once sync.Once
	resume = func() {
		once.Do(func() {
			if err := c.resume(); err != nil {
				tb.Errorf("pgtest: start after an outage: %v", err)
			}
		})
	}
	tb.Cleanup(resume)
	return resume
}

// Server is a PostgreSQL server of one test's own: the test may stop it and
// start it again (the database going away under a running application)
// without touching the databases of other tests.
type Server struct {
	c *cluster
	// DSN names the server's one database, made for the test.
	DSN string
}

// StartServer starts a PostgreSQL cluster for tb alone, on a free port of
// 127.0.0.1, with one new, empty database (Server.DSN). The cluster is
// stopped and its directory removed when the test ends (its cleanups
// registered after StartServer run before). It skips or fails the test
// like Start when the binaries are missing; it needs no TestMain.
func StartServer(tb testing.TB) *Server {
	tb.Helper()
	bins, err := lookupBinaries()
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			tb.Fatalf("pgtest: PostgreSQL binaries not found, and %s=1: %v", RequireEnv, err)
		}
		tb.Skipf("pgtest: PostgreSQL binaries not found, skipping (install PostgreSQL, or set %s=1 to fail instead): %v", RequireEnv, err)
	}
	c, err := startCluster(bins)
	if err != nil {
		tb.Fatalf("pgtest: starting PostgreSQL: %v", err)
	}
	tb.Cleanup(func() {
		if err := c.stop(); err != nil {
			tb.Errorf("pgtest: stopping PostgreSQL: %v", err)
		}
	})
	name := databaseName(tb.Name(), dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.createDatabase(ctx, name); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	return &Server{c: c, DSN: c.dsn(name)}
}

// Stop stops the server with a fast shutdown: connections are cut, and new
// ones are refused until Start.
func (s *Server) Stop(tb testing.TB) {
	tb.Helper()
	s.c.halt()
}

// Start starts a stopped server again on the same port and data.
func (s *Server) Start(tb testing.TB) {
	tb.Helper()
	if err := s.c.resume(); err != nil {
		tb.Fatalf("pgtest: start again: %v", err)
	}
}

// Main runs the tests of m, then stops the cluster that Start may have
// started and removes its directory. Call it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// Main returns normally; since Go 1.15 the test binary then exits with the
// code of m.Run. It only exits itself (with code 1) when the tests passed
// but the cluster could not be stopped cleanly.
func Main(m *testing.M) {
	mainRunning.Store(true)
	code := m.Run()
	mainRunning.Store(false)

	clusterMu.Lock()
	c := shared
	shared, sharedErr = nil, errors.New("pgtest: the cluster was stopped by Main")
	clusterMu.Unlock()
	if c == nil {
		return
	}
	if err := c.stop(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: stopping PostgreSQL: %v\n", err)
		if code == 0 {
			os.Exit(1)
		}
	}
}

// databaseName makes a valid, unquoted-safe PostgreSQL identifier (at most
// 63 bytes) from a test name and a sequence number unique in the binary.
func databaseName(testName string, seq int64) string {
	var b strings.Builder
	b.WriteString("t")
	b.WriteString(strconv.FormatInt(seq, 10))
	b.WriteByte('_')
	underscore := true
	for _, r := range strings.ToLower(testName) {
		if b.Len() >= 63 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			underscore = false
		} else if !underscore {
			b.WriteByte('_')
			underscore = true
		}
	}
	return strings.TrimRight(b.String(), "_")
}

type binaries struct {
	initdb, pgCtl, postgres string
}

var lookupBinaries = sync.OnceValues(findBinaries)

// findBinaries looks for a directory holding initdb, pg_ctl and postgres:
// that of initdb in PATH (following symbolic links, since distributions
// often link only the client programs into PATH), then
// /usr/lib/postgresql/*/bin, highest version first.
func findBinaries() (binaries, error) {
	var dirs []string
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
		dirs = append(dirs, filepath.Dir(p))
	}
	dirs = append(dirs, versionedDirs("/usr/lib/postgresql")...)
	for _, d := range dirs {
		b := binaries{
			initdb:   filepath.Join(d, "initdb"),
			pgCtl:    filepath.Join(d, "pg_ctl"),
			postgres: filepath.Join(d, "postgres"),
		}
		if isExecutable(b.initdb) && isExecutable(b.pgCtl) && isExecutable(b.postgres) {
			return b, nil
		}
	}
	return binaries{}, errors.New("no directory with initdb, pg_ctl and postgres in PATH or /usr/lib/postgresql/*/bin")
}

// versionedDirs returns root/*/bin ordered by version, highest first.
func versionedDirs(root string) []string {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	type versioned struct {
		dir     string
		version []int
	}
	var vs []versioned
	for _, e := range entries {
		v, ok := parseVersion(e.Name())
		if !ok {
			continue
		}
		vs = append(vs, versioned{filepath.Join(root, e.Name(), "bin"), v})
	}
	// Insertion sort, descending: there are only a few versions.
	for i := 1; i < len(vs); i++ {
		for j := i; j > 0 && compareVersions(vs[j].version, vs[j-1].version) > 0; j-- {
			vs[j], vs[j-1] = vs[j-1], vs[j]
		}
	}
	dirs := make([]string, len(vs))
	for i, v := range vs {
		dirs[i] = v.dir
	}
	return dirs
}

func parseVersion(s string) ([]int, bool) {
	var v []int
	for _, part := range strings.Split(s, ".") {
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 {
			return nil, false
		}
		v = append(v, n)
	}
	return v, len(v) > 0
}

func compareVersions(a, b []int) int {
	for i := 0; i < len(a) || i < len(b); i++ {
		var x, y int
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			if x > y {
				return 1
			}
			return -1
		}
	}
	return 0
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
