package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// Pipeline is a stored pipeline definition.
type Pipeline struct {
	bun.BaseModel `bun:"table:pipelines"`

	ID   string `bun:"id,pk"`
	Name string `bun:"name,notnull,unique"`
	// Spec is the definition (jobv1.PipelineDetail without statistics) as
	// protojson, webhook secrets included.
	Spec []byte `bun:"spec,notnull"`
	// Secrets are the pipeline's secrets, sealed (server/secrets); their
	// names are in the spec.
	Secrets   []byte    `bun:"secrets"`
	CreatedAt time.Time `bun:"created_at,notnull"`
	UpdatedAt time.Time `bun:"updated_at,notnull"`
	// TrustedAgents: an admin allowed the pipeline's runs on trusted
	// agents, of TrustedBranches only when set (globs).
	TrustedAgents   bool     `bun:"trusted_agents,notnull"`
	TrustedBranches []string `bun:"trusted_branches"`
	// TriggerSecrets are the webhook triggers' secrets, sealed
	// (server/secrets), by the trigger's index ("0", "1"…); the spec says
	// has_secret only.
	TriggerSecrets []byte `bun:"trigger_secrets"`
}

// PipelineRun is one execution of a pipeline. Its jobs are rows of jobs
// with its run_id, created as they become ready.
type PipelineRun struct {
	bun.BaseModel `bun:"table:pipeline_runs"`

	ID           string `bun:"id,pk"`
	PipelineID   string `bun:"pipeline_id,notnull"`
	PipelineName string `bun:"pipeline_name,notnull"`
	Number       int64  `bun:"number,notnull"`
	// JustStarted is set (not stored) on the run a change just turned
	// running: its event is the run's "pipeline.started".
	JustStarted bool   `bun:"-"`
	Status      string `bun:"status,notnull"`
	// Trigger is the trigger type's short name; TriggeredBy who or what
	// caused the run.
	Trigger     string            `bun:"trigger,notnull"`
	TriggeredBy string            `bun:"triggered_by,notnull"`
	Params      map[string]string `bun:"params,notnull"`
	// Spec is the pipeline definition the run follows (a snapshot: editing
	// the pipeline does not change runs under way).
	Spec []byte `bun:"spec,notnull"`
	// Secrets are the pipeline's sealed secrets when the run started, handed
	// to each of its jobs.
	Secrets    []byte    `bun:"secrets"`
	Message    string    `bun:"message,notnull"`
	CreatedAt  time.Time `bun:"created_at,notnull"`
	UpdatedAt  time.Time `bun:"updated_at,notnull"`
	StartedAt  time.Time `bun:"started_at,nullzero"`
	FinishedAt time.Time `bun:"finished_at,nullzero"`
	// UntrustedOrigin: the run came from outside (a pull request from a
	// fork): no secrets, no trusted agents.
	UntrustedOrigin bool `bun:"untrusted_origin,notnull"`
	// Source is the repository the run is of (normalized URL), Branch its
	// branch, when known.
	Source string `bun:"source,notnull"`
	Branch string `bun:"branch,notnull"`
	// TrustedAgents: the run's jobs may use trusted agents; TrustReason
	// says why or why not.
	TrustedAgents bool   `bun:"trusted_agents,notnull"`
	TrustReason   string `bun:"trust_reason,notnull"`
	// What started the run: the event (push, tag, pull_request, manual,
	// cron, api, pipeline), the ref, the exact commit built, its author,
	// and the pull request's number and title.
	Event            string `bun:"event,notnull,default:''"`
	Ref              string `bun:"ref,notnull,default:''"`
	Commit           string `bun:"commit_sha,notnull,default:''"`
	Author           string `bun:"author,notnull,default:''"`
	PullRequest      int64  `bun:"pull_request,notnull,default:0"`
	PullRequestTitle string `bun:"pull_request_title,notnull,default:''"`
	// Definition says where the run's definition came from.
	Definition string `bun:"definition,notnull,default:''"`
	// StatusReported is the rank of the last state queued for the forge
	// (1 pending, 2 running, 3 final): states only move forward.
	StatusReported int32 `bun:"status_reported,notnull,default:0"`
	// ConcurrencyGroup is the run's concurrency group (its name filled
	// in); ConcurrencyHeld is set once the run holds it. A run of a group
	// creates no job before it holds it.
	ConcurrencyGroup string `bun:"concurrency_group,notnull,default:''"`
	ConcurrencyHeld  bool   `bun:"concurrency_held,notnull,default:false"`
}

