// Package server assembles Arcade's server: the store, the gRPC services with
// authentication, health and reflection, and the housekeeping loop.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	secretv1 "github.com/go-arcade/arcade/api/secret/v1"
	"github.com/go-arcade/arcade/core/pipeline"
	"github.com/go-arcade/arcade/host"
	"github.com/go-arcade/arcade/server/audit"
	"github.com/go-arcade/arcade/server/auth"
	"github.com/go-arcade/arcade/server/bounds"
	"github.com/go-arcade/arcade/server/eventlog"
	"github.com/go-arcade/arcade/server/logarchive"
	"github.com/go-arcade/arcade/server/metrics"
	"github.com/go-arcade/arcade/server/notify"
	"github.com/go-arcade/arcade/server/objects"
	"github.com/go-arcade/arcade/server/peers"
	"github.com/go-arcade/arcade/server/ratelimit"
	"github.com/go-arcade/arcade/server/secrets"
	"github.com/go-arcade/arcade/server/service"
	"github.com/go-arcade/arcade/server/sources"
	"github.com/go-arcade/arcade/server/store"
)

// Config is the server's configuration.
type Config struct {
	// Listen is the gRPC address, "host:port".
	Listen string
	// DB is "sqlite://PATH" or "postgres://…"; empty means SQLite in DataDir.
	DB string
	// DataDir holds the SQLite database and generated credentials.
	DataDir string
	// AgentToken is the registration token agents present; APIToken is the
	// token of API clients. Empty ones are generated and kept in
	// DataDir/credentials.env.
	AgentToken string
	APIToken   string
	// AgentTokenFrom and APITokenFrom say where a given AgentToken and
	// APIToken come from (ARCADE_API_TOKEN, --api-token, the config file),
	// for the log line that tells where the server's tokens come from.
	AgentTokenFrom, APITokenFrom string
	// APITokens are more API tokens, each limited to a scope (read, write,
	// admin); give the token, or better its sha256 (hex) so that the plain
	// token is stored nowhere.
	APITokens []ScopedToken

	HeartbeatInterval time.Duration
	MaxPollWait       time.Duration
	LeaseTTL          time.Duration
	// ReapInterval is how often leases and heartbeats are checked.
	ReapInterval time.Duration
	// ApprovalTimeout is how long an approval job waits for a decision
	// when it sets no timeout (0: 24h).
	ApprovalTimeout time.Duration

	// PluginsConfig is the plugins file (conf.d/plugins.yaml); a missing
	// file means no configured plugins. It is watched for changes.
	PluginsConfig string
	// PluginDirs are watched for .wasm files dropped in or removed.
	PluginDirs []string

	// PprofListen, when set, serves Go's profiler (net/http/pprof) on that
	// address; keep it on loopback.
	PprofListen string

	// MetricsListen, when set, serves Prometheus metrics (/metrics) and the
	// health checks /healthz and /readyz over HTTP on that address; with
	// MetricsPprof the profiler's pages too (/debug/pprof/).
	MetricsListen string
	MetricsPprof  bool

	// TLSCert and TLSKey, when set, serve gRPC and the webhook endpoint
	// over TLS with this certificate.
	TLSCert, TLSKey string
	// TLSClientCA verifies client certificates (mutual TLS); with
	// RequireAgentCerts, agent calls without a verified certificate are
	// refused (API clients may still come with a token only).
	TLSClientCA       string
	RequireAgentCerts bool

	// SecretKey (base64, 32 bytes) seals job secrets; empty keeps a key in
	// DataDir/secret.key. Replicas sharing a database must share it.
	SecretKey string
	// SecretKeyring is the keyring file (default DataDir/secret.keyring):
	// more keys, one base64 key per line, added by arcade server rekey.
	// Every replica's keyring must hold the key the database names primary.
	SecretKeyring string

	// AuditMaxEvents and AuditMaxAge bound the audit log (defaults 100,000
	// entries and 90 days; -1 turns a bound off).
	AuditMaxEvents int
	AuditMaxAge    time.Duration

	// RateLimit bounds each API client to this many calls per second on
	// average (bursts of RateBurst); 0 turns the limit off. Agents are not
	// limited.
	RateLimit float64
	RateBurst int

	// WebhookPort is the port of the pipeline webhook HTTP endpoint, bound
	// on the host of Listen; 0 turns the endpoint off.
	WebhookPort int
	// CronTimezone is the zone of cron triggers that name none; empty means
	// the server's local zone.
	CronTimezone string
	// PublicURL is the dashboard's address as people reach it
	// ("https://ci.example.com"): commit statuses and notifications link
	// runs there. Empty: they link nowhere.
	PublicURL string
	// GitMirrorMaxBytes bounds the disk of the server's repository mirrors
	// (DataDir/git-mirrors); 0 is 5 GiB.
	GitMirrorMaxBytes int64
	// GitTimeout bounds one update of a server mirror (the fetch a run,
	// a webhook's path filter or a definition file needs); 0 is 5 minutes.
	// A forge that stalls fails that run with a clear error instead of
	// holding the mirror, the request or the cron scheduler.
	GitTimeout time.Duration

	// Notify routes events to notify plugins.
	Notify notify.Config
	// AuditPlugin names the security plugin whose audit checks every
	// pipeline definition at CreatePipeline and UpdatePipeline; empty
	// means no audit.
	AuditPlugin string
	// ArtifactStore names the storage plugin that keeps artifacts and
	// archived logs; empty: artifacts are described but not stored.
	ArtifactStore string
	// ArtifactMaxBytes bounds one artifact (0: 1 GiB).
	ArtifactMaxBytes int64
	// CacheMaxBytes bounds all job cache entries together (0: 10 GiB; the
	// least recently used go first), CacheEntryMaxBytes one entry (0:
	// 2 GiB); CacheDefaultBranch is the branch whose entries every branch
	// reads, for pipelines whose source names none (default main).
	CacheMaxBytes      int64
	CacheEntryMaxBytes int64
	CacheDefaultBranch string
	// ArtifactExpireIn is the expiry of artifacts whose job sets none
	// (0: kept until the job is deleted).
	ArtifactExpireIn time.Duration
	// ArtifactSweepInterval is how often expired artifacts are removed and
	// old logs archived (default 1m), on one replica at a time.
	ArtifactSweepInterval time.Duration
	// LogArchiveAfter moves the logs of jobs finished this long ago to the
	// artifact store (0: never).
	LogArchiveAfter time.Duration
	// ArtifactUploads is "direct" (the default: agents put artifacts
	// straight into the store through presigned URLs, when it makes them)
	// or "server" (every byte goes through the server).
	ArtifactUploads string
	// ArtifactDownloads is "redirect" (the default: API and dashboard
	// downloads are sent to a presigned URL, when the store makes them) or
	// "stream" (through the server).
	ArtifactDownloads string
	// ArtifactURLTTL is how long a presigned URL works (default 10m).
	ArtifactURLTTL time.Duration
	// HTTPListen is the address of the dashboard and the HTTP/JSON API
	// (TLS like gRPC when TLSCert is set); empty turns it off.
	HTTPListen string
	// PipelineLimits bound a pipeline (jobs, stages, depends_on entries,
	// size); zero fields take pipeline.DefaultLimits.
	PipelineLimits pipeline.Limits
	// EventHistory bounds the events kept in the database (StreamEvents
	// since, the dashboard's event page).
	EventHistory eventlog.Config
}

