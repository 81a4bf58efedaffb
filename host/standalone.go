package host

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
)

// Module is the serving version of a plugin as agents fetch it: its bytes and
// what the operator granted it.
type Module struct {
	Name    string
	Version string
	Kind    string // ci, cd, security, notify, storage or custom
	SHA256  string
	// Data is the module's content; callers must not modify it.
	Data []byte
	// Signature is the module's ed25519 signature (raw), nil when unsigned.
	Signature []byte
	Config    map[string]string
	// SecretConfig are the config values taken from stored secrets: sent to
	// agents with jobs only, never shown.
	SecretConfig   map[string]string
	AllowedHosts   []string
	Timeout        time.Duration
	MemoryLimitMiB uint32
	// Params are the with: parameters the module declares (none: not
	// checked).
	Params []*pluginv1.PluginInput
}

// Module returns the version serving now, with its bytes.
func (p *Plugin) Module() (*Module, error) {
	v, err := p.acquire()
	if err != nil {
		return nil, err
	}
	defer v.leave()
	return &Module{
		Name: p.name, Version: v.meta.GetVersion(), Kind: KindName(v.meta.GetKind()), SHA256: v.sha256,
		Data: v.data, Signature: v.shipSig, Config: v.spec.Config, SecretConfig: v.secretConfig,
		AllowedHosts:   slices.Clone(v.spec.Grants.AllowedHosts),
		Timeout:        time.Duration(v.spec.Grants.Timeout),
		MemoryLimitMiB: v.spec.Grants.MemoryLimitMiB,
		Params:         v.meta.GetParams(),
	}, nil
}

// Runner loads modules one at a time outside any Manager, for the agent's
// job steps: each step loads the module it was handed with that step's
// grants (the job workspace among them), calls it and closes it. Runners
// share nothing but the compilation cache, so a module compiled once (on
// disk, with WithCacheDir) loads again in milliseconds. A Runner is safe for
// concurrent use.
type Runner struct {
	c      compiler
	mu     sync.Mutex
	closed bool
}

// NewRunner returns a Runner that logs to logger (nil: discard) and keeps its
// compilation cache where WithCacheDir says. Only WithCacheDir and
// WithCompilationWorkers apply.
func NewRunner(logger *slog.Logger, opts ...Option) *Runner {
	logger, o := setUp(logger, opts)
	var cache wazero.CompilationCache
	if o.cacheDir != "-" {
		c, err := wazero.NewCompilationCacheWithDir(o.cacheDir)
		if err != nil {
			logger.Warn("plugin compilation cache unavailable, compiling in memory", "dir", o.cacheDir, "err", err)
		} else {
			cache = c
		}
	}
	if cache == nil {
		cache = wazero.NewCompilationCache()
	}
	return &Runner{c: compiler{cache: cache, workers: o.workers, logger: logger}}
}

// Loaded is one module loaded by a Runner. Calls are safe for concurrent
// use; Close releases it.
type Loaded struct {
	name string
	v    *version
	log  *slog.Logger
}

// Load checks (wasm, the sha256 spec pins) and compiles data with the grants
// of spec, and calls its metadata. spec.Path is not read; limits left at zero
// take the defaults. Signatures are the caller's business (VerifyModule). A
// refusal is an *Error naming the plugin and the reason.
func (r *Runner) Load(ctx context.Context, spec Spec, data []byte) (*Loaded, error) {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, &Error{Plugin: spec.Name, Reason: ErrClosed}
	}
	if spec.Path == "" {
		spec.Path = spec.Name + ".wasm" // for messages; never read
	}
	var c Config
	c.applyDefaults("")
	spec.applyLimits(c.Defaults)
	for i := range spec.Grants.AllowedPaths {
		if spec.Grants.AllowedPaths[i].Mode == "" {
			spec.Grants.AllowedPaths[i].Mode = "ro"
		}
	}
	if err := spec.validate(); err != nil {
		return nil, &Error{Plugin: spec.Name, Reason: ErrInvalidModule, Detail: err.Error(), Err: err}
	}
	sum, err := checkModule(&spec, data, "module "+spec.Name)
	if err != nil {
		return nil, err
	}
	v, err := compileVersion(ctx, r.c, spec, nil, data, sum)
	if err != nil {
		return nil, err
	}
	return &Loaded{name: spec.Name, v: v, log: r.c.logger}, nil
}

// Metadata is what the module declared.
func (l *Loaded) Metadata() *pluginv1.PluginMetadata { return l.v.meta }

// SHA256 is the module's digest (hex).
func (l *Loaded) SHA256() string { return l.v.sha256 }

// Call calls one of the functions the module declares with a raw (protojson)
// input. Output, log lines, stdout and stderr go to the logger of ctx
// (WithLogger). A failure is an *Error: a trap, a timeout or the memory
// limit ends the call with the host's condensed message.
func (l *Loaded) Call(ctx context.Context, function string, input []byte) ([]byte, error) {
	if !slices.Contains(l.v.meta.GetFunctions(), function) {
		return nil, &Error{Plugin: l.name, Function: function, Reason: ErrUnknownFunction,
			Detail: fmt.Sprintf("%s is not among the functions the plugin declares (%v)", function, l.v.meta.GetFunctions())}
	}
	if !l.v.enter() {
		return nil, &Error{Plugin: l.name, Function: function, Reason: ErrClosed}
	}
	defer l.v.leave()
	return callOn(ctx, l.v, l.name, l.log, function, input)
}

// Close releases the module once its calls in flight end.
func (l *Loaded) Close() { l.v.retire() }

// Close releases the compilation cache; modules loaded must be closed first.
func (r *Runner) Close(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	return r.c.cache.Close(ctx)
}
