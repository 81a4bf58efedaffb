package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// Event is one system event kept in the history (the events table): every
// replica writes the events that happen on it, so all replicas read the
// same history, and it outlives restarts.
type Event struct {
	bun.BaseModel `bun:"table:events"`

	ID           string            `bun:"id,pk"`
	Time         time.Time         `bun:"time,notnull"`
	Type         int32             `bun:"type,notnull"`
	Name         string            `bun:"name,notnull"`
	ResourceType string            `bun:"resource_type,notnull"`
	ResourceID   string            `bun:"resource_id,notnull"`
	Message      string            `bun:"message,notnull"`
	Attributes   map[string]string `bun:"attributes,notnull"`
}

// EventFilter selects events from the history; zero fields select all.
type EventFilter struct {
	// Names keeps events with one of these names.
	Names        []string
	ResourceType string
	ResourceID   string
}

func (f EventFilter) apply(q *bun.SelectQuery) *bun.SelectQuery {
	if len(f.Names) > 0 {
		q = q.Where("name IN (?)", bun.In(f.Names))
	}
	if f.ResourceType != "" {
		q = q.Where("resource_type = ?", f.ResourceType)
	}
	if f.ResourceID != "" {
		q = q.Where("resource_id = ?", f.ResourceID)
	}
	return q
}

// AppendEvents stores events; one already stored (same id) is skipped.
func (s *Store) AppendEvents(ctx context.Context, events []*Event) error {
	if len(events) == 0 {
		return nil
	}
	for _, e := range events {
		e.Time = e.Time.UTC()
		if e.Attributes == nil {
			e.Attributes = map[string]string{}
		}
	}
	if _, err := s.db.NewInsert().Model(&events).On("CONFLICT (id) DO NOTHING").Exec(ctx); err != nil {
		return fmt.Errorf("store %d events: %w", len(events), err)
	}
	return nil
}

// EventByID returns a stored event.
func (s *Store) EventByID(ctx context.Context, id string) (*Event, error) {
	e := new(Event)
	if err := s.db.NewSelect().Model(e).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, notFound(err)
	}
	return e, nil
}

// EventsSince returns up to limit events at or after t (after the event
// (t, afterID) when afterID is set), oldest first.
func (s *Store) EventsSince(ctx context.Context, t time.Time, afterID string, f EventFilter, limit int) ([]*Event, error) {
	var out []*Event
	q := s.db.NewSelect().Model(&out)
	if afterID != "" {
		q = q.Where("(time > ? OR (time = ? AND id > ?))", t.UTC(), t.UTC(), afterID)
	} else {
		q = q.Where("time >= ?", t.UTC())
	}
	if err := f.apply(q).Order("time ASC", "id ASC").Limit(limit).Scan(ctx); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return out, nil
}

// LastEvents returns the newest n events, oldest first.
func (s *Store) LastEvents(ctx context.Context, n int, f EventFilter) ([]*Event, error) {
	var out []*Event
	if err := f.apply(s.db.NewSelect().Model(&out)).Order("time DESC", "id DESC").Limit(n).Scan(ctx); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// PruneEvents deletes the events older than before and all but the newest
// keep, and returns how many it deleted.
func (s *Store) PruneEvents(ctx context.Context, keep int, before time.Time) (int, error) {
	if keep < 0 {
		return 0, errors.New("prune events: keep must not be negative")
	}
	deleted := 0
	res, err := s.db.NewDelete().Model((*Event)(nil)).Where("time < ?", before.UTC()).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune events by age: %w", err)
	}
	n, _ := res.RowsAffected()
	deleted += int(n)
	// The newest keep events stay: the keep-th newest time is the cut (rows
	// sharing it stay too).
	var cut []time.Time
	err = s.db.NewSelect().Model((*Event)(nil)).Column("time").Order("time DESC").Offset(keep).Limit(1).Scan(ctx, &cut)
	if err != nil {
		return deleted, fmt.Errorf("prune events by count: %w", err)
	}
	if len(cut) == 1 {
		res, err := s.db.NewDelete().Model((*Event)(nil)).Where("time <= ?", cut[0]).Exec(ctx)
		if err != nil {
			return deleted, fmt.Errorf("prune events by count: %w", err)
		}
		n, _ := res.RowsAffected()
		deleted += int(n)
	}
	return deleted, nil
}
