package store

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// WebhookDelivery is a forge delivery already handled: a replay of it
// starts nothing.
type WebhookDelivery struct {
	bun.BaseModel `bun:"table:webhook_deliveries"`

	// ID is "forge:delivery id pipeline id" or "forge:sha256:body digest
	// pipeline id".
	ID         string    `bun:"id,pk"`
	ReceivedAt time.Time `bun:"received_at,notnull"`
}

// FirstDelivery records a delivery id and reports whether it is new; the
// store keeps the newest keep ids (older ones are forgotten).
func (s *Store) FirstDelivery(ctx context.Context, id string, now time.Time, keep int) (bool, error) {
	res, err := s.db.NewInsert().Model(&WebhookDelivery{ID: id, ReceivedAt: now}).On("CONFLICT (id) DO NOTHING").Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("record delivery: %w", err)
	}
	n, _ := res.RowsAffected()
	if n == 0 {
		return false, nil
	}
	if keep > 0 {
		// Forget the oldest beyond the bound.
		sub := s.db.NewSelect().Model((*WebhookDelivery)(nil)).Column("id").Order("received_at DESC", "id DESC").Offset(keep).Limit(1000)
		if _, err := s.db.NewDelete().Model((*WebhookDelivery)(nil)).Where("id IN (?)", sub).Exec(ctx); err != nil {
			s.log.Warn("forget old webhook deliveries", "err", err)
		}
	}
	return true, nil
}

// ForgetDelivery removes a delivery id, so that the delivery is new again
// (what it was to start did not start).
func (s *Store) ForgetDelivery(ctx context.Context, id string) error {
	if _, err := s.db.NewDelete().Model((*WebhookDelivery)(nil)).Where("id = ?", id).Exec(ctx); err != nil {
		return fmt.Errorf("forget delivery: %w", err)
	}
	return nil
}

// CountDeliveries counts the delivery ids kept.
func (s *Store) CountDeliveries(ctx context.Context) (int, error) {
	return s.db.NewSelect().Model((*WebhookDelivery)(nil)).Count(ctx)
}

// CommitStatus is one state of a commit status to deliver to a forge. The
// states of one key (forge repository, commit, context) are delivered one
// at a time in the order they were queued; a failed delivery is retried
// (the later ones wait), so none is dropped and the last one queued is the
// last one the forge gets.
type CommitStatus struct {
	bun.BaseModel `bun:"table:commit_statuses"`

	ID int64 `bun:"id,pk,autoincrement"`
	// Key is "repository commit context".
	Key string `bun:"status_key,notnull"`
	// PipelineID is the pipeline whose source's credential delivers it.
	PipelineID string `bun:"pipeline_id,notnull"`
	// Payload is what the delivering plugin gets (JSON, no credential).
	Payload   []byte    `bun:"payload,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull"`
	NextAt    time.Time `bun:"next_at,notnull"`
	Attempts  int32     `bun:"attempts,notnull"`
	LastError string    `bun:"last_error,notnull"`
}

// QueueStatus adds a state to deliver.
func (s *Store) QueueStatus(ctx context.Context, cs *CommitStatus) error {
	if _, err := s.db.NewInsert().Model(cs).Exec(ctx); err != nil {
		return fmt.Errorf("queue commit status: %w", err)
	}
	return nil
}

// DueStatuses returns, for each key, its oldest state when that one is due
// (at most limit keys): what may be delivered now without passing an
// earlier state of the same key.
func (s *Store) DueStatuses(ctx context.Context, now time.Time, limit int) ([]*CommitStatus, error) {
	var out []*CommitStatus
	first := s.db.NewSelect().Model((*CommitStatus)(nil)).ColumnExpr("MIN(id)").Group("status_key")
	err := s.db.NewSelect().Model(&out).Where("id IN (?)", first).Where("next_at <= ?", now).
		Order("id ASC").Limit(limit).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("due commit statuses: %w", err)
	}
	return out, nil
}

