package host

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gobwas/glob"
	"go.yaml.in/yaml/v3"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	"github.com/go-arcade/arcade/host/pluginoci"
)

// Defaults applied where conf.d/plugins.yaml says nothing. A timeout is
// always set: the Extism SDK interrupts a running call only when there is one.
const (
	DefaultTimeout        = 30 * time.Second
	DefaultMemoryLimitMiB = 64
	DefaultMaxInstances   = 4
	// DefaultLogLines and DefaultLogBytes bound what one call may log.
	DefaultLogLines = 10_000
	DefaultLogBytes = 1 << 20
	// DefaultMaxModuleBytes bounds a module file (and a module an agent
	// fetches): larger ones are refused before they are read.
	DefaultMaxModuleBytes = 64 << 20
	// maxHTTPResponseBytes and maxVarBytes bound what a plugin may receive
	// over HTTP and keep in plugin variables.
	maxHTTPResponseBytes = 16 << 20
	maxVarBytes          = 1 << 20
	// minMemoryLimitMiB: a plain-Go plugin declares 2 MiB of initial memory.
	minMemoryLimitMiB = 4
)

// Config is conf.d/plugins.yaml as a typed value.
type Config struct {
	// CacheDir holds wazero's compilation cache; empty means the Manager's
	// default (see WithCacheDir).
	CacheDir string `yaml:"cache_dir"`
	// Defaults apply to every plugin that does not set its own limits.
	Defaults Limits `yaml:"defaults"`
	// TrustedKeys are the base64 ed25519 public keys plugin signatures are
	// checked against (see signature.go). With keys, a signature present is
	// always checked.
	TrustedKeys []string `yaml:"trusted_keys"`
	// RequireSignatures refuses every module not signed by a trusted key.
	RequireSignatures bool `yaml:"require_signatures"`
	// SignatureMode is "enforce" (require_signatures: true), "warn" or
	// empty. warn loads an unsigned module but reports, in its listing
	// and the log, that enforce would refuse it: a dry run before turning
	// enforcement on. A bad signature is refused in every mode.
	SignatureMode string `yaml:"signature_mode"`
	// MaxModuleBytes bounds a module's size; a larger file is refused
	// before it is read (default DefaultMaxModuleBytes).
	MaxModuleBytes int64 `yaml:"max_module_bytes"`
	// OCI says how plugins with an oci:// source are pulled.
	OCI     OCIConfig `yaml:"oci"`
	Plugins []Spec    `yaml:"plugins"`

	keys []ed25519.PublicKey // TrustedKeys, parsed by validate
}

// OCIConfig says how modules are pulled from OCI registries.
type OCIConfig struct {
	// PlainHTTP speaks http to the registries (one on loopback).
	PlainHTTP bool `yaml:"plain_http"`
	// DockerConfig is the docker config.json holding the registries'
	// credentials (relative to the config file); empty means docker's own
	// ($DOCKER_CONFIG or ~/.docker/config.json), none when it is missing.
	DockerConfig string `yaml:"docker_config"`
	// PollInterval is how often a tag is resolved again to follow it when
	// it moves (default DefaultOCIPollInterval; at least a second).
	PollInterval Duration `yaml:"poll_interval"`
}

// DefaultOCIPollInterval is how often oci:// tags are checked by default.
const DefaultOCIPollInterval = time.Minute

// Limits bound a plugin's resources.
type Limits struct {
	// Timeout bounds one call (a Go duration, e.g. "10s").
	Timeout Duration `yaml:"timeout"`
	// MemoryLimitMiB bounds the plugin's linear memory.
	MemoryLimitMiB uint32 `yaml:"memory_limit_mib"`
	// MaxInstances bounds the instances, hence the concurrent calls.
	MaxInstances int `yaml:"max_instances"`
	// LogLines and LogBytes bound what one call may log (log lines,
	// stdout and stderr); the rest is dropped, and counted in one line.
	LogLines int `yaml:"log_lines"`
	LogBytes int `yaml:"log_bytes"`
}

