package secrets

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestSealOpen(t *testing.T) {
	key, err := LoadKey("", filepath.Join(t.TempDir(), "k", "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(key)
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
	if _, err := other.Open(good); err == nil {
		t.Error("another key opened the box")
	}
}

func TestLoadKeyKeepsTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.key")
	k1, err := LoadKey("", path)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadKey("", path)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second load: %v, same %v", err, bytes.Equal(k1, k2))
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", st.Mode().Perm())
	}
	if _, err := LoadKey("!!", path); err == nil {
		t.Error("a bad base64 key was accepted")
	}
}
