package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/go-arcade/arcade/core/jobstate"
	"github.com/uptrace/bun"
)

var (
	statusPending = jobstate.Name(jobstate.Pending)
	statusRunning = jobstate.Name(jobstate.Running)
)

// JobColumns are the columns jobs may be sorted by.
var JobColumns = []string{"created_at", "updated_at", "name", "status"}

// CreateJob stores a new job.
func (s *Store) CreateJob(ctx context.Context, j *Job) error {
	if err := s.creates.do(ctx, j); err != nil {
		return fmt.Errorf("create job %s: %w", j.ID, err)
	}
	return nil
}

// createJobs inserts a round of new jobs with one statement; when that
// fails, each on its own, so that one bad row fails alone.
func (s *Store) createJobs(batch []*pending[*Job]) {
	if len(batch) > 1 {
		jobs := make([]*Job, 0, len(batch))
		for _, p := range batch {
			jobs = append(jobs, p.in)
		}
		if _, err := s.db.NewInsert().Model(&jobs).Exec(context.Background()); err == nil {
			return
		}
	}
	for _, p := range batch {
		_, p.err = s.db.NewInsert().Model(p.in).Exec(p.ctx)
	}
}

// GetJob loads one job.
func (s *Store) GetJob(ctx context.Context, id string) (*Job, error) {
	j := new(Job)
	if err := s.db.NewSelect().Model(j).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, fmt.Errorf("get job %s: %w", id, notFound(err))
	}
	return j, nil
}

// JobFilter narrows ListJobs.
type JobFilter struct {
	Statuses []string
	AgentID  string
	RunID    string
	// Match, when set, keeps only the jobs it accepts (label selectors,
	// which SQL cannot evaluate the same way on both dialects).
	Match func(*Job) bool
}

// ListJobs returns a page of jobs and how many match the filter.
func (s *Store) ListJobs(ctx context.Context, f JobFilter, p Page) ([]*Job, int, error) {
	base := func(q *bun.SelectQuery) *bun.SelectQuery {
		if len(f.Statuses) > 0 {
			q = q.Where("status IN (?)", bun.In(f.Statuses))
		}
		if f.AgentID != "" {
			q = q.Where("agent_id = ?", f.AgentID)
		}
		if f.RunID != "" {
			q = q.Where("run_id = ?", f.RunID)
		}
		return q
	}
	if f.Match == nil {
		var jobs []*Job
		q := base(s.db.NewSelect().Model(&jobs)).Order(p.Order.sql(), "id ASC").Offset(p.Offset)
		if p.Limit > 0 {
			q = q.Limit(p.Limit)
		}
		total, err := q.ScanAndCount(ctx)
		if err != nil {
			return nil, 0, fmt.Errorf("list jobs: %w", err)
		}
		return jobs, total, nil
	}
	// With a label filter, walk the ordered list in batches and keep the
	// matches; the page is cut from them.
	const batch = 500
	var (
		kept  []*Job
		total int
	)
	for offset := 0; ; offset += batch {
		var jobs []*Job
		if err := base(s.db.NewSelect().Model(&jobs)).Order(p.Order.sql(), "id ASC").
			Offset(offset).Limit(batch).Scan(ctx); err != nil {
			return nil, 0, fmt.Errorf("list jobs: %w", err)
		}
		for _, j := range jobs {
			if !f.Match(j) {
				continue
			}
			if total >= p.Offset && (p.Limit <= 0 || len(kept) < p.Limit) {
				kept = append(kept, j)
			}
			total++
		}
		if len(jobs) < batch {
			return kept, total, nil
		}
	}
}

// ModifyJob loads a job, lets fn change it, and writes it back in one
// transaction. fn may return an error to abort.
func (s *Store) ModifyJob(ctx context.Context, id string, fn func(*Job) error) (*Job, error) {
	m := &modification{id: id, fn: fn}
	if err := s.modifies.do(ctx, m); err != nil {
		return nil, fmt.Errorf("job %s: %w", id, err)
	}
	return m.job, nil
}