// maxPipelineBytes bounds pipeline_limits.yaml_bytes: a pipeline as stored
// must fit a page of any listing, under the 16 MiB message limit.
const maxPipelineBytes = 8 << 20

// ScopedToken is an API token limited to a scope; Name names it in the
// audit log (default "api_tokens[N]").
type ScopedToken struct {
	Token  string
	SHA256 string
	Scope  string
	Name   string
}

// apiTokens converts the scoped tokens, refusing unclear ones.
func (c *Config) apiTokens() ([]auth.APIToken, error) {
	var out []auth.APIToken
	for i, t := range c.APITokens {
		scope, err := auth.ParseScope(t.Scope)
		if err != nil {
			return nil, fmt.Errorf("api_tokens[%d].scope: %w", i, err)
		}
		hash := strings.ToLower(strings.TrimSpace(t.SHA256))
		switch {
		case (t.Token == "") == (hash == ""):
			return nil, fmt.Errorf("api_tokens[%d]: give token or sha256, one of them", i)
		case hash == "":
			hash = auth.Hash(t.Token)
		case len(hash) != 64:
			return nil, fmt.Errorf("api_tokens[%d].sha256: want 64 hex digits", i)
		}
		out = append(out, auth.APIToken{Hash: hash, Scope: scope, Name: t.Name})
	}
	return out, nil
}

