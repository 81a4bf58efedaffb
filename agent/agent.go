// Package agent is Arcade's agent: it registers with the server, keeps a
// heartbeat with host metrics, fetches jobs whose selectors match its labels,
// runs them in fresh workspaces and ships their logs and outcomes.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/go-arcade/arcade/agent/cache"
	"github.com/go-arcade/arcade/agent/checkout"
	"github.com/go-arcade/arcade/agent/executor"
	"github.com/go-arcade/arcade/agent/executor/container"
	"github.com/go-arcade/arcade/agent/jobtrack"
	"github.com/go-arcade/arcade/agent/plugincache"
	"github.com/go-arcade/arcade/agent/sysinfo"
	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/client"
	"github.com/go-arcade/arcade/core/labels"
	"github.com/go-arcade/arcade/host"
)

// Version is reported to the server at registration.
var Version = "dev"

// Config is the agent's configuration.
type Config struct {
	// Server is the server's address, "host:port".
	Server string
	// Token is the shared registration token.
	Token string
	// Name identifies the agent; it defaults to the hostname.
	Name string
	// Labels are the operator's labels; they override the detected ones.
	Labels map[string]string
	// MaxJobs is how many jobs run at once.
	MaxJobs int
	// WorkDir holds the job workspaces.
	WorkDir string
	// KeepWorkspaces leaves workspaces on disk after jobs end.
	KeepWorkspaces bool
	// TLS says how to reach a server that serves TLS (and asks agents for a
	// client certificate); the zero value is plaintext.
	TLS client.TLS
	// Transport is "channel" (the default: one AgentChannel stream carries
	// everything) or "poll" (unary heartbeats and FetchJob/CancelJob
	// long-polls, for networks that cut long streams).
	Transport string
	// Plugins are the plugins the agent runs as job steps: names, "*" (the
	// default: any the server serves) or "-" (none).
	Plugins []string
	// DataDir keeps the agent's identity (agent-identity.json, mode 0600:
	// the id and token the server gave it), the plugin modules fetched
	// from the server (plugins/) and their compilation cache
	// (wazero-cache/); default WorkDir. Give each agent its own.
	DataDir string
	// TrustedKeys are base64 ed25519 public keys; a plugin module with a
	// signature must be signed by one of them.
	TrustedKeys []string
	// RequireSignatures refuses plugin modules not signed by a trusted key.
	RequireSignatures bool
	// MaskMinLength is the shortest secret whose encoded forms (base64,
	// hex, URL and JSON escaping) are masked in job logs too; 0 means
	// DefaultMaskMinLength. Every secret is masked as it is, whatever its
	// length.
	MaskMinLength int
	// MaxModuleBytes bounds a plugin module the agent fetches (0:
	// host.DefaultMaxModuleBytes); a larger one is refused before it is
	// downloaded.
	MaxModuleBytes int64
	// ContainerRuntime is "auto" (the default: offer container jobs when
	// the Docker engine at DockerHost answers), "docker" (the same, with a
	// warning when it does not) or "none" (never look for an engine).
	ContainerRuntime string
	// DockerHost is the Docker engine's address (DOCKER_HOST form);
	// "" means the engine's default socket.
	DockerHost string
	// EngineCheck is how often the agent checks that its container engine
	// still answers (DefaultEngineCheck when zero).
	EngineCheck time.Duration
	// Git is the git binary that checks out sources: "" finds git on PATH
	// at start, "none" takes no checkout jobs. An agent without git does
	// not carry the git label, so checkout jobs are not handed to it.
	Git string
	// GitMirrorMaxBytes bounds the disk of the agent's repository mirrors
	// (DataDir/git-mirrors); 0 is 10 GiB.
	GitMirrorMaxBytes int64
	// CacheLocalBytes bounds the local copies of recent job cache entries
	// (DataDir/cache): a hit on one costs no network. 0: DefaultCacheLocal;
	// negative: none kept.
	CacheLocalBytes int64
}

// DefaultCacheLocal is how many bytes of cache entries an agent keeps.
const DefaultCacheLocal = 2 << 30

// WasmLabel is the label of an agent that runs plugin steps.
const WasmLabel = "arcade.dev/wasm"

// runsPlugins reports whether the agent runs plugin steps at all.
func (c *Config) runsPlugins() bool { return !(len(c.Plugins) == 1 && c.Plugins[0] == "-") }

