package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/go-arcade/arcade/agent"
	"github.com/go-arcade/arcade/client"
	"github.com/go-arcade/arcade/core/pipeline"
	"github.com/go-arcade/arcade/server"
	"github.com/go-arcade/arcade/server/eventlog"
	"github.com/go-arcade/arcade/server/notify"
)

func addServerFlags(f *pflag.FlagSet) {
	f.String("listen", "127.0.0.1:9090", "gRPC listen address")
	f.String("db", "", "database: sqlite://PATH or postgres://… (default: SQLite in the data dir)")
	f.String("data-dir", "data", "directory for the SQLite database and generated credentials")
	f.String("agent-token", "", "registration token agents must present (env ARCADE_AGENT_TOKEN)")
	f.String("api-token", "", "token API clients must present (env ARCADE_API_TOKEN)")
	f.Duration("heartbeat-interval", 5*time.Second, "how often agents send heartbeats")
	f.Duration("max-poll-wait", 30*time.Second, "longest a FetchJob long-poll is held")
	f.Duration("lease-ttl", 0, "how long a job stays leased without heartbeats (default 3 heartbeats)")
	f.Duration("approval-timeout", 0, "how long an approval job waits for a decision when it sets no timeout (default 24h)")
	f.String("plugins-config", "conf.d/plugins.yaml", "plugins file (watched; missing: no configured plugins)")
	f.StringSlice("plugin-dirs", []string{"plugins"}, "folders watched for .wasm plugins")
	f.String("pprof-listen", "", "serve Go's profiler (net/http/pprof) on this address, e.g. 127.0.0.1:6060")
	f.String("metrics-listen", "", "serve Prometheus /metrics, /healthz and /readyz over HTTP on this address, e.g. 127.0.0.1:9091 (default: off)")
	f.Bool("metrics-pprof", false, "also serve Go's profiler (/debug/pprof/) on --metrics-listen")
	f.Float64("rate-limit", 0, "calls per second allowed to each API client on average (0: no limit)")
	f.Int("rate-burst", 0, "calls an API client may make at once (default: twice the rate)")
	f.Int("webhook-port", 0, "port of the pipeline webhook endpoint on the --listen host (0: off)")
	f.String("cron-timezone", "", "time zone of cron triggers that name none (default: local)")
	f.String("public-url", "", "the dashboard's address as people reach it, e.g. https://ci.example.com (commit statuses link runs there)")
	f.Int64("git-mirror-max-bytes", 0, "disk the server's repository mirrors may use, in bytes (default 5 GiB)")
	f.Duration("git-timeout", 0, "longest update of one of the server's repository mirrors (default 5m)")
	f.String("artifact-store", "", "storage plugin that keeps artifacts and archived logs, e.g. fs-store (empty: not stored)")
	f.Int64("artifact-max-bytes", 0, "largest artifact accepted, in bytes (default 1 GiB)")
	f.Int64("cache-max-bytes", 0, "job cache entries kept in all, in bytes; the least recently used go first (default 10 GiB)")
	f.Int64("cache-entry-max-bytes", 0, "largest job cache entry accepted, in bytes (default 2 GiB)")
	f.String("cache-default-branch", "", "the branch whose cache entries every branch reads, for pipelines whose source names none (default main)")
	f.Duration("artifact-expire-in", 7*24*time.Hour, "expiry of artifacts whose job sets none (0: kept until the job is deleted)")
	f.Duration("artifact-sweep-interval", time.Minute, "how often expired artifacts are removed and old logs archived")
	f.Duration("log-archive-after", 0, "archive the logs of jobs finished this long ago through the artifact store (0: never)")
	f.String("artifact-uploads", "direct", "direct (agents put artifacts straight into a store that presigns URLs) or server (every byte through this server)")
	f.String("artifact-downloads", "redirect", "redirect (downloads go to a presigned URL of a store that makes them) or stream (through this server)")
	f.Duration("artifact-url-ttl", 10*time.Minute, "how long a presigned artifact URL works")
	f.String("http-listen", "127.0.0.1:8080", `dashboard and HTTP/JSON API address ("" turns it off)`)
	f.String("secret-keyring", "", "keyring file of secret keys (default DATA_DIR/secret.keyring; see arcade server rekey)")
	f.Int("audit-max-events", 0, "audit log entries kept (default 100000; -1: no count bound)")
	f.Duration("audit-max-age", 0, "audit log entries older than this are dropped (default 90 days; negative: no age bound)")
}

