package host

import (
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testKey returns a new key pair.
func testKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// signFile writes path.sig: module's signature by priv.
func signFile(t testing.TB, priv ed25519.PrivateKey, module, path string) {
	t.Helper()
	b, err := os.ReadFile(module)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+SignatureExt, EncodeSignature(SignModule(priv, b)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// loadConfig starts a Manager on cfg and returns it with the error of Init.
func loadConfig(t testing.TB, cfg Config) (*Manager, error) {
	t.Helper()
	m := newTestManager(t)
	path := writeConfig(t, t.TempDir(), cfg)
	if err := m.LoadPluginsFromConfig(path); err != nil {
		t.Fatal(err)
	}
	return m, m.Init(context.Background())
}

func TestSignModuleRoundTrip(t *testing.T) {
	t.Parallel()
	pub, priv := testKey(t)
	other, _ := testKey(t)
	module := []byte("\x00asm\x01\x00\x00\x00 some module")
	sig, err := ParseSignature(EncodeSignature(SignModule(priv, module)))
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyModule(module, sig, other, pub); err != nil {
		t.Fatalf("valid signature refused: %v", err)
	}
	if err := VerifyModule(module, sig, other); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other key: %v", err)
	}
	if err := VerifyModule(append(module, 0), sig, pub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("changed module: %v", err)
	}
	pemKey, err := MarshalPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParsePrivateKey(pemKey)
	if err != nil || !back.Equal(priv) {
		t.Fatalf("private key round trip: %v", err)
	}
	if p, err := ParsePublicKey(EncodePublicKey(pub)); err != nil || !p.Equal(pub) {
		t.Fatalf("public key round trip: %v", err)
	}
}

func TestSignatureConfigValidation(t *testing.T) {
	t.Parallel()
	pub, _ := testKey(t)
	for _, c := range []struct{ yaml, want string }{
		{"require_signatures: true\n", "require_signatures is on but trusted_keys is empty"},
		{"trusted_keys: [nope]\n", "trusted_keys[0]: \"nope\" is not a base64 ed25519 public key"},
		{"trusted_keys: [" + EncodePublicKey(pub) + "]\nplugins:\n  - {name: x, path: x.wasm, signature: AAAA}\n",
			"plugins[0] (x): signature: not a base64 ed25519 signature"},
	} {
		_, err := ParseConfig([]byte(c.yaml), t.TempDir())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.yaml, err, c.want)
		}
	}
	cfg, err := ParseConfig([]byte("require_signatures: true\ntrusted_keys: ["+EncodePublicKey(pub)+"]\n"), t.TempDir())
	if err != nil || len(cfg.keys) != 1 {
		t.Fatalf("valid config: %v", err)
	}
}

