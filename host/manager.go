package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	extism "github.com/extism/go-sdk"
	"github.com/tetratelabs/wazero"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
)

// Plugin sources: an entry of plugins.yaml, or a .wasm found in a watched
// folder (which gets no grants and the default limits).
const (
	sourceConfig = "config"
	sourceDir    = "dir"
)

// Manager loads, serves and hot-reloads plugins. It is safe for concurrent
// use.
type Manager struct {
	logger *slog.Logger
	opts   options
	subs   subscribers

	// opMu guards the manager's state (configuration, plugins loaded or
	// not); loads hold it except while they compile and call metadata, so
	// plugins load side by side. Calls never take it.
	opMu        sync.Mutex
	cache       wazero.CompilationCache
	cfg         *Config
	cfgPath     string
	initialized bool
	closed      bool

	mu      sync.RWMutex // guards plugins
	plugins map[string]*Plugin

	watchMu sync.Mutex
	watch   *watcher

	// ctx ends when the manager closes: loads in progress stop with it.
	ctx    context.Context
	cancel context.CancelFunc
	// loads bounds the loads compiling at once.
	loads chan struct{}
	// oci follows the tags of oci:// plugins.
	oci ociPoller
}

// maxParallelLoads is how many plugins compile (and answer metadata) at
// once; a plugin stuck in metadata holds one slot until its timeout.
const maxParallelLoads = 8

// setUp is what NewManager and NewRunner share: the logger (nil: discard),
// the options, and the SDK's log level. The SDK drops plugin log lines
// below a process-wide level, unset by default (all dropped); debug and
// above go through, and the call's logger decides what it keeps. (Trace
// stays off: the SDK writes its own trace lines to the standard logger
// while it creates an instance.)
func setUp(logger *slog.Logger, opts []Option) (*slog.Logger, options) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	extism.SetLogLevel(extism.LogLevelDebug)
	return logger, o
}

// NewManager returns a Manager that logs to logger (nil: discard). Call
// LoadPluginsFromConfig and Init to load plugins.
func NewManager(logger *slog.Logger, opts ...Option) *Manager {
	logger, o := setUp(logger, opts)
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{
		logger:  logger,
		opts:    o,
		cfg:     &Config{},
		plugins: map[string]*Plugin{},
		ctx:     ctx,
		cancel:  cancel,
		loads:   make(chan struct{}, maxParallelLoads),
	}
}

// LoadPluginsFromConfig reads conf.d/plugins.yaml. Before Init it only
// records the configuration; after Init it applies the differences at once:
// new plugins load, removed or disabled ones unload, changed ones reload. An
// invalid file is refused and the current configuration stays.
func (m *Manager) LoadPluginsFromConfig(path string) error {
	return m.loadConfig(context.Background(), path)
}

