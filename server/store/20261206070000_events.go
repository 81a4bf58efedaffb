package store

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// The events table: the history of system events (StreamEvents since).
func init() {
	migrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		if _, err := db.NewCreateTable().Model((*Event)(nil)).IfNotExists().Exec(ctx); err != nil {
			return fmt.Errorf("create table events: %w", err)
		}
		if _, err := db.NewCreateIndex().Table("events").Index("events_time").IfNotExists().Column("time", "id").Exec(ctx); err != nil {
			return fmt.Errorf("create index events_time: %w", err)
		}
		return nil
	}, func(ctx context.Context, db *bun.DB) error {
		_, err := db.NewDropTable().Model((*Event)(nil)).IfExists().Exec(ctx)
		return err
	})
}