// TestLoadChecksSignatures: which modules load under which signature policy.
func TestLoadChecksSignatures(t *testing.T) {
	t.Parallel()
	trusted, trustedPriv := testKey(t)
	_, strangerPriv := testKey(t)
	module, err := os.ReadFile(testWasm.kitchen)
	if err != nil {
		t.Fatal(err)
	}
	inline := strings.TrimSpace(string(EncodeSignature(SignModule(trustedPriv, module))))
	keys := []string{EncodePublicKey(trusted)}

	cases := []struct {
		name    string
		keys    []string
		require bool
		setup   func(t *testing.T, spec *Spec) // signs, or not
		reason  Reason                         // empty: loads
		msg     string
	}{
		{name: "signed-file", keys: keys, require: true,
			setup: func(t *testing.T, s *Spec) { signFile(t, trustedPriv, s.Path, s.Path) }},
		{name: "signed-inline", keys: keys, require: true,
			setup: func(t *testing.T, s *Spec) { s.Signature = inline }},
		{name: "unsigned-required", keys: keys, require: true,
			reason: ErrUnsigned, msg: "plugin unsigned-required refused: unsigned: require_signatures is on"},
		{name: "wrong-key", keys: keys, require: true,
			setup:  func(t *testing.T, s *Spec) { signFile(t, strangerPriv, s.Path, s.Path) },
			reason: ErrBadSignature, msg: "plugin wrong-key refused: bad signature: " + "%PATH%.sig: signature not by a trusted key"},
		{name: "tampered", keys: keys, require: true,
			setup: func(t *testing.T, s *Spec) {
				signFile(t, trustedPriv, s.Path, s.Path)
				copyFile(t, testWasm.kitchen2, s.Path) // another valid module, same name
			},
			reason: ErrBadSignature, msg: "signature not by a trusted key, or the module changed after signing"},
		{name: "garbled-sig", keys: keys, require: true,
			setup: func(t *testing.T, s *Spec) {
				if err := os.WriteFile(s.Path+SignatureExt, []byte("not base64!"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			reason: ErrBadSignature, msg: "not a base64 ed25519 signature"},
		{name: "unsigned-not-required"},
		{name: "unsigned-keys-not-required", keys: keys},
		{name: "wrong-key-not-required", keys: keys, // a signature present is checked
			setup:  func(t *testing.T, s *Spec) { signFile(t, strangerPriv, s.Path, s.Path) },
			reason: ErrBadSignature, msg: "signature not by a trusted key"},
		{name: "wrong-key-no-keys", // no keys: signatures are not looked at
			setup: func(t *testing.T, s *Spec) { signFile(t, strangerPriv, s.Path, s.Path) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			spec := kitchen(c.name)
			spec.Path = filepath.Join(t.TempDir(), c.name+".wasm")
			copyFile(t, testWasm.kitchen, spec.Path)
			if c.setup != nil {
				c.setup(t, &spec)
			}
			m, err := loadConfig(t, Config{TrustedKeys: c.keys, RequireSignatures: c.require, Plugins: []Spec{spec}})
			if c.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				mustEcho(t, m, c.name)
				return
			}
			if !errors.Is(err, c.reason) {
				t.Fatalf("want %q, got %v", c.reason, err)
			}
			if want := strings.ReplaceAll(c.msg, "%PATH%", spec.Path); !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not contain %q", err, want)
			}
			if _, err := m.Get(c.name); !errors.Is(err, ErrNotLoaded) {
				t.Fatalf("Get = %v", err)
			}
		})
	}
}

// signedWatch starts a Manager that requires signatures by pub and watches a
// fresh folder holding kitchen 1.0.0 as name.wasm, signed by priv.
func signedWatch(t *testing.T, name string, pub ed25519.PublicKey, priv ed25519.PrivateKey) (*Manager, *eventLog, string, int) {
	t.Helper()
	m, err := loadConfig(t, Config{TrustedKeys: []string{EncodePublicKey(pub)}, RequireSignatures: true})
	if err != nil {
		t.Fatal(err)
	}
	events := recordEvents(t, m)
	dir := t.TempDir()
	path := filepath.Join(dir, name+".wasm")
	copyFile(t, testWasm.kitchen, path)
	signFile(t, priv, path, path)
	if err := m.StartAutoWatch([]string{dir}, ""); err != nil {
		t.Fatal(err)
	}
	_, next := events.wait(t, 0, time.Minute, func(e Event) bool { return e.Plugin == name && e.Type == EventLoaded })
	return m, events, path, next
}

// TestWatchStaleSignatureKeepsOldVersion: a new module under the old
// signature is refused and 1.0.0 keeps serving; the signature written after
// it brings the reload.
func TestWatchStaleSignatureKeepsOldVersion(t *testing.T) {
	t.Parallel()
	pub, priv := testKey(t)
	m, events, path, next := signedWatch(t, "stale", pub, priv)

	copyFile(t, testWasm.kitchen2, path) // v2, v1's signature beside it
	// (A copy caught half-written may fail as an invalid module first.)
	ev, next := events.wait(t, next, time.Minute, func(e Event) bool {
		return e.Type == EventFailed && !errors.Is(e.Err, ErrInvalidModule)
	})
	if !errors.Is(ev.Err, ErrBadSignature) || ev.Version != "1.0.0" ||
		!strings.Contains(ev.Err.Error(), "plugin stale refused: bad signature") {
		t.Fatalf("failed event %+v", ev)
	}
	if v := versionOf(t, m, "stale"); v != "1.0.0" {
		t.Fatalf("after a stale-signed replacement %s answers", v)
	}

	signFile(t, priv, path, path) // only the .sig changes
	ev, _ = events.wait(t, next, time.Minute, func(e Event) bool { return e.Type == EventReloaded })
	if ev.Version != "2.0.0" || ev.Previous != "1.0.0" {
		t.Fatalf("reloaded event %+v", ev)
	}
	if v := versionOf(t, m, "stale"); v != "2.0.0" {
		t.Fatalf("after signing %s answers", v)
	}
	p, _ := m.Get("stale")
	if p.Info().GetLastError() != "" {
		t.Error("last error not cleared")
	}
}

// TestWatchSignedReplacement: the new signature written first, then the new
// module: the signature alone changes nothing (1.0.0 is what is loaded), the
// module then swaps in with no signature failure on the way.
func TestWatchSignedReplacement(t *testing.T) {
	t.Parallel()
	pub, priv := testKey(t)
	m, events, path, next := signedWatch(t, "signed", pub, priv)
	signFile(t, priv, testWasm.kitchen2, path)
	copyFile(t, testWasm.kitchen2, path)
	ev, _ := events.wait(t, next, time.Minute, func(e Event) bool {
		return e.Type == EventReloaded || (e.Type == EventFailed && !errors.Is(e.Err, ErrInvalidModule))
	})
	if ev.Type != EventReloaded || ev.Version != "2.0.0" {
		t.Fatalf("event %+v", ev)
	}
	if v := versionOf(t, m, "signed"); v != "2.0.0" {
		t.Fatalf("%s answers", v)
	}
}

// TestWatchUnsignedReplacementRefused: signature removed, module replaced:
// refused as unsigned, 1.0.0 keeps serving.
func TestWatchUnsignedReplacementRefused(t *testing.T) {
	t.Parallel()
	pub, priv := testKey(t)
	m, events, path, next := signedWatch(t, "bare-v2", pub, priv)
	if err := os.Remove(path + SignatureExt); err != nil {
		t.Fatal(err)
	}
	copyFile(t, testWasm.kitchen2, path)
	ev, _ := events.wait(t, next, time.Minute, func(e Event) bool {
		return e.Type == EventFailed && !errors.Is(e.Err, ErrInvalidModule)
	})
	if !errors.Is(ev.Err, ErrUnsigned) || !strings.Contains(ev.Err.Error(), "plugin bare-v2 refused: unsigned: require_signatures is on") {
		t.Fatalf("failed event %+v", ev)
	}
	if v := versionOf(t, m, "bare-v2"); v != "1.0.0" {
		t.Fatalf("after an unsigned replacement %s answers", v)
	}
}

// TestSignaturePolicyChangeApplies: turning require_signatures on unloads a
// plugin loaded unsigned; dropping the key that signed a plugin unloads it.
func TestSignaturePolicyChangeApplies(t *testing.T) {
	t.Parallel()
	pub, priv := testKey(t)
	other, _ := testKey(t)
	dir := t.TempDir()
	signed := kitchen("signed")
	signed.Path = filepath.Join(dir, "signed.wasm")
	copyFile(t, testWasm.kitchen, signed.Path)
	signFile(t, priv, signed.Path, signed.Path)
	plain := kitchen("plain")

	m := newTestManager(t)
	cfgDir := t.TempDir()
	apply := func(cfg Config) error {
		cfg.Plugins = []Spec{signed, plain}
		return m.LoadPluginsFromConfig(writeConfig(t, cfgDir, cfg))
	}
	if err := apply(Config{}); err != nil {
		t.Fatal(err)
	}
	if err := m.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustEcho(t, m, "plain")

	if err := apply(Config{TrustedKeys: []string{EncodePublicKey(pub)}, RequireSignatures: true}); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("require on: %v", err)
	}
	mustEcho(t, m, "signed")
	if _, err := m.Get("plain"); !errors.Is(err, ErrNotLoaded) || !strings.Contains(err.Error(), "unsigned") {
		t.Fatalf("Get(plain) = %v", err)
	}

	_ = apply(Config{TrustedKeys: []string{EncodePublicKey(other)}, RequireSignatures: true})
	if _, err := m.Get("signed"); !errors.Is(err, ErrNotLoaded) || !strings.Contains(err.Error(), "not by a trusted key") {
		t.Fatalf("Get(signed) after key rotation = %v", err)
	}

	if err := apply(Config{}); err != nil {
		t.Fatal(err)
	}
	mustEcho(t, m, "signed")
	mustEcho(t, m, "plain")
}