// Validate checks the configuration and fills defaults.
func (c *Config) Validate() error {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:9090"
	}
	if c.DataDir == "" {
		c.DataDir = "data"
	}
	if c.DB == "" {
		c.DB = "sqlite://" + filepath.Join(c.DataDir, "arcade.db")
	}
	if !strings.HasPrefix(c.DB, "sqlite://") && !strings.HasPrefix(c.DB, "postgres://") && !strings.HasPrefix(c.DB, "postgresql://") {
		return fmt.Errorf("db: want sqlite://PATH or postgres://…, got %q", c.DB)
	}
	for name, d := range map[string]time.Duration{"heartbeat_interval": c.HeartbeatInterval, "max_poll_wait": c.MaxPollWait, "lease_ttl": c.LeaseTTL, "reap_interval": c.ReapInterval} {
		if d < 0 {
			return fmt.Errorf("%s: must not be negative, got %s", name, d)
		}
	}
	if c.ReapInterval == 0 {
		c.ReapInterval = time.Second
	}
	if c.MetricsPprof && c.MetricsListen == "" {
		return errors.New("metrics_pprof: needs metrics_listen, the address it is served on")
	}
	for name, d := range map[string]time.Duration{"artifact_expire_in": c.ArtifactExpireIn, "artifact_sweep_interval": c.ArtifactSweepInterval, "log_archive_after": c.LogArchiveAfter} {
		if d < 0 {
			return fmt.Errorf("%s: must not be negative, got %s", name, d)
		}
	}
	if c.ArtifactMaxBytes < 0 {
		return errors.New("artifact_max_bytes: must not be negative")
	}
	for name, v := range map[string]int{"jobs": c.PipelineLimits.Jobs, "stages": c.PipelineLimits.Stages,
		"edges": c.PipelineLimits.Edges, "yaml_bytes": c.PipelineLimits.YAMLBytes} {
		if v < 0 {
			return fmt.Errorf("pipeline_limits.%s: must not be negative, got %d", name, v)
		}
	}
	if c.PipelineLimits.YAMLBytes > maxPipelineBytes {
		return fmt.Errorf("pipeline_limits.yaml_bytes: at most %d (a pipeline must fit a page of any listing), got %d", maxPipelineBytes, c.PipelineLimits.YAMLBytes)
	}
	c.PipelineLimits = c.PipelineLimits.WithDefaults()
	switch c.ArtifactUploads {
	case "":
		c.ArtifactUploads = "direct"
	case "direct", "server":
	default:
		return fmt.Errorf("artifact_uploads: want direct or server, got %q", c.ArtifactUploads)
	}
	switch c.ArtifactDownloads {
	case "":
		c.ArtifactDownloads = "redirect"
	case "redirect", "stream":
	default:
		return fmt.Errorf("artifact_downloads: want redirect or stream, got %q", c.ArtifactDownloads)
	}
	if c.ArtifactURLTTL < 0 || c.ArtifactURLTTL > 7*24*time.Hour {
		return fmt.Errorf("artifact_url_ttl: want 0 (10m) to 168h, got %s", c.ArtifactURLTTL)
	}
	if c.ArtifactSweepInterval == 0 {
		c.ArtifactSweepInterval = time.Minute
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("tls: set both tls_cert and tls_key")
	}
	if c.TLSClientCA != "" && c.TLSCert == "" {
		return errors.New("tls_client_ca: needs tls_cert and tls_key (mutual TLS is TLS first)")
	}
	if c.RequireAgentCerts && c.TLSClientCA == "" {
		return errors.New("require_agent_certs: needs tls_client_ca to verify them")
	}
	if _, err := c.apiTokens(); err != nil {
		return err
	}
	if c.RateLimit < 0 || c.RateBurst < 0 {
		return errors.New("rate_limit, rate_burst: must not be negative")
	}
	if c.RateLimit > 0 && c.RateBurst == 0 {
		c.RateBurst = int(2*c.RateLimit) + 1
	}
	c.Notify.PublicURL = c.PublicURL // the notifications' links
	if err := c.Notify.Validate(); err != nil {
		return err
	}
	if err := c.EventHistory.Validate(); err != nil {
		return err
	}
	if err := (audit.Config{MaxEvents: c.AuditMaxEvents, MaxAge: c.AuditMaxAge}).Validate(); err != nil {
		return err
	}
	return c.validateTriggers()
}

