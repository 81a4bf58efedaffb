package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/go-arcade/arcade/core/logpack"
)

// ErrNotConsecutive is returned for a batch of log lines whose numbers are not
// consecutive and ascending.
var ErrNotConsecutive = errors.New("log line numbers must be consecutive and ascending")

// AppendLogs stores a batch of consecutive log lines of a job attempt; see
// AppendPacked.
func (s *Store) AppendLogs(ctx context.Context, jobID string, attempt int32, lines []LogLine) (int64, error) {
	for i := 1; i < len(lines); i++ {
		if lines[i].Line != lines[i-1].Line+1 {
			return 0, fmt.Errorf("store log of job %s: line %d follows %d: %w", jobID, lines[i].Line, lines[i-1].Line, ErrNotConsecutive)
		}
	}
	if len(lines) == 0 {
		return s.LastLogLine(ctx, jobID, attempt)
	}
	end, _, err := s.AppendPacked(ctx, jobID, attempt, lines[0].Line, logpack.Encode(lines))
	return end, err
}

// AppendPacked stores a pack of consecutive log lines of a job attempt,
// numbered from first, and returns the highest line number stored so far:
// the attempt's log has no gap up to it. Lines already stored are skipped,
// so an agent may send a batch again after a lost reply and nothing is
// stored twice. A batch that starts past that line (lines in between are
// missing) stores nothing; the caller learns from the returned number where
// to resume. A pack that arrives whole is stored as it came. It also
// returns how many lines the pack holds; a malformed pack is
// logpack.ErrCorrupt.
func (s *Store) AppendPacked(ctx context.Context, jobID string, attempt int32, first int64, data []byte) (end int64, count int, err error) {
	if count, err = logpack.Count(data); err != nil {
		return 0, 0, fmt.Errorf("store log of job %s: %w", jobID, err)
	}
	if first < 1 {
		return 0, 0, fmt.Errorf("store log of job %s: first line %d: %w", jobID, first, ErrNotConsecutive)
	}
	err = s.runTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if end, err = lastLine(ctx, tx, jobID, attempt); err != nil {
			return err
		}
		last := first + int64(count) - 1
		if count == 0 || last <= end || first > end+1 {
			return nil // nothing new, or a gap: the caller resends from end+1
		}
		data := data // a run again starts from the whole pack
		if skip := int(end + 1 - first); skip > 0 {
			if data, err = logpack.Skip(data, skip); err != nil {
				return err
			}
		}
		// The pack goes as a bound parameter: bun would inline it as a hex
		// literal, which costs more than the rest of the insert.
		if _, err := tx.Tx.ExecContext(ctx, s.insertChunk(), jobID, attempt, end+1, last, int32(last-end), data); err != nil {
			return err
		}
		end = last
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("store log of job %s attempt %d: %w", jobID, attempt, err)
	}
	return end, count, nil
}

func lastLine(ctx context.Context, db bun.IDB, jobID string, attempt int32) (int64, error) {
	var last []int64
	err := db.NewSelect().Model((*logChunk)(nil)).Column("last_line").
		Where("job_id = ?", jobID).Where("attempt = ?", attempt).
		Order("first_line DESC").Limit(1).Scan(ctx, &last)
	if err != nil || len(last) == 0 {
		return 0, err
	}
	return last[0], nil
}

// LastLogLine returns the highest line number stored for an attempt (lines
// 1..N are all there).
func (s *Store) LastLogLine(ctx context.Context, jobID string, attempt int32) (int64, error) {
	n, err := lastLine(ctx, s.db, jobID, attempt)
	if err != nil {
		return 0, fmt.Errorf("read log position of job %s: %w", jobID, err)
	}
	return n, nil
}

// Pack is a run of consecutive stored lines in packed form.
type Pack struct {
	First, Last int64
	Data        []byte
}

