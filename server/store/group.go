package store

import (
	"context"
	"sync"
)

// Group commit. Under load most of a write's cost is its transaction
// (locking, the commit, the WAL write); writes that arrive while another
// commits wait and then go together in the next transaction. A write that
// arrives alone commits at once, so nothing waits when the server is idle.
//
// There is no goroutine of its own: the caller of the first write of a
// round commits the round, then hands its turn to the oldest write that
// arrived meanwhile, whose caller commits the next round.

// pending is one write waiting for its round.
type pending[T any] struct {
	ctx  context.Context
	in   T
	err  error
	done chan struct{} // closed once the write is committed or failed
	turn chan struct{} // closed when its caller must commit the next round
}

// group batches writes of one kind; commit runs one round and sets each
// write's err. Up to max rounds commit at once (1 on SQLite, whose writers
// take turns anyway; a few on PostgreSQL, where rounds on different rows
// run side by side).
type group[T any] struct {
	commit func(batch []*pending[T])
	max    int

	mu    sync.Mutex
	queue []*pending[T]
	busy  int // rounds committing
}

// do waits for in to be committed (alone or with others) and returns its
// error.
func (g *group[T]) do(ctx context.Context, in T) error {
	p := &pending[T]{ctx: ctx, in: in, done: make(chan struct{}), turn: make(chan struct{})}
	g.mu.Lock()
	if g.busy < max(g.max, 1) {
		g.busy++
		g.mu.Unlock()
		g.round(p)
		return p.err
	}
	g.queue = append(g.queue, p)
	g.mu.Unlock()
	select {
	case <-p.done:
	case <-p.turn:
		g.round(p)
	}
	return p.err
}

// round commits lead and every queued write, then passes its turn to the
// oldest write queued meanwhile (taken off the queue, so that no other
// round takes it).
func (g *group[T]) round(lead *pending[T]) {
	g.mu.Lock()
	batch := append([]*pending[T]{lead}, g.queue...)
	g.queue = nil
	g.mu.Unlock()
	g.commit(batch)
	for _, p := range batch {
		close(p.done)
	}
	g.mu.Lock()
	if len(g.queue) > 0 {
		next := g.queue[0]
		g.queue = g.queue[1:]
		close(next.turn)
	} else {
		g.busy--
	}
	g.mu.Unlock()
}