// PipelineColumns are the columns pipelines may be sorted by.
var PipelineColumns = []string{"created_at", "updated_at", "name"}

// CreatePipeline stores a new pipeline; a taken name is ErrConflict.
func (s *Store) CreatePipeline(ctx context.Context, p *Pipeline) error {
	return s.runTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		n, err := tx.NewSelect().Model((*Pipeline)(nil)).Where("name = ?", p.Name).Count(ctx)
		if err != nil {
			return fmt.Errorf("create pipeline %s: %w", p.Name, err)
		}
		if n > 0 {
			return fmt.Errorf("create pipeline: the name %q is taken: %w", p.Name, ErrConflict)
		}
		if _, err := tx.NewInsert().Model(p).Exec(ctx); err != nil {
			return fmt.Errorf("create pipeline %s: %w", p.Name, err)
		}
		return nil
	})
}

// GetPipeline loads a pipeline by id, or else by name.
func (s *Store) GetPipeline(ctx context.Context, idOrName string) (*Pipeline, error) {
	p := new(Pipeline)
	err := s.db.NewSelect().Model(p).Where("id = ?", idOrName).WhereOr("name = ?", idOrName).
		Order("created_at ASC").Limit(1).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("get pipeline %s: %w", idOrName, notFound(err))
	}
	return p, nil
}

// ListPipelines returns a page of pipelines and how many there are.
func (s *Store) ListPipelines(ctx context.Context, p Page) ([]*Pipeline, int, error) {
	var ps []*Pipeline
	q := s.db.NewSelect().Model(&ps).Order(p.Order.sql(), "id ASC").Offset(p.Offset)
	if p.Limit > 0 {
		q = q.Limit(p.Limit)
	}
	total, err := q.ScanAndCount(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("list pipelines: %w", err)
	}
	return ps, total, nil
}

// ModifyPipeline loads a pipeline, lets fn change it and writes it back in
// one transaction; a name taken by another pipeline is ErrConflict.
func (s *Store) ModifyPipeline(ctx context.Context, id string, fn func(*Pipeline) error) (*Pipeline, error) {
	p := new(Pipeline)
	err := s.runTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if err := tx.NewSelect().Model(p).Where("id = ?", id).Apply(s.lockRows).Scan(ctx); err != nil {
			return notFound(err)
		}
		oldName := p.Name
		if err := fn(p); err != nil {
			return err
		}
		if p.Name != oldName {
			// The pipeline's secrets follow its name.
			if _, err := tx.NewUpdate().Model((*Secret)(nil)).Set("target = ?", p.Name).
				Where("scope = ? AND target = ?", ScopePipeline, oldName).Exec(ctx); err != nil {
				return err
			}
		}
		n, err := tx.NewSelect().Model((*Pipeline)(nil)).Where("name = ?", p.Name).Where("id <> ?", p.ID).Count(ctx)
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("the name %q is taken: %w", p.Name, ErrConflict)
		}
		_, err = tx.NewUpdate().Model(p).WherePK().Exec(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pipeline %s: %w", id, err)
	}
	return p, nil
}

// DeletePipeline removes a pipeline with its runs and their jobs, logs and
// artifacts. A pipeline with a run under way is ErrConflict.
func (s *Store) DeletePipeline(ctx context.Context, id string) error {
	return s.runTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		p := new(Pipeline)
		if err := tx.NewSelect().Model(p).Where("id = ?", id).Apply(s.lockRows).Scan(ctx); err != nil {
			return fmt.Errorf("delete pipeline %s: %w", id, notFound(err))
		}
		active, err := tx.NewSelect().Model((*PipelineRun)(nil)).Where("pipeline_id = ?", id).
			Where("status IN (?)", bun.In([]string{statusPending, statusRunning})).Count(ctx)
		if err != nil {
			return fmt.Errorf("delete pipeline %s: %w", id, err)
		}
		if active > 0 {
			return fmt.Errorf("delete pipeline %s: %d run(s) under way; stop them first: %w", id, active, ErrConflict)
		}
		jobs := tx.NewSelect().Model((*Job)(nil)).Column("id").Where("pipeline_id = ?", id)
		for _, m := range jobData {
			if _, err := tx.NewDelete().Model(m).Where("job_id IN (?)", jobs).Exec(ctx); err != nil {
				return fmt.Errorf("delete pipeline %s: %w", id, err)
			}
		}
		for _, m := range []any{(*Job)(nil), (*PipelineRun)(nil)} {
			if _, err := tx.NewDelete().Model(m).Where("pipeline_id = ?", id).Exec(ctx); err != nil {
				return fmt.Errorf("delete pipeline %s: %w", id, err)
			}
		}
		if _, err := tx.NewDelete().Model(p).WherePK().Exec(ctx); err != nil {
			return fmt.Errorf("delete pipeline %s: %w", id, err)
		}
		// Its secrets go with it: a pipeline created later under the same
		// name does not inherit them.
		if _, err := tx.NewDelete().Model((*Secret)(nil)).Where("scope = ? AND target = ?", ScopePipeline, p.Name).Exec(ctx); err != nil {
			return fmt.Errorf("delete pipeline %s: %w", id, err)
		}
		return nil
	})
}

