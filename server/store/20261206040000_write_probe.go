package store

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

func init() {
	migrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		if _, err := db.NewCreateTable().Model((*writeProbe)(nil)).IfNotExists().Exec(ctx); err != nil {
			return fmt.Errorf("create table write_probes: %w", err)
		}
		return nil
	}, func(ctx context.Context, db *bun.DB) error {
		_, err := db.NewDropTable().Model((*writeProbe)(nil)).IfExists().Exec(ctx)
		return err
	})
}