// ReadPacks returns the stored packs of an attempt that hold lines from
// line from on, up to about limit lines; the first one may start before
// from.
func (s *Store) ReadPacks(ctx context.Context, jobID string, attempt int32, from int64, limit int) ([]Pack, error) {
	var out []Pack
	for lines := 0; lines < limit; {
		var chunks []logChunk
		err := s.db.NewSelect().Model(&chunks).Where("job_id = ?", jobID).Where("attempt = ?", attempt).
			Where("last_line >= ?", from).Order("last_line ASC").Limit(8).Scan(ctx)
		if err != nil {
			return nil, fmt.Errorf("read log of job %s attempt %d: %w", jobID, attempt, err)
		}
		for _, c := range chunks {
			out = append(out, Pack{First: c.FirstLine, Last: c.LastLine, Data: c.Data})
			lines += int(c.LastLine - max(from, c.FirstLine) + 1)
			from = c.LastLine + 1
		}
		if len(chunks) < 8 {
			break
		}
	}
	return out, nil
}

// ReadLogs returns up to limit lines of an attempt from line from on.
func (s *Store) ReadLogs(ctx context.Context, jobID string, attempt int32, from int64, limit int) ([]LogLine, error) {
	packs, err := s.ReadPacks(ctx, jobID, attempt, from, limit)
	if err != nil {
		return nil, err
	}
	var out []LogLine
	for _, p := range packs {
		if out, err = logpack.Decode(out, p.Data, p.First, from); err != nil {
			return nil, fmt.Errorf("read log of job %s attempt %d, lines %d-%d: %w", jobID, attempt, p.First, p.Last, err)
		}
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// insertChunk is the INSERT of a log chunk with the driver's placeholders.
func (s *Store) insertChunk() string {
	if s.postgres {
		return "INSERT INTO job_log_chunks (job_id, attempt, first_line, last_line, lines, data) VALUES ($1, $2, $3, $4, $5, $6)"
	}
	return "INSERT INTO job_log_chunks (job_id, attempt, first_line, last_line, lines, data) VALUES (?, ?, ?, ?, ?, ?)"
}

// ArchivableJobs returns up to limit jobs that finished before cutoff and
// have attempts whose logs are not archived yet.
func (s *Store) ArchivableJobs(ctx context.Context, cutoff time.Time, limit int) ([]*Job, error) {
	var jobs []*Job
	err := s.db.NewSelect().Model(&jobs).
		Where("finished_at IS NOT NULL").Where("finished_at <= ?", cutoff.UTC()).
		Where("log_archived_attempts < attempt").Order("finished_at").Limit(limit).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("jobs to archive: %w", err)
	}
	return jobs, nil
}

// MarkLogArchived records that the logs of attempts 1..through of a job are
// archived and deletes their rows, in one transaction with the job row
// locked. It reports false (and changes nothing) when they were already
// marked, by another replica say.
func (s *Store) MarkLogArchived(ctx context.Context, jobID string, through int32) (bool, error) {
	marked := false
	err := s.runTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		j := new(Job)
		if err := tx.NewSelect().Model(j).Column("id", "log_archived_attempts", "attempt").Where("id = ?", jobID).Apply(s.lockRows).Scan(ctx); err != nil {
			return notFound(err)
		}
		if j.LogArchivedAttempts >= through || through > j.Attempt {
			return nil
		}
		if _, err := tx.NewUpdate().Model((*Job)(nil)).Set("log_archived_attempts = ?", through).Where("id = ?", jobID).Exec(ctx); err != nil {
			return err
		}
		if _, err := tx.NewDelete().Model((*logChunk)(nil)).Where("job_id = ?", jobID).Where("attempt <= ?", through).Exec(ctx); err != nil {
			return err
		}
		marked = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("mark log of job %s archived: %w", jobID, err)
	}
	return marked, nil
}

// CountLogChunks returns how many stored log rows a job has (all attempts).
func (s *Store) CountLogChunks(ctx context.Context, jobID string) (int, error) {
	n, err := s.db.NewSelect().Model((*logChunk)(nil)).Where("job_id = ?", jobID).Count(ctx)
	if err != nil {
		return 0, fmt.Errorf("count log rows of job %s: %w", jobID, err)
	}
	return n, nil
}
