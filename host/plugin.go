package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
)

// Plugin is a named plugin. The handle stays valid across reloads: each call
// goes to the version serving at the moment it starts.
type Plugin struct {
	name   string
	m      *Manager
	cur    atomic.Pointer[version]
	source string // "config" or "dir"

	mu        sync.Mutex
	spec      Spec     // the spec of the last load attempt
	lastErr   string   // reason of the last failed load
	gone      bool     // unloaded
	gen       uint64   // counts load attempts: the last one started wins
	compiling bool     // a load is under way (or queued at start)
	failed    *failure // the last failed load, until one succeeds
	loading   *attempt // the load under way, nil when none is
}

// attempt is a load under way; done closes when it ends, with err.
type attempt struct {
	failure
	done chan struct{}
	err  error
}

// failure is what a failed load depended on: the same spec and file would
// fail again.
type failure struct {
	spec   Spec
	inputs string // Manager.loadInputs
}

// Name returns the plugin's name.
func (p *Plugin) Name() string { return p.name }

// Metadata returns what the serving version declared, nil when none serves.
func (p *Plugin) Metadata() *pluginv1.PluginMetadata {
	if v := p.cur.Load(); v != nil {
		return v.meta
	}
	return nil
}

// Kind returns the serving version's kind.
func (p *Plugin) Kind() pluginv1.Kind { return p.Metadata().GetKind() }

// acquire returns the serving version with a call registered on it.
func (p *Plugin) acquire() (*version, error) {
	for {
		v := p.cur.Load()
		if v == nil {
			p.mu.Lock()
			gone, lastErr := p.gone, p.lastErr
			p.mu.Unlock()
			if gone {
				return nil, &Error{Plugin: p.name, Reason: ErrNotLoaded, Detail: "unloaded"}
			}
			p.mu.Lock()
			compiling, enabled := p.compiling, p.spec.IsEnabled()
			p.mu.Unlock()
			switch {
			case compiling:
				lastErr = "still compiling (the server loads its plugins after it starts)"
			case !enabled:
				lastErr = "disabled in plugins.yaml"
			}
			return nil, &Error{Plugin: p.name, Reason: ErrNotLoaded, Detail: lastErr}
		}
		if v.enter() {
			return v, nil
		}
	}
}

// call is Call without the observer.
func (p *Plugin) call(ctx context.Context, function string, input []byte) ([]byte, error) {
	v, err := p.acquire()
	if err != nil {
		return nil, err
	}
	defer v.leave()
	if !slices.Contains(v.meta.GetFunctions(), function) && function != MetadataFunction {
		return nil, &Error{Plugin: p.name, Function: function, Reason: ErrUnknownFunction,
			Detail: function + " is not among the functions the plugin declares"}
	}
	return p.callVersion(ctx, v, function, input)
}

// callVersion calls a function of v; the call ends when the manager closes,
// whatever its caller's context says.
func (p *Plugin) callVersion(ctx context.Context, v *version, function string, input []byte) ([]byte, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer context.AfterFunc(p.m.ctx, func() { cancel(ErrClosed) })()
	return callOn(ctx, v, p.name, p.m.logger, function, input)
}

