//go:build linux

package pgtest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/uptrace/bun/driver/pgdriver"
)

const (
	dirPrefix = "arcade-pgtest-"
	// ownerFile, in a cluster's directory, holds the pid of the test binary
	// that owns the cluster, so that a later binary can tell a leftover
	// directory from a live one.
	ownerFile = "owner.pid"

	startTimeout = time.Minute
	stopTimeout  = 30 * time.Second
)

// errServerExited marks a server that exited while starting; starting again
// on another port may succeed (the chosen port may have been taken).
var errServerExited = errors.New("postgres exited while starting")

type cluster struct {
	bins    binaries
	dir     string              // temporary directory: data/, sockets, log
	data    string              // data directory
	cred    *syscall.Credential // nil: run as the current user
	port    int
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
	waitErr error         // cmd.Wait's result, set before exited is closed
	admin   *sql.DB       // connection to the "postgres" database
}

// startCluster creates and starts the cluster. On failure it leaves nothing
// behind.
func startCluster(bins binaries) (c *cluster, err error) {
	removeStaleDirs()

	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	dir, err := makeClusterDir(cred)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()

	c = &cluster{bins: bins, dir: dir, data: filepath.Join(dir, "data"), cred: cred}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if out, err := c.run(ctx, bins.initdb,
		"-D", c.data,
		"-U", Superuser,
		"--auth=trust",
		"--encoding=UTF8",
		"--locale=C",
		"--no-sync",
	); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}

	for attempt := 1; ; attempt++ {
		err = c.launch(ctx, 0)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, errServerExited) || attempt == 3 {
			return nil, err
		}
	}
}

// launch starts the server on port (0: a free one) and waits until it
// accepts connections.
func (c *cluster) launch(ctx context.Context, port int) error {
	if port == 0 {
		var err error
		if port, err = freePort(); err != nil {
			return err
		}
	}
	logPath := filepath.Join(c.dir, "postgres.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()

	cmd := exec.Command(c.bins.postgres,
		"-D", c.data,
		"-p", strconv.Itoa(port),
		"-k", c.dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200",
	)
	cmd.Dir = c.dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// SIGQUIT is PostgreSQL's immediate shutdown: should the test binary
	// die before Main stops the server, the server goes too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Pdeathsig: syscall.SIGQUIT}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting postgres: %w", err)
	}
	c.cmd, c.port = cmd, port
	c.exited = make(chan struct{})
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()

	if err := c.waitReady(ctx); err != nil {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-c.exited:
		case <-time.After(stopTimeout):
			_ = cmd.Process.Kill()
			<-c.exited
		}
		log, _ := os.ReadFile(logPath)
		return fmt.Errorf("%w\n%s", err, tail(log, 4096))
	}
	return nil
}

// waitReady polls the server until it accepts connections, and checks that
// the server that answers on the port is this cluster's.
func (c *cluster) waitReady(ctx context.Context) error {
	db := sql.OpenDB(pgdriver.NewConnector(
		pgdriver.WithDSN(c.dsn("postgres")),
		pgdriver.WithDialTimeout(5*time.Second),
	))
	db.SetMaxOpenConns(4)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		select {
		case <-c.exited:
			_ = db.Close()
			return fmt.Errorf("%w: %v", errServerExited, c.waitErr)
		case <-ctx.Done():
			_ = db.Close()
			return fmt.Errorf("postgres not ready after %s: %v", startTimeout, lastErr)
		case <-tick.C:
		}
		var dataDir string
		lastErr = db.QueryRowContext(ctx, "SHOW data_directory").Scan(&dataDir)
		if lastErr != nil {
			continue
		}
		if filepath.Clean(dataDir) != filepath.Clean(c.data) {
			_ = db.Close()
			return fmt.Errorf("%w: port %d is served by another PostgreSQL (%s)", errServerExited, c.port, dataDir)
		}
		c.admin = db
		return nil
	}
}

func (c *cluster) dsn(database string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", Superuser, c.port, database)
}

func (c *cluster) createDatabase(ctx context.Context, name string) error {
	if _, err := c.admin.ExecContext(ctx, `CREATE DATABASE "`+name+`"`); err != nil {
		return fmt.Errorf("creating database %s: %w", name, err)
	}
	return nil
}

