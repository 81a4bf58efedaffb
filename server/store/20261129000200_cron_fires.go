package store

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// cronFire records that a cron trigger fired for one scheduled time: the
// first replica to insert the row fires, the others see it taken.
type cronFire struct {
	bun.BaseModel `bun:"table:cron_fires"`

	Trigger string    `bun:"trigger_key,pk"`
	At      time.Time `bun:"at,pk"`
	FiredAt time.Time `bun:"fired_at,notnull"`
}

func init() {
	migrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		if _, err := db.NewCreateTable().Model((*cronFire)(nil)).IfNotExists().Exec(ctx); err != nil {
			return fmt.Errorf("create table cron_fires: %w", err)
		}
		return nil
	}, func(ctx context.Context, db *bun.DB) error {
		_, err := db.NewDropTable().Model((*cronFire)(nil)).IfExists().Exec(ctx)
		return err
	})
}

// ClaimCronFire reports whether this caller is the one to fire trigger (a
// key naming the pipeline and its schedule) for the scheduled time at; it
// is true once per trigger and time across every server sharing the
// database. Records older than a week are pruned as it goes.
func (s *Store) ClaimCronFire(ctx context.Context, trigger string, at, now time.Time) (bool, error) {
	res, err := s.db.NewInsert().Model(&cronFire{Trigger: trigger, At: at.UTC(), FiredAt: now}).
		On("CONFLICT (trigger_key, at) DO NOTHING").Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("claim cron fire: %w", err)
	}
	n, _ := res.RowsAffected()
	if n == 1 {
		if _, err := s.db.NewDelete().Model((*cronFire)(nil)).Where("at < ?", now.Add(-7*24*time.Hour)).Exec(ctx); err != nil {
			s.log.Warn("prune cron fires", "err", err)
		}
	}
	return n == 1, nil
}
