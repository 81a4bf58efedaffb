package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/go-arcade/arcade/server/trigger"
)

func (c *Config) validateTriggers() error {
	if c.WebhookPort < 0 || c.WebhookPort > 65535 {
		return fmt.Errorf("webhook_port: want 0 (off) to 65535, got %d", c.WebhookPort)
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(c.PublicURL) > 1024 {
			return fmt.Errorf("public_url: want the dashboard's http(s) address, like https://ci.example.com; got %q", c.PublicURL)
		}
	}
	if c.GitMirrorMaxBytes < 0 {
		return fmt.Errorf("git_mirror_max_bytes: want 0 (the default, 5 GiB) or more, got %d", c.GitMirrorMaxBytes)
	}
	if c.GitTimeout < 0 {
		return fmt.Errorf("git_timeout: want 0 (the default, 5m) or more, got %s", c.GitTimeout)
	}
	if c.CronTimezone != "" {
		if _, err := time.LoadLocation(c.CronTimezone); err != nil {
			return fmt.Errorf("cron_timezone: unknown time zone %q", c.CronTimezone)
		}
	}
	return nil
}

// listenWebhook binds the webhook endpoint on the gRPC host.
func (s *Server) listenWebhook() error {
	if s.cfg.WebhookPort == 0 {
		return nil
	}
	host, _, err := net.SplitHostPort(s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	addr := net.JoinHostPort(host, strconv.Itoa(s.cfg.WebhookPort))
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("webhook: listen on %s: %w", addr, err)
	}
	s.webhook = lis
	return nil
}

// WebhookAddr is the address of the webhook endpoint, "" when it is off.
func (s *Server) WebhookAddr() string {
	if s.webhook == nil {
		return ""
	}
	return s.webhook.Addr().String()
}

// startTriggers runs the cron scheduler and serves the webhook endpoint until
// ctx ends.
func (s *Server) startTriggers(ctx context.Context) {
	var loc *time.Location
	if s.cfg.CronTimezone != "" {
		loc, _ = time.LoadLocation(s.cfg.CronTimezone) // checked by Validate
	}
	log := s.log.With("component", "triggers")
	sched := trigger.NewScheduler(s.svc, func() time.Time { return time.Now() }, loc, log)
	go sched.Run(ctx, time.Second)
	if s.webhook == nil {
		return
	}
	legacy := trigger.WebhookHandler(auditedWebhooks{WebhookTarget: s.svc, log: s.audit}, log)
	handler := legacy
	if s.hooks != nil {
		s.hooks.Legacy = legacy
		handler = s.hooks.Handler()
	}
	hs := &http.Server{Handler: withPeer(handler), ReadHeaderTimeout: 10 * time.Second}
	lis := s.webhook
	if s.tls != nil {
		// The webhook endpoint shares the gRPC certificate; senders need no
		// client certificate.
		conf := s.tls.Clone()
		conf.ClientAuth, conf.ClientCAs = tls.NoClientCert, nil
		lis = tls.NewListener(lis, conf)
	}
	go func() {
		log.Info("webhook endpoint listening", "addr", s.WebhookAddr(), "paths", "/hooks/{github,gitea,forgejo,gitlab}, /hooks/{pipeline}")
		if err := hs.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("webhook endpoint stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		hs.Shutdown(sctx) //nolint:errcheck // shutting down
	}()
}
