// Package livelog fans freshly stored log lines out to the followers of a
// job, like tail -f. Delivery never waits for a follower: one whose buffer is
// full misses batches here and reads them back from the store, so a slow
// follower neither slows agents nor loses lines.
package livelog

import (
	"sync"

	"github.com/go-arcade/arcade/server/store"
)

// Follower receives the batches of one job attempt as they are stored.
type Follower struct {
	// C carries packs of consecutive lines, in order; a pack may start past
	// the line the follower expects when it fell behind.
	C <-chan store.Pack
	// Ended is signalled when an attempt of the job ends.
	Ended <-chan struct{}

	c     chan store.Pack
	ended chan struct{}
	hub   *Hub
	key   key
}

type key struct {
	job     string
	attempt int32
}

// Hub routes batches to followers. The zero value is ready to use.
type Hub struct {
	mu     sync.Mutex
	topics map[key]map[*Follower]struct{}
}

// Follow subscribes to an attempt's new lines, buffering up to buffer
// batches.
func (h *Hub) Follow(jobID string, attempt int32, buffer int) *Follower {
	c := make(chan store.Pack, max(buffer, 1))
	ended := make(chan struct{}, 1)
	f := &Follower{C: c, Ended: ended, c: c, ended: ended, hub: h, key: key{jobID, attempt}}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.topics == nil {
		h.topics = make(map[key]map[*Follower]struct{})
	}
	if h.topics[f.key] == nil {
		h.topics[f.key] = make(map[*Follower]struct{})
	}
	h.topics[f.key][f] = struct{}{}
	return f
}

// Close stops following.
func (f *Follower) Close() {
	h := f.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.topics[f.key], f)
	if len(h.topics[f.key]) == 0 {
		delete(h.topics, f.key)
	}
}

// Publish hands a stored pack to the attempt's followers without waiting.
func (h *Hub) Publish(jobID string, attempt int32, p store.Pack) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for f := range h.topics[key{jobID, attempt}] {
		select {
		case f.c <- p:
		default: // behind: it will read the store
		}
	}
}

// End tells the followers of every attempt of a job that an attempt ended.
func (h *Hub) End(jobID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, fs := range h.topics {
		if k.job != jobID {
			continue
		}
		for f := range fs {
			select {
			case f.ended <- struct{}{}:
			default:
			}
		}
	}
}

// Followers returns how many followers are attached.
func (h *Hub) Followers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, fs := range h.topics {
		n += len(fs)
	}
	return n
}
