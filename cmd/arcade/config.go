package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// loadConfig fills out from, in rising precedence: defaults, the YAML file at
// path (a missing file is fine unless explicit), ARCADE_* environment
// variables (ARCADE_DATA_DIR → data_dir) and the flags set on the command
// line (--data-dir → data_dir). Only this file knows koanf exists.
func loadConfig(out any, defaults map[string]any, path string, explicit bool, flags *pflag.FlagSet) error {
	k := koanf.New(".")
	if err := k.Load(confmap.Provider(defaults, "."), nil); err != nil {
		return fmt.Errorf("config defaults: %w", err)
	}
	if path != "" {
		if _, err := os.Stat(path); err == nil || explicit {
			fk := koanf.New(".")
			if err := fk.Load(file.Provider(path), yaml.Parser()); err != nil {
				return fmt.Errorf("config file %s: %w", path, err)
			}
			// A key nothing reads is a typo: refused, so that a rule or a
			// limit written under a misspelt key is not silently ignored.
			if bad := unknownKeys(fk.Raw(), reflect.TypeOf(out), ""); len(bad) > 0 {
				return fmt.Errorf("config file %s: %s", path, strings.Join(bad, "; "))
			}
			if err := k.Merge(fk); err != nil {
				return fmt.Errorf("config file %s: %w", path, err)
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("config file %s: %w", path, err)
		}
	}
	err := k.Load(env.Provider(".", env.Opt{
		Prefix: "ARCADE_",
		TransformFunc: func(key, value string) (string, any) {
			key = strings.ToLower(strings.TrimPrefix(key, "ARCADE_"))
			if nested, ok := nestedKeys[key]; ok {
				key = nested
			}
			if key == "labels" {
				return key, splitPairs(value)
			}
			return key, value
		},
	}), nil)
	if err != nil {
		return fmt.Errorf("config from environment: %w", err)
	}
	err = k.Load(posflag.ProviderWithFlag(flags, ".", nil, func(f *pflag.Flag) (string, any) {
		if f.Name == "config" || !f.Changed {
			return "", nil
		}
		key := strings.ReplaceAll(f.Name, "-", "_")
		if nested, ok := nestedKeys[key]; ok {
			key = nested
		}
		if f.Name == "label" {
			vals, _ := flags.GetStringArray("label")
			return "labels", pairs(vals)
		}
		return key, posflag.FlagVal(flags, f)
	}), nil)
	if err != nil {
		return fmt.Errorf("config from flags: %w", err)
	}
	if err := k.UnmarshalWithConf("", out, koanf.UnmarshalConf{Tag: "koanf"}); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// nestedKeys maps the flat spellings of flags and environment variables
// (--docker-host, ARCADE_CONTAINER_RUNTIME) to keys nested in the files.
var nestedKeys = map[string]string{
	"container_runtime": "container.runtime",
	"container_host":    "container.host",
	"docker_host":       "container.host",
	"container_check":   "container.check_interval",
}

// pairs reads k=v items into a map; an item without "=" maps to "".
func pairs(items []string) map[string]any {
	m := make(map[string]any, len(items))
	for _, it := range items {
		k, v, _ := strings.Cut(it, "=")
		m[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return m
}

// splitPairs reads "a=1,b=2".
func splitPairs(s string) map[string]any {
	var items []string
	for it := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(it) != "" {
			items = append(items, it)
		}
	}
	return pairs(items)
}

// stringMap converts a parsed labels map.
func stringMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// serverSettings is the server's configuration as files, environment and
// flags spell it.
type serverSettings struct {
	Listen            string        `koanf:"listen"`
	DB                string        `koanf:"db"`
	DataDir           string        `koanf:"data_dir"`
	AgentToken        string        `koanf:"agent_token"`
	APIToken          string        `koanf:"api_token"`
	HeartbeatInterval time.Duration `koanf:"heartbeat_interval"`
	MaxPollWait       time.Duration `koanf:"max_poll_wait"`
	LeaseTTL          time.Duration `koanf:"lease_ttl"`
	ApprovalTimeout   time.Duration `koanf:"approval_timeout"`
	PluginsConfig     string        `koanf:"plugins_config"`
	PluginDirs        []string      `koanf:"plugin_dirs"`
	PprofListen       string        `koanf:"pprof_listen"`
	MetricsListen     string        `koanf:"metrics_listen"`
	MetricsPprof      bool          `koanf:"metrics_pprof"`
	TLSCert           string        `koanf:"tls_cert"`
	TLSKey            string        `koanf:"tls_key"`
	TLSClientCA       string        `koanf:"tls_client_ca"`
	RequireAgentCerts bool          `koanf:"require_agent_certs"`
	SecretKey         string        `koanf:"secret_key"`
	SecretKeyring     string        `koanf:"secret_keyring"`
	AuditMaxEvents    int           `koanf:"audit_max_events"`
	AuditMaxAge       time.Duration `koanf:"audit_max_age"`
	RateLimit         float64       `koanf:"rate_limit"`
	RateBurst         int           `koanf:"rate_burst"`
	APITokens         []struct {
		Token  string `koanf:"token"`
		SHA256 string `koanf:"sha256"`
		Scope  string `koanf:"scope"`
		Name   string `koanf:"name"`
	} `koanf:"api_tokens"`
	WebhookPort       int           `koanf:"webhook_port"`
	CronTimezone      string        `koanf:"cron_timezone"`
	PublicURL         string        `koanf:"public_url"`
	GitMirrorMaxBytes int64         `koanf:"git_mirror_max_bytes"`
	GitTimeout        time.Duration `koanf:"git_timeout"`
	Notify            []struct {
		Name      string   `koanf:"name"`
		On        []string `koanf:"on"`
		Plugin    string   `koanf:"plugin"`
		Template  string   `koanf:"template"`
		Pipelines []string `koanf:"pipelines"`
		Channel   string   `koanf:"channel"`
	} `koanf:"notify"`
	NotifyDelivery struct {
		Attempts   int           `koanf:"attempts"`
		Backoff    time.Duration `koanf:"backoff"`
		MaxBackoff time.Duration `koanf:"max_backoff"`
		Timeout    time.Duration `koanf:"timeout"`
		QueueSize  int           `koanf:"queue_size"`
		Workers    int           `koanf:"workers"`
		Drain      time.Duration `koanf:"drain_timeout"`
	} `koanf:"notify_delivery"`
	Audit struct {
		Plugin string `koanf:"plugin"`
	} `koanf:"audit"`

	ArtifactStore         string        `koanf:"artifact_store"`
	ArtifactMaxBytes      int64         `koanf:"artifact_max_bytes"`
	CacheMaxBytes         int64         `koanf:"cache_max_bytes"`
	CacheEntryMaxBytes    int64         `koanf:"cache_entry_max_bytes"`
	CacheDefaultBranch    string        `koanf:"cache_default_branch"`
	ArtifactExpireIn      time.Duration `koanf:"artifact_expire_in"`
	ArtifactSweepInterval time.Duration `koanf:"artifact_sweep_interval"`
	LogArchiveAfter       time.Duration `koanf:"log_archive_after"`
	ArtifactUploads       string        `koanf:"artifact_uploads"`
	ArtifactDownloads     string        `koanf:"artifact_downloads"`
	ArtifactURLTTL        time.Duration `koanf:"artifact_url_ttl"`
	HTTPListen            string        `koanf:"http_listen"`
	PipelineLimits        struct {
		Jobs      int `koanf:"jobs"`
		Stages    int `koanf:"stages"`
		Edges     int `koanf:"edges"`
		YAMLBytes int `koanf:"yaml_bytes"`
	} `koanf:"pipeline_limits"`
	EventHistory struct {
		MaxEvents int           `koanf:"max_events"`
		MaxAge    time.Duration `koanf:"max_age"`
	} `koanf:"event_history"`
}

var serverDefaults = map[string]any{
	"listen":             "127.0.0.1:9090",
	"data_dir":           "data",
	"heartbeat_interval": "5s",
	"max_poll_wait":      "30s",
	"plugins_config":     "conf.d/plugins.yaml",
	"plugin_dirs":        []string{"plugins"},
	"artifact_expire_in": "168h",
	"http_listen":        "127.0.0.1:8080",
}

// agentSettings is the agent's configuration as files, environment and
// flags spell it.
type agentSettings struct {
	Server          string            `koanf:"server"`
	AgentToken      string            `koanf:"agent_token"`
	Name            string            `koanf:"name"`
	Labels          map[string]string `koanf:"labels"`
	MaxJobs         int               `koanf:"max_jobs"`
	WorkDir         string            `koanf:"work_dir"`
	KeepWorkspaces  bool              `koanf:"keep_workspaces"`
	CacheLocalBytes int64             `koanf:"cache_local_bytes"`
	Transport       string            `koanf:"transport"`
	TLSCA           string            `koanf:"tls_ca"`
	ClientCert      string            `koanf:"client_cert"`
	ClientKey       string            `koanf:"client_key"`
	TLSServerName   string            `koanf:"tls_server_name"`
	Plugins         []string          `koanf:"plugins"`
	DataDir         string            `koanf:"data_dir"`
	TrustedKeys     []string          `koanf:"trusted_keys"`
	RequireSigs     bool              `koanf:"require_signatures"`
	Git             string            `koanf:"git"`
	GitMirrorMax    int64             `koanf:"git_mirror_max_bytes"`
	MaskMinLength   int               `koanf:"mask_min_length"`
	MaxModuleBytes  int64             `koanf:"max_module_bytes"`
	Container       struct {
		Runtime       string        `koanf:"runtime"`
		Host          string        `koanf:"host"`
		CheckInterval time.Duration `koanf:"check_interval"`
	} `koanf:"container"`
}

var agentDefaults = map[string]any{
	"server":            "127.0.0.1:9090",
	"max_jobs":          1,
	"container.runtime": "auto",
}

// secretSettings are never shown as defaults in help.
var secretSettings = map[string]bool{"agent_token": true, "api_token": true, "secret_key": true, "api_tokens": true}

// layer is one source of settings and how help names it.
type layer struct {
	name   string
	values map[string]any
}

// settingLayers reads the defaults, the file at path and the ARCADE_*
// environment separately, flattened ("container.runtime").
func settingLayers(defaults map[string]any, path string) []layer {
	load := func(p koanf.Provider, parser koanf.Parser) map[string]any {
		k := koanf.New(".")
		if err := k.Load(p, parser); err != nil {
			return nil
		}
		return k.All()
	}
	out := []layer{{"", load(confmap.Provider(defaults, "."), nil)}}
	if path != "" {
		if _, err := os.Stat(path); err == nil {
			out = append(out, layer{path, load(file.Provider(path), yaml.Parser())})
		}
	}
	env := load(env.Provider(".", env.Opt{Prefix: "ARCADE_", TransformFunc: func(key, value string) (string, any) {
		key = strings.ToLower(strings.TrimPrefix(key, "ARCADE_"))
		if nested, ok := nestedKeys[key]; ok {
			key = nested
		}
		return key, value
	}}), nil)
	out = append(out, layer{"environment", env})
	return out
}

// showEffectiveDefaults makes the flags' defaults in help the values a run
// would use without flags: defaults, overridden by the config file and the
// ARCADE_* environment, naming where a value comes from. Secrets are never
// shown.
func showEffectiveDefaults(flags *pflag.FlagSet, defaults map[string]any, configPath string, only func(name string) bool) {
	layers := settingLayers(defaults, configPath)
	flags.VisitAll(func(f *pflag.Flag) {
		if only != nil && !only(f.Name) {
			return
		}
		key := strings.ReplaceAll(f.Name, "-", "_")
		if nested, ok := nestedKeys[key]; ok {
			key = nested
		}
		if f.Name == "label" {
			key = "labels"
		}
		if secretSettings[key] || f.Name == "config" {
			return
		}
		var (
			val  any
			from string
		)
		for _, l := range layers {
			v, ok := lookup(l.values, key)
			switch {
			case !ok:
			case l.name == "environment":
				val, from = v, "ARCADE_"+strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
			default:
				val, from = v, l.name
			}
		}
		text := settingText(val)
		if f.Value.Type() == "duration" {
			if d, err := time.ParseDuration(text); err == nil {
				text = d.String()
			}
		}
		if from == "" || val == nil || text == f.DefValue {
			return // the flag's own default
		}
		f.DefValue = text
		f.Usage += " [default from " + from + "]"
	})
}

// settingText writes a setting as a flag would take it.
func settingText(v any) string {
	switch v := v.(type) {
	case []any:
		parts := make([]string, len(v))
		for i, p := range v {
			parts[i] = fmt.Sprint(p)
		}
		return "[" + strings.Join(parts, ",") + "]"
	case []string:
		return "[" + strings.Join(v, ",") + "]"
	case map[string]any:
		parts := make([]string, 0, len(v))
		for k, val := range v {
			parts = append(parts, fmt.Sprintf("%s=%v", k, val))
		}
		sortStrings(parts)
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v)
}

// lookup finds key in flattened settings; a map setting (labels) is
// gathered from its flattened keys.
func lookup(values map[string]any, key string) (any, bool) {
	if v, ok := values[key]; ok {
		return v, true
	}
	m := map[string]any{}
	for k, v := range values {
		if rest, ok := strings.CutPrefix(k, key+"."); ok {
			m[rest] = v
		}
	}
	return m, len(m) > 0
}

// withEffectiveHelp makes a command's help show effective defaults (see
// showEffectiveDefaults), reading the config file its flag configFlag names.
func withEffectiveHelp(cmd *cobra.Command, configFlag string, defaults map[string]any, only func(name string) bool) {
	help := cmd.HelpFunc()
	cmd.SetHelpFunc(func(c *cobra.Command, args []string) {
		path, _ := c.Flags().GetString(configFlag)
		showEffectiveDefaults(c.Flags(), defaults, path, only)
		help(c, args)
	})
}
