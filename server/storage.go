package server

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/go-arcade/arcade/host"
	"github.com/go-arcade/arcade/server/artifacts"
	"github.com/go-arcade/arcade/server/logarchive"
	"github.com/go-arcade/arcade/server/objects"
	"github.com/go-arcade/arcade/server/service"
	"github.com/go-arcade/arcade/server/store"
)

// useArtifactStore hands the services the storage plugin named by
// cfg.ArtifactStore, looked up at each use: a plugin loaded, swapped or
// removed later is followed without a restart.
func useArtifactStore(cfg Config, st *store.Store, svc *service.Service, plugins *host.Manager, logger *slog.Logger) (*objects.Store, *logarchive.Archive) {
	var objs *objects.Store
	if cfg.ArtifactStore != "" {
		name := cfg.ArtifactStore
		objs = objects.New(func() (objects.Plugin, error) {
			// Right after a start the plugin may still compile: wait for it
			// rather than refuse an upload.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := plugins.WaitCompiled(ctx, name); err != nil {
				return nil, err
			}
			p, err := plugins.GetStoragePlugin(name)
			if err != nil {
				return nil, err
			}
			return p, nil
		}, 0)
	}
	svc.UseCache(service.CacheConfig{MaxBytes: cfg.CacheMaxBytes, EntryMaxBytes: cfg.CacheEntryMaxBytes, DefaultBranch: cfg.CacheDefaultBranch})
	archive := logarchive.New(st, objs, logger.With("component", "logarchive"))
	svc.UseStorage(service.StorageConfig{Objects: objs, Archive: archive, MaxBytes: cfg.ArtifactMaxBytes, ExpireIn: cfg.ArtifactExpireIn,
		DirectUploads: cfg.ArtifactUploads != "server", RedirectDownloads: cfg.ArtifactDownloads != "stream", URLTTL: cfg.ArtifactURLTTL})
	return objs, archive
}

// startStorageWork starts the artifact sweep and the log archive, each on
// one replica at a time. stopped closes once both ended (after ctx), their
// leases released.
func (s *Server) startStorageWork(ctx context.Context) (stopped <-chan struct{}) {
	done := make(chan struct{})
	if s.objects == nil {
		close(done)
		return done
	}
	var wg sync.WaitGroup
	every := s.cfg.ArtifactSweepInterval
	sweeper := artifacts.NewSweeper(s.store, s.objects, s.log.With("component", "artifacts"))
	wg.Go(func() {
		runLeased(ctx, s.store, "artifact-sweep", s.replica, every, s.log, func(ctx context.Context) error {
			_, err := sweeper.Sweep(ctx)
			return err
		})
	})
	if after := s.cfg.LogArchiveAfter; after > 0 {
		wg.Go(func() {
			runLeased(ctx, s.store, "log-archive", s.replica, every, s.log, func(ctx context.Context) error {
				_, err := s.archive.Run(ctx, after)
				return err
			})
		})
	}
	go func() { wg.Wait(); close(done) }()
	return done
}
