// Package secrets seals secrets for storage: AES-256-GCM under keys the
// server keeps outside the database, so a copy of the database alone reveals
// no secret. Keys live in a keyring: every sealed value names the key it is
// sealed under, any key of the ring opens what it sealed, and one key (the
// primary) seals. Rotating keys (arcade server rekey) adds a key to every
// replica's ring, makes it the primary and seals every value again, while
// the old key still opens what was sealed before.
package secrets

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// KeySize is the key length in bytes.
const KeySize = 32

// version marks a sealed value that names its key: version, then the key id,
// the nonce and the ciphertext. Values sealed before keyrings existed are
// nonce and ciphertext alone (legacy), opened by trying each key.
const (
	version   = 0xA7
	idSize    = 8
	headerLen = 1 + idSize
)

// ErrUnknownKey is returned for a value sealed under a key the ring lacks.
var ErrUnknownKey = errors.New("sealed under a key this server's keyring lacks")

// KeyID names a key without revealing it: the first bytes of a hash of it.
func KeyID(key []byte) string {
	sum := sha256.Sum256(append([]byte("arcade secret key id\x00"), key...))
	return hex.EncodeToString(sum[:idSize])
}

type ringKey struct {
	id   string
	raw  [idSize]byte
	aead cipher.AEAD
}

// KeySource says where a keyring's keys come from.
type KeySource struct {
	// Key is a key in base64 (secret_key in server.yaml); optional.
	Key string
	// KeyPath is the single-key file (DATA_DIR/secret.key). It is read when
	// it exists, and created with a new key when no other source gives one.
	KeyPath string
	// RingPath is the keyring file (DATA_DIR/secret.keyring): one base64 key
	// per line, '#' comments; the last key is the primary unless the
	// database names another. Optional.
	RingPath string
}

// Keyring seals and opens secrets with several keys. It is safe for
// concurrent use.
type Keyring struct {
	src KeySource

	mu       sync.RWMutex
	keys     []*ringKey // load order: the single key first, then the ring file
	byID     map[string]*ringKey
	fallback string // the primary when none is chosen: the last key loaded
	chosen   string // the primary the database names, when loaded
	ringMod  time.Time
}

// New returns a keyring of one 32-byte key (tests, tools).
func New(key []byte) (*Keyring, error) {
	k := &Keyring{byID: map[string]*ringKey{}}
	if err := k.add(key); err != nil {
		return nil, err
	}
	return k, nil
}

// GenerateKey returns a fresh random key.
func GenerateKey() []byte {
	key := make([]byte, KeySize)
	rand.Read(key) //nolint:errcheck // crypto/rand.Read never fails
	return key
}

