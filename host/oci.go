package host

import (
	"context"
	"errors"
	"sync"
	"time"

	"oras.land/oras-go/v2/content"

	"github.com/go-arcade/arcade/host/pluginoci"
)

// ociOptions are how the configuration reaches registries.
func (c *Config) ociOptions() pluginoci.Options {
	return pluginoci.Options{PlainHTTP: c.OCI.PlainHTTP, DockerConfig: c.OCI.DockerConfig}
}

// pullModule fetches the module (and its signature) of an oci:// spec: the
// size bound is checked on the manifest before the module is downloaded,
// and every blob against its digest. Failures are *Error naming the plugin.
func (m *Manager) pullModule(ctx context.Context, spec *Spec) (*pluginoci.Artifact, error) {
	a, err := pluginoci.Pull(ctx, spec.Source, m.cfg.maxModuleBytes(), m.cfg.ociOptions())
	if errors.Is(err, pluginoci.ErrTooBig) {
		return nil, refused(spec.Name, ErrInvalidModule, "%s: %v (max_module_bytes)", spec.Source, err)
	}
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return nil, &Error{Plugin: spec.Name, Reason: ErrCanceled, Detail: "pull: " + ctx.Err().Error(), Err: ctx.Err()}
	case errors.Is(err, pluginoci.ErrNotPlugin), errors.Is(err, content.ErrMismatchedDigest), errors.Is(err, content.ErrTrailingData):
		return nil, &Error{Plugin: spec.Name, Reason: ErrInvalidModule, Detail: "pull " + spec.Source + ": " + err.Error(), Err: err}
	default:
		return nil, &Error{Plugin: spec.Name, Reason: ErrRegistry, Detail: "pull " + spec.Source + ": " + err.Error(), Err: err}
	}
	return a, nil
}

// ociPoller follows the tags of oci:// plugins: when one points at another
// manifest than the loaded one, the plugin loads again from it (a version
// refused, by its signature say, leaves the running one serving, and is not
// tried again until the tag moves once more).
type ociPoller struct {
	once sync.Once
	wg   sync.WaitGroup
	mu   sync.Mutex
	seen map[string]string // plugin → the last digest tried
}

// startOCIPoll starts following tags (once; it stops when the manager
// closes).
func (m *Manager) startOCIPoll() {
	m.oci.once.Do(func() {
		m.oci.seen = map[string]string{}
		m.oci.wg.Add(1)
		go func() {
			defer m.oci.wg.Done()
			for {
				m.opMu.Lock()
				every := time.Duration(m.cfg.OCI.PollInterval)
				m.opMu.Unlock()
				if every <= 0 {
					every = DefaultOCIPollInterval
				}
				select {
				case <-m.ctx.Done():
					return
				case <-time.After(every):
				}
				m.pollOCI(m.ctx)
			}
		}()
	})
}

// pollOCI resolves each followed tag once and reloads the plugins whose tag
// moved.
func (m *Manager) pollOCI(ctx context.Context) {
	m.opMu.Lock()
	opts := m.cfg.ociOptions()
	type followed struct {
		name, source, loaded string
	}
	var todo []followed
	m.mu.RLock()
	for n, p := range m.plugins {
		p.mu.Lock()
		spec, compiling := p.spec, p.compiling
		p.mu.Unlock()
		if spec.Source == "" || !spec.IsEnabled() || compiling {
			continue
		}
		ref, err := pluginoci.ParseReference(spec.Source)
		if err != nil || pluginoci.IsDigest(ref) {
			continue
		}
		f := followed{name: n, source: spec.Source}
		if v := p.cur.Load(); v != nil {
			f.loaded = v.ociDigest
		}
		todo = append(todo, f)
	}
	m.mu.RUnlock()
	m.opMu.Unlock()
	for _, f := range todo {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		digest, err := pluginoci.Resolve(rctx, f.source, opts)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				m.logger.Warn("plugin tag not resolved", "plugin", f.name, "source", f.source, "err", err)
			}
			continue
		}
		m.oci.mu.Lock()
		tried := m.oci.seen[f.name] == digest
		m.oci.seen[f.name] = digest
		m.oci.mu.Unlock()
		if digest == f.loaded || tried {
			continue
		}
		m.logger.Info("plugin tag moved", "plugin", f.name, "source", f.source, "digest", digest)
		err = m.reloadFollowed(ctx, f.name, f.source)
		if errors.Is(err, ErrRegistry) {
			// Not a verdict on the version: try it again next time.
			m.oci.mu.Lock()
			delete(m.oci.seen, f.name)
			m.oci.mu.Unlock()
		}
		if err != nil && ctx.Err() == nil {
			m.logger.Warn("plugin tag moved to a version that does not load; the running one stays", "plugin", f.name, "digest", digest, "err", err)
		}
	}
}

// reloadFollowed loads a followed plugin again, unless its source changed
// meanwhile.
func (m *Manager) reloadFollowed(ctx context.Context, name, source string) error {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if m.closed {
		return ErrClosed
	}
	p := m.plugin(name)
	if p == nil {
		return nil
	}
	p.mu.Lock()
	spec, src := p.spec, p.source
	p.mu.Unlock()
	if spec.Source != source {
		return nil
	}
	return m.applySpecLocked(ctx, spec, src, true)
}