// startPlugins watches the plugin folders and file and loads the configured
// plugins in the background: the server serves meanwhile, and each plugin
// is listed as compiling until its load ends. A first start (an empty
// compilation cache) says once that it compiles them. ready receives the
// plugins that failed to load once every plugin has had its load.
func startPlugins(ctx context.Context, cfg Config, logger *slog.Logger, publish func(*jobv1.Event), stats *metrics.Metrics, resolver *secrets.Resolver) (m *host.Manager, ready <-chan []string, err error) {
	log := logger.With("component", "plugins")
	m = host.NewManager(log, host.WithCacheDir(filepath.Join(cfg.DataDir, "wazero-cache")), host.WithCallObserver(stats.PluginCall),
		host.WithDependencies(cfg.PluginDependencies()...),
		host.WithSecrets(func(ctx context.Context, names []string) (map[string]string, error) {
			return resolver.Resolve(ctx, secrets.Scope{}, names...) // plugins.yaml is server-wide: global secrets
		}))
	stats.WatchPlugins(m)
	// The host logs each event once; here they become system events.
	m.Subscribe(func(e host.Event) {
		resource := e.Plugin
		if e.Type == host.EventConfigRejected {
			resource = e.Path // the plugins configuration itself
		}
		ev := &jobv1.Event{ResourceType: "plugin", ResourceId: resource, Message: string(e.Type),
			Attributes: map[string]string{"kind": e.Kind, "version": e.Version, "previous": e.Previous, "sha256": e.SHA256}}
		switch e.Type {
		case host.EventLoaded, host.EventReloaded:
			ev.Type = jobv1.EventType_EVENT_TYPE_PLUGIN_LOADED
		case host.EventUnloaded:
			ev.Type = jobv1.EventType_EVENT_TYPE_PLUGIN_UNLOADED
		default:
			ev.Type = jobv1.EventType_EVENT_TYPE_PLUGIN_FAILED
		}
		if e.Err != nil {
			ev.Message += ": " + e.Err.Error()
		}
		publish(ev)
	})
	configPath := ""
	if cfg.PluginsConfig != "" {
		if _, err := os.Stat(cfg.PluginsConfig); err == nil {
			if err := m.LoadPluginsFromConfig(cfg.PluginsConfig); err != nil {
				return nil, nil, fmt.Errorf("plugins config: %w", err)
			}
			configPath = cfg.PluginsConfig
		} else {
			log.Info("no plugins config; only plugin folders are watched", "path", cfg.PluginsConfig)
		}
	}
	var dirs []string
	for _, d := range cfg.PluginDirs {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			dirs = append(dirs, d)
		}
	}
	// Whether the compilation cache is empty is read before anything loads.
	cold := emptyDir(m.CacheDir())
	if err := m.StartAutoWatch(dirs, configPath); err != nil {
		m.Close(ctx) //nolint:errcheck // already failing
		return nil, nil, fmt.Errorf("watch plugins: %w", err)
	}
	start := time.Now()
	// What the server itself calls loads first: a notification or an
	// artifact right after a start must not wait for every step plugin.
	var first []string
	for _, d := range cfg.PluginDependencies() {
		first = append(first, d.Plugin)
	}
	done, enabled := m.InitBackground(ctx, first...)
	if cold && len(enabled) > 0 {
		log.Info(fmt.Sprintf("compiling %d plugins, first start only (later starts read the compilation cache); the server serves meanwhile, arcade plugin list shows their progress", len(enabled)),
			"plugins", enabled, "cache", m.CacheDir())
	}
	out := make(chan []string, 1)
	go func() {
		<-done
		if ctx.Err() != nil {
			out <- nil
			return // stopped while loading: no verdict
		}
		var failed []string
		loaded := 0
		for _, info := range m.List() {
			switch info.GetState() {
			case pluginv1.PluginState_PLUGIN_STATE_LOADED:
				loaded++
			case pluginv1.PluginState_PLUGIN_STATE_FAILED:
				failed = append(failed, info.GetName())
			}
		}
		if len(enabled) > 0 {
			log.Info("plugins loaded", "loaded", loaded, "failed", failed, "took", time.Since(start).Round(time.Millisecond))
		}
		out <- failed
	}()
	return m, out, nil
}