func (k *Keyring) add(key []byte) error {
	if len(key) != KeySize {
		return fmt.Errorf("secret key: want %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return fmt.Errorf("secret key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return fmt.Errorf("secret key: %w", err)
	}
	id := KeyID(key)
	if k.byID[id] == nil {
		rk := &ringKey{id: id, aead: aead}
		hex.Decode(rk.raw[:], []byte(id)) //nolint:errcheck // id is hex
		k.keys = append(k.keys, rk)
		k.byID[id] = rk
	}
	k.fallback = id
	return nil
}

// LoadKeyring reads the keys of src.
func LoadKeyring(src KeySource) (*Keyring, error) {
	k := &Keyring{src: src}
	if _, err := k.Reload(); err != nil {
		return nil, err
	}
	return k, nil
}

// Reload reads the key sources again (a key added to or removed from the
// ring file) and reports whether the keys changed.
func (k *Keyring) Reload() (bool, error) {
	var keys [][]byte
	if enc := strings.TrimSpace(k.src.Key); enc != "" {
		key, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			return false, fmt.Errorf("secret_key: not base64: %w", err)
		}
		keys = append(keys, key)
	} else if k.src.KeyPath != "" {
		raw, err := os.ReadFile(k.src.KeyPath)
		switch {
		case err == nil:
			key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
			if err != nil {
				return false, fmt.Errorf("secret key %s: not base64: %w", k.src.KeyPath, err)
			}
			keys = append(keys, key)
		case !errors.Is(err, os.ErrNotExist):
			return false, fmt.Errorf("read secret key: %w", err)
		}
	}
	var mod time.Time
	if k.src.RingPath != "" {
		ring, st, err := readRing(k.src.RingPath)
		if err != nil {
			return false, err
		}
		keys = append(keys, ring...)
		if st != nil {
			mod = st.ModTime()
		}
	}
	if len(keys) == 0 {
		if k.src.KeyPath == "" {
			return false, errors.New("secret keys: no key given (secret_key, a key file or a keyring file)")
		}
		key := GenerateKey()
		if err := writeKeyFile(k.src.KeyPath, key); err != nil {
			return false, err
		}
		keys = append(keys, key)
	}
	next := &Keyring{byID: map[string]*ringKey{}}
	for i, key := range keys {
		if err := next.add(key); err != nil {
			return false, fmt.Errorf("secret key %d: %w", i+1, err)
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	changed := !slices.Equal(ids(k.keys), ids(next.keys)) || k.fallback != next.fallback
	k.keys, k.byID, k.fallback, k.ringMod = next.keys, next.byID, next.fallback, mod
	if k.byID[k.chosen] == nil {
		k.chosen = ""
	}
	return changed, nil
}

// RingChanged reports whether the ring file was modified since it was read.
func (k *Keyring) RingChanged() bool {
	if k.src.RingPath == "" {
		return false
	}
	st, err := os.Stat(k.src.RingPath)
	k.mu.RLock()
	defer k.mu.RUnlock()
	if err != nil {
		return !k.ringMod.IsZero()
	}
	return !st.ModTime().Equal(k.ringMod)
}

func ids(keys []*ringKey) []string {
	out := make([]string, len(keys))
	for i, rk := range keys {
		out[i] = rk.id
	}
	return out
}

func readRing(path string) ([][]byte, os.FileInfo, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read keyring: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read keyring: %w", err)
	}
	var keys [][]byte
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(key) != KeySize {
			return nil, nil, fmt.Errorf("keyring %s line %d: want a base64 key of %d bytes", path, n, KeySize)
		}
		keys = append(keys, key)
	}
	return keys, st, nil
}

func writeKeyFile(path string, key []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create secret key: %w", err)
	}
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return fmt.Errorf("create secret key: %w", err)
	}
	return nil
}

// AppendToRing adds a key to a keyring file (created 0600 when missing).
func AppendToRing(path string, key []byte) error {
	if len(key) != KeySize {
		return fmt.Errorf("secret key: want %d bytes, got %d", KeySize, len(key))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	line := fmt.Sprintf("# key %s, added %s\n%s\n", KeyID(key), time.Now().UTC().Format(time.RFC3339), base64.StdEncoding.EncodeToString(key))
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return fmt.Errorf("keyring: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("keyring: %w", err)
	}
	return f.Close()
}

// IDs returns the ids of the keys in the ring, in load order.
func (k *Keyring) IDs() []string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return ids(k.keys)
}

// Has reports whether the ring holds the key id.
func (k *Keyring) Has(id string) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.byID[id] != nil
}

// Primary returns the id of the key that seals.
func (k *Keyring) Primary() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.primaryLocked().id
}

func (k *Keyring) primaryLocked() *ringKey {
	if rk := k.byID[k.chosen]; rk != nil {
		return rk
	}
	return k.byID[k.fallback]
}

// UsePrimary makes the key id seal from now on (the database names the
// primary, so that every replica switches together); "" returns to the
// ring's own choice. A key the ring lacks is refused.
func (k *Keyring) UsePrimary(id string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if id != "" && k.byID[id] == nil {
		return fmt.Errorf("primary key %s: %w", id, ErrUnknownKey)
	}
	k.chosen = id
	return nil
}

