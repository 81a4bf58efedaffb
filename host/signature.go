package host

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Plugin signatures. A signature is ed25519 over signatureContext followed by
// the module's raw sha256 digest (32 bytes). Signing the digest rather than
// the bytes lets a loaded version be checked again from the digest it keeps
// (when the trusted keys change) and ties the signature to the digest the
// host already reports and plugins.yaml can pin; the context string keeps a
// module signature from being valid for anything else signed with that key.
//
// Formats, all text:
//   - signature: standard base64 of the 64-byte signature, in NAME.wasm.sig
//     beside the module (a trailing newline is fine) or in plugins.yaml
//     (signature:), which wins over the file;
//   - public key: standard base64 of the 32-byte key (trusted_keys:);
//   - private key: PEM "PRIVATE KEY" (PKCS #8), as `openssl genpkey
//     -algorithm ed25519` writes it.

// SignatureExt is the suffix of the signature file beside a module.
const SignatureExt = ".sig"

const signatureContext = "arcade plugin module signature v1\x00"

// GenerateKey returns a new ed25519 key pair for signing plugins.
func GenerateKey() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	return ed25519.GenerateKey(rand.Reader)
}

// MarshalPrivateKey encodes a private key as PEM (PKCS #8).
func MarshalPrivateKey(priv ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivateKey reads a PEM (PKCS #8) ed25519 private key.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM private key (want PKCS #8, \"PRIVATE KEY\")")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an ed25519 key", key)
	}
	return priv, nil
}

// EncodePublicKey returns a public key as trusted_keys lists it: base64.
func EncodePublicKey(pub ed25519.PublicKey) string {
	return base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey reads a base64 ed25519 public key.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%q is not a base64 ed25519 public key (%d bytes)", s, ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// EncodeSignature returns a signature as a .sig file holds it: base64 and a
// newline.
func EncodeSignature(sig []byte) []byte {
	return []byte(base64.StdEncoding.EncodeToString(sig) + "\n")
}

// ParseSignature reads a base64 signature, surrounding space ignored.
func ParseSignature(data []byte) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(b) != ed25519.SignatureSize {
		return nil, fmt.Errorf("not a base64 ed25519 signature (%d bytes)", ed25519.SignatureSize)
	}
	return b, nil
}

func signedMessage(digest [sha256.Size]byte) []byte {
	return append([]byte(signatureContext), digest[:]...)
}

// SignModule signs a module's content and returns the raw signature.
func SignModule(priv ed25519.PrivateKey, module []byte) []byte {
	return ed25519.Sign(priv, signedMessage(sha256.Sum256(module)))
}

// VerifyModule checks that sig signs module by one of keys. The error
// answers errors.Is(err, ErrBadSignature).
func VerifyModule(module, sig []byte, keys ...ed25519.PublicKey) error {
	if verifyDigest(sha256.Sum256(module), sig, keys) {
		return nil
	}
	return ErrBadSignature
}

func verifyDigest(digest [sha256.Size]byte, sig []byte, keys []ed25519.PublicKey) bool {
	msg := signedMessage(digest)
	return slices.ContainsFunc(keys, func(k ed25519.PublicKey) bool { return ed25519.Verify(k, msg, sig) })
}

// Signature modes (plugins.yaml signature_mode).
const (
	SignatureEnforce = "enforce"
	SignatureWarn    = "warn"
)

// signaturesOn reports whether modules are checked at all.
func (c *Config) signaturesOn() bool { return c.RequireSignatures || len(c.keys) > 0 }

// sameSignaturePolicy reports whether two configurations trust the same keys
// under the same requirement.
func (c *Config) sameSignaturePolicy(o *Config) bool {
	return c.RequireSignatures == o.RequireSignatures && c.SignatureMode == o.SignatureMode &&
		slices.EqualFunc(c.keys, o.keys, func(a, b ed25519.PublicKey) bool { return a.Equal(b) })
}

// readSignature returns the spec's signature (plugins.yaml first, then the
// file beside the module), where it came from, and nil when there is none.
func readSignature(spec *Spec) (sig []byte, from string, err error) {
	if spec.Signature != "" {
		sig, err := ParseSignature([]byte(spec.Signature))
		return sig, "plugins.yaml", err
	}
	from = spec.Path + SignatureExt
	data, err := os.ReadFile(from)
	if named := filepath.Join(filepath.Dir(spec.Path), spec.Name+".wasm"+SignatureExt); errors.Is(err, fs.ErrNotExist) && named != from {
		// `arcade plugin sign` names the signature after the plugin, so
		// that it follows a module installed under another file name.
		from = named
		data, err = os.ReadFile(from)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, spec.Path + SignatureExt, nil
	}
	if err != nil {
		return nil, from, err
	}
	sig, err = ParseSignature(data)
	return sig, from, err
}

