package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/uptrace/bun"
)

// Sources: what started a run (event, ref, commit, author, pull request),
// the checkout of a job, webhook trigger secrets sealed in their own column,
// forge deliveries seen, and the commit statuses to deliver. Trigger
// secrets were plain in pipelines.spec and copied into every
// pipeline_runs.spec: the copies in runs are removed here (a run never
// needs them); the pipelines' are sealed at server start, once the keyring
// is open (SealTriggerSecrets), since sealing needs the key.
func init() {
	migrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		for _, model := range []any{(*WebhookDelivery)(nil), (*CommitStatus)(nil)} {
			if _, err := db.NewCreateTable().Model(model).IfNotExists().Exec(ctx); err != nil {
				return fmt.Errorf("create table for %T: %w", model, err)
			}
		}
		blob := "BYTEA"
		if db.Dialect().Name().String() == "sqlite" {
			blob = "BLOB"
		}
		add := []struct {
			model      any
			table, col string
			expr       string
		}{
			{(*Pipeline)(nil), "pipelines", "trigger_secrets", "trigger_secrets " + blob},
			{(*Job)(nil), "jobs", "checkout", "checkout " + blob},
			{(*Job)(nil), "jobs", "no_cache_write", "no_cache_write BOOLEAN NOT NULL DEFAULT FALSE"},
			{(*PipelineRun)(nil), "pipeline_runs", "event", "event VARCHAR NOT NULL DEFAULT ''"},
			{(*PipelineRun)(nil), "pipeline_runs", "ref", "ref VARCHAR NOT NULL DEFAULT ''"},
			{(*PipelineRun)(nil), "pipeline_runs", "commit_sha", "commit_sha VARCHAR NOT NULL DEFAULT ''"},
			{(*PipelineRun)(nil), "pipeline_runs", "author", "author VARCHAR NOT NULL DEFAULT ''"},
			{(*PipelineRun)(nil), "pipeline_runs", "pull_request", "pull_request BIGINT NOT NULL DEFAULT 0"},
			{(*PipelineRun)(nil), "pipeline_runs", "pull_request_title", "pull_request_title VARCHAR NOT NULL DEFAULT ''"},
			{(*PipelineRun)(nil), "pipeline_runs", "no_cache_write", "no_cache_write BOOLEAN NOT NULL DEFAULT FALSE"},
			{(*PipelineRun)(nil), "pipeline_runs", "definition", "definition VARCHAR NOT NULL DEFAULT ''"},
			{(*PipelineRun)(nil), "pipeline_runs", "status_reported", "status_reported INTEGER NOT NULL DEFAULT 0"},
		}
		for _, a := range add {
			if _, err := db.ExecContext(ctx, "SELECT "+a.col+" FROM "+a.table+" LIMIT 0"); err == nil {
				continue
			}
			if _, err := db.NewAddColumn().Model(a.model).ColumnExpr(a.expr).Exec(ctx); err != nil {
				return fmt.Errorf("add %s.%s: %w", a.table, a.col, err)
			}
		}
		for _, ix := range []struct{ name, table, cols string }{
			{"webhook_deliveries_at", "webhook_deliveries", "received_at"},
			{"commit_statuses_key", "commit_statuses", "status_key, id"},
		} {
			if _, err := db.NewCreateIndex().Table(ix.table).Index(ix.name).IfNotExists().ColumnExpr(ix.cols).Exec(ctx); err != nil {
				return fmt.Errorf("create index %s: %w", ix.name, err)
			}
		}
		n, err := stripRunTriggerSecrets(ctx, db)
		if err != nil {
			return err
		}
		if n > 0 {
			return scrubFreedSpace(ctx, db)
		}
		return nil
	}, func(ctx context.Context, db *bun.DB) error {
		for _, model := range []any{(*WebhookDelivery)(nil), (*CommitStatus)(nil)} {
			if _, err := db.NewDropTable().Model(model).IfExists().Exec(ctx); err != nil {
				return err
			}
		}
		return nil
	})
}

// stripRunTriggerSecrets removes the webhook secrets from every run's copy
// of its pipeline's definition and returns how many runs held some.
func stripRunTriggerSecrets(ctx context.Context, db bun.IDB) (int, error) {
	changed := 0
	after := ""
	for {
		var rows []struct {
			ID   string `bun:"id"`
			Spec []byte `bun:"spec"`
		}
		if err := db.NewSelect().Table("pipeline_runs").Column("id", "spec").Where("id > ?", after).
			Order("id ASC").Limit(500).Scan(ctx, &rows); err != nil {
			return changed, fmt.Errorf("read run definitions: %w", err)
		}
		for _, r := range rows {
			spec, secrets, err := TakeTriggerSecrets(r.Spec)
			if err != nil || len(secrets) == 0 {
				continue // not ours to judge here; a run's unreadable spec fails the run as before
			}
			if _, err := db.NewUpdate().Table("pipeline_runs").Set("spec = ?", spec).Where("id = ?", r.ID).Exec(ctx); err != nil {
				return changed, fmt.Errorf("strip run %s: %w", r.ID, err)
			}
			changed++
		}
		if len(rows) < 500 {
			return changed, nil
		}
		after = rows[len(rows)-1].ID
	}
}

// TakeTriggerSecrets removes the webhook secrets from a stored definition
// (protojson jobv1.PipelineDetail), marking those triggers has_secret, and
// returns the definition without them and the secrets by trigger index.
func TakeTriggerSecrets(spec []byte) ([]byte, map[string]string, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(spec, &doc); err != nil {
		return nil, nil, err
	}
	raw, ok := doc["triggers"]
	if !ok {
		return spec, nil, nil
	}
	var triggers []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &triggers); err != nil {
		return nil, nil, err
	}
	secrets := map[string]string{}
	for i, t := range triggers {
		v, ok := t["secret"]
		if !ok {
			continue
		}
		var sec string
		if json.Unmarshal(v, &sec) == nil && sec != "" {
			secrets[fmt.Sprint(i)] = sec
		}
		delete(t, "secret")
		t["hasSecret"] = json.RawMessage("true")
	}
	if len(secrets) == 0 {
		return spec, nil, nil
	}
	b, err := json.Marshal(triggers)
	if err != nil {
		return nil, nil, err
	}
	doc["triggers"] = b
	out, err := json.Marshal(doc)
	return out, secrets, err
}

// scrubFreedSpace makes the database files forget rows just rewritten:
// SQLite keeps old row contents in free pages and in its write-ahead log
// until they are reused, so the file is rebuilt (VACUUM) and the log
// truncated; PostgreSQL's old row versions go with VACUUM FULL of the
// tables concerned (its write-ahead log recycles by itself).
func scrubFreedSpace(ctx context.Context, db bun.IDB) error {
	if _, ok := db.(*bun.DB); !ok {
		return nil
	}
	if db.Dialect().Name().String() == "sqlite" {
		if _, err := db.ExecContext(ctx, "VACUUM"); err != nil {
			return fmt.Errorf("vacuum: %w", err)
		}
		_, err := db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
		return err
	}
	_, err := db.ExecContext(ctx, "VACUUM FULL pipelines, pipeline_runs")
	return err
}
