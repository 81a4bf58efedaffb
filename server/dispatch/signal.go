// Package dispatch hands pending jobs to agents: it wakes waiting agents when
// work arrives and claims, for one agent, the oldest pending job whose label
// selector matches it and fits its capacity.
package dispatch

import (
	"context"
	"sync"
	"time"
)

// Signal wakes every goroutine waiting on it at once, like a condition
// variable whose waits can be combined with a context in a select.
// The zero value is ready to use.
type Signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// C returns a channel that is closed at the next Notify. Take it before
// checking for work, then wait on it, so no Notify is missed in between.
func (s *Signal) C() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// Notify wakes everyone waiting on a channel from C.
func (s *Signal) Notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// Signals is a set of signals by key (one per agent, say).
type Signals struct {
	mu sync.Mutex
	m  map[string]*Signal
}

// Get returns the signal of key, creating it.
func (s *Signals) Get(key string) *Signal {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]*Signal)
	}
	sig, ok := s.m[key]
	if !ok {
		sig = new(Signal)
		s.m[key] = sig
	}
	return sig
}

// Notify wakes the waiters of key.
func (s *Signals) Notify(key string) { s.Get(key).Notify() }

// Poll is a long poll: it calls try until try reports done, waking up at
// each Notify of sig, and gives up (returning the zero T) once wait has
// passed; it returns ctx's error when ctx ends first.
func Poll[T any](ctx context.Context, sig *Signal, wait time.Duration, try func() (T, bool, error)) (T, error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		woken := sig.C() // before trying, so no Notify is missed
		v, done, err := try()
		if err != nil || done {
			return v, err
		}
		select {
		case <-woken:
		case <-timer.C:
			var zero T
			return zero, nil
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		}
	}
}
