// Package logarchive moves the logs of finished jobs out of the database: each
// attempt's lines become one object of the storage plugin,
// logs/JOB/ATTEMPT.pack, in the packed form of core/logpack, and their rows
// are deleted. The object is read back to serve the log afterwards.
package logarchive

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/go-arcade/arcade/core/logpack"
	"github.com/go-arcade/arcade/server/objects"
	"github.com/go-arcade/arcade/server/store"
)

// Key is the storage key of an archived attempt's log.
func Key(jobID string, attempt int32) string { return fmt.Sprintf("logs/%s/%d.pack", jobID, attempt) }

// cacheSize is how many archived logs are kept in memory: a client paging
// through one reads the object once.
const cacheSize = 8

// Archive archives logs and reads them back.
type Archive struct {
	store   *store.Store
	objects *objects.Store
	log     *slog.Logger

	mu    sync.Mutex
	cache map[string]store.Pack
	order []string
}

// New returns an archive over the store and the storage objects.
func New(st *store.Store, objs *objects.Store, logger *slog.Logger) *Archive {
	return &Archive{store: st, objects: objs, log: logger, cache: map[string]store.Pack{}}
}

// Run archives the logs of jobs that finished before now minus after and
// returns how many jobs it archived.
func (a *Archive) Run(ctx context.Context, after time.Duration) (int, error) {
	if err := a.objects.Available(); err != nil {
		return 0, err
	}
	done := 0
	for {
		jobs, err := a.store.ArchivableJobs(ctx, time.Now().Add(-after), 50)
		if err != nil {
			return done, err
		}
		for _, j := range jobs {
			if err := a.archive(ctx, j); err != nil {
				return done, err
			}
			done++
		}
		if len(jobs) < 50 {
			return done, nil
		}
	}
}

// archive stores each attempt not archived yet, then marks them archived
// and deletes their rows. Saving again what another replica saved writes
// the same content, so two archivers at once do no harm.
func (a *Archive) archive(ctx context.Context, j *store.Job) error {
	for attempt := j.LogArchivedAttempts + 1; attempt <= j.Attempt; attempt++ {
		packs, err := a.store.ReadPacks(ctx, j.ID, attempt, 1, math.MaxInt)
		if err != nil {
			return err
		}
		var lines []store.LogLine
		for _, p := range packs {
			if lines, err = logpack.Decode(lines, p.Data, p.First, 1); err != nil {
				return fmt.Errorf("archive log of job %s attempt %d: %w", j.ID, attempt, err)
			}
		}
		data := logpack.Encode(lines)
		meta := map[string]string{"job_id": j.ID, "attempt": strconv.Itoa(int(attempt)), "lines": strconv.Itoa(len(lines))}
		if err := a.objects.Save(ctx, Key(j.ID, attempt), data, objects.Meta{ContentType: "application/vnd.arcade.logpack", Metadata: meta}); err != nil {
			return fmt.Errorf("archive log of job %s attempt %d: %w", j.ID, attempt, err)
		}
	}
	marked, err := a.store.MarkLogArchived(ctx, j.ID, j.Attempt)
	if err != nil {
		return err
	}
	if marked {
		a.log.Info("job log archived", "job", j.ID, "attempts", j.Attempt)
	}
	return nil
}

// Read returns an archived attempt's log as one pack of lines 1..N.
func (a *Archive) Read(ctx context.Context, jobID string, attempt int32) (store.Pack, error) {
	key := Key(jobID, attempt)
	a.mu.Lock()
	p, ok := a.cache[key]
	a.mu.Unlock()
	if ok {
		return p, nil
	}
	data, err := a.objects.Load(ctx, key)
	if err != nil {
		return store.Pack{}, fmt.Errorf("archived log of job %s attempt %d: %w", jobID, attempt, err)
	}
	n, err := logpack.Count(data)
	if err != nil {
		return store.Pack{}, fmt.Errorf("archived log of job %s attempt %d: %w", jobID, attempt, err)
	}
	p = store.Pack{First: 1, Last: int64(n), Data: data}
	a.mu.Lock()
	if _, ok := a.cache[key]; !ok {
		a.cache[key] = p
		a.order = append(a.order, key)
		if len(a.order) > cacheSize {
			delete(a.cache, a.order[0])
			a.order = a.order[1:]
		}
	}
	a.mu.Unlock()
	return p, nil
}

// Delete removes the archived logs of attempts 1..through of a job.
func (a *Archive) Delete(ctx context.Context, jobID string, through int32) error {
	for attempt := int32(1); attempt <= through; attempt++ {
		key := Key(jobID, attempt)
		a.mu.Lock()
		if _, ok := a.cache[key]; ok {
			delete(a.cache, key)
			a.order = slices.DeleteFunc(a.order, func(k string) bool { return k == key })
		}
		a.mu.Unlock()
		if err := a.objects.Delete(ctx, key); err != nil {
			return err
		}
	}
	return nil
}
