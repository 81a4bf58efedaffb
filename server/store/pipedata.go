package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// CacheEntry is one stored cache archive of a pipeline, saved from a branch
// under a key.
type CacheEntry struct {
	bun.BaseModel `bun:"table:cache_entries"`

	ID         string `bun:"id,pk"`
	PipelineID string `bun:"pipeline_id,notnull"`
	Branch     string `bun:"branch,notnull"`
	Key        string `bun:"cache_key,notnull"`
	SizeBytes  int64  `bun:"size_bytes,notnull"`
	SHA256     string `bun:"sha256,notnull"`
	// StorageKey and Parts: where the storage plugin keeps the bytes.
	StorageKey string    `bun:"storage_key,notnull"`
	Parts      int32     `bun:"parts,notnull"`
	JobID      string    `bun:"job_id,notnull"`
	CreatedAt  time.Time `bun:"created_at,notnull"`
	LastUsedAt time.Time `bun:"last_used_at,notnull"`
}

// concurrencyGroup is the row a concurrency group's changes lock, so that
// two servers never both let a member of one group go.
type concurrencyGroup struct {
	bun.BaseModel `bun:"table:concurrency_groups"`

	Name string `bun:"name,pk"`
}

// lockGroup takes the lock of a group's row in tx (made on first use).
func (s *Store) lockGroup(ctx context.Context, tx bun.Tx, kind, name string) error {
	row := &concurrencyGroup{Name: kind + ":" + name}
	if _, err := tx.NewInsert().Model(row).On("CONFLICT (name) DO NOTHING").Exec(ctx); err != nil {
		return fmt.Errorf("concurrency group %s: %w", name, err)
	}
	return tx.NewSelect().Model(row).WherePK().Apply(s.lockRows).Scan(ctx)
}

// CacheLookup says where FindCache looks.
type CacheLookup struct {
	PipelineID string
	// Branches are searched in order (the job's branch, then the default
	// branch); duplicates are searched once.
	Branches []string
	// Key is looked for exactly, then each of Prefixes in order (the newest
	// entry whose key starts with it).
	Key      string
	Prefixes []string
}

// FindCache returns the entry a job restores, and whether its key is the
// job's key exactly; nil when none matches. The entry's last use becomes
// now.
func (s *Store) FindCache(ctx context.Context, l CacheLookup, now time.Time) (*CacheEntry, bool, error) {
	seen := map[string]bool{}
	var branches []string
	for _, b := range l.Branches {
		if !seen[b] {
			seen[b] = true
			branches = append(branches, b)
		}
	}
	try := func(branch, key string, prefix bool) (*CacheEntry, error) {
		e := new(CacheEntry)
		q := s.db.NewSelect().Model(e).Where("pipeline_id = ?", l.PipelineID).Where("branch = ?", branch)
		if prefix {
			q = q.Where("substr(cache_key, 1, ?) = ?", len(key), key)
		} else {
			q = q.Where("cache_key = ?", key)
		}
		err := q.Order("created_at DESC", "id DESC").Limit(1).Scan(ctx)
		if errors.Is(notFound(err), ErrNotFound) {
			return nil, nil
		}
		return e, err
	}
	for _, b := range branches {
		for i, k := range append([]string{l.Key}, l.Prefixes...) {
			if k == "" {
				continue
			}
			e, err := try(b, k, i > 0)
			if err != nil {
				return nil, false, fmt.Errorf("find cache: %w", err)
			}
			if e != nil {
				if _, err := s.db.NewUpdate().Model(e).Set("last_used_at = ?", now).WherePK().Exec(ctx); err != nil {
					return nil, false, fmt.Errorf("find cache: %w", err)
				}
				e.LastUsedAt = now
				return e, i == 0, nil
			}
		}
	}
	return nil, false, nil
}

// GetCacheEntry loads a cache entry.
func (s *Store) GetCacheEntry(ctx context.Context, id string) (*CacheEntry, error) {
	e := new(CacheEntry)
	if err := s.db.NewSelect().Model(e).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, fmt.Errorf("cache entry %s: %w", id, notFound(err))
	}
	return e, nil
}

