package store

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// Identity and secrets: stored secrets, named API tokens, the audit log,
// trusted agents and pipelines, and the keyring's shared state.
func init() {
	migrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		tables := []any{(*Secret)(nil), (*APIToken)(nil), (*AuditEvent)(nil), (*TrustedLabel)(nil), (*setting)(nil), (*KeyringReplica)(nil)}
		for _, model := range tables {
			if _, err := db.NewCreateTable().Model(model).IfNotExists().Exec(ctx); err != nil {
				return fmt.Errorf("create table for %T: %w", model, err)
			}
		}
		// The first migrations create tables from today's models, which may
		// already have these columns: add only what is missing.
		add := []struct {
			model any
			table string
			col   string
			expr  string
		}{
			{(*Agent)(nil), "agents", "trust_marked", "trust_marked BOOLEAN NOT NULL DEFAULT FALSE"},
			{(*Agent)(nil), "agents", "trusted", "trusted BOOLEAN NOT NULL DEFAULT FALSE"},
			{(*Job)(nil), "jobs", "secret_refs", "secret_refs VARCHAR"},
			{(*Job)(nil), "jobs", "trusted_agents", "trusted_agents BOOLEAN NOT NULL DEFAULT FALSE"},
			{(*Job)(nil), "jobs", "trust_reason", "trust_reason VARCHAR NOT NULL DEFAULT ''"},
			{(*Pipeline)(nil), "pipelines", "trusted_agents", "trusted_agents BOOLEAN NOT NULL DEFAULT FALSE"},
			{(*Pipeline)(nil), "pipelines", "trusted_branches", "trusted_branches VARCHAR"},
			{(*PipelineRun)(nil), "pipeline_runs", "untrusted_origin", "untrusted_origin BOOLEAN NOT NULL DEFAULT FALSE"},
			{(*PipelineRun)(nil), "pipeline_runs", "source", "source VARCHAR NOT NULL DEFAULT ''"},
			{(*PipelineRun)(nil), "pipeline_runs", "branch", "branch VARCHAR NOT NULL DEFAULT ''"},
			{(*PipelineRun)(nil), "pipeline_runs", "trusted_agents", "trusted_agents BOOLEAN NOT NULL DEFAULT FALSE"},
			{(*PipelineRun)(nil), "pipeline_runs", "trust_reason", "trust_reason VARCHAR NOT NULL DEFAULT ''"},
		}
		for _, a := range add {
			if _, err := db.ExecContext(ctx, "SELECT "+a.col+" FROM "+a.table+" LIMIT 0"); err == nil {
				continue
			}
			if _, err := db.NewAddColumn().Model(a.model).ColumnExpr(a.expr).Exec(ctx); err != nil {
				return fmt.Errorf("add %s.%s: %w", a.table, a.col, err)
			}
		}
		indexes := []struct {
			name, table string
			unique      bool
			cols        []string
		}{
			{"secrets_scope_name", "secrets", true, []string{"scope", "target", "name"}},
			{"secrets_name", "secrets", false, []string{"name"}},
			{"audit_events_at", "audit_events", false, []string{"at"}},
			{"audit_events_actor", "audit_events", false, []string{"actor", "id"}},
		}
		for _, ix := range indexes {
			q := db.NewCreateIndex().Table(ix.table).Index(ix.name).IfNotExists()
			if ix.unique {
				q = q.Unique()
			}
			for _, c := range ix.cols {
				q = q.Column(c)
			}
			if _, err := q.Exec(ctx); err != nil {
				return fmt.Errorf("create index %s: %w", ix.name, err)
			}
		}
		return nil
	}, func(ctx context.Context, db *bun.DB) error {
		for _, model := range []any{(*KeyringReplica)(nil), (*setting)(nil), (*TrustedLabel)(nil), (*AuditEvent)(nil), (*APIToken)(nil), (*Secret)(nil)} {
			if _, err := db.NewDropTable().Model(model).IfExists().Exec(ctx); err != nil {
				return fmt.Errorf("drop table for %T: %w", model, err)
			}
		}
		drop := map[any][]string{
			(*Agent)(nil):       {"trust_marked", "trusted"},
			(*Job)(nil):         {"secret_refs", "trusted_agents", "trust_reason"},
			(*Pipeline)(nil):    {"trusted_agents", "trusted_branches"},
			(*PipelineRun)(nil): {"untrusted_origin", "source", "branch", "trusted_agents", "trust_reason"},
		}
		for model, cols := range drop {
			for _, col := range cols {
				if _, err := db.NewDropColumn().Model(model).Column(col).Exec(ctx); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