// CreateRun numbers a new run of its pipeline (one more than the last) and
// stores it.
func (s *Store) CreateRun(ctx context.Context, r *PipelineRun) error {
	return s.runTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		p := new(Pipeline)
		// Locking the pipeline row serialises numbering across replicas.
		if err := tx.NewSelect().Model(p).Where("id = ?", r.PipelineID).Apply(s.lockRows).Scan(ctx); err != nil {
			return fmt.Errorf("create run of %s: %w", r.PipelineID, notFound(err))
		}
		var last int64
		if err := tx.NewSelect().Model((*PipelineRun)(nil)).ColumnExpr("COALESCE(MAX(number), 0)").
			Where("pipeline_id = ?", r.PipelineID).Scan(ctx, &last); err != nil {
			return fmt.Errorf("create run of %s: %w", r.PipelineID, err)
		}
		r.Number = last + 1
		if _, err := tx.NewInsert().Model(r).Exec(ctx); err != nil {
			return fmt.Errorf("create run of %s: %w", r.PipelineID, err)
		}
		return nil
	})
}

// GetRun loads a run.
func (s *Store) GetRun(ctx context.Context, id string) (*PipelineRun, error) {
	r := new(PipelineRun)
	if err := s.db.NewSelect().Model(r).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, fmt.Errorf("get run %s: %w", id, notFound(err))
	}
	return r, nil
}

// ListRuns returns a page of a pipeline's runs, newest first, and how many
// it has.
func (s *Store) ListRuns(ctx context.Context, pipelineID string, p Page) ([]*PipelineRun, int, error) {
	var rs []*PipelineRun
	q := s.db.NewSelect().Model(&rs).Where("pipeline_id = ?", pipelineID).Order("number DESC").Offset(p.Offset)
	if p.Limit > 0 {
		q = q.Limit(p.Limit)
	}
	total, err := q.ScanAndCount(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("list runs of %s: %w", pipelineID, err)
	}
	return rs, total, nil
}

// ActiveRuns returns the ids of the runs under way.
func (s *Store) ActiveRuns(ctx context.Context) ([]string, error) {
	var ids []string
	if err := s.db.NewSelect().Model((*PipelineRun)(nil)).Column("id").
		Where("status IN (?)", bun.In([]string{statusPending, statusRunning})).Order("created_at ASC").Scan(ctx, &ids); err != nil {
		return nil, fmt.Errorf("list active runs: %w", err)
	}
	return ids, nil
}

// RunSummary is what statistics need of a run.
type RunSummary struct {
	bun.BaseModel `bun:"table:pipeline_runs"`

	Status     string    `bun:"status"`
	CreatedAt  time.Time `bun:"created_at"`
	StartedAt  time.Time `bun:"started_at,nullzero"`
	FinishedAt time.Time `bun:"finished_at,nullzero"`
}

// RunSummaries returns every run of a pipeline, oldest first.
func (s *Store) RunSummaries(ctx context.Context, pipelineID string) ([]RunSummary, error) {
	var rs []RunSummary
	if err := s.db.NewSelect().Model(&rs).Where("pipeline_id = ?", pipelineID).Order("number ASC").Scan(ctx); err != nil {
		return nil, fmt.Errorf("run summaries of %s: %w", pipelineID, err)
	}
	return rs, nil
}

// RunJobs returns the jobs of a run, oldest first.
func (s *Store) RunJobs(ctx context.Context, runID string) ([]*Job, error) {
	var jobs []*Job
	if err := s.db.NewSelect().Model(&jobs).Where("run_id = ?", runID).Order("created_at ASC", "id ASC").Scan(ctx); err != nil {
		return nil, fmt.Errorf("jobs of run %s: %w", runID, err)
	}
	return jobs, nil
}

// RunChange is what ModifyRun's callback decides: jobs to insert and jobs
// (of the run) to write back.
type RunChange struct {
	Insert []*Job
	Update []*Job
}

// insertBatch is how many jobs one INSERT writes.
const insertBatch = 100