// modification is one ModifyJob waiting for its round.
type modification struct {
	id  string
	fn  func(*Job) error
	job *Job
}

// modifyJobs applies a round of modifications in one transaction: one
// SELECT for every row the round touches, each fn on a copy of the row as
// the round's earlier modifications left it, and one UPDATE per changed
// row, of the changed columns only. A modification whose fn refuses
// changes nothing and fails alone; when the transaction itself fails, each
// modification runs again on its own (fn sees the row afresh).
func (s *Store) modifyJobs(batch []*pending[*modification]) {
	if len(batch) == 1 {
		p := batch[0]
		p.err = s.runTx(p.ctx, func(ctx context.Context, tx bun.Tx) error {
			p.err = nil // a run again starts afresh
			if err := s.applyModifications(ctx, tx, batch); err != nil {
				return err
			}
			return p.err // a refusal rolls back
		})
		if p.err != nil {
			p.in.job = nil
		}
		return
	}
	err := s.runTx(context.Background(), func(ctx context.Context, tx bun.Tx) error {
		return s.applyModifications(ctx, tx, batch)
	})
	if err != nil {
		for _, p := range batch {
			p.err, p.in.job = nil, nil
			s.modifyJobs([]*pending[*modification]{p})
		}
	}
}

// applyModifications runs a round inside tx; the error returned is the
// database's, a refusal is the modification's own err.
func (s *Store) applyModifications(ctx context.Context, tx bun.Tx, batch []*pending[*modification]) error {
	ids := make([]string, 0, len(batch))
	for _, p := range batch {
		if !slices.Contains(ids, p.in.id) {
			ids = append(ids, p.in.id)
		}
	}
	var rows []*Job
	// In id order, so that rounds locking rows on PostgreSQL lock them in
	// one order.
	if err := tx.NewSelect().Model(&rows).Where("id IN (?)", bun.In(ids)).Order("id").Apply(s.lockRows).Scan(ctx); err != nil {
		return err
	}
	stored := make(map[string]*Job, len(rows))
	cur := make(map[string]*Job, len(rows))
	for _, j := range rows {
		stored[j.ID], cur[j.ID] = j.clone(), j
	}
	for _, p := range batch {
		if err := p.ctx.Err(); err != nil {
			p.err = err
			continue
		}
		j := cur[p.in.id]
		if j == nil {
			p.err = ErrNotFound
			continue
		}
		next := j.clone()
		if err := p.in.fn(next); err != nil {
			p.err = err
			continue
		}
		cur[p.in.id], p.in.job = next, next
	}
	for _, id := range ids {
		j := cur[id]
		if j == nil {
			continue
		}
		cols := s.changedJobColumns(stored[id], j)
		if len(cols) == 0 {
			continue
		}
		if _, err := tx.NewUpdate().Model(j).Column(cols...).WherePK().Exec(ctx); err != nil {
			return err
		}
	}
	return nil
}

// changedJobColumns names the columns whose values differ between two
// versions of a job row.
func (s *Store) changedJobColumns(before, after *Job) []string {
	table := s.db.Table(reflect.TypeFor[Job]())
	b, a := reflect.ValueOf(before).Elem(), reflect.ValueOf(after).Elem()
	var cols []string
	for _, f := range table.Fields {
		if f.IsPK {
			continue
		}
		if !reflect.DeepEqual(f.Value(b).Interface(), f.Value(a).Interface()) {
			cols = append(cols, f.Name)
		}
	}
	return cols
}

// DeleteJob removes a job with its logs and artifacts.
func (s *Store) DeleteJob(ctx context.Context, id string) error {
	return s.runTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewDelete().Model((*Job)(nil)).Where("id = ?", id).Where("status <> ?", statusRunning).Exec(ctx)
		if err != nil {
			return fmt.Errorf("delete job %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			if _, err := s.GetJob(ctx, id); errors.Is(err, ErrNotFound) {
				return fmt.Errorf("delete job %s: %w", id, ErrNotFound)
			}
			return fmt.Errorf("delete job %s: it is running: %w", id, ErrConflict)
		}
		for _, m := range jobData {
			if _, err := tx.NewDelete().Model(m).Where("job_id = ?", id).Exec(ctx); err != nil {
				return fmt.Errorf("delete job %s: %w", id, err)
			}
		}
		return nil
	})
}