func serverConfig(cmd *cobra.Command, configPath string) (server.Config, error) {
	var s serverSettings
	explicit := cmd.Flags().Changed("config")
	if err := loadConfig(&s, serverDefaults, configPath, explicit, cmd.Flags()); err != nil {
		return server.Config{}, err
	}
	var scoped []server.ScopedToken
	for _, t := range s.APITokens {
		scoped = append(scoped, server.ScopedToken{Token: t.Token, SHA256: t.SHA256, Scope: t.Scope, Name: t.Name})
	}
	d := s.NotifyDelivery
	notifications := notify.Config{Attempts: d.Attempts, Backoff: d.Backoff, MaxBackoff: d.MaxBackoff, Timeout: d.Timeout,
		QueueSize: d.QueueSize, Workers: d.Workers, DrainTimeout: d.Drain}
	for _, r := range s.Notify {
		notifications.Rules = append(notifications.Rules, notify.Rule{Name: r.Name, On: r.On, Plugin: r.Plugin,
			Template: r.Template, Pipelines: r.Pipelines, Channel: r.Channel})
	}
	return server.Config{
		AgentTokenFrom: settingFrom(cmd, "agent-token", "ARCADE_AGENT_TOKEN", configPath, s.AgentToken != ""),
		APITokenFrom:   settingFrom(cmd, "api-token", "ARCADE_API_TOKEN", configPath, s.APIToken != ""),
		Notify:         notifications, AuditPlugin: s.Audit.Plugin,
		APITokens: scoped,
		Listen:    s.Listen, DB: s.DB, DataDir: s.DataDir, AgentToken: s.AgentToken, APIToken: s.APIToken,
		HeartbeatInterval: s.HeartbeatInterval, MaxPollWait: s.MaxPollWait, LeaseTTL: s.LeaseTTL, ApprovalTimeout: s.ApprovalTimeout,
		PluginsConfig: s.PluginsConfig, PluginDirs: s.PluginDirs, PprofListen: s.PprofListen,
		MetricsListen: s.MetricsListen, MetricsPprof: s.MetricsPprof,
		TLSCert: s.TLSCert, TLSKey: s.TLSKey, TLSClientCA: s.TLSClientCA, RequireAgentCerts: s.RequireAgentCerts,
		WebhookPort: s.WebhookPort, CronTimezone: s.CronTimezone, PublicURL: s.PublicURL, GitMirrorMaxBytes: s.GitMirrorMaxBytes, GitTimeout: s.GitTimeout, RateLimit: s.RateLimit, RateBurst: s.RateBurst,
		SecretKey: s.SecretKey, HTTPListen: s.HTTPListen, SecretKeyring: s.SecretKeyring,
		AuditMaxEvents: s.AuditMaxEvents, AuditMaxAge: s.AuditMaxAge,
		ArtifactStore: s.ArtifactStore, ArtifactMaxBytes: s.ArtifactMaxBytes, ArtifactExpireIn: s.ArtifactExpireIn,
		CacheMaxBytes: s.CacheMaxBytes, CacheEntryMaxBytes: s.CacheEntryMaxBytes, CacheDefaultBranch: s.CacheDefaultBranch,
		ArtifactSweepInterval: s.ArtifactSweepInterval, LogArchiveAfter: s.LogArchiveAfter,
		PipelineLimits: pipeline.Limits{Jobs: s.PipelineLimits.Jobs, Stages: s.PipelineLimits.Stages,
			Edges: s.PipelineLimits.Edges, YAMLBytes: s.PipelineLimits.YAMLBytes},
		ArtifactUploads: s.ArtifactUploads, ArtifactDownloads: s.ArtifactDownloads, ArtifactURLTTL: s.ArtifactURLTTL,
		EventHistory: eventlog.Config{MaxEvents: s.EventHistory.MaxEvents, MaxAge: s.EventHistory.MaxAge},
	}, nil
}