// Validate checks the configuration and fills defaults.
func (c *Config) Validate() error {
	if c.Server == "" {
		return errors.New("server: must be set (host:port)")
	}
	if c.Token == "" {
		return errors.New("agent_token: must be set (the server's registration token, ARCADE_AGENT_TOKEN)")
	}
	if c.MaxJobs < 0 {
		return fmt.Errorf("max_jobs: must not be negative, got %d", c.MaxJobs)
	}
	if c.MaxJobs == 0 {
		c.MaxJobs = 1
	}
	switch c.Transport {
	case "":
		c.Transport = "channel"
	case "channel", "poll":
	default:
		return fmt.Errorf("transport: want channel or poll, got %q", c.Transport)
	}
	if c.WorkDir == "" {
		c.WorkDir = filepath.Join(os.TempDir(), "arcade-agent")
	}
	if err := labels.ValidateLabels(c.Labels); err != nil {
		return fmt.Errorf("labels: %w", err)
	}
	if c.DataDir == "" {
		c.DataDir = c.WorkDir
	}
	switch c.ContainerRuntime {
	case "":
		c.ContainerRuntime = "auto"
	case "auto", "docker", "none":
	default:
		return fmt.Errorf("container runtime: want auto, docker or none, got %q", c.ContainerRuntime)
	}
	var plugins []string
	for _, p := range c.Plugins {
		if p = strings.TrimSpace(p); p != "" {
			plugins = append(plugins, p)
		}
	}
	if len(plugins) == 0 {
		plugins = []string{"*"}
	}
	if len(plugins) > 1 && (slices.Contains(plugins, "*") || slices.Contains(plugins, "-")) {
		return fmt.Errorf(`plugins: "*" and "-" stand alone, got %v`, plugins)
	}
	c.Plugins = plugins
	if c.RequireSignatures && len(c.TrustedKeys) == 0 {
		return errors.New("require_signatures: set trusted_keys too")
	}
	for i, k := range c.TrustedKeys {
		if _, err := host.ParsePublicKey(k); err != nil {
			return fmt.Errorf("trusted_keys[%d]: %w", i, err)
		}
	}
	return nil
}

// Agent is a running agent.
type Agent struct {
	cfg  Config
	log  *slog.Logger
	conn *grpc.ClientConn
	rpc  agentv1.AgentServiceClient
	// caches are the local copies of recent job cache entries.
	caches  *cache.Local
	sampler *sysinfo.Sampler

	regMu     sync.Mutex // serialises registrations
	mu        sync.Mutex // guards the fields below
	id        string
	token     string
	session   int // counts registrations
	heartbeat time.Duration
	maxPoll   time.Duration
	jobs      map[string]*runningJob
	link      *link // the open AgentChannel, if any
	free      int   // job slots not in use
	stop      context.CancelCauseFunc
	stopping  time.Time   // when Run's context ended; zero while it runs
	refused   atomic.Bool // the server refuses this agent: stop retrying

	streams jobv1.StreamServiceClient

	// runner and plugins run plugin steps; nil when the agent runs none.
	runner  *host.Runner
	plugins *plugincache.Cache

	// engine runs container jobs; nil with --container-runtime none.
	engine *container.Engine
	// engineLabels are the container-runtime labels the server has of the
	// agent; engineSuspect says a job lost the engine, engineStable since
	// when it answers (guarded by mu). checkMu serialises engine checks.
	engineLabels  map[string]string
	engineSuspect bool
	engineStable  time.Time
	checkMu       sync.Mutex
	// tracker records running jobs in DataDir, so that what a killed
	// agent left is ended when it starts again.
	tracker *jobtrack.Tracker
	// checkout checks out sources; nil without git.
	checkout *checkout.Checkout
}

