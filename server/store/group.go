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
// round commits the round, then hands the turn to the oldest write that
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
// write's err.
type group[T any] struct {
	commit func(batch []*pending[T])

	mu    sync.Mutex
	queue []*pending[T]
	busy  bool
}

// do waits for in to be committed (alone or with others) and returns its
// error.
func (g *group[T]) do(ctx context.Context, in T) error {
	p := &pending[T]{ctx: ctx, in: in, done: make(chan struct{}), turn: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, p)
	lead := !g.busy
	g.busy = true
	g.mu.Unlock()
	if !lead {
		select {
		case <-p.done:
			return p.err
		case <-p.turn:
		}
	}
	// This caller commits a round, which holds its own write (the oldest
	// queued), then passes the turn on.
	g.round()
	return p.err
}

// round commits every queued write, then passes the turn on.
func (g *group[T]) round() {
	g.mu.Lock()
	batch := g.queue
	g.queue = nil
	g.mu.Unlock()
	g.commit(batch)
	for _, p := range batch {
		close(p.done)
	}
	g.mu.Lock()
	if len(g.queue) > 0 {
		close(g.queue[0].turn)
	} else {
		g.busy = false
	}
	g.mu.Unlock()
}
