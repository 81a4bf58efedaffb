// Package e2e runs Arcade as users do: real server and agent processes of the
// arcade binary, built by the test run, talking gRPC over loopback, on
// embedded SQLite and on a throwaway PostgreSQL.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/go-arcade/arcade/agent/jobtrack"
	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	"github.com/go-arcade/arcade/client"
	"github.com/go-arcade/arcade/internal/dockertest"
	"github.com/go-arcade/arcade/internal/pgtest"
)

const (
	agentToken = "e2e-agent-token"
	apiToken   = "e2e-api-token"
)

var arcadeBin string

func TestMain(m *testing.M) {
	// Agents started by these tests see no container engine unless a test
	// gives them one (--container-runtime, --docker-host): never the
	// host's own.
	os.Unsetenv("DOCKER_HOST")
	os.Setenv("ARCADE_CONTAINER_RUNTIME", "none")
	dir, err := os.MkdirTemp("", "arcade-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	arcadeBin = filepath.Join(dir, "arcade")
	build := exec.Command("go", "build", "-o", arcadeBin, "../cmd/arcade")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build arcade:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	defer os.RemoveAll(dir)
	// The container tests share one private engine per test binary.
	dockertest.MarkMain()
	pgtest.Main(m)
	if err := dockertest.Stop(); err != nil {
		os.RemoveAll(dir)
		os.Exit(1)
	}
}

// eachDB runs a scenario on SQLite and on PostgreSQL.
func eachDB(t *testing.T, scenario func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) {
		scenario(t, "sqlite://"+filepath.Join(t.TempDir(), "arcade.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		scenario(t, pgtest.Start(t))
	})
}

// proc is a running arcade process whose log goes to a file shown on failure.
type proc struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
}

func start(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	return startBin(t, arcadeBin, name, args...)
}

// startBin is start with another arcade binary (a baseline build, say).
func startBin(t testing.TB, bin, name string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append(args, "--log-format", "json", "--log-level", "debug")...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The dashboard's HTTP listener stays off unless a test asks for it
	// (--http-listen): servers of parallel tests must not share a port.
	cmd.Env = append(os.Environ(), "ARCADE_AGENT_TOKEN="+agentToken, "ARCADE_API_TOKEN="+apiToken, "ARCADE_HTTP_LISTEN=")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM)
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("--- %s log ---\n%s", name, tail(b, 60))
			}
		}
	})
	return p
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stop ends the process (and anything it started) with sig, then SIGKILL.
func (p *proc) stop(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	// Reap what the process group left (job shells of a killed agent).
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
}

// grepLog returns the JSON log records of p whose msg is msg.
func (p *proc) grepLog(msg string) []map[string]any {
	b, _ := os.ReadFile(p.logPath)
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// cluster is a server and its agents.
type cluster struct {
	t       testing.TB
	dsn     string
	dataDir string
	addr    string
	server  *proc
	// agents are the agents started, by name; agentsMu guards it (tests
	// start agents side by side).
	agentsMu sync.Mutex
	agents   map[string]*proc
	// serverArgs are added to the server's command line.
	serverArgs []string
	// metricsAddr is where the server serves /metrics, /healthz and
	// /readyz (newClusterWithMetrics), "" when it does not.
	metricsAddr string
	// tls is how the test's own clients reach a server that serves TLS.
	tls     client.TLS
	conn    *grpc.ClientConn
	jobs    jobv1.JobServiceClient
	agentsC agentv1.AgentServiceClient
}

func newCluster(t testing.TB, dsn string, serverArgs ...string) *cluster {
	t.Helper()
	return newClusterTLS(t, dsn, client.TLS{}, serverArgs...)
}

// newClusterWithMetrics starts a server that also serves /metrics, /healthz
// and /readyz on a free loopback port, c.metricsAddr.
func newClusterWithMetrics(t testing.TB, dsn string, serverArgs ...string) *cluster {
	t.Helper()
	addr := freeAddr(t)
	c := newCluster(t, dsn, append([]string{"--metrics-listen", addr}, serverArgs...)...)
	c.metricsAddr = addr
	return c
}

// newClusterTLS starts a server whose test clients use tlsConf.
func newClusterTLS(t testing.TB, dsn string, tlsConf client.TLS, serverArgs ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, dsn: dsn, dataDir: t.TempDir(), addr: freeAddr(t), agents: map[string]*proc{}, serverArgs: serverArgs, tls: tlsConf}
	c.startServer()
	conn := c.dialAPI()
	c.conn = conn
	c.jobs = jobv1.NewJobServiceClient(conn)
	c.agentsC = agentv1.NewAgentServiceClient(conn)
	return c
}