// TestSignatureWarnMode: in signature_mode warn an unsigned module loads and
// its listing says enforce would refuse it; a signed one has no warning; a
// bad signature is refused as in every mode; the mode is validated.
func TestSignatureWarnMode(t *testing.T) {
	t.Parallel()
	trusted, trustedPriv := testKey(t)
	_, strangerPriv := testKey(t)
	dir := t.TempDir()
	specs := map[string]func(path string){
		"unsigned": func(string) {},
		"signed":   func(p string) { signFile(t, trustedPriv, p, p) },
		"stranger": func(p string) { signFile(t, strangerPriv, p, p) },
	}
	var cfg Config
	cfg.TrustedKeys = []string{EncodePublicKey(trusted)}
	cfg.SignatureMode = SignatureWarn
	for name, sign := range specs {
		spec := kitchen(name)
		spec.Path = filepath.Join(dir, name+".wasm")
		copyFile(t, testWasm.kitchen, spec.Path)
		sign(spec.Path)
		cfg.Plugins = append(cfg.Plugins, spec)
	}
	m, err := loadConfig(t, cfg)
	if !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "plugin stranger refused") {
		t.Fatalf("Init: %v, want the stranger's signature refused", err)
	}
	mustEcho(t, m, "unsigned")
	mustEcho(t, m, "signed")
	info := func(name string) (state, warning string) {
		p, err := m.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		i := p.Info()
		return i.GetState().String(), i.GetWarning()
	}
	if st, w := info("unsigned"); st != "PLUGIN_STATE_LOADED" || !strings.HasPrefix(w, "signature_mode warn: enforce would refuse it") {
		t.Errorf("unsigned: %s, warning %q", st, w)
	}
	if _, w := info("signed"); w != "" {
		t.Errorf("signed: warning %q", w)
	}

	for _, c := range []struct{ yaml, want string }{
		{"signature_mode: warn\n", "signature_mode is warn but trusted_keys is empty"},
		{"signature_mode: warn\nrequire_signatures: true\ntrusted_keys: [" + EncodePublicKey(trusted) + "]\n", "contradict"},
		{"signature_mode: strict\n", `signature_mode "strict": want enforce or warn`},
	} {
		if _, err := ParseConfig([]byte(c.yaml), t.TempDir()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.yaml, err, c.want)
		}
	}
	enforce, err := ParseConfig([]byte("signature_mode: enforce\ntrusted_keys: ["+EncodePublicKey(trusted)+"]\n"), t.TempDir())
	if err != nil || !enforce.RequireSignatures {
		t.Errorf("signature_mode enforce: %v, require %v", err, enforce != nil && enforce.RequireSignatures)
	}
}

// TestSignatureNamedAfterThePlugin: a module installed under another file
// name finds the signature named after the plugin (NAME.wasm.sig).
func TestSignatureNamedAfterThePlugin(t *testing.T) {
	t.Parallel()
	trusted, priv := testKey(t)
	dir := t.TempDir()
	spec := kitchen("tool")
	spec.Path = filepath.Join(dir, "tool-1.2.0.wasm")
	copyFile(t, testWasm.kitchen, spec.Path)
	signFile(t, priv, spec.Path, filepath.Join(dir, "tool.wasm"))
	m, err := loadConfig(t, Config{TrustedKeys: []string{EncodePublicKey(trusted)}, RequireSignatures: true, Plugins: []Spec{spec}})
	if err != nil {
		t.Fatal(err)
	}
	mustEcho(t, m, "tool")
}
