package artifacts

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-arcade/arcade/server/objects"
	"github.com/go-arcade/arcade/server/store"
)

// ClaimTTL is how long a sweep's claim on an expired artifact holds; a
// sweep that died is taken over after it.
const ClaimTTL = 10 * time.Minute

// Sweeper removes expired artifacts: their objects, then their rows. Several
// sweepers may run at once (on several replicas): each artifact is claimed
// by one of them before it is removed.
type Sweeper struct {
	store   *store.Store
	objects *objects.Store
	log     *slog.Logger
	now     func() time.Time
}

// NewSweeper returns a sweeper over the store and objects.
func NewSweeper(st *store.Store, objs *objects.Store, logger *slog.Logger) *Sweeper {
	return &Sweeper{store: st, objects: objs, log: logger, now: func() time.Time { return time.Now().UTC() }}
}

// Sweep removes the artifacts expired now and returns how many it removed.
func (sw *Sweeper) Sweep(ctx context.Context) (int, error) {
	removed := 0
	for {
		now := sw.now()
		arts, err := sw.store.ExpiredArtifacts(ctx, now, now.Add(-ClaimTTL), 100)
		if err != nil {
			return removed, err
		}
		if len(arts) == 0 {
			return removed, nil
		}
		progress := false
		for i := range arts {
			a := &arts[i]
			ok, err := sw.store.ClaimArtifact(ctx, a, now, now.Add(-ClaimTTL))
			if err != nil {
				return removed, err
			}
			if !ok {
				continue // another sweep has it
			}
			progress = true
			if a.Stored {
				if err := sw.objects.Remove(ctx, a.StorageKey, a.Parts); err != nil {
					// The claim stays: the artifact is tried again once it is stale.
					return removed, fmt.Errorf("remove expired artifact %s of job %s: %w", a.Path, a.JobID, err)
				}
			}
			if err := sw.store.DeleteArtifact(ctx, a); err != nil {
				return removed, err
			}
			removed++
			sw.log.Info("expired artifact removed", "job", a.JobID, "attempt", a.Attempt, "path", a.Path,
				"size_bytes", a.SizeBytes, "expired_at", a.ExpiresAt)
		}
		if !progress {
			return removed, nil
		}
	}
}