// dialAPI returns a connection with the API token, closed with the test.
func (c *cluster) dialAPI() *grpc.ClientConn {
	c.t.Helper()
	conn, err := client.DialTLS(c.addr, client.Static(apiToken), c.tls)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { conn.Close() })
	return conn
}

func (c *cluster) startServer() {
	c.t.Helper()
	args := []string{"server", "--listen", c.addr, "--db", c.dsn, "--data-dir", c.dataDir,
		"--heartbeat-interval", "300ms", "--max-poll-wait", "5s", "--config", os.DevNull,
		"--plugins-config", filepath.Join(c.dataDir, "no-plugins.yaml"), "--plugin-dirs", filepath.Join(c.dataDir, "no-plugins")}
	c.server = start(c.t, "server", append(args, c.serverArgs...)...)
	c.waitHealthy()
	c.waitPluginsLoaded()
}

// waitPluginsLoaded waits until the server has had a first load of each of
// its plugins (it serves while they compile).
func (c *cluster) waitPluginsLoaded() {
	c.t.Helper()
	conn, err := client.DialTLS(c.addr, client.Static(apiToken), c.tls)
	if err != nil {
		c.t.Fatal(err)
	}
	defer conn.Close()
	plugins := pluginv1.NewPluginServiceClient(conn)
	compiled := func() bool {
		resp, err := plugins.ListPlugins(context.Background(), &pluginv1.ListPluginsRequest{})
		if err != nil {
			return status.Code(err) == codes.Unauthenticated || status.Code(err) == codes.PermissionDenied // another token set-up: nothing to wait for
		}
		for _, p := range resp.GetPlugins() {
			if p.GetState() == pluginv1.PluginState_PLUGIN_STATE_COMPILING {
				return false
			}
		}
		return true
	}
	// Cold compiles of several plugins take a while on a busy machine.
	for deadline := time.Now().Add(3 * time.Minute); !compiled(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			c.t.Fatal("the server's plugins still compile after 3 minutes")
		}
	}
}