// SaveCacheEntry records a stored cache entry: it replaces the entry of
// the same pipeline, branch and key, and then the least recently used
// entries go until all of them hold at most maxBytes (0: no limit). It
// returns the entries replaced or evicted, whose bytes the caller removes.
func (s *Store) SaveCacheEntry(ctx context.Context, e *CacheEntry, maxBytes int64) ([]*CacheEntry, error) {
	var gone []*CacheEntry
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		gone = gone[:0]
		if err := s.lockGroup(ctx, tx, "cache", "entries"); err != nil {
			return err
		}
		var old []*CacheEntry
		if err := tx.NewSelect().Model(&old).Where("pipeline_id = ? AND branch = ? AND cache_key = ?", e.PipelineID, e.Branch, e.Key).Scan(ctx); err != nil {
			return err
		}
		gone = append(gone, old...)
		if len(old) > 0 {
			if _, err := tx.NewDelete().Model((*CacheEntry)(nil)).Where("pipeline_id = ? AND branch = ? AND cache_key = ?", e.PipelineID, e.Branch, e.Key).Exec(ctx); err != nil {
				return err
			}
		}
		if _, err := tx.NewInsert().Model(e).Exec(ctx); err != nil {
			return err
		}
		if maxBytes <= 0 {
			return nil
		}
		var total int64
		if err := tx.NewSelect().Model((*CacheEntry)(nil)).ColumnExpr("COALESCE(SUM(size_bytes), 0)").Scan(ctx, &total); err != nil {
			return err
		}
		for total > maxBytes {
			var lru []*CacheEntry
			if err := tx.NewSelect().Model(&lru).Order("last_used_at ASC", "created_at ASC", "id ASC").Limit(64).Scan(ctx); err != nil {
				return err
			}
			if len(lru) == 0 {
				return nil
			}
			var ids []string
			for _, x := range lru {
				if total <= maxBytes {
					break
				}
				ids = append(ids, x.ID)
				gone = append(gone, x)
				total -= x.SizeBytes
			}
			if _, err := tx.NewDelete().Model((*CacheEntry)(nil)).Where("id IN (?)", bun.In(ids)).Exec(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("save cache entry %s: %w", e.Key, err)
	}
	return gone, nil
}

// CacheEntries lists a pipeline's cache entries, newest first ("" lists
// every pipeline's).
func (s *Store) CacheEntries(ctx context.Context, pipelineID string) ([]*CacheEntry, error) {
	var out []*CacheEntry
	q := s.db.NewSelect().Model(&out).Order("created_at DESC", "id DESC").Limit(10000)
	if pipelineID != "" {
		q = q.Where("pipeline_id = ?", pipelineID)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("cache entries: %w", err)
	}
	return out, nil
}

// AcquireRunGroup lets run id hold its concurrency group when no other
// run holds it (a run holds its group from the moment it gets it until it
// has ended and none of its jobs runs any more) and no older run of the
// group waits for it. It returns whether the run holds the group, and
// otherwise the run that does (or the older one waiting), by number.
func (s *Store) AcquireRunGroup(ctx context.Context, id string) (bool, *PipelineRun, error) {
	var held bool
	var other *PipelineRun
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		held, other = false, nil
		r := new(PipelineRun)
		if err := tx.NewSelect().Model(r).Where("id = ?", id).Scan(ctx); err != nil {
			return notFound(err)
		}
		if r.ConcurrencyGroup == "" || r.ConcurrencyHeld {
			held = true
			return nil
		}
		if err := s.lockGroup(ctx, tx, "run", r.ConcurrencyGroup); err != nil {
			return err
		}
		active := []string{statusPending, statusRunning}
		holder := new(PipelineRun)
		err := tx.NewSelect().Model(holder).Where("concurrency_group = ? AND concurrency_held = ? AND id <> ?", r.ConcurrencyGroup, true, r.ID).
			WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
				return q.Where("status IN (?)", bun.In(active)).
					WhereOr("EXISTS (SELECT 1 FROM jobs WHERE jobs.run_id = ?TableAlias.id AND jobs.status = ?)", statusRunning)
			}).Order("created_at ASC").Limit(1).Scan(ctx)
		if err == nil {
			other = holder
			return nil
		}
		if !errors.Is(notFound(err), ErrNotFound) {
			return err
		}
		older := new(PipelineRun)
		err = tx.NewSelect().Model(older).Where("concurrency_group = ? AND concurrency_held = ? AND id <> ?", r.ConcurrencyGroup, false, r.ID).
			Where("status IN (?)", bun.In(active)).
			WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
				return q.Where("created_at < ?", r.CreatedAt).WhereOr("created_at = ? AND id < ?", r.CreatedAt, r.ID)
			}).Order("created_at ASC").Limit(1).Scan(ctx)
		if err == nil {
			other = older
			return nil
		}
		if !errors.Is(notFound(err), ErrNotFound) {
			return err
		}
		if _, err := tx.NewUpdate().Model((*PipelineRun)(nil)).Set("concurrency_held = ?", true).Where("id = ?", r.ID).Exec(ctx); err != nil {
			return err
		}
		held = true
		return nil
	})
	if err != nil {
		return false, nil, fmt.Errorf("run %s: concurrency group: %w", id, err)
	}
	return held, other, nil
}

