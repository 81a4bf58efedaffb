// Package service implements Arcade's gRPC services (AgentService and
// JobService) over the store and the dispatcher.
package service

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/pipeline"
	"github.com/go-arcade/arcade/host"
	"github.com/go-arcade/arcade/server/audit"
	"github.com/go-arcade/arcade/server/dispatch"
	"github.com/go-arcade/arcade/server/eventlog"
	"github.com/go-arcade/arcade/server/events"
	"github.com/go-arcade/arcade/server/lifecycle"
	"github.com/go-arcade/arcade/server/livelog"
	"github.com/go-arcade/arcade/server/metrics"
	"github.com/go-arcade/arcade/server/peers"
	"github.com/go-arcade/arcade/server/secrets"
	"github.com/go-arcade/arcade/server/store"
)

// Config tunes the services.
type Config struct {
	// HeartbeatInterval is how often agents are asked to send heartbeats.
	HeartbeatInterval time.Duration
	// MaxPollWait caps how long FetchJob and CancelJob hold a call open.
	MaxPollWait time.Duration
	// LeaseTTL is how long a job stays leased without a heartbeat; an agent
	// silent for as long goes offline.
	LeaseTTL time.Duration
	// TimeoutGrace is how long past its timeout a job may run before the
	// server ends it as TIMEOUT itself (the agent normally does it first).
	TimeoutGrace time.Duration
	// Secrets seals job secrets and stored secrets; without it jobs cannot
	// carry secrets.
	Secrets *secrets.Keyring
	// Metrics counts jobs, leases and log lines; nil counts nothing.
	Metrics *metrics.Metrics
	// PublicURL is the dashboard's address as people reach it (server
	// setting public_url): runs link to their page there. "" links nowhere.
	PublicURL string
	// PipelineLimits bound pipeline definitions; zero fields take
	// pipeline.DefaultLimits.
	PipelineLimits pipeline.Limits
	// ApprovalTimeout is how long an approval job waits when it sets no
	// timeout (0: lifecycle.DefaultApprovalTimeout).
	ApprovalTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 5 * time.Second
	}
	if c.MaxPollWait <= 0 {
		c.MaxPollWait = 30 * time.Second
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 3 * c.HeartbeatInterval
	}
	if c.TimeoutGrace <= 0 {
		c.TimeoutGrace = 30 * time.Second
	}
	c.PipelineLimits = c.PipelineLimits.WithDefaults()
	return c
}

// Forgetter drops what an authenticator cached about an agent.
type Forgetter interface{ Forget(agentID string) }

// tokenCutter ends the open streams of a revoked named token.
type tokenCutter interface{ Revoked(tokenID string) }

// Service holds what both gRPC services share.
type Service struct {
	cfg      Config
	store    *store.Store
	dispatch *dispatch.Dispatcher
	// life makes every change of state of jobs and runs.
	life *lifecycle.Lifecycle
	// includes reads the files pipelines with a source include (nil: the
	// server has no git).
	includes RepoIncludes
	// runHooks see every change of a run (OnRunChange).
	runHooks []func(*store.PipelineRun)
	log      *slog.Logger
	now      func() time.Time
	auth     Forgetter

	// cancels wakes an agent's CancelJob long-poll.
	cancels dispatch.Signals
	// events carries system events to StreamEvents and the status streams.
	events *events.Bus
	// history keeps recent events in the database (UseHistory); nil: none.
	history *eventlog.Log
	// stopCtx ends when the server stops (Stop): calls that wait end.
	stopCtx context.Context
	stop    context.CancelFunc
	// logs hands freshly stored log lines to StreamJobLog followers.
	logs livelog.Hub
	// peers tells other server replicas (PostgreSQL only); nil alone.
	peers *peers.Peers
	// local see the events that originate here (notifications).
	local []func(*jobv1.Event)
	// audit checks pipeline definitions; nil: no audit.
	audit Auditor
	// storage keeps artifacts and archived logs (UseStorage).
	storage storage
	// cache bounds job caches (UseCache).
	cache CacheConfig
	// plugins serve job steps (uses:); nil: no plugin steps.
	plugins *host.Manager
	// handed keeps the modules last handed out with jobs (plugin_dist.go).
	handed handedModules
	// secrets resolves stored secrets by name within a scope.
	secrets *secrets.Resolver
	// auditLog records every write (UseAuditLog); nil: none.
	auditLog *audit.Log
	// cutter ends the streams of revoked named tokens; nil: none.
	cutter tokenCutter

	mu        sync.Mutex
	delivered map[string]map[string]bool // agent → "job/attempt" cancels sent
	channels  map[string]*openChannel    // agent → its open AgentChannel
}