func (c *cluster) waitHealthy() {
	c.t.Helper()
	conn, err := client.DialTLS(c.addr, client.Static(""), c.tls)
	if err != nil {
		c.t.Fatal(err)
	}
	defer conn.Close()
	h := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := h.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("server on %s not healthy: %v", c.addr, err)
		}
		select {
		case <-c.server.done:
			c.t.Fatalf("server exited: %v", c.server.cmd.ProcessState)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startAgent runs an agent with the given labels and waits until the server
// lists it.
func (c *cluster) startAgent(name string, maxJobs int, labels ...string) *proc {
	c.t.Helper()
	return c.startAgentWith(name, maxJobs, nil, labels...)
}

// startAgentWith is startAgent with extra command-line flags.
func (c *cluster) startAgentWith(name string, maxJobs int, flags []string, labels ...string) *proc {
	c.t.Helper()
	work := c.t.TempDir()
	sweepAfter(c.t, work)
	args := []string{"agent", "--server", c.addr, "--name", name, "--max-jobs", fmt.Sprint(maxJobs),
		"--work-dir", work, "--config", os.DevNull}
	args = append(args, flags...)
	for _, l := range labels {
		args = append(args, "--label", l)
	}
	p := start(c.t, "agent-"+name, args...)
	c.agentsMu.Lock()
	c.agents[name] = p
	c.agentsMu.Unlock()
	c.waitFor("agent "+name+" registered", func() bool {
		a := c.agent(name)
		return a != nil && a.GetStatus() != agentv1.AgentStatus_AGENT_STATUS_OFFLINE
	})
	return p
}

// sweepAfter ends, once the test's agents have stopped, whatever an agent
// killed on purpose left in its data folder (job processes, their cgroups),
// as that agent would on its next start. Call it before starting the agent.
func sweepAfter(t testing.TB, dataDir string) {
	t.Cleanup(func() {
		tr, err := jobtrack.Open(dataDir, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Errorf("sweep %s: %v", dataDir, err)
			return
		}
		defer tr.Close()
		if err := tr.Sweep(context.Background(), true); err != nil {
			t.Errorf("sweep %s: %v", dataDir, err)
		}
	})
}

func (c *cluster) agent(name string) *agentv1.Agent {
	resp, err := c.agentsC.ListAgents(context.Background(), &agentv1.ListAgentsRequest{PageSize: 100})
	if err != nil {
		c.t.Fatal(err)
	}
	for _, a := range resp.GetAgents() {
		if a.GetName() == name {
			return a
		}
	}
	return nil
}

// waitFor polls cond until it holds or 30 s pass.
func (c *cluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *cluster) create(req *jobv1.CreateJobRequest) *jobv1.JobDetail {
	c.t.Helper()
	resp, err := c.jobs.CreateJob(context.Background(), req)
	if err != nil {
		c.t.Fatalf("CreateJob(%v): %v", req, err)
	}
	return resp.GetJob()
}

func (c *cluster) get(id string) *jobv1.JobDetail {
	c.t.Helper()
	for tries := 0; ; tries++ {
		resp, err := c.jobs.GetJob(context.Background(), &jobv1.GetJobRequest{JobId: id})
		// Unavailable asks to retry (the database restarts, say).
		if status.Code(err) == codes.Unavailable && tries < 50 {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if err != nil {
			c.t.Fatalf("GetJob(%s): %v", id, err)
		}
		return resp.GetJob()
	}
}

// waitStatus waits until a job reaches one of the statuses and returns it.
func (c *cluster) waitStatus(id string, want ...agentv1.JobStatus) *jobv1.JobDetail {
	c.t.Helper()
	var j *jobv1.JobDetail
	c.waitFor(fmt.Sprintf("job %s to be %v", id, want), func() bool {
		j = c.get(id)
		for _, w := range want {
			if j.GetStatus() == w {
				return true
			}
		}
		return false
	})
	return j
}

// logOf returns every line of an attempt of a job, reading page by page.
func (c *cluster) logOf(id string, attempt int32) []*agentv1.LogChunk {
	c.t.Helper()
	var out []*agentv1.LogChunk
	next := int64(1)
	for {
		resp, err := c.jobs.GetJobLog(context.Background(), &jobv1.GetJobLogRequest{JobId: id, Attempt: attempt, FromLine: next, Limit: 700})
		if err != nil {
			c.t.Fatalf("GetJobLog(%s): %v", id, err)
		}
		out = append(out, resp.GetLines()...)
		if len(resp.GetLines()) == 0 {
			return out
		}
		next = resp.GetNextLine()
	}
}

// parallelDone runs fns concurrently and waits.
func parallelDone(fns ...func()) {
	var wg sync.WaitGroup
	for _, f := range fns {
		wg.Go(f)
	}
	wg.Wait()
}

// compileWasm builds the plugin package pkg (relative to e2e/) into the
// .wasm file out.
func compileWasm(pkg, out string, ldflags ...string) error {
	args := []string{"build", "-buildmode=c-shared", "-o", out}
	if len(ldflags) > 0 {
		args = append(args, "-ldflags", strings.Join(ldflags, " "))
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// buildPlugin is compileWasm, failing the test on error.
func buildPlugin(t testing.TB, pkg, out string, ldflags ...string) {
	t.Helper()
	if err := compileWasm(pkg, out, ldflags...); err != nil {
		t.Fatal(err)
	}
}

// cli runs the arcade command line against the cluster with the API token
// and returns its combined output.
func (c *cluster) cli(args ...string) (string, error) {
	cmd := exec.Command(arcadeBin, args...)
	cmd.Env = append(os.Environ(), "ARCADE_SERVER="+c.addr, "ARCADE_API_TOKEN="+apiToken)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mustCLI is cli, failing the test when the command fails.
func (c *cluster) mustCLI(t testing.TB, args ...string) string {
	t.Helper()
	out, err := c.cli(args...)
	if err != nil {
		t.Fatalf("arcade %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}
