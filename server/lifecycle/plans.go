package lifecycle

import (
	"context"
	"fmt"
	"sync"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/pipeline"
	"github.com/go-arcade/arcade/server/store"
)

// runPlan is a run's definition (the snapshot it started with) and its plan.
type runPlan struct {
	spec *jobv1.PipelineDetail
	plan *pipeline.Plan
	jobs int
}

// maxPlannedJobs bounds the plans kept, counted in jobs: a few of the
// largest pipelines, or many small ones.
const maxPlannedJobs = 100_000

// planCache keeps the plans of runs, so that a run is planned once (on each
// server) however often it advances. A run's definition never changes, so
// a plan never goes stale; plans leave when their run ends, or the oldest
// when the cache is over its bound.
type planCache struct {
	mu    sync.Mutex
	byRun map[string]*runPlan
	order []string // run ids, oldest first
	jobs  int
	// planning holds the runs being planned now, so that two callers
	// plan a run once.
	planning map[string]chan struct{}
	// made counts the plans made.
	made int
}

// get returns the plan of run id, planning it (with the run load reads) if
// it is not kept. Planning stops when ctx ends.
func (c *planCache) get(ctx context.Context, id string, load func() (*store.PipelineRun, error)) (*runPlan, error) {
	for {
		c.mu.Lock()
		if rp, ok := c.byRun[id]; ok {
			c.mu.Unlock()
			return rp, nil
		}
		wait, busy := c.planning[id]
		if !busy {
			if c.planning == nil {
				c.planning = map[string]chan struct{}{}
			}
			c.planning[id] = make(chan struct{})
		}
		c.mu.Unlock()
		if busy {
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		rp, err := plan(ctx, load)
		c.mu.Lock()
		c.made++
		close(c.planning[id])
		delete(c.planning, id)
		if err == nil {
			c.keep(id, rp)
		}
		c.mu.Unlock()
		return rp, err
	}
}

func plan(ctx context.Context, load func() (*store.PipelineRun, error)) (*runPlan, error) {
	r, err := load()
	if err != nil {
		return nil, err
	}
	spec, err := DecodeSpec(r.Spec)
	if err != nil {
		return nil, err
	}
	p, err := pipeline.Replan(ctx, spec)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("run %s: stored pipeline is invalid: %w", r.ID, err)
	}
	return &runPlan{spec: spec, plan: p, jobs: len(p.Nodes)}, nil
}

// keep adds a plan, dropping the oldest over the bound; c.mu is held.
func (c *planCache) keep(id string, rp *runPlan) {
	if c.byRun == nil {
		c.byRun = map[string]*runPlan{}
	}
	c.byRun[id] = rp
	c.order = append(c.order, id)
	c.jobs += rp.jobs
	for c.jobs > maxPlannedJobs && len(c.order) > 1 {
		old := c.order[0]
		c.order = c.order[1:]
		if p, ok := c.byRun[old]; ok {
			c.jobs -= p.jobs
			delete(c.byRun, old)
		}
	}
}

// forget drops the plan of a run that ended.
func (c *planCache) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.byRun[id]; ok {
		c.jobs -= p.jobs
		delete(c.byRun, id)
		for i, o := range c.order {
			if o == id {
				c.order = append(c.order[:i], c.order[i+1:]...)
				break
			}
		}
	}
}

// planned reports whether the plan of run id is kept, and how many plans
// were made so far.
func (c *planCache) planned(id string) (kept bool, made int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, kept = c.byRun[id]
	return kept, c.made
}