// settingFrom says where a setting that is set comes from, in the order of
// precedence: its flag, its environment variable, else the config file.
func settingFrom(cmd *cobra.Command, flag, env, configPath string, set bool) string {
	switch {
	case !set:
		return ""
	case cmd.Flags().Changed(flag):
		return "--" + flag
	case os.Getenv(env) != "":
		return env
	}
	return configPath
}

func newServerCmd(g *globals) *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Arcade server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger(os.Stderr)
			if err != nil {
				return err
			}
			cfg, err := serverConfig(cmd, configPath)
			if err != nil {
				return err
			}
			srv, err := server.New(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			return srv.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "conf.d/server.yaml", "configuration file")
	addServerFlags(cmd.Flags())
	f := cmd.Flags()
	f.String("tls-cert", "", "serve TLS with this certificate (PEM; with --tls-key)")
	f.String("tls-key", "", "private key of --tls-cert")
	f.String("tls-client-ca", "", "verify client certificates signed by this CA (mutual TLS)")
	f.Bool("require-agent-certs", false, "refuse agent calls without a verified client certificate")
	cmd.AddCommand(newRekeyCmd(g), newServerCheckCmd())
	withEffectiveHelp(cmd, "config", serverDefaults, nil)
	return cmd
}

func addAgentFlags(f *pflag.FlagSet) {
	f.String("name", "", "agent name (default: the hostname)")
	f.StringArray("label", nil, "label k=v (repeatable); overrides detected labels")
	f.Int("max-jobs", 1, "jobs run at once")
	f.String("work-dir", "", "directory for job workspaces (default: a temp dir)")
	f.Bool("keep-workspaces", false, "keep job workspaces after jobs end")
	f.Int64("cache-local-bytes", 0, "bytes of recent job cache entries kept on the agent, so that a hit costs no network (default 2 GiB; -1: none)")
	f.String("transport", "channel", "channel (one AgentChannel stream) or poll (unary long-polls)")
	f.StringSlice("plugins", []string{"*"}, `plugins this agent runs as job steps: names, "*" (any) or "-" (none)`)
	f.StringSlice("trusted-keys", nil, "base64 ed25519 keys plugin module signatures are checked against")
	f.Bool("require-signatures", false, "refuse plugin modules not signed by a trusted key")
	f.String("container-runtime", "auto", "auto (container jobs when the Docker engine answers), docker, or none (never look for one)")
	f.String("docker-host", "", "the Docker engine's address (default: $DOCKER_HOST, else unix:///var/run/docker.sock)")
	f.Duration("container-check", 5*time.Second, "how often to check that the Docker engine still answers (its labels follow it)")
	f.String("git", "", `the git client checking out sources (default: git on PATH; "none": no checkouts)`)
}

