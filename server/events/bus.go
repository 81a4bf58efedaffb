// Package events fans system events (job, pipeline run, agent and plugin
// changes) out to subscribers, each with a bounded buffer: a subscriber that
// does not keep up is dropped and told so, and never slows the publisher.
package events

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	coreevents "github.com/go-arcade/arcade/core/events"
)

// Resource types of events.
const (
	Job         = "job"
	PipelineRun = "pipeline_run"
	Agent       = "agent"
	Plugin      = "plugin"
	// Notification events are the notifier's (server/notify).
	Notification = "notification"
)

// Filter selects events; zero fields match everything.
type Filter struct {
	// Types and Names select events by wire type or by name; an event
	// passes when it matches one of either (none of both: every event).
	Types        []jobv1.EventType
	Names        []coreevents.Pattern
	ResourceType string
	ResourceID   string
}

// Match reports whether e passes the filter.
func (f Filter) Match(e *jobv1.Event) bool {
	if len(f.Types) > 0 || len(f.Names) > 0 {
		ok := slices.Contains(f.Types, e.GetType()) ||
			slices.ContainsFunc(f.Names, func(p coreevents.Pattern) bool { return p.Match(e) })
		if !ok {
			return false
		}
	}
	if f.ResourceType != "" && f.ResourceType != e.GetResourceType() {
		return false
	}
	return f.ResourceID == "" || f.ResourceID == e.GetResourceId()
}

// Subscription receives the events matching its filter on C until it is
// closed, by Close or because it fell behind (then Overflowed is true).
type Subscription struct {
	C <-chan *jobv1.Event

	ch         chan *jobv1.Event
	filter     Filter
	bus        *Bus
	overflowed atomic.Bool
	once       sync.Once
}

// Overflowed reports whether the subscription was closed because its
// buffer filled up.
func (s *Subscription) Overflowed() bool { return s.overflowed.Load() }

// Close ends the subscription.
func (s *Subscription) Close() { s.bus.remove(s) }

// Bus is an in-process event bus. The zero value is not usable; call New.
type Bus struct {
	mu   sync.RWMutex
	subs map[*Subscription]struct{}
	now  func() time.Time
}

// New returns an empty bus.
func New() *Bus {
	return &Bus{subs: make(map[*Subscription]struct{}), now: time.Now}
}

// Subscribe returns a subscription to the events matching f, buffering up
// to buffer of them.
func (b *Bus) Subscribe(f Filter, buffer int) *Subscription {
	ch := make(chan *jobv1.Event, max(buffer, 1))
	s := &Subscription{C: ch, ch: ch, filter: f, bus: b}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

func (b *Bus) remove(s *Subscription) {
	s.once.Do(func() {
		b.mu.Lock()
		delete(b.subs, s)
		b.mu.Unlock()
		close(s.ch)
	})
}

// Publish sends an event to every matching subscriber without waiting;
// it fills in the id, time and name when they are empty.
func (b *Bus) Publish(e *jobv1.Event) {
	if e.GetName() == "" {
		e.Name = string(coreevents.Of(e))
	}
	if e.GetId() == "" {
		e.Id = uuid.Must(uuid.NewV7()).String()
	}
	if e.GetTimestamp() == nil {
		// Microseconds: what PostgreSQL keeps, so the event in memory and
		// the one read back from the history are the same.
		e.Timestamp = timestamppb.New(b.now().Truncate(time.Microsecond))
	}
	var full []*Subscription
	b.mu.RLock()
	for s := range b.subs {
		if !s.filter.Match(e) {
			continue
		}
		select {
		case s.ch <- e:
		default:
			full = append(full, s)
		}
	}
	b.mu.RUnlock()
	for _, s := range full {
		s.overflowed.Store(true)
		b.remove(s)
	}
}

// Subscribers returns how many subscriptions are open.
func (b *Bus) Subscribers() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.subs)
}