// New returns the services over a migrated store.
func New(cfg Config, s *store.Store, auth Forgetter, logger *slog.Logger) *Service {
	cfg = cfg.withDefaults()
	now := func() time.Time { return time.Now().UTC() }
	svc := &Service{
		cfg:       cfg,
		store:     s,
		dispatch:  dispatch.New(s, cfg.LeaseTTL, now, logger),
		log:       logger,
		now:       now,
		auth:      auth,
		events:    events.New(),
		delivered: make(map[string]map[string]bool),
		channels:  make(map[string]*openChannel),
		secrets:   secrets.NewResolver(s, cfg.Secrets),
	}
	if c, ok := auth.(tokenCutter); ok {
		svc.cutter = c
	}
	svc.life = lifecycle.New(lifecycle.Config{LeaseTTL: cfg.LeaseTTL, TimeoutGrace: cfg.TimeoutGrace, ApprovalTimeout: cfg.ApprovalTimeout}, s,
		effects{svc}, func() time.Time { return svc.now() }, logger)
	svc.life.UseStepChecker(stepChecker{svc})
	svc.UseCache(CacheConfig{})
	svc.stopCtx, svc.stop = context.WithCancel(context.Background())
	return svc
}

// Secrets resolves stored secrets by name for server components (registry
// credentials, git credentials, object storage keys…), within the scopes
// they may use.
func (s *Service) Secrets() *secrets.Resolver { return s.secrets }

// Life is the service's life cycle of jobs and runs.
func (s *Service) Life() *lifecycle.Lifecycle { return s.life }

// OnRunChange makes fn see every change of a run made on this replica, in
// order, before its event is published (commit statuses are queued there).
// fn must be quick. Call it before serving.
func (s *Service) OnRunChange(fn func(*store.PipelineRun)) { s.runHooks = append(s.runHooks, fn) }

// UseSources sets what prepares runs of pipelines with a source (and, when
// it can, reads the files a stored definition with a source includes).
func (s *Service) UseSources(src lifecycle.Sources) {
	s.life.UseSources(src)
	s.includes, _ = src.(RepoIncludes)
}

// Config returns the effective configuration.
func (s *Service) Config() Config { return s.cfg }

// AgentServer returns the AgentService implementation.
func (s *Service) AgentServer() *AgentServer { return &AgentServer{s: s} }