// Spec is one plugin entry of conf.d/plugins.yaml.
type Spec struct {
	Name string `yaml:"name"`
	// Path is the .wasm file; relative paths are relative to the config file.
	Path string `yaml:"path"`
	// Source, instead of Path, pulls the module from an OCI registry:
	// oci://REG/REPO:TAG (followed when the tag moves) or
	// oci://REG/REPO@sha256:… (pinned). Its signature comes with it.
	Source string `yaml:"source"`
	// RegistryAuth, with Source, names the stored secret (a global one)
	// holding the registry's credential: user:password, or a docker config
	// JSON with an entry for the registry. It is read at each pull and tag
	// poll, wins over oci.docker_config for that registry and is never
	// shown; a host without a secret resolver refuses it.
	RegistryAuth string `yaml:"registry_auth"`
	// Kind is ci, cd, security, notify, storage or custom; empty for a plugin
	// found in a watched folder, whose kind its metadata decides.
	Kind string `yaml:"kind"`
	// Version, when set, must equal the version the module declares.
	Version string `yaml:"version"`
	// SHA256, when set, pins the module's content (hex).
	SHA256 string `yaml:"sha256"`
	// Signature, when set, is the module's base64 ed25519 signature, used
	// instead of the NAME.wasm.sig file beside it.
	Signature string `yaml:"signature"`
	// Enabled defaults to true.
	Enabled *bool `yaml:"enabled"`
	// FailurePolicy is "fail_closed" (the default) or "fail_open".
	FailurePolicy string `yaml:"failure_policy"`
	// Config is handed to the plugin (the kernel's config_get).
	Config map[string]string `yaml:"config"`
	// Secrets are config values taken from the server's stored secrets
	// (global ones), by name: config key → secret name. They are resolved
	// at each load (a missing secret fails the load, naming it) and never
	// shown; a host without a secret resolver refuses them.
	Secrets map[string]string `yaml:"secrets"`
	Grants  Grants            `yaml:"grants"`
}

// Grants are the capabilities the operator grants a plugin. Zero values
// grant nothing; limits left at zero take the defaults.
type Grants struct {
	AllowedHosts []string    `yaml:"allowed_hosts"`
	AllowedPaths []PathGrant `yaml:"allowed_paths"`
	Limits       `yaml:",inline"`
}

// PathGrant mounts a host directory into the sandbox.
type PathGrant struct {
	Host  string `yaml:"host"`
	Guest string `yaml:"guest"`
	// Mode is "ro" (the default) or "rw".
	Mode string `yaml:"mode"`
}