// New returns an agent; Run starts it.
func New(cfg Config, logger *slog.Logger) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("create work dir: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	a := &Agent{cfg: cfg, log: logger, jobs: make(map[string]*runningJob), sampler: sysinfo.NewSampler(cfg.WorkDir), free: cfg.MaxJobs}
	conn, err := client.DialTLS(cfg.Server, a.currentToken, cfg.TLS)
	if err != nil {
		return nil, err
	}
	a.conn = conn
	keep := cfg.CacheLocalBytes
	if keep == 0 {
		keep = DefaultCacheLocal
	}
	if a.caches, err = cache.OpenLocal(filepath.Join(cfg.DataDir, "cache"), max(keep, 0)); err != nil {
		return nil, err
	}
	if a.tracker, err = jobtrack.Open(cfg.DataDir, logger.With("component", "jobs")); err != nil {
		conn.Close()
		return nil, err
	}
	a.rpc = agentv1.NewAgentServiceClient(conn)
	if cfg.ContainerRuntime != "none" {
		engine, err := container.Connect(cfg.DockerHost, logger.With("component", "containers"))
		switch {
		case err == nil:
			a.engine = engine
		case cfg.ContainerRuntime == "docker":
			conn.Close()
			a.tracker.Close()
			return nil, err
		default:
			logger.Warn("no container engine client; container jobs are not offered", "err", err)
		}
	}
	a.tracker.AddHook(a.sweepLeftovers)
	a.streams = jobv1.NewStreamServiceClient(conn)
	a.checkout = newCheckout(cfg, logger)
	if cfg.runsPlugins() {
		policy := plugincache.Policy{Require: cfg.RequireSignatures, MaxModuleBytes: cfg.MaxModuleBytes}
		for _, k := range cfg.TrustedKeys {
			pub, _ := host.ParsePublicKey(k) // checked by Validate
			policy.TrustedKeys = append(policy.TrustedKeys, pub)
		}
		cache, err := plugincache.New(filepath.Join(cfg.DataDir, "plugins"), a.rpc, policy, logger.With("component", "plugins"))
		if err != nil {
			conn.Close()
			a.tracker.Close()
			return nil, err
		}
		a.plugins = cache
		a.runner = host.NewRunner(logger.With("component", "plugins"), host.WithCacheDir(filepath.Join(cfg.DataDir, "wazero-cache")))
	}
	return a, nil
}

func (a *Agent) currentToken() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token == "" {
		return a.cfg.Token
	}
	return a.token
}

func (a *Agent) identity() (id string, session int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.id, a.session
}

// ID returns the id the server gave the agent ("" before registration).
func (a *Agent) ID() string {
	id, _ := a.identity()
	return id
}

// Run registers and works until ctx ends; running jobs are then stopped and
// reported.
func (a *Agent) Run(ctx context.Context) error {
	defer a.conn.Close()
	if a.engine != nil {
		defer a.engine.Close()
	}
	defer a.tracker.Close()
	if a.runner != nil {
		defer a.runner.Close(context.Background())
	}
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	a.stop = stop
	context.AfterFunc(ctx, func() {
		a.mu.Lock()
		a.stopping = time.Now()
		a.mu.Unlock()
	})
	// Processes a job leaves behind come back to the agent, which reaps them.
	if err := executor.BecomeSubreaper(); err != nil {
		a.log.Debug("cannot become a child subreaper; orphans of jobs go to init", "err", err)
	}
	// An earlier run of this agent killed without warning may have left
	// job processes running and workspaces on disk.
	if err := a.tracker.Sweep(ctx, !a.cfg.KeepWorkspaces); err != nil {
		a.log.Warn("could not end everything an earlier run of this agent left", "err", err)
	}
	a.log.Debug("job processes are held", "by", a.tracker.Contained())
	if err := a.register(ctx, 0); err != nil {
		return err
	}
	// What an earlier life of this agent left in the engine (it crashed
	// mid-job, say) goes before the first job.
	a.removeLeftovers(ctx)
	var watch sync.WaitGroup
	defer watch.Wait()
	watch.Go(func() { a.watchEngine(ctx) })
	// Jobs outlive ctx long enough to report how they ended.
	jobsCtx, stopJobs := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopJobs(nil)

	// One AgentChannel carries everything; a server without it is served
	// through the unary calls (heartbeats, FetchJob and CancelJob polls).
	var wg sync.WaitGroup
	var jobs sync.WaitGroup
	poll := a.cfg.Transport == "poll"
	if !poll {
		if err := a.channelLoop(ctx, jobsCtx, &jobs); grpcstatus.Code(err) == codes.Unimplemented {
			a.log.Info("the server has no agent channel; polling instead")
			poll = true
		}
	}
	if poll {
		wg.Go(func() { a.heartbeatLoop(ctx) })
		wg.Go(func() { a.cancelLoop(ctx) })
		a.fetchLoop(ctx, jobsCtx, &jobs)
	}
	stopJobs(errAgentStopping)
	jobs.Wait()
	wg.Wait()
	a.log.Info("agent stopped")
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return nil
}

var errAgentStopping = errors.New("agent stopping")