// GroupRuns lists the runs of a concurrency group under way (pending or
// running), oldest first.
func (s *Store) GroupRuns(ctx context.Context, group string) ([]*PipelineRun, error) {
	var out []*PipelineRun
	if err := s.db.NewSelect().Model(&out).Where("concurrency_group = ?", group).
		Where("status IN (?)", bun.In([]string{statusPending, statusRunning})).Order("created_at ASC", "id ASC").Scan(ctx); err != nil {
		return nil, fmt.Errorf("runs of group %s: %w", group, err)
	}
	return out, nil
}

// GroupJobs lists the jobs of a concurrency group under way (pending or
// running), oldest first.
func (s *Store) GroupJobs(ctx context.Context, group string) ([]*Job, error) {
	var out []*Job
	if err := s.db.NewSelect().Model(&out).Where("concurrency_group = ?", group).
		Where("status IN (?)", bun.In([]string{statusPending, statusRunning})).Order("created_at ASC", "id ASC").Scan(ctx); err != nil {
		return nil, fmt.Errorf("jobs of group %s: %w", group, err)
	}
	return out, nil
}

// HeldGroups lists the concurrency groups with a job held for them.
func (s *Store) HeldGroups(ctx context.Context) ([]string, error) {
	var out []string
	if err := s.db.NewSelect().Model((*Job)(nil)).ColumnExpr("DISTINCT concurrency_group").
		Where("hold = ? AND status = ?", HoldConcurrency, statusPending).Scan(ctx, &out); err != nil {
		return nil, fmt.Errorf("held groups: %w", err)
	}
	return out, nil
}

// ReleaseGroupJob lets the oldest job held for a concurrency group go to
// agents when no job of the group runs or is free to run. It returns the
// job let go (nil: none), or the job that holds the group.
func (s *Store) ReleaseGroupJob(ctx context.Context, group string, now time.Time) (released, holder *Job, err error) {
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		released, holder = nil, nil
		if err := s.lockGroup(ctx, tx, "job", group); err != nil {
			return err
		}
		h := new(Job)
		err := tx.NewSelect().Model(h).Where("concurrency_group = ?", group).
			WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
				return q.Where("status = ?", statusRunning).WhereOr("status = ? AND hold = ?", statusPending, HoldNone)
			}).Order("created_at ASC").Limit(1).Scan(ctx)
		if err == nil {
			holder = h
			return nil
		}
		if !errors.Is(notFound(err), ErrNotFound) {
			return err
		}
		next := new(Job)
		err = tx.NewSelect().Model(next).Where("concurrency_group = ? AND status = ? AND hold = ?", group, statusPending, HoldConcurrency).
			Order("created_at ASC", "id ASC").Limit(1).Apply(s.lockRows).Scan(ctx)
		if errors.Is(notFound(err), ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		next.Hold, next.UpdatedAt = HoldNone, now
		if _, err := tx.NewUpdate().Model(next).Column("hold", "updated_at").WherePK().Exec(ctx); err != nil {
			return err
		}
		released = next
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("concurrency group %s: %w", group, err)
	}
	return released, holder, nil
}

// ExpiredApprovals lists the ids of approval jobs still waiting past their
// time.
func (s *Store) ExpiredApprovals(ctx context.Context, now time.Time) ([]string, error) {
	var ids []string
	if err := s.db.NewSelect().Model((*Job)(nil)).Column("id").
		Where("hold = ? AND status = ? AND approval_expires_at IS NOT NULL AND approval_expires_at <= ?", HoldApproval, statusPending, now).
		Scan(ctx, &ids); err != nil {
		return nil, fmt.Errorf("expired approvals: %w", err)
	}
	return ids, nil
}

// RunJobByName returns the job of a run by name.
func (s *Store) RunJobByName(ctx context.Context, runID, name string) (*Job, error) {
	j := new(Job)
	if err := s.db.NewSelect().Model(j).Where("run_id = ? AND name = ?", runID, name).Limit(1).Scan(ctx); err != nil {
		return nil, fmt.Errorf("job %q of run %s: %w", name, runID, notFound(err))
	}
	return j, nil
}