// StatusDelivered removes a delivered state.
func (s *Store) StatusDelivered(ctx context.Context, id int64) error {
	_, err := s.db.NewDelete().Model((*CommitStatus)(nil)).Where("id = ?", id).Exec(ctx)
	return err
}

// StatusFailed records a failed delivery and when to try again.
func (s *Store) StatusFailed(ctx context.Context, id int64, next time.Time, msg string) error {
	if len(msg) > 1000 {
		msg = msg[:1000]
	}
	_, err := s.db.NewUpdate().Model((*CommitStatus)(nil)).Set("attempts = attempts + 1").Set("next_at = ?", next).
		Set("last_error = ?", msg).Where("id = ?", id).Exec(ctx)
	return err
}

// CountStatuses counts the states waiting to be delivered.
func (s *Store) CountStatuses(ctx context.Context) (int, error) {
	return s.db.NewSelect().Model((*CommitStatus)(nil)).Count(ctx)
}

// PipelinesWithPlainTriggerSecrets returns the pipelines whose definition
// still holds webhook secrets in plain (stored before they were sealed).
func (s *Store) PipelinesWithPlainTriggerSecrets(ctx context.Context) ([]*Pipeline, error) {
	var ps []*Pipeline
	if err := s.db.NewSelect().Model(&ps).Order("id ASC").Scan(ctx); err != nil {
		return nil, fmt.Errorf("list pipelines: %w", err)
	}
	var out []*Pipeline
	for _, p := range ps {
		if _, sec, err := TakeTriggerSecrets(p.Spec); err == nil && len(sec) > 0 {
			out = append(out, p)
		}
	}
	return out, nil
}

// SealTriggerSecrets moves the plain webhook secrets of pipeline id into
// its sealed column with seal (which receives them by trigger index and
// those sealed before), then makes the database files forget the plain
// ones.
func (s *Store) SealTriggerSecrets(ctx context.Context, id string, seal func(plain map[string]string, sealed []byte) ([]byte, error)) error {
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		p := new(Pipeline)
		if err := s.lockRows(tx.NewSelect().Model(p).Where("id = ?", id)).Scan(ctx); err != nil {
			return notFound(err)
		}
		spec, plain, err := TakeTriggerSecrets(p.Spec)
		if err != nil || len(plain) == 0 {
			return err
		}
		sealed, err := seal(plain, p.TriggerSecrets)
		if err != nil {
			return err
		}
		_, err = tx.NewUpdate().Model(p).Set("spec = ?", spec).Set("trigger_secrets = ?", sealed).Where("id = ?", id).Exec(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("seal trigger secrets of pipeline %s: %w", id, err)
	}
	return nil
}

// ScrubFreedSpace makes the database files forget rewritten rows (see the
// sources migration).
func (s *Store) ScrubFreedSpace(ctx context.Context) error {
	return scrubFreedSpace(ctx, s.db)
}

// ReportRunState records that the state of rank (1 pending, 2 running, 3
// final) of a run is queued for its forge, unless it or a later one
// already was; it reports whether this call recorded it.
func (s *Store) ReportRunState(ctx context.Context, runID string, rank int32) (bool, error) {
	res, err := s.db.NewUpdate().Model((*PipelineRun)(nil)).Set("status_reported = ?", rank).
		Where("id = ?", runID).Where("status_reported < ?", rank).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("record reported state of run %s: %w", runID, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// ClaimStatus takes a due state for delivery until until (so that another
// replica passes it by meanwhile); false when it was taken already.
func (s *Store) ClaimStatus(ctx context.Context, cs *CommitStatus, until time.Time) (bool, error) {
	res, err := s.db.NewUpdate().Model((*CommitStatus)(nil)).Set("next_at = ?", until).
		Where("id = ?", cs.ID).Where("next_at = ?", cs.NextAt).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("claim commit status: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}
