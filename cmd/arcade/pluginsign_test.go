package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-arcade/arcade/host/pdktest"
)

// runPluginCmd runs the arcade command in-process and returns its output.
func runPluginCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// TestPluginSignRoundTrip: keygen → sign → verify passes; verify fails on a
// changed module, another key, a missing signature.
func TestPluginSignRoundTrip(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "signing.key")
	module := filepath.Join(dir, "demo.wasm")
	if err := os.WriteFile(module, []byte("\x00asm\x01\x00\x00\x00demo module"), 0o644); err != nil {
		t.Fatal(err)
	}

	out, err := runPluginCmd(t, "plugin", "keygen", "--out", key)
	if err != nil {
		t.Fatal(err)
	}
	pub := strings.TrimSpace(out)
	if len(pub) != 44 {
		t.Fatalf("keygen printed %q, want a base64 public key", out)
	}
	st, err := os.Stat(key)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v", err, st.Mode())
	}
	if _, err := runPluginCmd(t, "plugin", "keygen", "--out", key); err == nil {
		t.Fatal("keygen overwrote an existing key")
	}

	if _, err := runPluginCmd(t, "plugin", "sign", "--key", key, module); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(module + ".sig"); err != nil {
		t.Fatal(err)
	}
	for _, pubArg := range []string{pub, key + ".pub"} {
		out, err = runPluginCmd(t, "plugin", "verify", "--pub", pubArg, module)
		if err != nil || !strings.Contains(out, "good signature") {
			t.Fatalf("verify --pub %s: %v %q", pubArg, err, out)
		}
	}

	other := filepath.Join(dir, "other.key")
	otherPub, err := runPluginCmd(t, "plugin", "keygen", "--out", other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runPluginCmd(t, "plugin", "verify", "--pub", strings.TrimSpace(otherPub), module); err == nil ||
		!strings.Contains(err.Error(), "bad signature") {
		t.Fatalf("verify with another key: %v", err)
	}

	f, err := os.OpenFile(module, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.Write([]byte{0})
	_ = f.Close()
	if _, err := runPluginCmd(t, "plugin", "verify", "--pub", pub, module); err == nil ||
		!strings.Contains(err.Error(), "bad signature: not signed by this key, or the module changed after signing") {
		t.Fatalf("verify of a changed module: %v", err)
	}

	if err := os.Remove(module + ".sig"); err != nil {
		t.Fatal(err)
	}
	if _, err := runPluginCmd(t, "plugin", "verify", "--pub", pub, module); err == nil || !strings.Contains(err.Error(), "unsigned") {
		t.Fatalf("verify without a signature: %v", err)
	}
}

// TestPluginSignAll: sign --all signs every module of a folder, each
// signature named after the plugin the module declares (a module that is
// not a plugin: after its file), and the signatures verify.
func TestPluginSignAll(t *testing.T) {
	lint := pdktest.Build(t, "../../plugins/go-lint")
	dir := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	data, err := os.ReadFile(lint)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go-lint-1.0.0.wasm"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "odd.wasm"), []byte("\x00asm\x01\x00\x00\x00not a plugin"), 0o644); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "signing.key")
	if _, err := runPluginCmd(t, "plugin", "keygen", "--out", key); err != nil {
		t.Fatal(err)
	}
	out, err := runPluginCmd(t, "plugin", "sign", "--key", key, "--all", dir)
	if err != nil {
		t.Fatalf("sign --all: %v\n%s", err, out)
	}
	for _, c := range []struct{ module, sig string }{
		{"go-lint-1.0.0.wasm", "go-lint.wasm.sig"},
		{"odd.wasm", "odd.wasm.sig"},
	} {
		if !strings.Contains(out, filepath.Join(dir, c.sig)+" signed by") {
			t.Errorf("sign --all did not name %s:\n%s", c.sig, out)
		}
		out, err := runPluginCmd(t, "plugin", "verify", "--pub", key+".pub", "--sig", filepath.Join(dir, c.sig), filepath.Join(dir, c.module))
		if err != nil || !strings.Contains(out, "good signature") {
			t.Errorf("verify %s: %v %s", c.sig, err, out)
		}
	}
	if _, err := runPluginCmd(t, "plugin", "sign", "--key", key, "--all", t.TempDir()); err == nil || !strings.Contains(err.Error(), "no .wasm in") {
		t.Errorf("sign --all of an empty folder: %v", err)
	}
}
