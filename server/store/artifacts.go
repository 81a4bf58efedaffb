package store

import (
	"context"
	"fmt"
)

// ArtifactColumns are the columns artifacts may be sorted by.
var ArtifactColumns = []string{"path", "size_bytes", "created_at"}

// AddArtifacts records the files a job attempt kept.
func (s *Store) AddArtifacts(ctx context.Context, arts []Artifact) error {
	if len(arts) == 0 {
		return nil
	}
	if _, err := s.db.NewInsert().Model(&arts).On("CONFLICT (job_id, attempt, path) DO NOTHING").Exec(ctx); err != nil {
		return fmt.Errorf("record artifacts of job %s: %w", arts[0].JobID, err)
	}
	return nil
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
