package dispatch

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/go-arcade/arcade/core/jobstep"
	"github.com/go-arcade/arcade/core/labels"
	"github.com/go-arcade/arcade/server/store"
)

// Store is what the dispatcher needs of the database.
type Store interface {
	GetAgent(ctx context.Context, id string) (*store.Agent, error)
	CountRunning(ctx context.Context, agentID string) (int, error)
	ClaimFirst(ctx context.Context, a *store.Agent, match func(*store.Job) bool, now, leaseUntil time.Time) (*store.Job, error)
	ClaimBatch(ctx context.Context, now, leaseUntil time.Time, pick func(*store.Job) *store.Agent, wantMore func() bool) ([]store.Claim, error)
	GetAgents(ctx context.Context, ids []string) ([]*store.Agent, error)
	ReleaseClaim(ctx context.Context, j *store.Job) error
}

// Dispatcher matches pending jobs with agents.
type Dispatcher struct {
	store Store
	log   *slog.Logger
	now   func() time.Time
	lease time.Duration
	work  Signal

	onWake func() // tells other replicas, when set
	// hold, when set, keeps jobs from being handed out for now (their
	// plugins still compile).
	hold func(*store.Job) bool

	mu        sync.Mutex
	agentMu   map[string]*sync.Mutex
	selectors map[string]labels.Selector // by selector text

	// Channel waiters (batch.go); turn belongs to Run's goroutine.
	wmu     sync.Mutex
	waiters map[*Waiter]struct{}
	joined  Signal
	turn    int

	// The agent rows of waiters, kept between rounds (batch.go).
	amu    sync.Mutex
	agents map[string]cachedAgent
}

// New returns a dispatcher that leases jobs for lease at a time.
func New(s Store, lease time.Duration, now func() time.Time, logger *slog.Logger) *Dispatcher {
	return &Dispatcher{
		store: s, log: logger, now: now, lease: lease,
		agentMu:   make(map[string]*sync.Mutex),
		selectors: make(map[string]labels.Selector),
	}
}

// Wake tells waiting agents that there may be work for them (a job was
// created or requeued, or an agent's labels changed), here and, through the
// OnWake hook, on the other replicas.
func (d *Dispatcher) Wake() {
	d.work.Notify()
	if d.onWake != nil {
		d.onWake()
	}
}

// WakeLocal wakes this replica's waiting agents only (another replica said
// there is work).
func (d *Dispatcher) WakeLocal() { d.work.Notify() }

// OnWake sets a function Wake calls after waking local agents. Set it before
// serving.
func (d *Dispatcher) OnWake(fn func()) { d.onWake = fn }

// Next waits until a job can be leased to the agent, or until wait has passed
// or ctx ends; it returns nil without error when nothing came in time.
func (d *Dispatcher) Next(ctx context.Context, agentID string, wait time.Duration) (*store.Job, error) {
	return Poll(ctx, &d.work, wait, func() (*store.Job, bool, error) {
		j, err := d.TryClaim(ctx, agentID)
		return j, j != nil, err
	})
}

// TryClaim leases the oldest matching pending job to the agent, if there is
// one and the agent has a free slot.
func (d *Dispatcher) TryClaim(ctx context.Context, agentID string) (*store.Job, error) {
	mu := d.lockFor(agentID)
	mu.Lock()
	defer mu.Unlock()

	agent, err := d.store.GetAgent(ctx, agentID)
	if err != nil {
		return nil, err
	}
	running, err := d.store.CountRunning(ctx, agentID)
	if err != nil {
		return nil, err
	}
	if running >= int(max(agent.MaxJobs, 1)) {
		return nil, nil
	}
	now := d.now()
	return d.store.ClaimFirst(ctx, agent, func(j *store.Job) bool { return d.Matches(j, agent) }, now, now.Add(d.lease))
}

// HoldBack makes the dispatcher leave the jobs fn picks in the queue (Wake
// when that changes). Set it before serving.
func (d *Dispatcher) HoldBack(fn func(*store.Job) bool) { d.hold = fn }

// Matches reports whether a job may run on an agent: a trusted agent takes
// only jobs that may use trusted agents (whatever their selector says), its
// selector matches the agent's labels, an agent with a container runtime is
// there for an image, an agent with git for a checkout, the agent runs
// every plugin the job's steps use, and the job is not held back.
func (d *Dispatcher) Matches(j *store.Job, a *store.Agent) bool {
	if a.Trusted && !j.TrustedAgents {
		return false
	}
	if j.Image != "" && a.Labels[labels.ContainerRuntime] == "" {
		return false
	}
	if len(j.Checkout) > 0 && a.Labels[labels.Git] == "" {
		return false
	}
	if !jobstep.Covers(a.Plugins, j.Plugins) {
		return false
	}
	if d.hold != nil && d.hold(j) {
		return false
	}
	sel, err := d.selector(j.Selector)
	if err != nil {
		d.log.Warn("job has an unreadable selector; it cannot be dispatched", "job", j.ID, "selector", j.Selector, "err", err)
		return false
	}
	return sel.Matches(a.Labels)
}

func (d *Dispatcher) selector(text string) (labels.Selector, error) {
	d.mu.Lock()
	sel, ok := d.selectors[text]
	d.mu.Unlock()
	if ok {
		return sel, nil
	}
	sel, err := labels.Parse(text)
	if err != nil {
		return labels.Selector{}, fmt.Errorf("parse selector %q: %w", text, err)
	}
	d.mu.Lock()
	if len(d.selectors) > 10000 {
		clear(d.selectors)
	}
	d.selectors[text] = sel
	d.mu.Unlock()
	return sel, nil
}

func (d *Dispatcher) lockFor(agentID string) *sync.Mutex {
	d.mu.Lock()
	defer d.mu.Unlock()
	mu, ok := d.agentMu[agentID]
	if !ok {
		mu = new(sync.Mutex)
		d.agentMu[agentID] = mu
	}
	return mu
}
