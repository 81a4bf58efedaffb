package dispatch

import (
	"context"
	"slices"
	"time"

	"github.com/go-arcade/arcade/server/store"
)

// Agents connected through an AgentChannel do not claim jobs each for
// itself: they register as waiters, and one loop (Run) hands out jobs to
// all of them in rounds, each round one transaction. When a job is created,
// one round serves every waiting agent, instead of every waiting agent
// racing for the job with queries of its own.

// Waiter is an agent waiting for jobs through its channel.
type Waiter struct {
	d       *Dispatcher
	agentID string
	// deliver hands claimed jobs to the channel; false means the channel is
	// gone and the jobs must go back to the queue.
	deliver func([]*store.Job) bool

	want   int // guarded by d.wmu
	closed bool
}

// Wait registers an agent's channel as a waiter; deliver receives the jobs
// claimed for it (it must not block). Close the waiter with the channel.
func (d *Dispatcher) Wait(agentID string, deliver func([]*store.Job) bool) *Waiter {
	w := &Waiter{d: d, agentID: agentID, deliver: deliver}
	d.wmu.Lock()
	if d.waiters == nil {
		d.waiters = make(map[*Waiter]struct{})
	}
	d.waiters[w] = struct{}{}
	d.wmu.Unlock()
	return w
}

// Add asks for n more jobs.
func (w *Waiter) Add(n int) {
	if n <= 0 {
		return
	}
	w.d.wmu.Lock()
	if !w.closed {
		w.want += n
	}
	w.d.wmu.Unlock()
	w.d.joined.Notify()
}

// Close removes the waiter: no job is claimed for it any more.
func (w *Waiter) Close() {
	w.d.wmu.Lock()
	w.closed = true
	delete(w.d.waiters, w)
	w.d.wmu.Unlock()
}

// Run hands out jobs to waiters until ctx ends: a round whenever work may
// have appeared (Wake), a waiter asks for more, or idle passes.
func (d *Dispatcher) Run(ctx context.Context, idle time.Duration) {
	timer := time.NewTimer(idle)
	defer timer.Stop()
	for ctx.Err() == nil {
		work, joined := d.work.C(), d.joined.C() // before the round: no wake-up is missed
		n, err := d.round(ctx)
		if err != nil && ctx.Err() == nil {
			d.log.Warn("dispatch round", "err", err)
		}
		if n > 0 && err == nil {
			continue // there may be more
		}
		timer.Reset(idle)
		select {
		case <-work:
		case <-joined:
		case <-timer.C:
		case <-ctx.Done():
			return
		}
		if err != nil {
			// Do not spin on a failing database.
			select {
			case <-time.After(200 * time.Millisecond):
			case <-ctx.Done():
				return
			}
		}
	}
}

// round claims, in one transaction, as many pending jobs as the waiters
// want and match, spreading them over the waiters in turn, and delivers
// them. It returns how many it handed out.
func (d *Dispatcher) round(ctx context.Context) (int, error) {
	d.wmu.Lock()
	type slot struct {
		w    *Waiter
		want int
	}
	var slots []*slot
	var ids []string
	for w := range d.waiters {
		if w.want > 0 {
			slots = append(slots, &slot{w: w, want: w.want})
			ids = append(ids, w.agentID)
		}
	}
	d.wmu.Unlock()
	if len(slots) == 0 {
		return 0, nil
	}
	agents, err := d.waitingAgents(ctx, ids)
	if err != nil {
		return 0, err
	}
	byID := make(map[string]*store.Agent, len(agents))
	for _, a := range agents {
		if !a.Revoked {
			byID[a.ID] = a
		}
	}
	// A stable order, rotated each round, so that no agent is always first.
	slices.SortFunc(slots, func(a, b *slot) int {
		switch {
		case a.w.agentID < b.w.agentID:
			return -1
		case a.w.agentID > b.w.agentID:
			return 1
		}
		return 0
	})
	total := 0
	for _, s := range slots {
		total += s.want
	}
	next := d.turn % len(slots)
	d.turn++
	chosen := map[*store.Agent]*slot{}
	pick := func(j *store.Job) *store.Agent {
		for k := range slots {
			s := slots[(next+k)%len(slots)]
			a := byID[s.w.agentID]
			if s.want == 0 || a == nil || !d.Matches(j, a) {
				continue
			}
			s.want--
			total--
			next = (next + k + 1) % len(slots)
			chosen[a] = s
			return a
		}
		return nil
	}
	now := d.now()
	claims, err := d.store.ClaimBatch(ctx, now, now.Add(d.lease), pick, func() bool { return total > 0 })
	if err != nil || len(claims) == 0 {
		return 0, err
	}
	out := map[*Waiter][]*store.Job{}
	for _, c := range claims {
		w := chosen[c.Agent].w
		out[w] = append(out[w], c.Job)
	}
	for w, jobs := range out {
		d.wmu.Lock()
		w.want -= len(jobs)
		d.wmu.Unlock()
		if !w.deliver(jobs) {
			d.release(jobs)
		}
	}
	return len(claims), nil
}

// agentTTL bounds how long a round trusts an agent row it read before.
// Changes made through this server or relayed by another replica drop the
// row at once (Forget); the TTL covers the rest.
const agentTTL = 10 * time.Second

type cachedAgent struct {
	agent *store.Agent
	at    time.Time
}

// waitingAgents returns the agent rows of ids, reading only those not
// known or known for too long.
func (d *Dispatcher) waitingAgents(ctx context.Context, ids []string) ([]*store.Agent, error) {
	now := time.Now()
	out := make([]*store.Agent, 0, len(ids))
	var missing []string
	d.amu.Lock()
	for _, id := range ids {
		if c, ok := d.agents[id]; ok && now.Sub(c.at) < agentTTL {
			out = append(out, c.agent)
		} else {
			missing = append(missing, id)
		}
	}
	d.amu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	fresh, err := d.store.GetAgents(ctx, missing)
	if err != nil {
		return nil, err
	}
	d.amu.Lock()
	if d.agents == nil || len(d.agents) > 10000 {
		d.agents = make(map[string]cachedAgent)
	}
	for _, a := range fresh {
		d.agents[a.ID] = cachedAgent{agent: a, at: now}
	}
	d.amu.Unlock()
	return append(out, fresh...), nil
}

// Forget drops what the dispatcher knows of an agent: its labels, state or
// capacity changed.
func (d *Dispatcher) Forget(agentID string) {
	d.amu.Lock()
	delete(d.agents, agentID)
	d.amu.Unlock()
}

// release puts claimed jobs that could not be delivered back in the queue.
func (d *Dispatcher) release(jobs []*store.Job) {
	for _, j := range jobs {
		if err := d.store.ReleaseClaim(context.Background(), j); err != nil {
			d.log.Warn("release job", "job", j.ID, "err", err)
		}
	}
	d.Wake()
}

// Release puts back in the queue jobs a waiter was given but could not send.
func (d *Dispatcher) Release(jobs []*store.Job) {
	if len(jobs) > 0 {
		d.release(jobs)
	}
}