// emptyDir reports whether dir is missing or holds nothing.
func emptyDir(dir string) bool {
	if dir == "" || dir == "-" {
		return true
	}
	entries, err := os.ReadDir(dir)
	return err != nil || len(entries) == 0
}

// Server is a running Arcade server.
type Server struct {
	cfg     Config
	log     *slog.Logger
	store   *store.Store
	svc     *service.Service
	grpc    *grpc.Server
	health  *health.Server
	lis     net.Listener
	plugins *host.Manager
	webhook net.Listener
	http    net.Listener
	tls     *tls.Config
	peers   *peers.Peers
	metrics *prometheus.Registry
	serving atomic.Bool // gRPC serves and is not shutting down
	notify  *notify.Notifier
	history *eventlog.Log
	// objects keep artifacts and archived logs through the storage plugin.
	objects *objects.Store
	archive *logarchive.Archive
	// replica names this process in leases.
	replica string
	// httpMounts are extra handlers of the HTTP listener.
	httpMounts map[string]http.Handler
	// credentials is DataDir/credentials.env when it holds the API token
	// the server takes, "" when the token comes from elsewhere.
	credentials string
	// keyring seals secrets; audit records every write.
	keyring *secrets.Keyring
	// hooks serves the forge webhooks (nil: no git on this server).
	hooks *sources.Hooks
	// statuses delivers commit statuses.
	statuses *sources.Statuses
	audit    *audit.Log
}

