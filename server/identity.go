package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-arcade/arcade/server/audit"
	"github.com/go-arcade/arcade/server/secrets"
	"github.com/go-arcade/arcade/server/store"
	"github.com/go-arcade/arcade/server/trigger"
)

// KeyringRefresh is how often a server re-reads its keyring file and the
// primary key the database names, and reports its keys (arcade server
// rekey waits on these reports).
const KeyringRefresh = 2 * time.Second

// keySource is where the server's secret keys come from.
func (c *Config) keySource() secrets.KeySource {
	ring := c.SecretKeyring
	if ring == "" {
		ring = filepath.Join(c.DataDir, "secret.keyring")
	}
	return secrets.KeySource{Key: c.SecretKey, KeyPath: filepath.Join(c.DataDir, "secret.key"), RingPath: ring}
}

// OpenKeyring loads the keyring of cfg and follows the primary key the
// database names (recording this keyring's own primary when none is named
// yet, so that adding a key to a ring never changes what seals until
// arcade server rekey says so).
func OpenKeyring(ctx context.Context, cfg Config, st *store.Store, logger *slog.Logger) (*secrets.Keyring, error) {
	ring, err := secrets.LoadKeyring(cfg.keySource())
	if err != nil {
		return nil, err
	}
	primary, err := st.InitPrimaryKey(ctx, ring.Primary())
	if err != nil {
		return nil, err
	}
	if err := ring.UsePrimary(primary); err != nil {
		logger.Error("the database names a primary secret key this server's keyring lacks; it seals with its own until the key is added",
			"primary", primary, "keyring", ring.IDs(), "sealing_with", ring.Primary())
	}
	return ring, nil
}

// followKeyring keeps the keyring current until ctx ends: the ring file
// re-read when it changes, the primary key the database names, and this
// replica's report of its keys.
func (s *Server) followKeyring(ctx context.Context) {
	log := s.log.With("component", "keyring")
	host, _ := os.Hostname()
	warned := ""
	t := time.NewTicker(KeyringRefresh)
	defer t.Stop()
	defer func() {
		_ = s.store.ForgetKeyringReplica(context.WithoutCancel(ctx), s.replica)
	}()
	for {
		if s.keyring.RingChanged() {
			if changed, err := s.keyring.Reload(); err != nil {
				log.Error("keyring file not read again; the keys stay as they were", "err", err)
			} else if changed {
				log.Info("keyring reloaded", "keys", s.keyring.IDs())
			}
		}
		if primary, err := s.store.PrimaryKey(ctx); err == nil && primary != "" && primary != s.keyring.Primary() {
			if err := s.keyring.UsePrimary(primary); err != nil {
				if warned != primary {
					log.Error("the database names a primary secret key this server's keyring lacks: add it to the keyring file",
						"primary", primary, "keyring", s.keyring.IDs())
					warned = primary
				}
			} else {
				log.Info("sealing with a new primary key", "key", primary)
			}
		}
		err := s.store.ReportKeyring(ctx, &store.KeyringReplica{Replica: s.replica, Host: host,
			KeyIDs: strings.Join(s.keyring.IDs(), ","), Primary: s.keyring.Primary(), SeenAt: time.Now().UTC()})
		if err != nil && ctx.Err() == nil {
			log.Warn("report keyring", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// startAudit writes the audit log and keeps it bounded (on one replica at
// a time).
func (s *Server) startAudit(ctx context.Context) (stopped <-chan struct{}) {
	var wg sync.WaitGroup
	wg.Go(func() { s.audit.Run(ctx) })
	// Waited for too: its lease is released before the store closes.
	wg.Go(func() { runLeased(ctx, s.store, "audit-prune", s.replica, time.Minute, s.log, s.audit.Prune) })
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	return done
}

// auditedWebhooks records every run a webhook starts in the audit log.
type auditedWebhooks struct {
	trigger.WebhookTarget
	log *audit.Log
}

func (a auditedWebhooks) FireWebhook(ctx context.Context, pipeline string, push trigger.Push) (string, int64, error) {
	id, n, err := a.WebhookTarget.FireWebhook(ctx, pipeline, push)
	e := &store.AuditEvent{Actor: "webhook", Method: "webhook POST /hooks/" + pipeline, Peer: audit.PeerOf(ctx), Outcome: "OK",
		Resource: fmt.Sprintf("pipeline_id=%s branch=%s commit=%s", pipeline, push.Branch, push.Commit)}
	if err != nil {
		e.Outcome, e.Message = "FAILED", err.Error()
	} else {
		e.Resource += fmt.Sprintf(" run.id=%s", id)
	}
	a.log.Record(e)
	return id, n, err
}

// withPeer notes the sender's address for the audit log.
func withPeer(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(audit.WithPeer(r.Context(), r.RemoteAddr)))
	})
}
