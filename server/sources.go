package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/go-arcade/arcade/internal/gitcli"
	"github.com/go-arcade/arcade/server/audit"
	"github.com/go-arcade/arcade/server/forge"
	"github.com/go-arcade/arcade/server/lifecycle"
	"github.com/go-arcade/arcade/server/secrets"
	"github.com/go-arcade/arcade/server/service"
	"github.com/go-arcade/arcade/server/sources"
	"github.com/go-arcade/arcade/server/store"
)

// defaultMirrorBytes bounds the server's repository mirrors by default;
// defaultGitTimeout one update of a mirror.
const (
	defaultMirrorBytes = 5 << 30
	defaultGitTimeout  = 5 * time.Minute
)

// setUpSources finds git and gives the life cycle what prepares runs of
// pipelines with a source, and the webhook endpoint its forge handler.
// Without git, pipelines with a source cannot run (their runs are refused,
// saying so); the rest of the server works.
func setUpSources(cfg Config, st *store.Store, svc *service.Service, auditLog *audit.Log, logger *slog.Logger) *sources.Hooks {
	log := logger.With("component", "sources")
	g, err := gitcli.Find()
	if err != nil {
		log.Warn("git not found: pipelines with a source cannot run on this server", "err", err)
		svc.UseSources(noGit{})
		return nil
	}
	max := cfg.GitMirrorMaxBytes
	if max == 0 {
		max = defaultMirrorBytes
	}
	g.TempDir = filepath.Join(cfg.DataDir, "git-tmp")
	g.KnownHosts = filepath.Join(cfg.DataDir, "known_hosts")
	if err := ensureDir(g.TempDir); err != nil {
		log.Warn("git temp folder", "err", err)
	}
	timeout := cfg.GitTimeout
	if timeout == 0 {
		timeout = defaultGitTimeout
	}
	src := &sources.Sources{Mirrors: &gitcli.Mirrors{Git: g, Dir: filepath.Join(cfg.DataDir, "git-mirrors"), MaxBytes: max, Log: log},
		Credentials: svc.Secrets(), FetchTimeout: timeout, Limits: cfg.PipelineLimits, Log: log}
	svc.UseSources(src)
	log.Info("git found", "git", g.Path, "version", g.Version, "mirrors", src.Mirrors.Dir, "max_bytes", max)
	return &sources.Hooks{Sources: src, Store: st, Pipelines: svc, Runs: svc.Life(), Log: log, Now: time.Now,
		Audit: func(ctx context.Context, f forge.Forge, pipeline string, run *store.PipelineRun) {
			auditLog.Record(&store.AuditEvent{Actor: "webhook " + string(f), Method: "webhook POST /hooks/" + string(f), Peer: audit.PeerOf(ctx),
				Outcome: "OK", Resource: fmt.Sprintf("pipeline=%s ref=%s commit=%s run.id=%s", pipeline, run.Ref, run.Commit, run.ID)})
		}}
}

// noGit refuses runs of pipelines with a source on a server without git.
type noGit struct{}

func (noGit) Prepare(_ context.Context, p *store.Pipeline, _ *lifecycle.RunOrigin) error {
	spec, err := lifecycle.DecodeSpec(p.Spec)
	if err != nil || spec.GetSource() == nil {
		return err
	}
	return lifecycle.Refuse(lifecycle.ErrFailedPrecondition, "pipeline %s builds %s, and this server has no git to read it with (install git)", p.Name, spec.GetSource().GetUrl())
}

func ensureDir(dir string) error { return os.MkdirAll(dir, 0o700) }

// sealTriggerSecrets seals the webhook secrets still plain in pipelines'
// definitions (stored before they were sealed) and makes the database
// files forget the plain ones.
func sealTriggerSecrets(ctx context.Context, st *store.Store, ring *secrets.Keyring, log *slog.Logger) error {
	ps, err := st.PipelinesWithPlainTriggerSecrets(ctx)
	if err != nil || len(ps) == 0 {
		return err
	}
	for _, p := range ps {
		err := st.SealTriggerSecrets(ctx, p.ID, func(plain map[string]string, sealed []byte) ([]byte, error) {
			all := map[string]string{}
			if len(sealed) > 0 {
				old, err := ring.Open(sealed)
				if err != nil {
					return nil, err
				}
				for k, v := range old {
					all[k] = v
				}
			}
			for k, v := range plain {
				all[k] = v
			}
			return ring.Seal(all)
		})
		if err != nil {
			return err
		}
	}
	log.Info("webhook secrets sealed", "pipelines", len(ps))
	return st.ScrubFreedSpace(ctx)
}