func (c *cluster) dropDatabase(ctx context.Context, name string) error {
	// WITH (FORCE) (PostgreSQL 13+) ends the connections a test left open.
	_, err := c.admin.ExecContext(ctx, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`)
	if err != nil {
		_, err = c.admin.ExecContext(ctx, `DROP DATABASE IF EXISTS "`+name+`"`)
	}
	if err != nil {
		return fmt.Errorf("dropping database %s: %w", name, err)
	}
	return nil
}

// restart stops the server (fast shutdown: connections are cut) and starts
// it again on the same port and data, as a database restart under a running
// application looks.
func (c *cluster) restart() error {
	c.halt()
	return c.resume()
}

// halt stops the server with a fast shutdown: connections are cut, and
// the port refuses new ones until resume.
func (c *cluster) halt() {
	if c.admin != nil {
		_ = c.admin.Close()
		c.admin = nil
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.exited:
	case <-time.After(stopTimeout):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// resume starts a halted server again on the same port and data.
func (c *cluster) resume() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	return c.launch(ctx, c.port)
}

// stop shuts the server down at once (pg_ctl stop -m immediate), waits for
// it, and removes the cluster's directory.
func (c *cluster) stop() error {
	var errs []error
	if c.admin != nil {
		_ = c.admin.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	select {
	case <-c.exited: // halted, and not started again
	default:
		if out, err := c.run(ctx, c.bins.pgCtl, "stop", "-D", c.data, "-m", "immediate", "-w", "-t", "20"); err != nil {
			errs = append(errs, fmt.Errorf("pg_ctl stop: %w\n%s", err, out))
			_ = c.cmd.Process.Signal(syscall.SIGQUIT)
		}
	}
	select {
	case <-c.exited:
	case <-time.After(stopTimeout):
		_ = c.cmd.Process.Kill()
		<-c.exited
		errs = append(errs, errors.New("postgres did not stop, killed it"))
	}
	if err := os.RemoveAll(c.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// run runs a PostgreSQL program as the cluster's user and returns its
// combined output.
func (c *cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = c.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.Bytes(), err
}

// serverCredential returns nil when the tests may run PostgreSQL as
// themselves, and, as root (which initdb refuses), the credential of the
// "postgres" user, or of "nobody" when there is no such user.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	var errs []error
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			errs = append(errs, fmt.Errorf("user %s: uid %q gid %q", name, u.Uid, u.Gid))
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
	}
	return nil, fmt.Errorf("running as root and no unprivileged user to run PostgreSQL as: %w", errors.Join(errs...))
}

// makeClusterDir creates the cluster's temporary directory, owned by the
// user that runs the server, under a parent that user can reach, and
// records the test binary's pid in it.
func makeClusterDir(cred *syscall.Credential) (string, error) {
	// The server's socket, DIR/.s.PGSQL.PORT, must fit in sun_path (108
	// bytes with its terminating NUL).
	const socketSuffix = "/" + dirPrefix + "0123456789/.s.PGSQL.65535"
	var tried []string
	for _, parent := range []string{os.TempDir(), "/tmp"} {
		if len(parent)+len(socketSuffix) >= 108 || (cred != nil && !reachable(parent, cred)) {
			tried = append(tried, parent)
			continue
		}
		dir, err := os.MkdirTemp(parent, dirPrefix)
		if err != nil {
			return "", err
		}
		if cred != nil {
			if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
				_ = os.RemoveAll(dir)
				return "", err
			}
		}
		if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			_ = os.RemoveAll(dir)
			return "", err
		}
		return dir, nil
	}
	return "", fmt.Errorf("no temporary directory usable for PostgreSQL (tried %s: path too long, or not traversable by uid %d)",
		strings.Join(tried, ", "), credUID(cred))
}

func credUID(cred *syscall.Credential) int {
	if cred == nil {
		return os.Getuid()
	}
	return int(cred.Uid)
}

// reachable reports whether the user of cred may traverse every directory
// from / down to dir.
func reachable(dir string, cred *syscall.Credential) bool {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		var st syscall.Stat_t
		if err := syscall.Stat(dir, &st); err != nil {
			return false
		}
		var bit uint32
		switch {
		case st.Uid == cred.Uid:
			bit = 0o100
		case st.Gid == cred.Gid:
			bit = 0o010
		default:
			bit = 0o001
		}
		if st.Mode&bit == 0 {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir = parent
	}
}

// removeStaleDirs removes the directories of clusters whose test binary is
// gone (killed before Main ran) and whose server is gone too.
func removeStaleDirs() {
	for _, parent := range []string{os.TempDir(), "/tmp"} {
		dirs, _ := filepath.Glob(filepath.Join(parent, dirPrefix+"*"))
		for _, dir := range dirs {
			owner, ok := readPID(filepath.Join(dir, ownerFile))
			if !ok || processAlive(owner) {
				continue
			}
			if server, ok := readPID(filepath.Join(dir, "data", "postmaster.pid")); ok && processAlive(server) {
				continue
			}
			_ = os.RemoveAll(dir)
		}
	}
}

// readPID reads the number on the first line of a file.
func readPID(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	return pid, err == nil && pid > 0
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// freePort returns a port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// directory is the cluster's temporary directory: data/ and the log.
func (c *cluster) directory() string { return c.dir }
