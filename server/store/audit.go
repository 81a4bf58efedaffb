package store

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// AuditEvent is one recorded write: who, what, when and from where. Ids are
// UUIDv7, so they sort by time.
type AuditEvent struct {
	bun.BaseModel `bun:"table:audit_events"`

	ID       string    `bun:"id,pk"`
	At       time.Time `bun:"at,notnull"`
	Actor    string    `bun:"actor,notnull"`
	Method   string    `bun:"method,notnull"`
	Resource string    `bun:"resource,notnull"`
	Peer     string    `bun:"peer,notnull"`
	Outcome  string    `bun:"outcome,notnull"`
	Message  string    `bun:"message,notnull"`
}

// AddAuditEvents stores entries in one statement.
func (s *Store) AddAuditEvents(ctx context.Context, events []*AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	if _, err := s.db.NewInsert().Model(&events).Exec(ctx); err != nil {
		return fmt.Errorf("record %d audit event(s): %w", len(events), err)
	}
	return nil
}

// AuditFilter narrows ListAuditEvents.
type AuditFilter struct {
	Actor  string
	Method string // a part of the method
	Since  time.Time
}

// ListAuditEvents returns a page of entries, newest first, and how many match.
func (s *Store) ListAuditEvents(ctx context.Context, f AuditFilter, p Page) ([]*AuditEvent, int, error) {
	var out []*AuditEvent
	q := s.db.NewSelect().Model(&out).Order("id DESC").Offset(p.Offset)
	if f.Actor != "" {
		q = q.Where("actor = ?", f.Actor)
	}
	if f.Method != "" {
		q = q.Where("method LIKE ?", "%"+escapeLike(f.Method)+"%")
	}
	if !f.Since.IsZero() {
		q = q.Where("at >= ?", f.Since)
	}
	if p.Limit > 0 {
		q = q.Limit(p.Limit)
	}
	total, err := q.ScanAndCount(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("list audit events: %w", err)
	}
	return out, total, nil
}

// escapeLike keeps % and _ literal in a LIKE pattern (with the default
// escape character of both dialects, none: they are dropped instead).
func escapeLike(s string) string {
	out := make([]rune, 0, len(s))
	for _, r := range s {
		if r != '%' && r != '_' && r != '\\' {
			out = append(out, r)
		}
	}
	return string(out)
}

// PruneAuditEvents removes entries older than before and all but the newest
// keep; it returns how many went.
func (s *Store) PruneAuditEvents(ctx context.Context, before time.Time, keep int) (int, error) {
	removed := 0
	if !before.IsZero() {
		res, err := s.db.NewDelete().Model((*AuditEvent)(nil)).Where("at < ?", before).Exec(ctx)
		if err != nil {
			return 0, fmt.Errorf("prune audit events: %w", err)
		}
		n, _ := res.RowsAffected()
		removed += int(n)
	}
	if keep > 0 {
		var edge []string
		if err := s.db.NewSelect().Model((*AuditEvent)(nil)).Column("id").Order("id DESC").Offset(keep).Limit(1).Scan(ctx, &edge); err != nil {
			return removed, fmt.Errorf("prune audit events: %w", err)
		}
		if len(edge) == 1 {
			res, err := s.db.NewDelete().Model((*AuditEvent)(nil)).Where("id <= ?", edge[0]).Exec(ctx)
			if err != nil {
				return removed, fmt.Errorf("prune audit events: %w", err)
			}
			n, _ := res.RowsAffected()
			removed += int(n)
		}
	}
	return removed, nil
}
