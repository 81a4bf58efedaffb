package host

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWatchKeepsDependedOnPlugins: a watched edit that would unload a
// plugin the server depends on (enforce over its unsigned module, its entry
// removed or disabled) is refused like an invalid edit: config_rejected
// names the plugin and what depends on it, and everything keeps serving.
// Once the module is signed, the same enforce edit applies and unloads the
// unsigned plugin nobody depends on.
func TestWatchKeepsDependedOnPlugins(t *testing.T) {
	t.Parallel()
	pub, priv := testKey(t)
	dir := t.TempDir()
	store := kitchen("store")
	store.Path = filepath.Join(dir, "store.wasm")
	copyFile(t, testWasm.kitchen, store.Path)
	step := kitchen("step")
	step.Path = filepath.Join(dir, "step.wasm")
	copyFile(t, testWasm.kitchen, step.Path)

	m := newTestManager(t, WithDependencies(Dependency{Plugin: "store", By: "artifact_store"}))
	events := recordEvents(t, m)
	cfgDir := t.TempDir()
	warn := Config{TrustedKeys: []string{EncodePublicKey(pub)}, SignatureMode: SignatureWarn, Plugins: []Spec{store, step}}
	cfgPath := writeConfig(t, cfgDir, warn)
	if err := m.LoadPluginsFromConfig(cfgPath); err != nil {
		t.Fatal(err)
	}
	if err := m.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := m.StartAutoWatch([]string{t.TempDir()}, cfgPath); err != nil {
		t.Fatal(err)
	}
	next := events.len()

	rejected := func(cfg Config, want ...string) {
		t.Helper()
		writeConfig(t, cfgDir, cfg)
		var ev Event
		ev, next = events.wait(t, next, time.Minute, func(e Event) bool { return e.Type == EventConfigRejected })
		if !errors.Is(ev.Err, ErrDependedOn) {
			t.Fatalf("rejection %v, want ErrDependedOn", ev.Err)
		}
		for _, w := range append(want, "plugin store is needed by artifact_store", "the running configuration stays") {
			if !strings.Contains(ev.Err.Error(), w) {
				t.Errorf("rejection %q lacks %q", ev.Err, w)
			}
		}
		mustEcho(t, m, "store")
		mustEcho(t, m, "step")
	}
	enforce := warn
	enforce.SignatureMode, enforce.RequireSignatures = "", true
	rejected(enforce, "unsigned", "arcade plugin sign --key KEY --all FOLDER", "signature_mode: warn")
	removed := warn
	removed.Plugins = []Spec{step}
	rejected(removed, "it removes its entry")
	off := false
	disabled := warn
	disabledStore := store
	disabledStore.Enabled = &off
	disabled.Plugins = []Spec{disabledStore, step}
	rejected(disabled, "it disables it")

	// Signed, the store is no loss: enforce applies and unloads step.
	signFile(t, priv, store.Path, store.Path)
	writeConfig(t, cfgDir, enforce)
	events.wait(t, next, time.Minute, func(e Event) bool { return e.Plugin == "step" && e.Type == EventUnloaded })
	mustEcho(t, m, "store")
	events.mu.Lock()
	for _, e := range events.events[next:] {
		if e.Type == EventConfigRejected {
			t.Errorf("the edit with the store signed was rejected: %v", e.Err)
		}
	}
	events.mu.Unlock()
}

// TestCheckSignatures: the cheap check (no compile) gives each plugin's
// verdict under the policy, with what depends on it.
func TestCheckSignatures(t *testing.T) {
	t.Parallel()
	pub, priv := testKey(t)
	_, stranger := testKey(t)
	dir := t.TempDir()
	spec := func(name string) Spec {
		s := kitchen(name)
		s.Path = filepath.Join(dir, name+".wasm")
		return s
	}
	signed, unsigned, bad, missing := spec("signed"), spec("unsigned"), spec("bad"), spec("missing")
	for _, s := range []Spec{signed, unsigned, bad} {
		copyFile(t, testWasm.kitchen, s.Path)
	}
	signFile(t, priv, signed.Path, signed.Path)
	signFile(t, stranger, bad.Path, bad.Path)
	pulled := Spec{Name: "pulled", Source: "oci://127.0.0.1:5000/arcade/x:1", Kind: "custom"}
	deps := []Dependency{{Plugin: "unsigned", By: "artifact_store"}, {Plugin: "unsigned", By: "audit"}}
	verdicts := func(cfg Config) map[string]SignatureCheck {
		t.Helper()
		c, err := LoadConfig(writeConfig(t, t.TempDir(), cfg))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]SignatureCheck{}
		for _, check := range c.CheckSignatures(deps...) {
			out[check.Plugin] = check
		}
		return out
	}
	keys := []string{EncodePublicKey(pub)}
	all := []Spec{signed, unsigned, bad, missing, pulled}
	for _, c := range []struct {
		name string
		cfg  Config
		want map[string]SignatureVerdict
	}{
		{"off", Config{Plugins: all}, map[string]SignatureVerdict{"signed": SignatureNotChecked, "unsigned": SignatureNotChecked, "pulled": SignatureAtPull}},
		{"keys", Config{TrustedKeys: keys, Plugins: all}, map[string]SignatureVerdict{"signed": SignatureAccepted, "unsigned": SignatureAccepted, "bad": SignatureRefused, "missing": SignatureModuleMissing}},
		{"warn", Config{TrustedKeys: keys, SignatureMode: SignatureWarn, Plugins: all}, map[string]SignatureVerdict{"signed": SignatureAccepted, "unsigned": SignatureWouldRefuse, "bad": SignatureRefused}},
		{"enforce", Config{TrustedKeys: keys, RequireSignatures: true, Plugins: all}, map[string]SignatureVerdict{"signed": SignatureAccepted, "unsigned": SignatureRefused, "bad": SignatureRefused, "missing": SignatureModuleMissing, "pulled": SignatureAtPull}},
	} {
		got := verdicts(c.cfg)
		for name, want := range c.want {
			if got[name].Verdict != want {
				t.Errorf("%s: %s is %s (%v), want %s", c.name, name, got[name].Verdict, got[name].Err, want)
			}
		}
		if c.name == "enforce" {
			if u := got["unsigned"]; !errors.Is(u.Err, ErrUnsigned) || strings.Join(u.DependedOnBy, ",") != "artifact_store,audit" {
				t.Errorf("enforce: unsigned %v, depended on by %v", u.Err, u.DependedOnBy)
			}
			if b := got["bad"]; !errors.Is(b.Err, ErrBadSignature) || !strings.Contains(b.Fix(), "every mode") {
				t.Errorf("enforce: bad %v, fix %q", b.Err, b.Fix())
			}
			if !got["signed"].Signed {
				t.Error("enforce: signed is not marked signed")
			}
		}
	}
}
