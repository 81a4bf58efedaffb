package store

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// agents.admin_labels: the labels an admin set, the only ones that can make
// an agent trusted. Before, an agent's own labels could; a trusted label
// already on an agent is kept as the admin's only where an admin could have
// set it, which the database cannot tell, so none is: an admin sets them
// again (`arcade agent label`), and until then such agents are not trusted
// by label.
func init() {
	migrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		if _, err := db.ExecContext(ctx, "SELECT admin_labels FROM agents LIMIT 0"); err == nil {
			return nil
		}
		if _, err := db.NewAddColumn().Model((*Agent)(nil)).ColumnExpr("admin_labels VARCHAR").Exec(ctx); err != nil {
			return fmt.Errorf("add agents.admin_labels: %w", err)
		}
		// Trust by label is recomputed from admin labels (none yet).
		if _, err := db.NewUpdate().Model((*Agent)(nil)).Set("trusted = trust_marked").Where("1 = 1").Exec(ctx); err != nil {
			return fmt.Errorf("recompute agents.trusted: %w", err)
		}
		return nil
	}, func(ctx context.Context, db *bun.DB) error {
		_, err := db.NewDropColumn().Model((*Agent)(nil)).Column("admin_labels").Exec(ctx)
		return err
	})
}