// New opens the database, migrates it and binds the listener.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("server config: %w", err)
	}
	for _, w := range cfg.Notify.Warnings {
		logger.Warn("notify: older spelling; write the name it gives instead", "where", w)
	}
	if err := checkDependedOnPlugins(cfg, logger); err != nil {
		return nil, err
	}
	credsFile, err := loadCredentials(&cfg, time.Now(), logger)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, cfg.DB, logger)
	if err != nil {
		return nil, err
	}
	registry := metrics.NewRegistry()
	stats := metrics.New(registry)
	st.AddQueryHook(stats.QueryHook())
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, err
	}
	authn := auth.New(cfg.AgentToken, cfg.APIToken, func(ctx context.Context, hash string) (string, error) {
		a, err := st.AgentByTokenHash(ctx, hash)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return "", fmt.Errorf("%w: %v", auth.ErrNoAnswer, err)
		}
		if err != nil {
			return "", err
		}
		return a.ID, nil
	})
	authn.UseNamedTokens(service.NamedTokens{Store: st})
	ring, err := OpenKeyring(ctx, cfg, st, logger.With("component", "keyring"))
	if err != nil {
		st.Close()
		return nil, err
	}
	if err := sealTriggerSecrets(ctx, st, ring, logger.With("component", "keyring")); err != nil {
		st.Close()
		return nil, fmt.Errorf("seal webhook secrets: %w", err)
	}
	svc := service.New(service.Config{
		PublicURL:         cfg.PublicURL,
		PipelineLimits:    cfg.PipelineLimits,
		Secrets:           ring,
		HeartbeatInterval: cfg.HeartbeatInterval,
		MaxPollWait:       cfg.MaxPollWait,
		LeaseTTL:          cfg.LeaseTTL,
		Metrics:           stats,
		ApprovalTimeout:   cfg.ApprovalTimeout,
	}, st, authn, logger)
	metrics.WatchState(registry, svc, storeCheckTimeout, logger.With("component", "metrics"))

	tlsConf, err := cfg.tlsConfig()
	if err != nil {
		st.Close()
		return nil, err
	}
	if cfg.RequireAgentCerts {
		authn.RequireAgentCerts()
	}
	scoped, _ := cfg.apiTokens() // validated above
	authn.AddAPITokens(scoped...)
	opts := []grpc.ServerOption{}
	if tlsConf != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsConf)))
	}
	limiter := ratelimit.New(cfg.RateLimit, cfg.RateBurst)
	// Every write of an API client is recorded (after the rate limit: a
	// client refused for calling too often cannot flood the log).
	auditLog := audit.New(st, audit.Config{MaxEvents: cfg.AuditMaxEvents, MaxAge: cfg.AuditMaxAge}, logger.With("component", "audit"))
	authn.OnDenied(auditLog.Denied)
	svc.UseAuditLog(auditLog)
	// Bounds come first: the codec's note of a field with invalid UTF-8 is
	// taken by them on every call, authenticated or not.
	rules, codec := bounds.New(cfg.PipelineLimits), bounds.NewCodec()
	gs := grpc.NewServer(append(opts,
		grpc.ForceServerCodecV2(codec),
		// Id prefixes are resolved before the audit log records a request.
		grpc.ChainUnaryInterceptor(rules.UnaryInterceptor(codec), authn.UnaryInterceptor(), limiter.UnaryInterceptor(), svc.UnaryIDPrefixes(), auditLog.UnaryInterceptor(), svc.UnaryStop()),
		grpc.ChainStreamInterceptor(rules.StreamInterceptor(codec), authn.StreamInterceptor(), limiter.StreamInterceptor(), svc.StreamIDPrefixes(), auditLog.StreamInterceptor(),
			stats.StreamInterceptor(), svc.StreamStop()),
		grpc.MaxRecvMsgSize(16<<20),
		// Most connections are agents, idle between heartbeats: their write
		// buffer goes back to a pool after each flush instead of staying
		// allocated per connection.
		grpc.SharedWriteBuffer(true),
		// Agents ping every 10 s; a peer silent for 15 s more is dropped.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 10 * time.Second, Timeout: 5 * time.Second}),
	)...)
	agentv1.RegisterAgentServiceServer(gs, svc.AgentServer())
	jobv1.RegisterJobServiceServer(gs, svc.JobServer())
	jobv1.RegisterStreamServiceServer(gs, svc.StreamServer())
	secretv1.RegisterSecretServiceServer(gs, svc.SecretServer())
	secretv1.RegisterTokenServiceServer(gs, svc.TokenServer())
	secretv1.RegisterAuditServiceServer(gs, svc.AuditServer())
	secretv1.RegisterTrustServiceServer(gs, svc.TrustServer())
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)

	var replicas *peers.Peers
	if st.Postgres() {
		replicas = peers.New(st, logger.With("component", "peers"))
		svc.UsePeers(replicas)
	}
	// Notifications go out from the replica where their event happened:
	// the notifier sees local events only, plugin events included (each
	// replica has its own plugin host).
	sender := &pluginSender{}
	notifier, err := notify.New(cfg.Notify, sender, svc.Publish, logger.With("component", "notify"))
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("server config: %w", err)
	}
	notifier.UseRuns(storeRuns{store: st})
	statuses := &sources.Statuses{Store: st, Send: sender, Credentials: svc.Secrets(), RunURL: svc.RunURL,
		Log: logger.With("component", "commit-status"), Now: time.Now}
	svc.OnRunChange(statuses.RunChanged)
	svc.OnLocalEvent(notifier.Handle)
	history, err := eventlog.New(cfg.EventHistory, st, logger.With("component", "events"))
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("server config: %w", err)
	}
	svc.UseHistory(history)
	// The first-party storage plugin is granted DataDir/artifacts
	// (conf.d/plugins.yaml); it would find no folder there otherwise.
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "artifacts"), 0o755); err != nil {
		st.Close()
		return nil, fmt.Errorf("create artifact folder: %w", err)
	}
	plugins, ready, err := startPlugins(ctx, cfg, logger, svc.Publish, stats, svc.Secrets())
	if err != nil {
		st.Close()
		return nil, err
	}
	sender.host.Store(plugins)
	if cfg.AuditPlugin != "" {
		svc.UseAudit(pluginAuditor{name: cfg.AuditPlugin, host: plugins})
	}
	pluginv1.RegisterPluginServiceServer(gs, service.NewPluginServer(plugins))
	objects, archive := useArtifactStore(cfg, st, svc, plugins, logger)
	go func() {
		// Once the plugins have had their first load, say which ones the
		// configuration needs and does not have.
		<-ready
		if cfg.AuditPlugin != "" {
			if _, err := plugins.GetSecurityPlugin(cfg.AuditPlugin); err != nil {
				logger.Warn("the audit plugin is not ready; pipelines are refused until it is", "plugin", cfg.AuditPlugin, "err", err)
			}
		}
		for _, r := range cfg.Notify.Rules {
			if _, err := plugins.GetNotifyPlugin(r.Plugin); err != nil {
				logger.Warn("a notify rule's plugin is not ready; its notifications fail until it is", "rule", r.Name, "plugin", r.Plugin, "err", err)
			}
		}
		if objects != nil {
			if err := objects.Available(); err != nil {
				logger.Warn("artifact store not available; uploads are refused until it loads", "plugin", cfg.ArtifactStore, "err", err)
			}
		}
	}()
	svc.UsePlugins(plugins)

	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		plugins.Close(ctx) //nolint:errcheck // already failing
		st.Close()
		return nil, listenError("listen", "--listen", cfg.Listen, err)
	}
	srv := &Server{cfg: cfg, log: logger, store: st, svc: svc, grpc: gs, health: hs, lis: lis, plugins: plugins, tls: tlsConf, peers: replicas,
		metrics: registry, notify: notifier, history: history, objects: objects, archive: archive, replica: uuid.NewString(),
		credentials: credsFile, keyring: ring, audit: auditLog}
	srv.hooks = setUpSources(cfg, st, svc, auditLog, logger)
	srv.statuses = statuses
	err = srv.listenWebhook()
	if err == nil {
		err = srv.listenHTTP()
	}
	if err != nil {
		lis.Close()
		if srv.webhook != nil {
			srv.webhook.Close()
		}
		plugins.Close(ctx) //nolint:errcheck // already failing
		st.Close()
		return nil, err
	}
	return srv, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// Config returns the effective configuration (with generated tokens).
