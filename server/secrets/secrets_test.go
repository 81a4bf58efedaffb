package secrets

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSealOpen(t *testing.T) {
	b, err := LoadKeyring(KeySource{KeyPath: filepath.Join(t.TempDir(), "k", "secret.key")})
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := b.Seal(map[string]string{"TOKEN": "s3cr3t"})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("s3cr3t")) {
		t.Fatal("sealed secrets hold the plain value")
	}
	if KeyOf(sealed) != b.Primary() {
		t.Errorf("sealed under %q, primary %q", KeyOf(sealed), b.Primary())
	}
	got, err := b.Open(sealed)
	if err != nil || got["TOKEN"] != "s3cr3t" {
		t.Fatalf("Open = %v, %v", got, err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := b.Open(sealed); err == nil {
		t.Error("a tampered box opened")
	}
	other, _ := New(bytes.Repeat([]byte{7}, KeySize))
	good, _ := b.Seal(map[string]string{"A": "b"})
	if _, err := other.Open(good); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("another key opening the box: %v, want ErrUnknownKey", err)
	}
}

// TestValueBoundToItsRow: a value sealed for one row does not open as
// another's (a database writer cannot swap sealed values between secrets).
func TestValueBoundToItsRow(t *testing.T) {
	k, _ := New(bytes.Repeat([]byte{1}, KeySize))
	sealed, err := k.SealValue([]byte("v"), []byte("row-1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.OpenValue(sealed, []byte("row-2")); err == nil {
		t.Error("a value sealed for row-1 opened as row-2's")
	}
	if v, err := k.OpenValue(sealed, []byte("row-1")); err != nil || string(v) != "v" {
		t.Errorf("OpenValue = %q, %v", v, err)
	}
}

// TestLegacyValuesOpen: values sealed before keyrings (nonce and ciphertext,
// no key id) still open, and Reseal moves them under the primary key.
func TestLegacyValuesOpen(t *testing.T) {
	key := bytes.Repeat([]byte{3}, KeySize)
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	legacy := aead.Seal(nonce, nonce, []byte(`{"K":"old"}`), nil)

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret.key"), []byte(base64.StdEncoding.EncodeToString(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	ring, err := LoadKeyring(KeySource{KeyPath: filepath.Join(dir, "secret.key"), RingPath: filepath.Join(dir, "secret.keyring")})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := ring.Open(legacy); err != nil || m["K"] != "old" {
		t.Fatalf("legacy value: %v %v", m, err)
	}
	// A new key in the ring: the legacy value still opens; re-sealed, it
	// is under the new primary.
	next := GenerateKey()
	if err := AppendToRing(filepath.Join(dir, "secret.keyring"), next); err != nil {
		t.Fatal(err)
	}
	if !ring.RingChanged() {
		t.Error("RingChanged after an append: false")
	}
	if changed, err := ring.Reload(); err != nil || !changed {
		t.Fatalf("Reload: %v %v", changed, err)
	}
	if err := ring.UsePrimary(KeyID(next)); err != nil {
		t.Fatal(err)
	}
	out, did, err := ring.Reseal(legacy, nil)
	if err != nil || !did || KeyOf(out) != KeyID(next) {
		t.Fatalf("Reseal = %v, %v, under %q", did, err, KeyOf(out))
	}
	if m, err := ring.Open(out); err != nil || m["K"] != "old" {
		t.Fatalf("re-sealed value: %v %v", m, err)
	}
	if _, did, _ := ring.Reseal(out, nil); did {
		t.Error("a value under the primary was re-sealed again")
	}
}

// TestKeyringRotation: while a second key is added, values under either
// key open; the primary decides what seals; a value under a key the ring
// lacks names that key.
func TestKeyringRotation(t *testing.T) {
	dir := t.TempDir()
	src := KeySource{KeyPath: filepath.Join(dir, "secret.key"), RingPath: filepath.Join(dir, "secret.keyring")}
	a, err := LoadKeyring(src)
	if err != nil {
		t.Fatal(err)
	}
	first := a.Primary()
	underFirst, _ := a.SealValue([]byte("one"), []byte("x"))

	k2 := GenerateKey()
	if err := AppendToRing(src.RingPath, k2); err != nil {
		t.Fatal(err)
	}
	b, err := LoadKeyring(src) // a second replica, reading the same files
	if err != nil {
		t.Fatal(err)
	}
	if err := b.UsePrimary(first); err != nil {
		t.Fatal(err)
	}
	if b.Primary() != first {
		t.Errorf("primary %s, want %s (the database's choice)", b.Primary(), first)
	}
	if err := b.UsePrimary(KeyID(k2)); err != nil {
		t.Fatal(err)
	}
	underSecond, _ := b.SealValue([]byte("two"), []byte("x"))
	if KeyOf(underSecond) != KeyID(k2) {
		t.Fatalf("sealed under %s, want %s", KeyOf(underSecond), KeyID(k2))
	}
	// Replica a has not re-read the ring: it cannot open the new key's
	// value, and says which key it lacks.
	if _, err := a.OpenValue(underSecond, []byte("x")); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("old ring opening a new value: %v", err)
	}
	if err := a.UsePrimary(KeyID(k2)); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("UsePrimary of an unknown key: %v", err)
	}
	if _, err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	for _, v := range [][]byte{underFirst, underSecond} {
		if _, err := a.OpenValue(v, []byte("x")); err != nil {
			t.Errorf("after reload: %v", err)
		}
		if _, err := b.OpenValue(v, []byte("x")); err != nil {
			t.Errorf("replica b: %v", err)
		}
	}
}

func TestLoadKeyKeepsTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.key")
	k1, err := LoadKeyring(KeySource{KeyPath: path})
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadKeyring(KeySource{KeyPath: path})
	if err != nil || k1.Primary() != k2.Primary() {
		t.Fatalf("second load: %v, same key %v", err, k1.Primary() == k2.Primary())
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", st.Mode().Perm())
	}
	if _, err := LoadKeyring(KeySource{Key: "!!", KeyPath: path}); err == nil {
		t.Error("a bad base64 key was accepted")
	}
	bad := filepath.Join(t.TempDir(), "ring")
	os.WriteFile(bad, []byte("# comment\nnot-a-key\n"), 0o600)
	if _, err := LoadKeyring(KeySource{KeyPath: path, RingPath: bad}); err == nil {
		t.Error("a bad keyring line was accepted")
	}
}

func TestNormalizeRepo(t *testing.T) {
	for in, want := range map[string]string{
		"https://github.com/org/app.git":        "github.com/org/app",
		"https://User:pw@GitHub.com/org/app/":   "github.com/org/app",
		"git@github.com:org/app.git":            "github.com/org/app",
		"ssh://git@github.com:22/org/app":       "github.com/org/app",
		"ssh://git@git.example.com:2222/a/b":    "git.example.com:2222/a/b",
		"github.com/org/app":                    "github.com/org/app",
		"http://gitea.local:3000/team/repo.git": "gitea.local:3000/team/repo",
	} {
		if got, err := NormalizeRepo(in); err != nil || got != want {
			t.Errorf("NormalizeRepo(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "https://github.com/", "ftp://h/x", "github.com/a/../b", "a b", "https:///x"} {
		if got, err := NormalizeRepo(bad); err == nil {
			t.Errorf("NormalizeRepo(%q) = %q, want an error", bad, got)
		}
	}
}