// checkSignature applies the signature policy of c to a module with the
// given digest. With trusted keys, a signature present is always checked;
// require_signatures decides whether an unsigned module loads. It returns the
// signature that was accepted (nil when unsigned) and, in warn mode, the
// refusal enforce would have made of an unsigned module (which loads).
//
// A module pulled from a registry (spec.Source) is checked against the
// signature its artifact carried, pulledSig (nil: none), unless plugins.yaml
// sets one.
func (c *Config) checkSignature(spec *Spec, digest [sha256.Size]byte, pulledSig []byte) (sig []byte, warning, err error) {
	if !c.signaturesOn() {
		return nil, nil, nil
	}
	var from string
	if spec.Source != "" && spec.Signature == "" {
		from = "the artifact at " + spec.Source
		if pulledSig != nil {
			sig, err = ParseSignature(pulledSig)
		}
	} else {
		sig, from, err = readSignature(spec)
	}
	if err != nil {
		return nil, nil, &Error{Plugin: spec.Name, Reason: ErrBadSignature, Detail: fmt.Sprintf("%s: %v", from, err), Err: err}
	}
	if sig == nil {
		switch {
		case c.RequireSignatures:
			return nil, nil, refused(spec.Name, ErrUnsigned,
				"require_signatures is on and neither plugins.yaml nor %s holds a signature", from)
		case c.SignatureMode == SignatureWarn:
			return nil, refused(spec.Name, ErrUnsigned,
				"signature_mode warn: enforce would refuse it: neither plugins.yaml nor %s holds a signature", from), nil
		}
		return nil, nil, nil
	}
	if !verifyDigest(digest, sig, c.keys) {
		return nil, nil, refused(spec.Name, ErrBadSignature,
			"%s: signature not by a trusted key, or the module changed after signing", from)
	}
	return sig, nil, nil
}

// recheckSignaturesLocked applies a changed signature policy to the versions
// already loaded: one the new policy refuses stops serving (its calls in
// flight finish) and is listed as failed with the reason, which the returned
// error joins. A plugin found in a watched folder that failed to load is tried again
// (configured plugins are, by the configuration being applied).
func (m *Manager) recheckSignaturesLocked(ctx context.Context, prev *Config) error {
	if m.cfg.sameSignaturePolicy(prev) {
		return nil
	}
	var errs []error
	m.mu.RLock()
	ps := make([]*Plugin, 0, len(m.plugins))
	for _, p := range m.plugins {
		ps = append(ps, p)
	}
	m.mu.RUnlock()
	for _, p := range ps {
		v := p.cur.Load()
		if v == nil {
			p.mu.Lock()
			spec, source, gone := p.spec, p.source, p.gone
			p.mu.Unlock()
			if source == sourceDir && !gone {
				errs = append(errs, m.applySpecLocked(ctx, spec, source, false))
			}
			continue
		}
		if v.sig != nil && verifyDigest(v.digest, v.sig, m.cfg.keys) {
			continue // still signed by a trusted key
		}
		// The signature is over the digest the version keeps: no need to
		// read the module again.
		sig, warning, err := m.cfg.checkSignature(&v.spec, v.digest, v.ociSig)
		if err == nil {
			v.sig = sig
			v.setWarning(warning)
			if warning != nil {
				m.logger.Warn("plugin unsigned; enforce would refuse it", "plugin", p.name, "err", warning)
			}
			continue
		}
		if !p.cur.CompareAndSwap(v, nil) {
			continue
		}
		v.retire()
		errs = append(errs, err)
		p.setErr(err.Error())
		m.logger.Warn("plugin unloaded by the signature policy", "plugin", p.name, "err", err)
		m.emit(Event{Type: EventUnloaded, Plugin: p.name, Kind: KindName(v.meta.GetKind()),
			Version: v.meta.GetVersion(), Path: v.spec.Path, SHA256: v.sha256})
		m.emit(Event{Type: EventFailed, Plugin: p.name, Kind: KindName(v.meta.GetKind()), Path: v.spec.Path, Err: err})
	}
	return errors.Join(errs...)
}