// loadConfig is LoadPluginsFromConfig; its loads stop when ctx ends.
func (m *Manager) loadConfig(ctx context.Context, path string) error {
	cfg, err := LoadConfig(path)
	if err != nil {
		m.emit(Event{Type: EventConfigRejected, Path: path, Err: err})
		return err
	}
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if m.closed {
		return ErrClosed
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	m.cfgPath = abs
	if !m.initialized {
		m.cfg = cfg
		m.syncWatchedFiles()
		return nil
	}
	if err := m.dependencyLossLocked(cfg); err != nil {
		err = fmt.Errorf("plugins config %s: edit refused, the running configuration stays: %w", path, err)
		m.emit(Event{Type: EventConfigRejected, Path: path, Err: err})
		return err
	}
	err = m.applyConfigLocked(ctx, cfg)
	m.syncWatchedFiles()
	return err
}

// Init loads every enabled plugin of the configuration. A plugin that fails
// to load is reported (in the returned error and as an event) and the others
// load regardless.
func (m *Manager) Init(ctx context.Context) error {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.initialized = true
	m.startOCIPoll()
	var loads []load
	for _, spec := range m.cfg.Plugins {
		loads = append(loads, load{spec: spec, source: sourceConfig})
	}
	return m.applyAllLocked(ctx, loads)
}

// load is one plugin to bring in line with its spec.
type load struct {
	spec   Spec
	source string
	force  bool
}

// applyAllLocked applies the loads side by side (see applySpecLocked) and
// joins their errors. opMu is held on entry and on return, and released
// while the loads run.
func (m *Manager) applyAllLocked(ctx context.Context, loads []load) error {
	errs := make([]error, len(loads))
	var wg sync.WaitGroup
	for i, l := range loads {
		wg.Go(func() {
			m.opMu.Lock()
			defer m.opMu.Unlock()
			errs[i] = m.applySpecLocked(ctx, l.spec, l.source, l.force)
		})
	}
	m.opMu.Unlock()
	wg.Wait()
	m.opMu.Lock()
	return errors.Join(errs...)
}

// InitBackground is Init on a goroutine of its own, so that a server can
// serve while its plugins compile; the plugins named in first load first,
// in that order, the others in the configuration's order. Before it
// returns, every configured plugin is listed: compiling (enabled) or
// disabled. The channel receives Init's error once every plugin has had
// its load.
func (m *Manager) InitBackground(ctx context.Context, first ...string) (done <-chan error, loading []string) {
	m.opMu.Lock()
	specs := m.cfg.Plugins
	rank := func(s Spec) int {
		if i := slices.Index(first, s.Name); i >= 0 {
			return i
		}
		return len(first)
	}
	ordered := slices.Clone(specs)
	slices.SortStableFunc(ordered, func(a, b Spec) int { return rank(a) - rank(b) })
	m.cfg.Plugins = ordered
	m.opMu.Unlock()
	m.mu.Lock()
	for _, spec := range specs {
		if spec.IsEnabled() {
			loading = append(loading, spec.Name)
		}
		if m.plugins[spec.Name] == nil {
			m.plugins[spec.Name] = &Plugin{name: spec.Name, m: m, source: sourceConfig, spec: spec, compiling: spec.IsEnabled()}
		}
	}
	m.mu.Unlock()
	ch := make(chan error, 1)
	go func() { ch <- m.Init(ctx) }()
	return ch, loading
}

// Get returns a loaded plugin.
func (m *Manager) Get(name string) (*Plugin, error) {
	m.mu.RLock()
	p := m.plugins[name]
	m.mu.RUnlock()
	if p == nil {
		return nil, &Error{Plugin: name, Reason: ErrNotFound}
	}
	if p.cur.Load() == nil {
		_, err := p.acquire()
		return nil, err
	}
	return p, nil
}

// List describes every known plugin (loaded, failed or disabled), by name.
func (m *Manager) List() []*pluginv1.PluginInfo {
	m.mu.RLock()
	ps := make([]*Plugin, 0, len(m.plugins))
	for _, p := range m.plugins {
		ps = append(ps, p)
	}
	m.mu.RUnlock()
	slices.SortFunc(ps, func(a, b *Plugin) int { return strings.Compare(a.name, b.name) })
	out := make([]*pluginv1.PluginInfo, len(ps))
	for i, p := range ps {
		out[i] = p.Info()
		out[i].NeededBy = dependents(m.opts.deps, p.name)
	}
	return out
}

// Reload loads a plugin again from disk with its current grants, or every
// plugin when name is empty. A failed reload leaves the old version serving.
func (m *Manager) Reload(ctx context.Context, name string) error {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.mu.RLock()
	var targets []*Plugin
	for n, p := range m.plugins {
		if name == "" || n == name {
			targets = append(targets, p)
		}
	}
	m.mu.RUnlock()
	if len(targets) == 0 {
		return &Error{Plugin: name, Reason: ErrNotFound}
	}
	var loads []load
	for _, p := range targets {
		p.mu.Lock()
		loads = append(loads, load{spec: p.spec, source: p.source, force: true})
		p.mu.Unlock()
	}
	return m.applyAllLocked(ctx, loads)
}

// Close stops watching, unloads every plugin once its calls in flight end,
// and releases the compilation cache.
func (m *Manager) Close(ctx context.Context) error {
	m.cancel() // loads in progress stop
	m.StopAutoWatch()
	m.oci.wg.Wait()
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.mu.RLock()
	names := make([]string, 0, len(m.plugins))
	for n := range m.plugins {
		names = append(names, n)
	}
	m.mu.RUnlock()
	for _, n := range names {
		m.unloadLocked(n, "host closing")
	}
	if m.cache != nil {
		return m.cache.Close(ctx)
	}
	return nil
}

// CacheDir returns the folder of the compilation cache, where plugins.yaml
// or the options put it ("-": none, compiled in memory).
func (m *Manager) CacheDir() string {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	return m.cacheDir()
}

func (m *Manager) cacheDir() string {
	if m.cfg.CacheDir != "" {
		return m.cfg.CacheDir
	}
	return m.opts.cacheDir
}

// compilationCache opens the cache on first use, where plugins.yaml or the
// options say.
func (m *Manager) compilationCache() wazero.CompilationCache {
	if m.cache != nil {
		return m.cache
	}
	dir := m.cacheDir()
	if dir != "-" {
		c, err := wazero.NewCompilationCacheWithDir(dir)
		if err == nil {
			m.cache = c
			return c
		}
		m.logger.Warn("plugin compilation cache unavailable, compiling in memory", "dir", dir, "err", err)
	}
	m.cache = wazero.NewCompilationCache()
	return m.cache
}

// applyConfigLocked moves from the current configuration to cfg.
func (m *Manager) applyConfigLocked(ctx context.Context, cfg *Config) error {
	prev := m.cfg
	m.cfg = cfg
	want := map[string]bool{}
	for _, s := range cfg.Plugins {
		want[s.Name] = true
	}
	claimed := func(path string) bool {
		return slices.ContainsFunc(cfg.Plugins, func(s Spec) bool { return sameFile(s.Path, path) })
	}
	m.mu.RLock()
	var drop []string
	for n, p := range m.plugins {
		p.mu.Lock()
		path := p.spec.Path
		p.mu.Unlock()
		// A file now configured under another name stops loading as found.
		if (p.source == sourceConfig && !want[n]) || (p.source == sourceDir && !want[n] && claimed(path)) {
			drop = append(drop, n)
		}
	}
	m.mu.RUnlock()
	for _, n := range drop {
		m.unloadLocked(n, "removed from config")
	}
	var loads []load
	for _, spec := range cfg.Plugins {
		loads = append(loads, load{spec: spec, source: sourceConfig})
	}
	err := m.applyAllLocked(ctx, loads)
	if m.closed {
		return err
	}
	return errors.Join(err, m.recheckSignaturesLocked(ctx, prev))
}

// applySpecLocked brings one plugin in line with spec: disabled → unloaded,
// otherwise loaded or reloaded. Unless force is set, a plugin whose spec and
// file are unchanged is left alone. opMu is held on entry and on return,
// but not while the module compiles and answers metadata: other plugins
// load meanwhile. Of loads of one plugin that overlap, the one started last
// is installed; the others are discarded.
func (m *Manager) applySpecLocked(ctx context.Context, spec Spec, source string, force bool) error {
	if m.closed {
		return ErrClosed
	}
	m.mu.Lock()
	p := m.plugins[spec.Name]
	if p == nil {
		// Listed from now on, as compiling: its load follows.
		p = &Plugin{name: spec.Name, m: m, source: source, spec: spec, compiling: spec.IsEnabled()}
		m.plugins[spec.Name] = p
	}
	m.mu.Unlock()

	digest, derr := fileDigest(spec.Path)
	if derr != nil {
		digest = "" // missing or unreadable: the load says why
	}
	inputs := m.loadInputs(spec, digest)
	p.mu.Lock()
	same := p.loading
	p.mu.Unlock()
	if spec.IsEnabled() && !force && same != nil && same.spec.equal(&spec) && same.inputs == inputs {
		// The same load is under way (the watcher and Init, say): its
		// outcome is this one's.
		return m.awaitLoad(ctx, spec.Name, same)
	}

	p.mu.Lock()
	p.spec, p.source, p.gone = spec, source, false
	p.gen++
	gen := p.gen
	p.mu.Unlock()
	// However this ends, the plugin no longer waits for its load, unless a
	// later load of it is under way.
	defer p.loadEnded(gen)
	if !spec.IsEnabled() {
		if v := p.cur.Swap(nil); v != nil {
			v.retire()
			m.emit(Event{Type: EventUnloaded, Plugin: spec.Name, Kind: KindName(v.meta.GetKind()),
				Version: v.meta.GetVersion(), Path: spec.Path, SHA256: v.sha256})
		}
		p.setErr("")
		return nil
	}
	old := p.cur.Load()
	if old != nil && !force && old.spec.equal(&spec) && derr == nil && digest == old.sha256 {
		return nil
	}
	if old != nil && !force && old.spec.equal(&spec) && spec.Source != "" {
		return nil // pulled already: a moved tag is the poller's to follow
	}
	p.mu.Lock()
	sameFailure := old == nil && !force && p.failed != nil && p.failed.spec.equal(&spec) && p.failed.inputs == inputs
	p.mu.Unlock()
	if sameFailure {
		return nil // nothing it depends on changed: it would fail the same way
	}
	m.compilationCache()
	a := &attempt{failure: failure{spec: spec, inputs: inputs}, done: make(chan struct{})}
	p.mu.Lock()
	p.compiling, p.loading = true, a
	p.mu.Unlock()
	err := m.installLoad(ctx, p, spec, gen, old, inputs)
	a.err = err
	close(a.done)
	return err
}

// awaitLoad waits, without opMu, for a load under way and returns its
// outcome.
func (m *Manager) awaitLoad(ctx context.Context, name string, a *attempt) error {
	m.opMu.Unlock()
	defer m.opMu.Lock()
	select {
	case <-a.done:
		return a.err
	case <-ctx.Done():
		return &Error{Plugin: name, Reason: ErrCanceled, Detail: "load: " + ctx.Err().Error(), Err: ctx.Err()}
	}
}

// installLoad compiles spec and, unless a later load of p started
// meanwhile, makes it p's current version (or records why it failed).
func (m *Manager) installLoad(ctx context.Context, p *Plugin, spec Spec, gen uint64, old *version, inputs string) error {
	v, err := m.loadUnlocked(ctx, spec)
	p.mu.Lock()
	stale := p.gen != gen || p.gone
	p.mu.Unlock()
	if m.closed || stale || m.plugin(spec.Name) != p {
		// Closed, unloaded or loaded again meanwhile: this result is not
		// what the plugin is to be (a later load reports its own).
		if v != nil {
			v.close()
		}
		if m.closed {
			return &Error{Plugin: spec.Name, Reason: ErrClosed}
		}
		return nil
	}
	if err != nil && ctx.Err() != nil {
		// Stopped (the watcher stopping, Init's caller giving up): not a
		// verdict on the module.
		if old == nil {
			p.setErr("load canceled")
		}
		return &Error{Plugin: spec.Name, Reason: ErrCanceled, Detail: "load: " + ctx.Err().Error(), Err: err}
	}
	if err != nil {
		p.setErr(err.Error())
		p.mu.Lock()
		p.failed = &failure{spec: spec, inputs: inputs}
		p.mu.Unlock()
		ev := Event{Type: EventFailed, Plugin: spec.Name, Kind: spec.Kind, Path: spec.Path, Err: err}
		if old != nil {
			ev.Version = old.meta.GetVersion()
		}
		m.emit(ev)
		return err
	}
	p.setErr("")
	p.mu.Lock()
	p.failed = nil
	p.mu.Unlock()
	ev := Event{Type: EventLoaded, Plugin: spec.Name, Kind: KindName(v.meta.GetKind()),
		Version: v.meta.GetVersion(), Path: spec.Path, SHA256: v.sha256}
	if prev := p.cur.Swap(v); prev != nil {
		prev.retire() // calls in flight finish on it
		ev.Type, ev.Previous = EventReloaded, prev.meta.GetVersion()
	}
	m.logger.Debug("plugin ready", "plugin", spec.Name, "load_time", v.loadTime, "module", v.describe())
	m.emit(ev)
	return nil
}

// loadUnlocked runs loadVersion without opMu (held on entry and return),
// within the bound on parallel loads, stopping when ctx or the manager ends.
func (m *Manager) loadUnlocked(ctx context.Context, spec Spec) (*version, error) {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	defer context.AfterFunc(m.ctx, stop)()
	m.opMu.Unlock()
	defer m.opMu.Lock()
	select {
	case m.loads <- struct{}{}:
		defer func() { <-m.loads }()
	case <-ctx.Done():
		return nil, &Error{Plugin: spec.Name, Reason: ErrCanceled, Detail: "load: " + ctx.Err().Error(), Err: ctx.Err()}
	}
	return m.loadVersion(ctx, spec)
}

func (m *Manager) plugin(name string) *Plugin {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.plugins[name]
}

// unloadLocked removes a plugin; its calls in flight finish first.
func (m *Manager) unloadLocked(name, why string) {
	m.mu.Lock()
	p := m.plugins[name]
	delete(m.plugins, name)
	m.mu.Unlock()
	if p == nil {
		return
	}
	p.mu.Lock()
	p.gone = true
	p.mu.Unlock()
	if v := p.cur.Swap(nil); v != nil {
		v.retire()
		m.logger.Debug("plugin unloading", "plugin", name, "why", why)
		// A closing host removes nothing: the plugin is neither removed nor
		// disabled, so no plugin.unloaded is told.
		if !m.closed {
			m.emit(Event{Type: EventUnloaded, Plugin: name, Kind: KindName(v.meta.GetKind()),
				Version: v.meta.GetVersion(), Path: v.spec.Path, SHA256: v.sha256})
		}
		return
	}
	// It never loaded (it failed): it leaves the list all the same, and
	// says so unless the host is closing.
	if !m.closed {
		p.mu.Lock()
		spec := p.spec
		p.mu.Unlock()
		m.emit(Event{Type: EventUnloaded, Plugin: name, Kind: spec.Kind, Path: spec.Path})
	}
}

func (p *Plugin) setErr(s string) {
	p.mu.Lock()
	p.lastErr = s
	p.mu.Unlock()
}

// loadInputs sums up what a load of spec reads besides the spec: the
// module's digest, its signature file and the signature policy. A failed
// load with the same spec and inputs would fail again.
func (m *Manager) loadInputs(spec Spec, moduleDigest string) string {
	sig, _ := fileDigest(spec.Path + SignatureExt)
	return fmt.Sprintf("%s|%s|%q|%v", moduleDigest, sig, m.cfg.TrustedKeys, m.cfg.RequireSignatures)
}

// loadEnded marks the load numbered gen over: the plugin no longer
// compiles unless a later load of it is under way.
func (p *Plugin) loadEnded(gen uint64) {
	p.mu.Lock()
	if p.gen == gen {
		p.compiling, p.loading = false, nil
	}
	p.mu.Unlock()
}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// specForFile returns the spec a .wasm found in a watched folder loads with:
// its plugins.yaml entry if one points at it, otherwise a spec with no grants
// and the default limits, named after the file.
func (m *Manager) specForFile(path string) (Spec, string, error) {
	for _, s := range m.cfg.Plugins {
		if sameFile(s.Path, path) {
			return s, sourceConfig, nil
		}
	}
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	for _, s := range m.cfg.Plugins {
		if s.Name == name {
			return Spec{}, "", refused(name, ErrNameConflict,
				"%s has the name of the configured plugin at %s", path, s.Path)
		}
	}
	spec := Spec{Name: name, Path: path}
	defaults := m.cfg.Defaults
	if defaults.Timeout == 0 {
		var c Config
		c.applyDefaults("")
		defaults = c.Defaults
	}
	spec.applyLimits(defaults)
	if err := spec.validate(); err != nil {
		return Spec{}, "", fmt.Errorf("plugin %s: %w", name, err)
	}
	return spec, sourceDir, nil
}

func sameFile(a, b string) bool {
	a, _ = filepath.Abs(a)
	b, _ = filepath.Abs(b)
	return a == b
}

// Compiling reports whether the plugin named name is being compiled (or
// waits for its first load), so that callers can wait for it rather than
// fail.
func (m *Manager) Compiling(name string) bool {
	m.mu.RLock()
	p := m.plugins[name]
	m.mu.RUnlock()
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.compiling
}

// WaitCompiled waits while the plugin named name is compiling, until ctx
// ends.
func (m *Manager) WaitCompiled(ctx context.Context, name string) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for m.Compiling(name) {
		select {
		case <-ctx.Done():
			return &Error{Plugin: name, Reason: ErrNotLoaded, Detail: "still compiling: " + ctx.Err().Error(), Err: ctx.Err()}
		case <-t.C:
		}
	}
	return nil
}
