package host

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/go-arcade/arcade/core/registrycred"
	"github.com/go-arcade/arcade/host/pluginoci"
)

// ociOptions are how the configuration reaches registries.
func (c *Config) ociOptions() pluginoci.Options {
	return pluginoci.Options{PlainHTTP: c.OCI.PlainHTTP, DockerConfig: c.OCI.DockerConfig}
}

// pullModule fetches the module (and its signature) of an oci:// spec: the
// size bound is checked on the manifest before the module is downloaded,
// and every blob against its digest. The credential of registry_auth is
// read from the stored secrets first, at each pull. Failures are *Error
// naming the plugin.
func (m *Manager) pullModule(ctx context.Context, spec *Spec) (*pluginoci.Artifact, error) {
	opts := m.cfg.ociOptions()
	cred, err := m.registryCredential(ctx, spec)
	if err != nil {
		return nil, err
	}
	opts.Credential = cred
	a, err := pluginoci.Pull(ctx, spec.Source, m.cfg.maxModuleBytes(), opts)
	if errors.Is(err, pluginoci.ErrTooBig) {
		return nil, refused(spec.Name, ErrInvalidModule, "%s: %v (max_module_bytes)", spec.Source, err)
	}
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return nil, &Error{Plugin: spec.Name, Reason: ErrCanceled, Detail: "pull: " + ctx.Err().Error(), Err: ctx.Err()}
	case errors.Is(err, pluginoci.ErrNotPlugin), errors.Is(err, content.ErrMismatchedDigest), errors.Is(err, content.ErrTrailingData):
		return nil, &Error{Plugin: spec.Name, Reason: ErrInvalidModule, Detail: "pull " + spec.Source + ": " + err.Error(), Err: err}
	case credentialRefused(err):
		return nil, &Error{Plugin: spec.Name, Reason: ErrRegistryAuth, Detail: "pull " + spec.Source + ": the registry refused " + spec.credentialFrom() + ": " + err.Error(), Err: err}
	default:
		return nil, &Error{Plugin: spec.Name, Reason: ErrRegistry, Detail: "pull " + spec.Source + ": " + err.Error(), Err: err}
	}
	return a, nil
}

// registryCredential reads the credential spec's registry_auth names from
// the stored secrets, for the registry of its source; none without
// registry_auth (the docker config's then). A secret missing or not a
// credential for that registry fails with ErrRegistryAuth naming it; its
// value is never shown.
func (m *Manager) registryCredential(ctx context.Context, spec *Spec) (auth.Credential, error) {
	if spec.RegistryAuth == "" {
		return auth.EmptyCredential, nil
	}
	if m.opts.secrets == nil {
		return auth.EmptyCredential, refused(spec.Name, ErrBadConfig, "registry_auth: this host keeps no secrets")
	}
	ref, err := pluginoci.ParseReference(spec.Source)
	if err != nil {
		return auth.EmptyCredential, refused(spec.Name, ErrInvalidModule, "source: %v", err)
	}
	vals, err := m.opts.secrets(ctx, []string{spec.RegistryAuth})
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return auth.EmptyCredential, &Error{Plugin: spec.Name, Reason: ErrCanceled, Detail: "registry_auth: " + ctx.Err().Error(), Err: ctx.Err()}
	default:
		return auth.EmptyCredential, &Error{Plugin: spec.Name, Reason: ErrRegistryAuth, Detail: "registry_auth: " + err.Error(), Err: err}
	}
	c, err := registrycred.Parse(vals[spec.RegistryAuth], ref.Registry)
	if err != nil {
		return auth.EmptyCredential, &Error{Plugin: spec.Name, Reason: ErrRegistryAuth, Detail: fmt.Sprintf("registry_auth: secret %s: %v", spec.RegistryAuth, err), Err: err}
	}
	return auth.Credential{Username: c.Username, Password: c.Password}, nil
}

// credentialRefused reports whether a registry refused the request for its
// credential (none, or a wrong one).
func credentialRefused(err error) bool {
	var resp *errcode.ErrorResponse
	if errors.As(err, &resp) && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
		return true
	}
	return errors.Is(err, auth.ErrBasicCredentialNotFound)
}

// credentialFrom says where the credential of spec's registry comes from,
// for messages.
func (s *Spec) credentialFrom() string {
	if s.RegistryAuth != "" {
		return "the credential of secret " + s.RegistryAuth + " (registry_auth)"
	}
	return "the docker config's credential, or the lack of one (oci.docker_config; or name a secret with registry_auth)"
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
		name   string
		spec   Spec
		loaded string
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
		f := followed{name: n, spec: spec}
		if v := p.cur.Load(); v != nil {
			f.loaded = v.ociDigest
		}
		todo = append(todo, f)
	}
	m.mu.RUnlock()
	m.opMu.Unlock()
	for _, f := range todo {
		name, source := f.name, f.spec.Source
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		o := opts
		cred, err := m.registryCredential(rctx, &f.spec)
		var digest string
		if err == nil {
			o.Credential = cred
			digest, err = pluginoci.Resolve(rctx, source, o)
			if credentialRefused(err) {
				err = fmt.Errorf("the registry refused %s: %w", f.spec.credentialFrom(), err)
			}
		}
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				m.logger.Warn("plugin tag not resolved; the running version stays", "plugin", name, "source", source, "err", err)
			}
			continue
		}
		m.oci.mu.Lock()
		tried := m.oci.seen[name] == digest
		m.oci.seen[name] = digest
		m.oci.mu.Unlock()
		if digest == f.loaded || tried {
			continue
		}
		m.logger.Info("plugin tag moved", "plugin", name, "source", source, "digest", digest)
		err = m.reloadFollowed(ctx, name, source)
		if errors.Is(err, ErrRegistry) || errors.Is(err, ErrRegistryAuth) {
			// Not a verdict on the version: try it again next time.
			m.oci.mu.Lock()
			delete(m.oci.seen, name)
			m.oci.mu.Unlock()
		}
		if err != nil && ctx.Err() == nil {
			m.logger.Warn("plugin tag moved to a version that does not load; the running one stays", "plugin", name, "digest", digest, "err", err)
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