// ErrUnchanged, returned by a ModifyRun callback, ends it without writing.
var ErrUnchanged = errors.New("unchanged")

// ModifyRun loads a run and its jobs under lock, lets fn change them, and
// writes the run, the new jobs and the changed jobs in one transaction. The
// lock serialises everything that advances one run, on every replica.
func (s *Store) ModifyRun(ctx context.Context, id string, fn func(*PipelineRun, []*Job) (RunChange, error)) (*PipelineRun, error) {
	r := new(PipelineRun)
	err := s.runTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if err := tx.NewSelect().Model(r).Where("id = ?", id).Apply(s.lockRows).Scan(ctx); err != nil {
			return notFound(err)
		}
		var jobs []*Job
		if err := tx.NewSelect().Model(&jobs).Where("run_id = ?", id).Order("created_at ASC", "id ASC").
			Apply(s.lockRows).Scan(ctx); err != nil {
			return err
		}
		ch, err := fn(r, jobs)
		if err != nil {
			return err
		}
		// New jobs go in batches: a run starting a wide stage inserts
		// thousands, and one statement each is most of its time.
		for rest := ch.Insert; len(rest) > 0; {
			batch := rest[:min(len(rest), insertBatch)]
			rest = rest[len(batch):]
			if _, err := tx.NewInsert().Model(&batch).Exec(ctx); err != nil {
				return fmt.Errorf("insert jobs %s…: %w", batch[0].Name, err)
			}
		}
		for _, j := range ch.Update {
			if _, err := tx.NewUpdate().Model(j).WherePK().Exec(ctx); err != nil {
				return fmt.Errorf("update job %s: %w", j.Name, err)
			}
		}
		_, err = tx.NewUpdate().Model(r).WherePK().Exec(ctx)
		return err
	})
	if errors.Is(err, ErrUnchanged) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", id, err)
	}
	return r, nil
}

// PipelineVersion is what says a stored pipeline changed: its id, its name
// and when it was last written.
type PipelineVersion struct {
	bun.BaseModel `bun:"table:pipelines"`

	ID        string    `bun:"id"`
	Name      string    `bun:"name"`
	UpdatedAt time.Time `bun:"updated_at"`
}

// PipelineVersions lists every pipeline's version, without definitions: a
// caller that keeps what it parsed of each re-reads only those that changed.
func (s *Store) PipelineVersions(ctx context.Context) ([]PipelineVersion, error) {
	var vs []PipelineVersion
	if err := s.db.NewSelect().Model(&vs).Order("id").Scan(ctx); err != nil {
		return nil, fmt.Errorf("list pipeline versions: %w", err)
	}
	return vs, nil
}

// PipelinesByID loads the pipelines with these ids (those that exist).
func (s *Store) PipelinesByID(ctx context.Context, ids []string) ([]*Pipeline, error) {
	var out []*Pipeline
	for len(ids) > 0 {
		n := min(len(ids), 500)
		var ps []*Pipeline
		if err := s.db.NewSelect().Model(&ps).Where("id IN (?)", bun.In(ids[:n])).Scan(ctx); err != nil {
			return nil, fmt.Errorf("load pipelines: %w", err)
		}
		out = append(out, ps...)
		ids = ids[n:]
	}
	return out, nil
}

// RunStatus is a run's id and status.
type RunStatus struct {
	bun.BaseModel `bun:"table:pipeline_runs"`

	ID     string `bun:"id"`
	Status string `bun:"status"`
}

// ActiveRunStatuses returns the runs under way with their status, oldest
// first.
func (s *Store) ActiveRunStatuses(ctx context.Context) ([]RunStatus, error) {
	var rs []RunStatus
	if err := s.db.NewSelect().Model(&rs).Where("status IN (?)", bun.In([]string{statusPending, statusRunning})).
		Order("created_at ASC").Scan(ctx); err != nil {
		return nil, fmt.Errorf("list active runs: %w", err)
	}
	return rs, nil
}

// RunJobStates returns the jobs of a run with only what deciding its next
// step needs: name, status, attempt, started_at, finished_at, end_reason.
func (s *Store) RunJobStates(ctx context.Context, runID string) ([]*Job, error) {
	var jobs []*Job
	if err := s.db.NewSelect().Model(&jobs).Column("id", "name", "status", "attempt", "started_at", "finished_at", "end_reason").
		Where("run_id = ?", runID).Scan(ctx); err != nil {
		return nil, fmt.Errorf("jobs of run %s: %w", runID, err)
	}
	return jobs, nil
}
