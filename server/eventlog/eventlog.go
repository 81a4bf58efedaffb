// Package eventlog keeps the recent history of system events in the
// database, so that StreamEvents can start in the past (since an event or a
// time) and every replica, before and after a restart, shows the same
// history. Each replica writes the events that happen on it, in batches off
// the publishing path; the history is bounded by count and age.
package eventlog

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/events"
	"github.com/go-arcade/arcade/server/store"
)

// Config bounds the history.
type Config struct {
	// MaxEvents is how many events are kept (default 10,000).
	MaxEvents int
	// MaxAge is how long an event is kept (default 7 days).
	MaxAge time.Duration
}

// Defaults of Config.
const (
	DefaultMaxEvents = 10000
	DefaultMaxAge    = 7 * 24 * time.Hour
)

// Validate checks the bounds and fills the defaults.
func (c *Config) Validate() error {
	if c.MaxEvents < 0 || c.MaxAge < 0 {
		return errors.New("event_history: max_events and max_age must not be negative")
	}
	if c.MaxEvents == 0 {
		c.MaxEvents = DefaultMaxEvents
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	return nil
}

// Store is what the log needs of the database.
type Store interface {
	AppendEvents(ctx context.Context, events []*store.Event) error
	EventByID(ctx context.Context, id string) (*store.Event, error)
	EventsSince(ctx context.Context, t time.Time, afterID string, f store.EventFilter, limit int) ([]*store.Event, error)
	LastEvents(ctx context.Context, n int, f store.EventFilter) ([]*store.Event, error)
	PruneEvents(ctx context.Context, keep int, before time.Time) (int, error)
}

const (
	// queueSize bounds the events waiting to be written; past it, events
	// are left out of the history (counted and logged), never waited for.
	queueSize = 4096
	// batchSize is the most events one write stores.
	batchSize = 256
	// ringSize is how many recent events (written here or relayed by other
	// replicas) are kept in memory, to cover those another replica has not
	// written yet.
	ringSize = 1024
)

// Log is the event history of one replica.
type Log struct {
	cfg   Config
	store Store
	log   *slog.Logger
	now   func() time.Time

	queue   chan *jobv1.Event
	flushes chan chan struct{}

	mu      sync.Mutex
	ring    []*jobv1.Event // recent events, oldest first
	dropped int
	warned  time.Time
}

// New returns a log over st; call Run to start writing.
func New(cfg Config, st Store, logger *slog.Logger) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Log{cfg: cfg, store: st, log: logger, now: time.Now,
		queue: make(chan *jobv1.Event, queueSize), flushes: make(chan chan struct{})}, nil
}

// Config returns the effective bounds.
func (l *Log) Config() Config { return l.cfg }

// Record keeps an event that happened on this replica. It never blocks: an
// event that finds the queue full stays out of the history (logged).
func (l *Log) Record(e *jobv1.Event) {
	l.remember(e)
	select {
	case l.queue <- e:
	default:
		l.mu.Lock()
		l.dropped++
		warn := l.now().Sub(l.warned) > time.Minute
		if warn {
			l.warned = l.now()
		}
		n := l.dropped
		l.mu.Unlock()
		if warn {
			l.log.Warn("event history: the database does not keep up; events left out of the history", "dropped", n)
		}
	}
}

// Seen keeps an event relayed by another replica (which writes it) in the
// recent events.
func (l *Log) Seen(e *jobv1.Event) { l.remember(e) }

func (l *Log) remember(e *jobv1.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ring = append(l.ring, e)
	if len(l.ring) > ringSize {
		l.ring = slices.Delete(l.ring, 0, len(l.ring)-ringSize)
	}
}

// Run writes recorded events until ctx ends, then writes what is queued
// (for up to 5 s) and returns.
func (l *Log) Run(ctx context.Context) {
	for {
		select {
		case e := <-l.queue:
			// A write under way when the stop comes is finished, not cut
			// (the stop waits for Run): the event was recorded before it.
			l.write(context.WithoutCancel(ctx), e)
		case done := <-l.flushes:
			l.writeQueued(ctx)
			close(done)
		case <-ctx.Done():
			stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			l.writeQueued(stop)
			cancel()
			return
		}
	}
}

// writeQueued writes everything queued now.
func (l *Log) writeQueued(ctx context.Context) {
	for {
		select {
		case e := <-l.queue:
			l.write(ctx, e)
		default:
			return
		}
	}
}

// write stores first and what else is queued, up to a batch, retrying a
// failed write a few times.
func (l *Log) write(ctx context.Context, first *jobv1.Event) {
	batch := []*store.Event{toStore(first)}
	for len(batch) < batchSize {
		select {
		case e := <-l.queue:
			batch = append(batch, toStore(e))
			continue
		default:
		}
		break
	}
	var err error
	for try := range 5 {
		if err = l.store.AppendEvents(ctx, batch); err == nil || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(try+1) * 200 * time.Millisecond):
		}
	}
	if err != nil {
		l.log.Warn("event history: events not stored", "events", len(batch), "err", err)
	}
}