// register announces the agent unless a registration newer than session
// already happened (several loops may notice a lost registration at once).
func (a *Agent) register(ctx context.Context, session int) error {
	a.regMu.Lock()
	defer a.regMu.Unlock()
	a.mu.Lock()
	newer := a.session > session
	a.mu.Unlock()
	if newer {
		return nil
	}
	detected := sysinfo.Labels(ctx, sysinfo.Probe{Engine: a.engineProbe()})
	if _, ok := detected[sysinfo.LabelContainerRuntime]; !ok && a.cfg.ContainerRuntime == "docker" {
		a.log.Warn("no Docker engine answers; container jobs are not offered until it does", "docker_host", a.cfg.DockerHost)
	}
	engineLabels := map[string]string{}
	for _, k := range engineLabelKeys {
		if v, ok := detected[k]; ok {
			engineLabels[k] = v
		}
	}
	a.mu.Lock()
	a.engineLabels = engineLabels
	a.mu.Unlock()
	lbls := maps.Clone(detected)
	if a.cfg.runsPlugins() {
		lbls[WasmLabel] = "true"
	}
	if a.checkout != nil {
		lbls[labels.Git] = gitLabel(a.checkout.Git.Version)
	}
	maps.Copy(lbls, a.cfg.Labels)
	hostname, err := os.Hostname()
	if err != nil {
		hostname = detected["hostname"]
	}
	name := a.cfg.Name
	if name == "" {
		name = hostname
	}
	req := &agentv1.RegisterRequest{
		Name: name, Hostname: hostname, Os: runtime.GOOS, Arch: runtime.GOARCH, Version: Version,
		Labels: lbls, MaxConcurrentJobs: int32(a.cfg.MaxJobs), Plugins: a.cfg.Plugins,
	}
	// The agent proves it is the agent the server knows under its name
	// with the id and token it was given: from this life, or from its disk.
	a.mu.Lock()
	req.AgentId, req.AgentToken = a.id, a.token
	a.token = "" // register with the registration token
	a.mu.Unlock()
	if req.AgentId == "" {
		kept, err := loadIdentity(a.cfg.DataDir)
		if err != nil {
			a.log.Warn("agent identity unreadable; registering without it", "err", err)
		}
		if kept.Name == name && kept.Server == a.cfg.Server {
			req.AgentId, req.AgentToken = kept.ID, kept.Token
		}
	}
	var heldSince time.Time
	for attempt := 0; ; attempt++ {
		resp, err := a.rpc.Register(ctx, req)
		if err == nil {
			a.mu.Lock()
			a.id, a.token = resp.GetAgentId(), resp.GetAgentToken()
			a.heartbeat = resp.GetHeartbeatInterval().AsDuration()
			a.maxPoll = resp.GetMaxPollWait().AsDuration()
			a.session++
			a.mu.Unlock()
			if resp.GetAgentId() != req.AgentId || resp.GetAgentToken() != req.AgentToken {
				err := saveIdentity(a.cfg.DataDir, identity{Server: a.cfg.Server, Name: name, ID: resp.GetAgentId(), Token: resp.GetAgentToken()})
				if err != nil {
					a.log.Warn("agent identity not kept: a restart within a lease will be refused its name", "err", err)
				}
			}
			a.log.Info("agent registered", "id", resp.GetAgentId(), "name", name, "server", a.cfg.Server,
				"labels", resp.GetAgent().GetLabels(), "same_identity", resp.GetAgentId() == req.AgentId)
			return nil
		}
		switch grpcstatus.Code(err) {
		case codes.Unauthenticated, codes.InvalidArgument, codes.PermissionDenied:
			return fmt.Errorf("register with %s: %w", a.cfg.Server, err)
		case codes.AlreadyExists:
			// Another agent holds the name and is online: it may be this
			// agent's earlier life, without its identity, which goes
			// offline within a lease. Wait that long, not forever.
			if heldSince.IsZero() {
				heldSince = time.Now()
			}
			if time.Since(heldSince) > nameWait {
				return fmt.Errorf("register with %s: %w", a.cfg.Server, err)
			}
			a.log.Warn("the name is held by an online agent; waiting for it to go offline", "name", name, "err", err)
		default:
			a.log.Warn("cannot register yet; retrying", "server", a.cfg.Server, "err", err)
		}
		if !sleep(ctx, a.backoff(attempt)) {
			return ctx.Err()
		}
	}
}

// nameWait is how long an agent whose name is held by an online agent waits
// for that agent to go offline before it gives up.
const nameWait = 2 * time.Minute