// ExtendLeases moves the lease of the listed running jobs of an agent to
// until.
func (s *Store) ExtendLeases(ctx context.Context, agentID string, jobIDs []string, until time.Time) error {
	if len(jobIDs) == 0 {
		return nil
	}
	_, err := s.db.NewUpdate().Model((*Job)(nil)).Set("lease_expires_at = ?", until).
		Where("agent_id = ?", agentID).Where("status = ?", statusRunning).
		Where("id IN (?)", bun.In(jobIDs)).Exec(ctx)
	if err != nil {
		return fmt.Errorf("extend leases of agent %s: %w", agentID, err)
	}
	return nil
}

// RunningJobs returns the running jobs, of one agent when agentID is set.
func (s *Store) RunningJobs(ctx context.Context, agentID string) ([]*Job, error) {
	var jobs []*Job
	q := s.db.NewSelect().Model(&jobs).Where("status = ?", statusRunning)
	if agentID != "" {
		q = q.Where("agent_id = ?", agentID)
	}
	if err := q.Order("started_at ASC").Scan(ctx); err != nil {
		return nil, fmt.Errorf("list running jobs: %w", err)
	}
	return jobs, nil
}

// ExpiredLeases returns running jobs whose lease ended before now.
func (s *Store) ExpiredLeases(ctx context.Context, now time.Time) ([]*Job, error) {
	var jobs []*Job
	if err := s.db.NewSelect().Model(&jobs).Where("status = ?", statusRunning).
		Where("lease_expires_at < ?", now).Scan(ctx); err != nil {
		return nil, fmt.Errorf("find expired leases: %w", err)
	}
	return jobs, nil
}

// CountRunning returns how many jobs an agent runs now.
func (s *Store) CountRunning(ctx context.Context, agentID string) (int, error) {
	n, err := s.db.NewSelect().Model((*Job)(nil)).Where("agent_id = ?", agentID).
		Where("status = ?", statusRunning).Count(ctx)
	if err != nil {
		return 0, fmt.Errorf("count running jobs of agent %s: %w", agentID, err)
	}
	return n, nil
}

// ReleaseClaim puts back a job whose lease never reached its agent: it is
// pending again under the same attempt, as if it had never been claimed.
func (s *Store) ReleaseClaim(ctx context.Context, j *Job) error {
	_, err := s.db.NewUpdate().Model((*Job)(nil)).
		Set("status = ?", statusPending).Set("agent_id = ''").Set("agent_name = ''").
		Set("started_at = NULL").Set("lease_expires_at = NULL").
		Where("id = ?", j.ID).Where("status = ?", statusRunning).
		Where("agent_id = ?", j.AgentID).Where("attempt = ?", j.Attempt).Exec(ctx)
	if err != nil {
		return fmt.Errorf("release job %s: %w", j.ID, err)
	}
	return nil
}

// ClaimFirst leases to an agent the oldest pending job that match accepts
// (a ClaimBatch of one): it becomes RUNNING on that agent until leaseUntil.
// It returns nil when no pending job matches.
func (s *Store) ClaimFirst(ctx context.Context, agent *Agent, match func(*Job) bool, now, leaseUntil time.Time) (*Job, error) {
	claimed := false
	claims, err := s.ClaimBatch(ctx, now, leaseUntil, func(j *Job) *Agent {
		if claimed || !match(j) {
			return nil
		}
		claimed = true
		return agent
	}, func() bool { return !claimed })
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", agent.Name, err)
	}
	if len(claims) == 0 {
		return nil, nil
	}
	return claims[0].Job, nil
}