// callOn calls a function of a version; fallback logs the call's output when
// the context carries no logger (WithLogger).
func callOn(ctx context.Context, v *version, name string, fallback *slog.Logger, function string, input []byte) ([]byte, error) {
	facts := callFacts{plugin: name, function: function,
		timeout: time.Duration(v.spec.Grants.Timeout), memoryLimitMiB: v.spec.Grants.MemoryLimitMiB}
	inst, err := v.pool.get(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, &Error{Plugin: name, Function: function, Reason: ErrCanceled,
				Detail: "waiting for a free instance: " + ctx.Err().Error(), Err: err}
		}
		return nil, &Error{Plugin: name, Function: function, Reason: ErrCrashed,
			Detail: "cannot start an instance: " + firstLine(err.Error()), Err: err}
	}
	logger := callLogger(ctx, fallback)
	attrs := []any{"plugin", name, "function", function}
	callCtx, blocked := ctx, func() string { return "" }
	if v.guard != nil {
		callCtx, blocked = v.guard.watch(ctx)
	}
	out, stderr, timedOut, err := inst.call(callCtx, logger, attrs, function, input, v.spec.Grants.Limits)
	redirected := blocked()
	refused, nRefused := inst.refused.take()
	if err == nil {
		v.pool.put(inst)
		if nRefused > 0 {
			logger.Log(ctx, slog.LevelWarn, fmt.Sprintf("plugin %s was refused %d path(s) leading outside its granted folders, first %s", name, nRefused, refused), attrs...)
		}
		return out, nil
	}
	var g *guestError
	if errors.As(err, &g) {
		v.pool.put(inst) // the plugin reported the error itself: the instance is sound
	} else {
		v.pool.drop(inst) // trapped, exited or interrupted: never reuse it
	}
	facts.callerErr = ctx.Err()
	facts.timedOut = timedOut
	facts.stderr = stderr
	facts.refused = refused
	ce := classifyCallError(facts, err)
	if redirected != "" {
		ce.Reason, ce.Detail = ErrHostNotGranted, redirected+" (reached through a redirect)"
	}
	logger.Log(ctx, slog.LevelDebug, "plugin call failed", append(attrs, "err", ce, "raw", firstLine(err.Error()))...)
	return nil, ce
}

// FailOpen reports whether the plugin's failure policy is fail open.
func (p *Plugin) FailOpen() bool {
	if v := p.cur.Load(); v != nil {
		return v.spec.FailOpen()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.spec.FailOpen()
}

// Info describes the plugin for listings and the PluginService.
func (p *Plugin) Info() *pluginv1.PluginInfo {
	p.mu.Lock()
	spec, lastErr, compiling := p.spec, p.lastErr, p.compiling
	p.mu.Unlock()
	v := p.cur.Load()
	path := spec.Path
	if path == "" {
		path = spec.Source // pulled from a registry
		if v != nil && v.ociDigest != "" {
			path += " (" + v.ociDigest + ")"
		}
	}
	info := &pluginv1.PluginInfo{
		Name:          p.name,
		Path:          path,
		LastError:     lastErr,
		FailurePolicy: pluginv1.FailurePolicy_FAILURE_POLICY_FAIL_CLOSED,
		Kind:          spec.kind(),
	}
	if spec.FailOpen() {
		info.FailurePolicy = pluginv1.FailurePolicy_FAILURE_POLICY_FAIL_OPEN
	}
	// An older version may serve while a newer one compiles or after it
	// failed: the state says what the last load is doing or did.
	switch {
	case !spec.IsEnabled():
		info.State = pluginv1.PluginState_PLUGIN_STATE_DISABLED
	case compiling:
		info.State = pluginv1.PluginState_PLUGIN_STATE_COMPILING
	case lastErr != "":
		info.State = pluginv1.PluginState_PLUGIN_STATE_FAILED
	case v == nil:
		info.State = pluginv1.PluginState_PLUGIN_STATE_COMPILING // no verdict yet
	default:
		info.State = pluginv1.PluginState_PLUGIN_STATE_LOADED
	}
	if v != nil {
		spec = v.spec
		info.Kind = v.meta.GetKind()
		info.Metadata = v.meta
		info.Sha256 = v.sha256
		info.LoadedAt = timestamppb.New(v.loadedAt)
		info.Instances = v.pool.live.Load()
		if w := v.warning.Load(); w != nil {
			info.Warning = *w
		}
	}
	info.MaxInstances = int32(spec.Grants.MaxInstances)
	info.Granted = &pluginv1.Capabilities{
		AllowedHosts:   spec.Grants.AllowedHosts,
		MemoryLimitMib: spec.Grants.MemoryLimitMiB,
		TimeoutMs:      uint64(time.Duration(spec.Grants.Timeout).Milliseconds()),
	}
	for _, g := range spec.Grants.AllowedPaths {
		info.Granted.AllowedPaths = append(info.Granted.AllowedPaths,
			&pluginv1.PathGrant{HostPath: g.Host, GuestPath: g.Guest, ReadOnly: g.Mode == "ro"})
	}
	return info
}