// recover handles an error of an agent call: it registers again when the
// server no longer knows the agent, and waits a little otherwise. It returns
// false when ctx ended.
func (a *Agent) recover(ctx context.Context, session int, err error, attempt int) bool {
	switch grpcstatus.Code(err) {
	case codes.Unauthenticated, codes.NotFound:
		a.log.Warn("server no longer knows this agent; registering again", "err", err)
		if rerr := a.register(ctx, session); rerr != nil {
			if ctx.Err() != nil {
				return false
			}
			// The server refuses this agent (revoked, or a wrong token):
			// retrying cannot help.
			a.log.Error("the server refuses this agent; stopping", "err", rerr)
			a.refused.Store(true)
			a.stop(rerr)
			return false
		}
		return ctx.Err() == nil
	case codes.Canceled:
		if ctx.Err() != nil {
			return false
		}
	}
	if ctx.Err() == nil {
		a.log.Warn("server call failed; retrying", "err", err)
	}
	return sleep(ctx, a.backoff(attempt))
}

func (a *Agent) heartbeatLoop(ctx context.Context) {
	failures := 0
	for {
		a.mu.Lock()
		every := a.heartbeat
		a.mu.Unlock()
		if every <= 0 {
			every = 5 * time.Second
		}
		if !sleep(ctx, every) {
			return
		}
		id, session := a.identity()
		req := a.heartbeatRequest(ctx, id)
		cctx, cancel := context.WithTimeout(ctx, every+5*time.Second)
		resp, err := a.rpc.Heartbeat(cctx, req)
		cancel()
		if err != nil {
			failures++
			if !a.recover(ctx, session, err, failures) {
				return
			}
			continue
		}
		failures = 0
		a.heartbeatAnswered(resp)
	}
}

func (a *Agent) heartbeatRequest(ctx context.Context, id string) *agentv1.HeartbeatRequest {
	req := &agentv1.HeartbeatRequest{AgentId: id, RunningJobIds: a.runningIDs()}
	if m, err := a.sampler.Sample(ctx); err == nil {
		req.Metrics = metricsProto(m, len(req.RunningJobIds))
	}
	return req
}

func (a *Agent) heartbeatAnswered(resp *agentv1.HeartbeatResponse) {
	if d := resp.GetHeartbeatInterval().AsDuration(); d > 0 {
		a.mu.Lock()
		a.heartbeat = d
		a.mu.Unlock()
	}
	for _, jobID := range resp.GetCancelJobIds() {
		a.cancelJob(jobID, "stopped by the server")
	}
}

func (a *Agent) cancelLoop(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		id, session := a.identity()
		wait := a.pollWait()
		cctx, cancel := context.WithTimeout(ctx, wait+10*time.Second)
		resp, err := a.rpc.CancelJob(cctx, &agentv1.CancelJobRequest{AgentId: id, Wait: durationpb.New(wait)})
		cancel()
		if err != nil {
			failures++
			if !a.recover(ctx, session, err, failures) {
				return
			}
			continue
		}
		failures = 0
		for _, c := range resp.GetCancellations() {
			a.cancelJob(c.GetJobId(), c.GetReason())
		}
	}
}

func (a *Agent) pollWait() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.maxPoll <= 0 {
		return 30 * time.Second
	}
	return a.maxPoll
}

// fetchLoop asks for jobs while a slot is free and starts each in jobsCtx.
func (a *Agent) fetchLoop(ctx, jobsCtx context.Context, jobs *sync.WaitGroup) {
	slots := make(chan struct{}, a.cfg.MaxJobs)
	failures := 0
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		id, session := a.identity()
		wait := a.pollWait()
		cctx, cancel := context.WithTimeout(ctx, wait+10*time.Second)
		resp, err := a.rpc.FetchJob(cctx, &agentv1.FetchJobRequest{AgentId: id, Wait: durationpb.New(wait)})
		cancel()
		if err != nil || resp.GetJob() == nil {
			<-slots
			if err != nil {
				failures++
				if !a.recover(ctx, session, err, failures) {
					return
				}
			}
			continue
		}
		failures = 0
		job := resp.GetJob()
		jobs.Go(func() {
			defer func() { <-slots }()
			a.runJob(jobsCtx, id, job)
		})
	}
}

func metricsProto(m sysinfo.Metrics, running int) *agentv1.AgentMetrics {
	return &agentv1.AgentMetrics{
		CpuPercent:       m.CPUPercent,
		MemoryTotalBytes: m.MemTotal,
		MemoryUsedBytes:  m.MemUsed,
		MemoryPercent:    m.MemPercent,
		DiskTotalBytes:   m.DiskTotal,
		DiskUsedBytes:    m.DiskUsed,
		DiskPercent:      m.DiskPercent,
		Load1:            m.Load1,
		RunningJobs:      int32(running),
		CollectedAt:      timestamppb.New(m.CollectedAt),
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