// Flush returns once the events recorded before the call are written (or
// ctx ends).
func (l *Log) Flush(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case l.flushes <- done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Prune applies the bounds.
func (l *Log) Prune(ctx context.Context) (int, error) {
	return l.store.PruneEvents(ctx, l.cfg.MaxEvents, l.now().Add(-l.cfg.MaxAge))
}

// Query says which past events to read: those after the event SinceID, or
// at or after SinceTime, or the newest Last; the filter narrows them.
type Query struct {
	SinceID   string
	SinceTime time.Time
	Last      int
	// Names keeps events of these names (none: all).
	Names        []events.Name
	ResourceType string
	ResourceID   string
}

// ErrUnknownEvent is returned by Read for a SinceID not in the history.
var ErrUnknownEvent = errors.New("event not in the history")

// Read returns the past events q asks for, oldest first, at most MaxEvents.
// It first writes what this replica recorded, so that an event published
// before the call is found.
func (l *Log) Read(ctx context.Context, q Query) ([]*jobv1.Event, error) {
	fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_ = l.Flush(fctx) // a slow database: read what is there
	cancel()
	f := store.EventFilter{ResourceType: q.ResourceType, ResourceID: q.ResourceID}
	for _, n := range q.Names {
		f.Names = append(f.Names, string(n))
	}
	limit := l.cfg.MaxEvents
	var (
		rows  []*store.Event
		err   error
		from  time.Time
		after string
	)
	switch {
	case q.SinceID != "":
		e, ferr := l.store.EventByID(ctx, q.SinceID)
		switch {
		case ferr == nil:
			from, after = e.Time, e.ID
		case !errors.Is(ferr, store.ErrNotFound):
			return nil, ferr
		case l.recent(q.SinceID) != nil:
			r := l.recent(q.SinceID)
			from, after = r.GetTimestamp().AsTime(), r.GetId()
		default:
			return nil, ErrUnknownEvent
		}
		rows, err = l.store.EventsSince(ctx, from, after, f, limit)
	case !q.SinceTime.IsZero():
		from = q.SinceTime
		rows, err = l.store.EventsSince(ctx, from, "", f, limit)
	case q.Last > 0:
		limit = min(q.Last, limit)
		rows, err = l.store.LastEvents(ctx, limit, f)
		if len(rows) > 0 {
			from = rows[0].Time
		}
	default:
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]*jobv1.Event, 0, len(rows))
	seen := make(map[string]bool, len(rows))
	for _, r := range rows {
		out = append(out, fromStore(r))
		seen[r.ID] = true
	}
	// Recent events another replica has not written yet.
	l.mu.Lock()
	for _, e := range l.ring {
		if seen[e.GetId()] || e.GetId() == after || !q.matches(e) {
			continue
		}
		t := e.GetTimestamp().AsTime()
		if t.Before(from) || (after != "" && t.Equal(from) && e.GetId() <= after) {
			continue
		}
		out = append(out, e)
	}
	l.mu.Unlock()
	slices.SortStableFunc(out, func(a, b *jobv1.Event) int {
		if c := a.GetTimestamp().AsTime().Compare(b.GetTimestamp().AsTime()); c != 0 {
			return c
		}
		return strings.Compare(a.GetId(), b.GetId())
	})
	if len(out) > limit {
		if q.Last > 0 {
			out = out[len(out)-limit:]
		} else {
			out = out[:limit]
		}
	}
	return out, nil
}

func (q Query) matches(e *jobv1.Event) bool {
	if q.ResourceType != "" && e.GetResourceType() != q.ResourceType {
		return false
	}
	if q.ResourceID != "" && e.GetResourceId() != q.ResourceID {
		return false
	}
	return len(q.Names) == 0 || slices.Contains(q.Names, events.Of(e))
}

func (l *Log) recent(id string) *jobv1.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.ring {
		if e.GetId() == id {
			return e
		}
	}
	return nil
}

func toStore(e *jobv1.Event) *store.Event {
	name := e.GetName()
	if name == "" {
		name = string(events.Of(e))
	}
	return &store.Event{ID: e.GetId(), Time: e.GetTimestamp().AsTime(), Type: int32(e.GetType()), Name: name,
		ResourceType: e.GetResourceType(), ResourceID: e.GetResourceId(), Message: e.GetMessage(), Attributes: e.GetAttributes()}
}

func fromStore(r *store.Event) *jobv1.Event {
	return &jobv1.Event{Id: r.ID, Type: jobv1.EventType(r.Type), Name: r.Name, ResourceType: r.ResourceType, ResourceId: r.ResourceID,
		Timestamp: timestamppb.New(r.Time), Message: r.Message, Attributes: r.Attributes}
}
