package host

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
)

// Dependency is a plugin that something outside the host calls, and what:
// the server's artifact store, a notification rule, the audit gate. By
// names the dependent as its configuration does ("artifact_store",
// "notify rule failures", "audit").
type Dependency struct {
	Plugin string
	By     string
}

// WithDependencies tells the manager which plugins its user depends on. An
// edit of plugins.yaml that would take one of them away (remove or disable
// its entry, or a signature policy that refuses its module) is refused like
// an invalid edit: the running configuration stays, and the
// config_rejected event names the plugin and what depends on it.
func WithDependencies(deps ...Dependency) Option {
	return func(o *options) { o.deps = append(o.deps, deps...) }
}

// SignatureVerdict is what a configuration's signature policy makes of one
// plugin's module.
type SignatureVerdict int

// Signature verdicts.
const (
	// SignatureNotChecked: no trusted_keys and no requirement, so
	// signatures are not checked.
	SignatureNotChecked SignatureVerdict = iota
	// SignatureAccepted: signed by a trusted key, or unsigned where
	// signatures are not required.
	SignatureAccepted
	// SignatureWouldRefuse: signature_mode warn; the module loads, and
	// enforce would refuse it (Err says why).
	SignatureWouldRefuse
	// SignatureRefused: the policy refuses the module (Err answers
	// errors.Is with ErrUnsigned or ErrBadSignature).
	SignatureRefused
	// SignatureModuleMissing: the module file does not exist (yet; the
	// first-party ones before `make plugins`): checked when it appears.
	SignatureModuleMissing
	// SignatureAtPull: the module comes from a registry (oci://); its
	// signature is checked when it is pulled.
	SignatureAtPull
	// SignatureUnreadable: the module file cannot be read, or is not a
	// module (Err); its load would fail too.
	SignatureUnreadable
)

var verdictNames = [...]string{"not checked", "accepted", "would be refused under enforce", "refused",
	"module missing", "checked at pull", "unreadable"}

func (v SignatureVerdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return fmt.Sprintf("SignatureVerdict(%d)", int(v))
}

// SignatureCheck is the signature policy applied to one plugin's module.
type SignatureCheck struct {
	Plugin string
	// Module is the module file, or the oci:// source.
	Module  string
	Verdict SignatureVerdict
	// Signed: the module is signed by a trusted key.
	Signed bool
	// Err is why the module is (or, in warn mode, would be) refused, or
	// why it cannot be read.
	Err error
	// DependedOnBy names what depends on the plugin, among the
	// dependencies given to CheckSignatures.
	DependedOnBy []string
}

// Fix says how to make the policy accept the module, "" when it does.
func (c SignatureCheck) Fix() string {
	switch {
	case c.Verdict != SignatureRefused && c.Verdict != SignatureWouldRefuse:
		return ""
	case errors.Is(c.Err, ErrUnsigned) && c.Verdict == SignatureRefused:
		return "sign it (arcade plugin sign --key KEY --all FOLDER writes NAME.wasm.sig beside each module), " +
			"or set signature_mode: warn instead of require_signatures to load unsigned plugins meanwhile"
	case errors.Is(c.Err, ErrUnsigned):
		return "sign it (arcade plugin sign --key KEY --all FOLDER) before enforcing"
	}
	return "sign it again with a trusted key (arcade plugin sign --key KEY), or restore the module its signature is for; " +
		"a bad signature is refused in every mode"
}

// CheckSignatures applies c's signature policy to the module of every
// enabled plugin, as a load would, but cheaply: it reads each module file
// and its signature (NAME.wasm.sig or signature:) and compiles nothing.
// Each check lists the dependencies, among deps, on its plugin. Plugins in
// watched folders without an entry are not checked here.
func (c *Config) CheckSignatures(deps ...Dependency) []SignatureCheck {
	var out []SignatureCheck
	for i := range c.Plugins {
		spec := &c.Plugins[i]
		if !spec.IsEnabled() {
			continue
		}
		check := c.checkSpecSignature(spec, nil)
		check.DependedOnBy = dependents(deps, spec.Name)
		out = append(out, check)
	}
	return out
}

