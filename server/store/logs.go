package store

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// AppendLogs stores log lines of a job attempt. A line already stored (same
// job, attempt and line number) is kept as it was, so an agent may send a
// batch again after a lost reply. It returns the highest line number up to
// which the attempt's log has no gap.
func (s *Store) AppendLogs(ctx context.Context, jobID string, attempt int32, lines []LogLine) (int64, error) {
	if len(lines) > 0 {
		for i := range lines {
			lines[i].JobID, lines[i].Attempt = jobID, attempt
		}
		// Keep each statement's parameters well under SQLite's limit.
		const chunk = 1000
		err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			for start := 0; start < len(lines); start += chunk {
				part := lines[start:min(start+chunk, len(lines))]
				if _, err := tx.NewInsert().Model(&part).On("CONFLICT (job_id, attempt, line) DO NOTHING").Exec(ctx); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("store log of job %s attempt %d: %w", jobID, attempt, err)
		}
	}
	return s.LastLogLine(ctx, jobID, attempt)
}

// LastLogLine returns the highest line number N such that lines 1..N of the
// attempt are all stored.
func (s *Store) LastLogLine(ctx context.Context, jobID string, attempt int32) (int64, error) {
	var row struct {
		N   int64 `bun:"n"`
		Max int64 `bun:"mx"`
	}
	err := s.db.NewSelect().Model((*LogLine)(nil)).ColumnExpr("count(*) AS n").ColumnExpr("coalesce(max(line), 0) AS mx").
		Where("job_id = ?", jobID).Where("attempt = ?", attempt).Scan(ctx, &row)
	if err != nil {
		return 0, fmt.Errorf("read log position of job %s: %w", jobID, err)
	}
	if row.N == row.Max {
		return row.Max, nil
	}
	// There is a gap: find the first missing line.
	var lines []int64
	if err := s.db.NewSelect().Model((*LogLine)(nil)).Column("line").
		Where("job_id = ?", jobID).Where("attempt = ?", attempt).Order("line ASC").Scan(ctx, &lines); err != nil {
		return 0, fmt.Errorf("read log position of job %s: %w", jobID, err)
	}
	var last int64
	for _, l := range lines {
		if l != last+1 {
			break
		}
		last = l
	}
	return last, nil
}

// ReadLogs returns up to limit lines of an attempt from line from on.
func (s *Store) ReadLogs(ctx context.Context, jobID string, attempt int32, from int64, limit int) ([]LogLine, error) {
	var lines []LogLine
	err := s.db.NewSelect().Model(&lines).Where("job_id = ?", jobID).Where("attempt = ?", attempt).
		Where("line >= ?", from).Order("line ASC").Limit(limit).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("read log of job %s attempt %d: %w", jobID, attempt, err)
	}
	return lines, nil
}

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
