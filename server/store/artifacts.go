package store

import (
	"context"
	"fmt"
	"time"
)

// ArtifactColumns are the columns artifacts may be sorted by.
var ArtifactColumns = []string{"path", "size_bytes", "created_at"}

// AddArtifacts records the files a job attempt kept, as the agent describes
// them in its final report; an artifact already recorded (uploaded) stays as
// it is.
func (s *Store) AddArtifacts(ctx context.Context, arts []Artifact) error {
	if len(arts) == 0 {
		return nil
	}
	if _, err := s.db.NewInsert().Model(&arts).On("CONFLICT (job_id, attempt, path) DO NOTHING").Exec(ctx); err != nil {
		return fmt.Errorf("record artifacts of job %s: %w", arts[0].JobID, err)
	}
	return nil
}

// SaveArtifact records an uploaded artifact, replacing what was recorded of
// the same path of the attempt.
func (s *Store) SaveArtifact(ctx context.Context, a *Artifact) error {
	_, err := s.db.NewInsert().Model(a).On("CONFLICT (job_id, attempt, path) DO UPDATE").
		Set("size_bytes = EXCLUDED.size_bytes").Set("sha256 = EXCLUDED.sha256").
		Set("created_at = EXCLUDED.created_at").Set("expires_at = EXCLUDED.expires_at").
		Set("stored = EXCLUDED.stored").Set("storage_key = EXCLUDED.storage_key").
		Set("parts = EXCLUDED.parts").Set("claimed_at = NULL").Exec(ctx)
	if err != nil {
		return fmt.Errorf("record artifact %s of job %s: %w", a.Path, a.JobID, err)
	}
	return nil
}

// GetArtifact returns an artifact of a job attempt; attempt 0 means the
// latest attempt that has it.
func (s *Store) GetArtifact(ctx context.Context, jobID string, attempt int32, path string) (*Artifact, error) {
	a := new(Artifact)
	q := s.db.NewSelect().Model(a).Where("job_id = ?", jobID).Where("path = ?", path)
	if attempt > 0 {
		q = q.Where("attempt = ?", attempt)
	}
	if err := q.Order("attempt DESC").Limit(1).Scan(ctx); err != nil {
		return nil, fmt.Errorf("artifact %s of job %s: %w", path, jobID, notFound(err))
	}
	return a, nil
}

// ListArtifacts returns a page of a job attempt's artifacts.
func (s *Store) ListArtifacts(ctx context.Context, jobID string, attempt int32, p Page) ([]Artifact, int, error) {
	var arts []Artifact
	q := s.db.NewSelect().Model(&arts).Where("job_id = ?", jobID).Where("attempt = ?", attempt).
		Order(p.Order.sql(), "path ASC").Offset(p.Offset)
	if p.Limit > 0 {
		q = q.Limit(p.Limit)
	}
	total, err := q.ScanAndCount(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("list artifacts of job %s: %w", jobID, err)
	}
	return arts, total, nil
}

// JobArtifacts returns the artifacts of every attempt of a job.
func (s *Store) JobArtifacts(ctx context.Context, jobID string) ([]Artifact, error) {
	var arts []Artifact
	if err := s.db.NewSelect().Model(&arts).Where("job_id = ?", jobID).Order("attempt", "path").Scan(ctx); err != nil {
		return nil, fmt.Errorf("artifacts of job %s: %w", jobID, err)
	}
	return arts, nil
}

// ExpiredArtifacts returns up to limit artifacts expired at now that no
// sweep has claimed since staleBefore.
func (s *Store) ExpiredArtifacts(ctx context.Context, now, staleBefore time.Time, limit int) ([]Artifact, error) {
	var arts []Artifact
	err := s.db.NewSelect().Model(&arts).
		Where("expires_at IS NOT NULL").Where("expires_at <= ?", now.UTC()).
		Where("(claimed_at IS NULL OR claimed_at < ?)", staleBefore.UTC()).
		Order("expires_at").Limit(limit).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("expired artifacts: %w", err)
	}
	return arts, nil
}

// ClaimArtifact marks an expired artifact as being removed by the caller and
// reports whether the caller got it: of several sweeps at once, one does. A
// claim older than staleBefore (its sweep died) may be taken over.
func (s *Store) ClaimArtifact(ctx context.Context, a *Artifact, now, staleBefore time.Time) (bool, error) {
	res, err := s.db.NewUpdate().Model((*Artifact)(nil)).Set("claimed_at = ?", now.UTC()).
		Where("job_id = ?", a.JobID).Where("attempt = ?", a.Attempt).Where("path = ?", a.Path).
		Where("expires_at IS NOT NULL").Where("expires_at <= ?", now.UTC()).
		Where("(claimed_at IS NULL OR claimed_at < ?)", staleBefore.UTC()).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("claim artifact %s of job %s: %w", a.Path, a.JobID, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// DeleteArtifact removes an artifact's row.
func (s *Store) DeleteArtifact(ctx context.Context, a *Artifact) error {
	_, err := s.db.NewDelete().Model((*Artifact)(nil)).
		Where("job_id = ?", a.JobID).Where("attempt = ?", a.Attempt).Where("path = ?", a.Path).Exec(ctx)
	if err != nil {
		return fmt.Errorf("delete artifact %s of job %s: %w", a.Path, a.JobID, err)
	}
	return nil
}

// StoredOf is what a job keeps outside the database: its artifacts and how
// many attempts' logs are archived.
type StoredOf struct {
	JobID               string
	Artifacts           []Artifact
	LogArchivedAttempts int32
}

// PipelineStored returns what the jobs of a pipeline keep outside the
// database, so that it can be removed with the pipeline.
func (s *Store) PipelineStored(ctx context.Context, pipelineID string) ([]StoredOf, error) {
	var jobs []Job
	if err := s.db.NewSelect().Model(&jobs).Column("id", "log_archived_attempts").Where("pipeline_id = ?", pipelineID).Scan(ctx); err != nil {
		return nil, fmt.Errorf("jobs of pipeline %s: %w", pipelineID, err)
	}
	var out []StoredOf
	for _, j := range jobs {
		arts, err := s.JobArtifacts(ctx, j.ID)
		if err != nil {
			return nil, err
		}
		if len(arts) > 0 || j.LogArchivedAttempts > 0 {
			out = append(out, StoredOf{JobID: j.ID, Artifacts: arts, LogArchivedAttempts: j.LogArchivedAttempts})
		}
	}
	return out, nil
}