// checkSpecSignature applies c's signature policy to spec's module. A
// module pulled from a registry is checked only when loaded is the version
// pulled for it (its digest and signature are kept).
func (c *Config) checkSpecSignature(spec *Spec, loaded *version) SignatureCheck {
	check := SignatureCheck{Plugin: spec.Name, Module: spec.Path}
	var digest [sha256.Size]byte
	var pulledSig []byte
	switch {
	case spec.Source != "":
		check.Module = spec.Source
		if loaded == nil || loaded.spec.Source != spec.Source {
			check.Verdict = SignatureAtPull
			return check
		}
		digest, pulledSig = loaded.digest, loaded.ociSig
	case !c.signaturesOn():
		check.Verdict = SignatureNotChecked
		return check
	default:
		data, err := readModule(spec.Path, c.maxModuleBytes())
		if errors.Is(err, fs.ErrNotExist) {
			check.Verdict = SignatureModuleMissing
			return check
		}
		if err == nil {
			digest, err = checkModule(spec, data, spec.Path)
		}
		if err != nil {
			check.Verdict, check.Err = SignatureUnreadable, err
			return check
		}
	}
	if !c.signaturesOn() {
		check.Verdict = SignatureNotChecked
		return check
	}
	sig, warning, err := c.checkSignature(spec, digest, pulledSig)
	switch {
	case err != nil:
		check.Verdict, check.Err = SignatureRefused, err
	case warning != nil:
		check.Verdict, check.Err = SignatureWouldRefuse, warning
	default:
		check.Verdict, check.Signed = SignatureAccepted, sig != nil
	}
	return check
}

// dependents names what depends on plugin.
func dependents(deps []Dependency, plugin string) []string {
	var by []string
	for _, d := range deps {
		if d.Plugin == plugin && !slices.Contains(by, d.By) {
			by = append(by, d.By)
		}
	}
	return by
}

// DependencyLossError is a configuration refused because it would take
// away a plugin something depends on. It answers errors.Is(err,
// ErrDependedOn).
type DependencyLossError struct {
	Plugin string
	// By names what depends on the plugin.
	By []string
	// Why says how the configuration would take it away.
	Why string
	// Err is the signature policy's refusal, if that is the way.
	Err error
	Fix string
}

func (e *DependencyLossError) Error() string {
	s := fmt.Sprintf("plugin %s is needed by %s, and the edit would unload it: %s", e.Plugin, strings.Join(e.By, ", "), e.Why)
	if e.Fix != "" {
		s += "; to fix: " + e.Fix
	}
	return s
}

// Is makes the error answer ErrDependedOn.
func (e *DependencyLossError) Is(target error) bool { return target == ErrDependedOn }

func (e *DependencyLossError) Unwrap() error { return e.Err }

// dependencyLossLocked returns the losses next would bring: plugins
// depended on whose entry the running configuration enables and next
// removes, disables, or refuses by its signature policy. A refusal counts
// only where the running policy accepts the module (or has none to judge
// yet): a plugin already refused, or not built, does not block edits that
// fix other things meanwhile.
func (m *Manager) dependencyLossLocked(next *Config) error {
	prev := m.cfg
	var errs []error
	seen := map[string]bool{}
	for _, d := range m.opts.deps {
		if seen[d.Plugin] {
			continue
		}
		seen[d.Plugin] = true
		before := specNamed(prev, d.Plugin)
		if before == nil || !before.IsEnabled() {
			continue
		}
		loss := &DependencyLossError{Plugin: d.Plugin, By: dependents(m.opts.deps, d.Plugin)}
		after := specNamed(next, d.Plugin)
		switch {
		case after == nil:
			loss.Why = "it removes its entry"
			loss.Fix = "keep the entry, or first stop depending on it in the server's configuration"
		case !after.IsEnabled():
			loss.Why = "it disables it"
			loss.Fix = "keep it enabled, or first stop depending on it in the server's configuration"
		case after.equal(before) && next.sameSignaturePolicy(prev):
			continue // nothing changes for it
		default:
			var loaded *version
			if p := m.plugin(d.Plugin); p != nil {
				loaded = p.cur.Load()
			}
			was := prev.checkSpecSignature(before, loaded)
			now := next.checkSpecSignature(after, loaded)
			if now.Verdict != SignatureRefused || was.Verdict == SignatureRefused {
				continue
			}
			loss.Why, loss.Err, loss.Fix = "its signature policy refuses it: "+now.Err.Error(), now.Err, now.Fix()
		}
		errs = append(errs, loss)
	}
	return errors.Join(errs...)
}

func specNamed(c *Config, name string) *Spec {
	for i := range c.Plugins {
		if c.Plugins[i].Name == name {
			return &c.Plugins[i]
		}
	}
	return nil
}
