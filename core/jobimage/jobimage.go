// Package jobimage holds what a job that runs in a container image says
// about it: the image reference, the pull policy, the registry credential's
// secret, limits (cpus, memory), the network mode and service containers.
// It reads them from job and pipeline files and checks them, for CreateJob
// and CreatePipeline to refuse bad ones with the field named.
package jobimage

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
)

// Bounds of the options.
const (
	MaxServices     = 10
	MaxCPUs         = 1024
	MinMemoryBytes  = 6 << 20 // the Docker engine refuses less
	MaxReadyTimeout = time.Hour
	maxRefLength    = 512
)

// Error is a bad option, with the field it is in.
type Error struct {
	Field  string
	Reason string
}

func (e *Error) Error() string { return e.Field + ": " + e.Reason }

func errorf(field, format string, args ...any) *Error {
	return &Error{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// YAML is the container part of a job in job and pipeline files, inline
// with the job's other keys:
//
//	image: golang:1.22
//	pull: always              # if-not-present (default), always, never
//	registry_auth: REGISTRY   # the name of one of the job's secrets
//	cpus: 1.5
//	memory: 512m              # b, k, m, g (powers of 1024)
//	network: none             # default: a network of the job alone
//	services:
//	  - name: db
//	    image: postgres:16
//	    env: {POSTGRES_PASSWORD: test}
//	    command: [postgres, -c, fsync=off]
//	    ready: {port: 5432, command: pg_isready, timeout: 60s}
type YAML struct {
	Pull         string        `yaml:"pull"`
	RegistryAuth string        `yaml:"registry_auth"`
	CPUs         float64       `yaml:"cpus"`
	Memory       string        `yaml:"memory"`
	Network      string        `yaml:"network"`
	Services     []ServiceYAML `yaml:"services"`
}

// ServiceYAML is one service container.
type ServiceYAML struct {
	Name    string            `yaml:"name"`
	Image   string            `yaml:"image"`
	Env     map[string]string `yaml:"env"`
	Command []string          `yaml:"command"`
	Ready   struct {
		Port    int32  `yaml:"port"`
		Command string `yaml:"command"`
		Timeout string `yaml:"timeout"`
	} `yaml:"ready"`
}

// Proto converts the options; nil when none is set. prefix names the job
// in errors ("stages[0].jobs[1]").
func (y YAML) Proto(prefix string) (*agentv1.ContainerOptions, error) {
	field := func(f string) string {
		if prefix == "" {
			return f
		}
		return prefix + "." + f
	}
	o := &agentv1.ContainerOptions{RegistryAuthSecret: y.RegistryAuth, Cpus: y.CPUs, NetworkMode: y.Network}
	var err error
	if o.PullPolicy, err = ParsePullPolicy(y.Pull); err != nil {
		return nil, errorf(field("pull"), "%v", err)
	}
	if strings.TrimSpace(y.Memory) != "" {
		if o.MemoryBytes, err = ParseMemory(y.Memory); err != nil {
			return nil, errorf(field("memory"), "%v", err)
		}
	}
	for i, s := range y.Services {
		sf := field(fmt.Sprintf("services[%d]", i))
		svc := &agentv1.ServiceContainer{Name: s.Name, Image: s.Image, Env: s.Env, Command: s.Command,
			ReadyPort: s.Ready.Port, ReadyCommand: s.Ready.Command}
		if t := strings.TrimSpace(s.Ready.Timeout); t != "" {
			d, err := time.ParseDuration(t)
			if err != nil {
				return nil, errorf(sf+".ready.timeout", "not a duration (like 30s): %q", s.Ready.Timeout)
			}
			svc.ReadyTimeout = durationpb.New(d)
		}
		o.Services = append(o.Services, svc)
	}
	if o.PullPolicy == 0 && o.RegistryAuthSecret == "" && o.Cpus == 0 && o.MemoryBytes == 0 && o.NetworkMode == "" && len(o.Services) == 0 {
		return nil, nil
	}
	return o, nil
}

// ParsePullPolicy reads if-not-present, always or never ("" is the
// default, if-not-present).
func ParsePullPolicy(s string) (agentv1.PullPolicy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return agentv1.PullPolicy_PULL_POLICY_UNSPECIFIED, nil
	case "if-not-present", "if_not_present", "missing":
		return agentv1.PullPolicy_PULL_POLICY_IF_NOT_PRESENT, nil
	case "always":
		return agentv1.PullPolicy_PULL_POLICY_ALWAYS, nil
	case "never":
		return agentv1.PullPolicy_PULL_POLICY_NEVER, nil
	}
	return 0, fmt.Errorf("unknown pull policy %q; want if-not-present, always or never", s)
}

// PullPolicyName is the file form of a pull policy.
func PullPolicyName(p agentv1.PullPolicy) string {
	switch p {
	case agentv1.PullPolicy_PULL_POLICY_ALWAYS:
		return "always"
	case agentv1.PullPolicy_PULL_POLICY_NEVER:
		return "never"
	}
	return "if-not-present"
}

var memoryRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(i?b?)$`)

// ParseMemory reads a memory size: a number of bytes, or with a unit k, m,
// g or t (powers of 1024; "512m", "1.5g", "64MiB").
func ParseMemory(s string) (int64, error) {
	m := memoryRE.FindStringSubmatch(strings.ToLower(strings.TrimSpace(s)))
	if m == nil {
		return 0, fmt.Errorf("not a memory size (like 512m or 2g): %q", s)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("not a memory size: %q", s)
	}
	mult := map[string]float64{"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m[2]]
	b := v * mult
	if b > math.MaxInt64/2 {
		return 0, fmt.Errorf("memory size %q is too large", s)
	}
	return int64(b), nil
}

// varRef is a reference to a variable of the job's env in an image:
// ${NAME}.
var varRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// Expand replaces each ${NAME} in an image reference of a pipeline job by
// the value of NAME in env (the job's env with the run's parameters: see
// pipeline.EnvFor); an unknown NAME becomes "".
func Expand(ref string, env map[string]string) string {
	if !strings.Contains(ref, "${") {
		return ref
	}
	return varRef.ReplaceAllStringFunc(ref, func(m string) string { return env[m[2:len(m)-1]] })
}

// ExpandOptions returns o with its services' images expanded (o itself
// is not changed); nil for nil.
func ExpandOptions(o *agentv1.ContainerOptions, env map[string]string) *agentv1.ContainerOptions {
	if o == nil {
		return nil
	}
	o = proto.Clone(o).(*agentv1.ContainerOptions)
	for _, s := range o.GetServices() {
		s.Image = Expand(s.GetImage(), env)
	}
	return o
}

// CheckImage checks an image reference ("golang:1.22",
// "127.0.0.1:5000/team/app@sha256:…"), which may hold ${NAME} references
// to the job's env (a pipeline's parameters): it must then be valid
// whatever non-empty names they expand to.
func CheckImage(field, ref string) error {
	if ref == "" {
		return errorf(field, "must not be empty")
	}
	if len(ref) > maxRefLength {
		return errorf(field, "longer than %d characters", maxRefLength)
	}
	if strings.TrimSpace(ref) != ref {
		return errorf(field, "has spaces around it: %q", ref)
	}
	sample := varRef.ReplaceAllString(ref, "x")
	if strings.Contains(sample, "${") || strings.Contains(sample, "$(") {
		return errorf(field, "a reference to a variable is written ${NAME}: %q", ref)
	}
	if _, err := reference.ParseNormalizedNamed(sample); err != nil {
		return errorf(field, "not a valid image reference %q: %v", ref, err)
	}
	return nil
}

// CheckExpanded checks an image reference once its ${NAME} references were
// expanded (see Expand); ref is the reference as written, for the message.
func CheckExpanded(field, ref, expanded string) error {
	if ref == expanded {
		return CheckImage(field, ref)
	}
	if strings.TrimSpace(expanded) == "" {
		return errorf(field, "%q expands to nothing: set its variables (pipeline env or run parameters)", ref)
	}
	if _, err := reference.ParseNormalizedNamed(expanded); err != nil || len(expanded) > maxRefLength {
		return errorf(field, "%q expands to %q, not a valid image reference", ref, expanded)
	}
	return nil
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Check checks the image and options of a job; prefix names the job in
// errors ("" for CreateJob, "stages[0].jobs[1]" in a pipeline), hasSecret
// tells whether the job has a secret of a name.
func Check(prefix, image string, o *agentv1.ContainerOptions, hasSecret func(string) bool) error {
	field := func(f string) string {
		if prefix == "" {
			return f
		}
		return prefix + "." + f
	}
	if image == "" {
		if o != nil {
			return errorf(field("container"), "container options need an image")
		}
		return nil
	}
	if err := CheckImage(field("image"), image); err != nil {
		return err
	}
	if o == nil {
		return nil
	}
	cf := func(f string) string { return field("container." + f) }
	if _, ok := agentv1.PullPolicy_name[int32(o.GetPullPolicy())]; !ok {
		return errorf(cf("pull_policy"), "unknown pull policy %d", o.GetPullPolicy())
	}
	if s := o.GetRegistryAuthSecret(); s != "" && (hasSecret == nil || !hasSecret(s)) {
		return errorf(cf("registry_auth_secret"), "names no secret of the job: %q", s)
	}
	if c := o.GetCpus(); c < 0 || c > MaxCPUs || math.IsNaN(c) {
		return errorf(cf("cpus"), "must be between 0 (no limit) and %d, got %v", MaxCPUs, c)
	}
	if m := o.GetMemoryBytes(); m != 0 && m < MinMemoryBytes {
		return errorf(cf("memory_bytes"), "must be 0 (no limit) or at least %d (6 MiB), got %d", MinMemoryBytes, m)
	}
	switch o.GetNetworkMode() {
	case "", "none", "host", "bridge":
	default:
		return errorf(cf("network_mode"), `want "" (the job's own network), none, host or bridge, got %q`, o.GetNetworkMode())
	}
	svcs := o.GetServices()
	if len(svcs) > 0 && o.GetNetworkMode() != "" {
		return errorf(cf("services"), "services need the job's own network (network_mode unset), got %q", o.GetNetworkMode())
	}
	if len(svcs) > MaxServices {
		return errorf(cf("services"), "at most %d services, got %d", MaxServices, len(svcs))
	}
	seen := map[string]bool{}
	for i, s := range svcs {
		sf := func(f string) string { return cf(fmt.Sprintf("services[%d].%s", i, f)) }
		if !dnsLabel.MatchString(s.GetName()) {
			return errorf(sf("name"), "want a DNS label (lower-case letters, digits, '-'), got %q", s.GetName())
		}
		if seen[s.GetName()] {
			return errorf(sf("name"), "service %q is named twice", s.GetName())
		}
		seen[s.GetName()] = true
		if err := CheckImage(sf("image"), s.GetImage()); err != nil {
			return err
		}
		for k := range s.GetEnv() {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				return errorf(sf(fmt.Sprintf("env[%q]", k)), "not a valid variable name")
			}
		}
		if p := s.GetReadyPort(); p < 0 || p > 65535 {
			return errorf(sf("ready_port"), "want 1-65535, got %d", p)
		}
		if d := s.GetReadyTimeout().AsDuration(); d < 0 || d > MaxReadyTimeout {
			return errorf(sf("ready_timeout"), "want at most %s, got %s", MaxReadyTimeout, d)
		}
	}
	return nil
}