func (s *Server) Config() Config { return s.cfg }

// CredentialsFile is the file that holds the server's API token (generated,
// in DataDir), "" when the token comes from the environment, a flag or the
// configuration file.
func (s *Server) CredentialsFile() string { return s.credentials }

// Run serves until ctx ends, then stops gracefully and closes the database.
func (s *Server) Run(ctx context.Context) error {
	defer s.store.Close()
	defer func() {
		s.plugins.StopAutoWatch()
		if err := s.plugins.Close(context.Background()); err != nil {
			s.log.Warn("close plugins", "err", err)
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Housekeeping runs on one replica at a time (its updates are
	// conditional, so two at once would be safe, only wasteful).
	housekeeping := make(chan struct{})
	go func() {
		defer close(housekeeping)
		runLeased(ctx, s.store, "housekeeping", s.replica, s.cfg.ReapInterval, s.log.With("component", "housekeeping"), s.svc.ReapOnce)
	}()
	defer func() { cancel(); <-housekeeping }() // before the store closes
	dispatching := make(chan struct{})
	go func() { defer close(dispatching); s.svc.Dispatch(ctx) }()
	defer func() { cancel(); <-dispatching }() // before the store closes
	reported := make(chan struct{})
	go func() { s.statuses.Run(ctx); close(reported) }()
	defer func() { cancel(); <-reported }() // before the store closes
	notified := make(chan struct{})
	go func() { s.notify.Run(ctx); close(notified) }()
	// The history writes the events of the drain too: it stops after it.
	recorded := make(chan struct{})
	historyCtx, stopHistory := context.WithCancel(context.WithoutCancel(ctx))
	go func() { s.history.Run(historyCtx); close(recorded) }()
	defer func() { stopHistory(); <-recorded }()
	defer func() { cancel(); <-notified }()
	// Waited for before the store closes, so that its lease is released and
	// a server started next prunes at once, not once the lease expired.
	pruning := make(chan struct{})
	go func() {
		defer close(pruning)
		runLeased(ctx, s.store, "event-history", s.replica, time.Minute, s.log.With("component", "events"), func(ctx context.Context) error {
			_, err := s.history.Prune(ctx)
			return err
		})
	}()
	defer func() { cancel(); <-pruning }()
	audited := s.startAudit(ctx)
	defer func() { cancel(); <-audited }() // before the store closes: what was recorded is written
	keyring := make(chan struct{})
	go func() { s.followKeyring(ctx); close(keyring) }()
	defer func() { cancel(); <-keyring }()
	if s.peers != nil {
		if err := s.peers.Run(ctx, s.svc.HandlePeer); err != nil {
			return fmt.Errorf("listen to other replicas: %w", err)
		}
	}
	if s.cfg.PprofListen != "" {
		if err := servePprof(ctx, s.cfg.PprofListen, s.log); err != nil {
			return err
		}
	}
	if s.cfg.MetricsListen != "" {
		if err := s.serveMetrics(ctx); err != nil {
			return err
		}
	}
	s.startTriggers(ctx)
	storageWork := s.startStorageWork(ctx)
	defer func() { cancel(); <-storageWork }() // before the store closes: leases released
	if err := s.startHTTP(ctx); err != nil {
		return err
	}

	go s.watchStore(ctx)
	s.serving.Store(true)
	s.log.Info("arcade server listening", "addr", s.Addr(), "db", redact(s.cfg.DB))
	errc := make(chan error, 1)
	go func() { errc <- s.grpc.Serve(s.lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.serving.Store(false)
	s.health.Shutdown()
	// Agents' channels, followers, long polls and plugin calls end now
	// (Unavailable: connect again); other calls in flight get the grace
	// below. The plugins close last, after the notification drain.
	s.svc.Stop()
	s.plugins.StopAutoWatch()
	stopped := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		s.log.Warn("calls still running 5s after the stop began; ending them")
		s.grpc.Stop()
	}
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve: %w", err)
	}
	s.log.Info("arcade server stopped")
	return nil
}

// redact hides a password in a DSN for logs.
func redact(dsn string) string {
	at := strings.LastIndex(dsn, "@")
	scheme := strings.Index(dsn, "://")
	if at < 0 || scheme < 0 {
		return dsn
	}
	userinfo := dsn[scheme+3 : at]
	if user, _, ok := strings.Cut(userinfo, ":"); ok {
		return dsn[:scheme+3] + user + ":***" + dsn[at:]
	}
	return dsn
}