// SealValue encrypts one value under the primary key; aad binds it to its
// place (a row id), so a sealed value moved elsewhere does not open.
func (k *Keyring) SealValue(plain, aad []byte) ([]byte, error) {
	k.mu.RLock()
	rk := k.primaryLocked()
	k.mu.RUnlock()
	if rk == nil {
		return nil, errors.New("seal: the keyring is empty")
	}
	out := make([]byte, headerLen, headerLen+rk.aead.NonceSize()+len(plain)+rk.aead.Overhead())
	out[0] = version
	copy(out[1:], rk.raw[:])
	nonce := make([]byte, rk.aead.NonceSize())
	rand.Read(nonce) //nolint:errcheck // crypto/rand.Read never fails
	out = append(out, nonce...)
	return rk.aead.Seal(out, nonce, plain, additional(out[:headerLen], aad)), nil
}

func additional(header, aad []byte) []byte {
	return append(slices.Clip(header), aad...)
}

// KeyOf returns the id of the key a value is sealed under, "" for a value
// sealed before keyrings (or not sealed by this package).
func KeyOf(sealed []byte) string {
	if len(sealed) < headerLen || sealed[0] != version {
		return ""
	}
	return hex.EncodeToString(sealed[1:headerLen])
}

// OpenValue decrypts what SealValue made with the same aad, or a legacy
// value (no key id, no aad).
func (k *Keyring) OpenValue(sealed, aad []byte) ([]byte, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if id := KeyOf(sealed); id != "" {
		if rk := k.byID[id]; rk != nil {
			n := rk.aead.NonceSize()
			if len(sealed) < headerLen+n {
				return nil, errors.New("open secret: too short")
			}
			plain, err := rk.aead.Open(nil, sealed[headerLen:headerLen+n], sealed[headerLen+n:], additional(sealed[:headerLen], aad))
			if err != nil {
				return nil, fmt.Errorf("open secret (key %s): %w", id, err)
			}
			return plain, nil
		}
	}
	// Legacy: nonce and ciphertext under one of the keys. GCM's tag tells
	// the right key; no other key opens it.
	for _, rk := range k.keys {
		n := rk.aead.NonceSize()
		if len(sealed) < n {
			break
		}
		if plain, err := rk.aead.Open(nil, sealed[:n], sealed[n:], nil); err == nil {
			return plain, nil
		}
	}
	if id := KeyOf(sealed); id != "" {
		return nil, fmt.Errorf("open secret: key %s: %w: add it to the keyring (see arcade server rekey)", id, ErrUnknownKey)
	}
	return nil, errors.New("open secret: no key of the keyring opens it (another server's key?)")
}

// Reseal seals a value again under the primary key when it is under
// another; it reports whether it changed anything.
func (k *Keyring) Reseal(sealed, aad []byte) ([]byte, bool, error) {
	if len(sealed) == 0 || KeyOf(sealed) == k.Primary() {
		return sealed, false, nil
	}
	plain, err := k.OpenValue(sealed, aad)
	if err != nil {
		return nil, false, err
	}
	out, err := k.SealValue(plain, aad)
	clear(plain)
	return out, err == nil, err
}

// Seal encrypts a map of secrets (a job's or pipeline's own); nil for none.
func (k *Keyring) Seal(secrets map[string]string) ([]byte, error) {
	if len(secrets) == 0 {
		return nil, nil
	}
	plain, err := json.Marshal(secrets)
	if err != nil {
		return nil, err
	}
	return k.SealValue(plain, nil)
}

// Open decrypts what Seal made.
func (k *Keyring) Open(sealed []byte) (map[string]string, error) {
	if len(sealed) == 0 {
		return nil, nil
	}
	plain, err := k.OpenValue(sealed, nil)
	if err != nil {
		return nil, err
	}
	var out map[string]string
	if err := json.Unmarshal(plain, &out); err != nil {
		return nil, fmt.Errorf("open secrets: %w", err)
	}
	return out, nil
}