// Duration is a time.Duration written as "10s" in YAML.
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// LoadConfig reads, defaults and validates a plugins.yaml.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("plugins config: %w", err)
	}
	cfg, err := ParseConfig(data, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("plugins config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig parses a plugins.yaml; relative plugin paths and cache_dir are
// resolved against baseDir. The result has its defaults applied.
func ParseConfig(data []byte, baseDir string) (*Config, error) {
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	cfg.applyDefaults(baseDir)
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func (c *Config) applyDefaults(baseDir string) {
	if c.Defaults.Timeout <= 0 {
		c.Defaults.Timeout = Duration(DefaultTimeout)
	}
	if c.Defaults.MemoryLimitMiB == 0 {
		c.Defaults.MemoryLimitMiB = DefaultMemoryLimitMiB
	}
	if c.Defaults.MaxInstances <= 0 {
		c.Defaults.MaxInstances = DefaultMaxInstances
	}
	if c.Defaults.LogLines <= 0 {
		c.Defaults.LogLines = DefaultLogLines
	}
	if c.Defaults.LogBytes <= 0 {
		c.Defaults.LogBytes = DefaultLogBytes
	}
	if c.MaxModuleBytes <= 0 {
		c.MaxModuleBytes = DefaultMaxModuleBytes
	}
	if c.OCI.PollInterval <= 0 {
		c.OCI.PollInterval = Duration(DefaultOCIPollInterval)
	}
	if c.OCI.DockerConfig != "" && !filepath.IsAbs(c.OCI.DockerConfig) {
		c.OCI.DockerConfig = filepath.Join(baseDir, c.OCI.DockerConfig)
	}
	if c.CacheDir != "" && !filepath.IsAbs(c.CacheDir) {
		c.CacheDir = filepath.Join(baseDir, c.CacheDir)
	}
	for i := range c.Plugins {
		p := &c.Plugins[i]
		if p.Path != "" && !filepath.IsAbs(p.Path) {
			p.Path = filepath.Join(baseDir, p.Path)
		}
		p.applyLimits(c.Defaults)
		for j := range p.Grants.AllowedPaths {
			g := &p.Grants.AllowedPaths[j]
			if g.Mode == "" {
				g.Mode = "ro"
			}
			if g.Host != "" && !filepath.IsAbs(g.Host) {
				g.Host = filepath.Join(baseDir, g.Host)
			}
		}
	}
}

func (s *Spec) applyLimits(d Limits) {
	if s.Grants.Timeout <= 0 {
		s.Grants.Timeout = d.Timeout
	}
	if s.Grants.MemoryLimitMiB == 0 {
		s.Grants.MemoryLimitMiB = d.MemoryLimitMiB
	}
	if s.Grants.MaxInstances <= 0 {
		s.Grants.MaxInstances = d.MaxInstances
	}
	if s.Grants.LogLines <= 0 {
		s.Grants.LogLines = d.LogLines
	}
	if s.Grants.LogBytes <= 0 {
		s.Grants.LogBytes = d.LogBytes
	}
	if s.FailurePolicy == "" {
		s.FailurePolicy = "fail_closed"
	}
}

func (c *Config) validate() error {
	var errs []error
	c.keys = nil
	for i, k := range c.TrustedKeys {
		pub, err := ParsePublicKey(k)
		if err != nil {
			errs = append(errs, fmt.Errorf("trusted_keys[%d]: %w", i, err))
			continue
		}
		c.keys = append(c.keys, pub)
	}
	switch c.SignatureMode {
	case "":
	case SignatureEnforce:
		c.RequireSignatures = true
	case SignatureWarn:
		if c.RequireSignatures {
			errs = append(errs, errors.New("signature_mode: warn and require_signatures: true contradict each other"))
		}
		if len(c.TrustedKeys) == 0 {
			errs = append(errs, errors.New("signature_mode is warn but trusted_keys is empty"))
		}
	default:
		errs = append(errs, fmt.Errorf("signature_mode %q: want enforce or warn", c.SignatureMode))
	}
	if c.RequireSignatures && len(c.TrustedKeys) == 0 {
		errs = append(errs, errors.New("require_signatures is on but trusted_keys is empty"))
	}
	if time.Duration(c.OCI.PollInterval) < time.Second {
		errs = append(errs, fmt.Errorf("oci.poll_interval %s: at least 1s", time.Duration(c.OCI.PollInterval)))
	}
	seen := map[string]bool{}
	for i, p := range c.Plugins {
		where := fmt.Sprintf("plugins[%d]", i)
		if p.Name != "" {
			where += " (" + p.Name + ")"
		}
		if err := p.validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		}
		if seen[p.Name] {
			errs = append(errs, fmt.Errorf("%s: duplicate name", where))
		}
		seen[p.Name] = true
	}
	return errors.Join(errs...)
}

func (s *Spec) validate() error {
	var errs []error
	if s.Name == "" {
		errs = append(errs, errors.New("name is required"))
	} else if strings.ContainsAny(s.Name, " /\\\t\n") {
		errs = append(errs, fmt.Errorf("name %q has a space or slash", s.Name))
	}
	switch {
	case s.Path == "" && s.Source == "":
		errs = append(errs, errors.New("path or source is required"))
	case s.Path != "" && s.Source != "":
		errs = append(errs, errors.New("path and source are both set: a module comes from one"))
	case s.Source != "" && !strings.HasPrefix(s.Source, pluginoci.Scheme):
		errs = append(errs, fmt.Errorf("source %q: want oci://REGISTRY/REPOSITORY:TAG or @sha256:DIGEST", s.Source))
	case s.Source != "":
		if _, err := pluginoci.ParseReference(s.Source); err != nil {
			errs = append(errs, fmt.Errorf("source: %w", err))
		}
	}
	switch {
	case s.RegistryAuth == "":
	case s.Source == "":
		errs = append(errs, errors.New("registry_auth: only for an entry with an oci:// source (it names the registry's credential)"))
	case !secretRef.MatchString(s.RegistryAuth):
		errs = append(errs, fmt.Errorf("registry_auth: %q is not a secret name", s.RegistryAuth))
	}
	if s.Kind != "" {
		if _, ok := ParseKind(s.Kind); !ok {
			errs = append(errs, fmt.Errorf("unknown kind %q (want ci, cd, security, notify, storage or custom)", s.Kind))
		}
	}
	if s.SHA256 != "" && (len(s.SHA256) != 64 || strings.Trim(strings.ToLower(s.SHA256), "0123456789abcdef") != "") {
		errs = append(errs, fmt.Errorf("sha256 %q is not 64 hex digits", s.SHA256))
	}
	if s.Signature != "" {
		if _, err := ParseSignature([]byte(s.Signature)); err != nil {
			errs = append(errs, fmt.Errorf("signature: %w", err))
		}
	}
	for key, name := range s.Secrets {
		switch {
		case key == "":
			errs = append(errs, errors.New("secrets: a config key is empty"))
		case !secretRef.MatchString(name):
			errs = append(errs, fmt.Errorf("secrets: %s: %q is not a secret name", key, name))
		}
		if _, ok := s.Config[key]; ok {
			errs = append(errs, fmt.Errorf("secrets: %s is also set in config", key))
		}
	}
	if !slices.Contains([]string{"fail_closed", "fail_open"}, s.FailurePolicy) {
		errs = append(errs, fmt.Errorf("failure_policy %q (want fail_closed or fail_open)", s.FailurePolicy))
	}
	if s.Grants.MemoryLimitMiB < minMemoryLimitMiB || s.Grants.MemoryLimitMiB > 4096 {
		errs = append(errs, fmt.Errorf("memory_limit_mib %d out of range [%d, 4096]", s.Grants.MemoryLimitMiB, minMemoryLimitMiB))
	}
	for _, h := range s.Grants.AllowedHosts {
		if h == "" || strings.Contains(h, "/") {
			errs = append(errs, fmt.Errorf("allowed_hosts: %q is not a host name", h))
		} else if _, err := glob.Compile(h); err != nil {
			errs = append(errs, fmt.Errorf("allowed_hosts: %q: %w", h, err))
		}
	}
	guests := map[string]bool{}
	for _, g := range s.Grants.AllowedPaths {
		switch {
		case g.Host == "" || g.Guest == "":
			errs = append(errs, errors.New("allowed_paths: host and guest are required"))
		case !strings.HasPrefix(g.Guest, "/"):
			errs = append(errs, fmt.Errorf("allowed_paths: guest path %q is not absolute", g.Guest))
		case g.Mode != "ro" && g.Mode != "rw":
			errs = append(errs, fmt.Errorf("allowed_paths: mode %q (want ro or rw)", g.Mode))
		case guests[g.Guest]:
			errs = append(errs, fmt.Errorf("allowed_paths: guest path %q granted twice", g.Guest))
		}
		guests[g.Guest] = true
	}
	return errors.Join(errs...)
}

// maxModuleBytes is MaxModuleBytes, or its default when unset.
func (c *Config) maxModuleBytes() int64 {
	if c == nil || c.MaxModuleBytes <= 0 {
		return DefaultMaxModuleBytes
	}
	return c.MaxModuleBytes
}

// secretRef is the form of a stored secret's name.
var secretRef = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// IsEnabled reports whether the plugin is to be loaded.
func (s *Spec) IsEnabled() bool { return s.Enabled == nil || *s.Enabled }

// FailOpen reports whether a failed call is logged and skipped rather than
// failing the caller.
func (s *Spec) FailOpen() bool { return s.FailurePolicy == "fail_open" }

// kind returns the configured kind, KIND_UNSPECIFIED when none.
func (s *Spec) kind() pluginv1.Kind {
	k, _ := ParseKind(s.Kind)
	return k
}

// equal reports whether two specs load the same way.
func (s *Spec) equal(o *Spec) bool {
	return reflect.DeepEqual(s, o)
}

// MarshalYAML writes the duration as "10s".
func (d Duration) MarshalYAML() (any, error) {
	return time.Duration(d).String(), nil
}