// agentConfig reads the agent's settings; the file at configPath must exist
// when the flag configFlag names it.
func agentConfig(cmd *cobra.Command, configPath, configFlag string) (agent.Config, error) {
	var s agentSettings
	explicit := cmd.Flags().Changed(configFlag)
	if err := loadConfig(&s, agentDefaults, configPath, explicit, cmd.Flags()); err != nil {
		return agent.Config{}, err
	}
	dockerHost := s.Container.Host
	if dockerHost == "" {
		dockerHost = os.Getenv("DOCKER_HOST")
	}
	return agent.Config{
		ContainerRuntime: s.Container.Runtime, DockerHost: dockerHost, EngineCheck: s.Container.CheckInterval,
		Git: s.Git, GitMirrorMaxBytes: s.GitMirrorMax,
		Server: s.Server, Token: s.AgentToken, Name: s.Name, Labels: stringMap(s.Labels),
		MaxJobs: s.MaxJobs, WorkDir: s.WorkDir, KeepWorkspaces: s.KeepWorkspaces, Transport: s.Transport, CacheLocalBytes: s.CacheLocalBytes,
		Plugins: s.Plugins, DataDir: s.DataDir, TrustedKeys: s.TrustedKeys, RequireSignatures: s.RequireSigs,
		MaskMinLength: s.MaskMinLength, MaxModuleBytes: s.MaxModuleBytes,
		TLS: client.TLS{CAFile: s.TLSCA, CertFile: s.ClientCert, KeyFile: s.ClientKey, ServerName: s.TLSServerName},
	}, nil
}

func newAgentCmd(g *globals) *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run an Arcade agent (or manage agents: arcade agent list)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger(os.Stderr)
			if err != nil {
				return err
			}
			cfg, err := agentConfig(cmd, configPath, "config")
			if err != nil {
				return err
			}
			a, err := agent.New(cfg, log)
			if err != nil {
				return err
			}
			return a.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "conf.d/agent.yaml", "configuration file")
	cmd.Flags().String("server", "127.0.0.1:9090", "server address")
	cmd.Flags().String("agent-token", "", "registration token (env ARCADE_AGENT_TOKEN)")
	addAgentFlags(cmd.Flags())
	cmd.Flags().String("tls-ca", "", "reach the server over TLS, trusting this CA (PEM; env ARCADE_TLS_CA)")
	cmd.Flags().String("client-cert", "", "client certificate for servers that require one (with --client-key)")
	cmd.Flags().String("client-key", "", "private key of --client-cert")
	cmd.Flags().String("tls-server-name", "", "name to expect in the server's certificate")
	cmd.Flags().String("data-dir", "", "where the agent keeps its identity (id and token, mode 0600), fetched plugin modules and their compilation cache (default: the work dir)")
	cmd.AddCommand(newAgentListCmd(), newAgentRevokeCmd(), newAgentTrustCmd(), newAgentLabelCmd())
	withEffectiveHelp(cmd, "config", agentDefaults, nil)
	return cmd
}

func newUpCmd(g *globals) *cobra.Command {
	var (
		configPath      string
		agentConfigPath string
		runFile         string
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a server and one agent in one process",
		Long: `Run a server and one agent in one process, on embedded SQLite by default.

With --run FILE, the job or pipeline in FILE is submitted (a pipeline file
has stages), its logs are printed as it runs, and arcade exits with its
outcome. With a pipeline file, "arcade up --run FILE" is "arcade run FILE":
the pipeline builds the working tree.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runEmbedded(cmd, g, configPath, agentConfigPath, runFile, false)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "conf.d/server.yaml", "server configuration file")
	cmd.Flags().StringVar(&agentConfigPath, "agent-config", "conf.d/agent.yaml", "agent configuration file (its server address and token are the up server's)")
	cmd.Flags().StringVar(&runFile, "run", "", "job or pipeline file to run; exit with its outcome")
	addServerFlags(cmd.Flags())
	agentFlags := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	addAgentFlags(agentFlags)
	cmd.Flags().AddFlagSet(agentFlags)
	isAgentFlag := func(name string) bool { return agentFlags.Lookup(name) != nil }
	withEffectiveHelp(cmd, "config", serverDefaults, func(name string) bool { return !isAgentFlag(name) })
	withEffectiveHelp(cmd, "agent-config", agentDefaults, isAgentFlag)
	return cmd
}

// waitBoth waits for the server and the agent to stop and returns first, or
// their first error.
func waitBoth(done <-chan error, first error) error {
	for range 2 {
		if err := <-done; err != nil && first == nil {
			first = err
		}
	}
	return first
}
