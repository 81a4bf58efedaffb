package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/go-arcade/arcade/server/store"
)

// runLeased runs work every interval on one replica at a time: before each
// round the replica takes or renews the store lease name (held for three
// intervals), and a replica that does not hold it skips the round. When the
// holder stops, another replica takes over once the lease expires. The
// lease is released when ctx ends. Any periodic work that must run once
// across replicas can use it.
func runLeased(ctx context.Context, st *store.Store, name, holder string, interval time.Duration, log *slog.Logger, work func(ctx context.Context) error) {
	ttl := 3 * interval
	t := time.NewTicker(interval)
	defer t.Stop()
	held := false
	defer func() {
		if held {
			if err := st.Release(context.WithoutCancel(ctx), name, holder); err != nil {
				log.Warn("release lease", "lease", name, "err", err)
			}
		}
	}()
	for {
		ok, err := st.TryAcquire(ctx, name, holder, ttl)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				log.Warn("acquire lease", "lease", name, "err", err)
			}
		case ok != held:
			held = ok
			if ok {
				log.Info("lease acquired; this replica runs the work", "lease", name)
			} else {
				log.Info("lease lost to another replica", "lease", name)
			}
		}
		if ok {
			if err := work(ctx); err != nil && ctx.Err() == nil {
				log.Warn("periodic work failed; retrying next round", "lease", name, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