// JobServer returns the JobService implementation.
func (s *Service) JobServer() *JobServer { return &JobServer{s: s} }

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// storeError maps the errors of the store and of the life cycle to gRPC
// codes: the one place where domain errors become codes. what names the
// thing asked for ("job ID"). A refusal of the life cycle keeps its message
// (it names the job or run and the field).
func storeError(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, lifecycle.ErrInvalidArgument):
		return grpcstatus.Error(codes.InvalidArgument, lifecycle.Message(err))
	case errors.Is(err, lifecycle.ErrForbidden):
		return grpcstatus.Error(codes.PermissionDenied, lifecycle.Message(err))
	case errors.Is(err, lifecycle.ErrInvalidTransition), errors.Is(err, lifecycle.ErrNotLeased), errors.Is(err, lifecycle.ErrFailedPrecondition):
		return grpcstatus.Error(codes.FailedPrecondition, lifecycle.Message(err))
	case errors.Is(err, store.ErrNotFound):
		return grpcstatus.Errorf(codes.NotFound, "%s not found", what)
	case errors.Is(err, store.ErrConflict):
		return grpcstatus.Errorf(codes.FailedPrecondition, "%s: %v", what, err)
	case errors.Is(err, context.Canceled):
		return grpcstatus.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return grpcstatus.Error(codes.DeadlineExceeded, err.Error())
	case store.Unavailable(err):
		return grpcstatus.Errorf(codes.Unavailable, "%s: the database is unreachable, retry: %v", what, err)
	case store.StorageFull(err):
		// Plainly: the driver's words ("database or disk is full (13)")
		// add nothing for the caller.
		return grpcstatus.Errorf(codes.ResourceExhausted, "%s: the server's database storage is full; nothing was changed (an operator must free space)", what)
	case store.Busy(err):
		return grpcstatus.Errorf(codes.Unavailable, "%s: the database is busy with other writes; nothing was changed, retry", what)
	}
	// A status made inside a store callback (a refused change) reaches the
	// caller as it was made, not wrapped in the store's context text.
	var se interface{ GRPCStatus() *grpcstatus.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus().Err()
	}
	return grpcstatus.Errorf(codes.Internal, "%s: %v", what, err)
}

// effects carries out for the life cycle what follows its changes.
type effects struct{ s *Service }

func (e effects) Wake()                     { e.s.dispatch.Wake() }
func (e effects) Cancel(agentID string)     { e.s.requestCancel(agentID) }
func (e effects) AttemptEnded(j *store.Job) { e.s.logs.End(j.ID) }
func (e effects) RunEvent(r *store.PipelineRun) {
	for _, fn := range e.s.runHooks {
		fn(r)
	}
	e.s.publishRun(r)
}
func (e effects) JobEvent(j *store.Job, typ jobv1.EventType, msg string) {
	e.s.publishJob(j, typ, msg)
}

// requestCancel marks a job's cancellation for delivery to its agent,
// wherever it is connected.
func (s *Service) requestCancel(agentID string) {
	s.cancels.Notify(agentID)
	if s.peers != nil {
		s.peers.Send(context.Background(), peers.Cancel, agentID)
	}
}

// UsePeers makes the service tell other replicas of work, cancels, log
// lines and events, and act on what they tell. Call it before serving;
// Run(ctx) of the peers starts listening.
func (s *Service) UsePeers(p *peers.Peers) {
	s.peers = p
	s.dispatch.OnWake(func() { p.Send(context.Background(), peers.Work, "") })
}

// UseHistory keeps the events of this replica in l, and lets StreamEvents
// start in the past. Call it before serving.
func (s *Service) UseHistory(l *eventlog.Log) { s.history = l }

// HandlePeer acts on a message from another replica.
func (s *Service) HandlePeer(kind, arg string) {
	switch kind {
	case peers.Work:
		s.dispatch.WakeLocal()
	case peers.Cancel:
		s.cancels.Notify(arg)
	case peers.Revoke:
		if s.auth != nil {
			s.auth.Forget(arg)
		}
		s.closeChannel(arg, errRevoked)
	case peers.TokenRevoked:
		if s.cutter != nil {
			s.cutter.Revoked(arg)
		}
	case peers.SecretChanged:
		s.reloadSecretUsers(arg)
	case peers.Log:
		s.logs.End(arg) // followers here read what was stored there
	case peers.Event:
		e := new(jobv1.Event)
		if err := protojson.Unmarshal([]byte(arg), e); err != nil {
			s.log.Warn("event from another replica", "err", err)
			return
		}
		if e.GetResourceType() == events.Agent {
			s.dispatch.Forget(e.GetResourceId())
		}
		s.events.Publish(e)
		if s.history != nil {
			s.history.Seen(e)
		}
		if e.GetResourceType() == events.Job {
			s.logs.End(e.GetResourceId())
		}
	}
}
