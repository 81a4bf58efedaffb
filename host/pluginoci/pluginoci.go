// Package pluginoci stores plugin modules in an OCI registry and fetches
// them back: one artifact per module, its manifest listing two layers, the
// module and its signature. A tag that moves moves both at once, and a
// registry without the referrers API (distribution 2.8) serves it as is.
package pluginoci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
)

// Media types of the artifact and its layers.
const (
	ArtifactType       = "application/vnd.arcade.plugin.v1"
	ModuleMediaType    = "application/vnd.arcade.plugin.module.v1+wasm"
	SignatureMediaType = "application/vnd.arcade.plugin.signature.v1+base64"
	// Scheme prefixes a reference in plugins.yaml (source:).
	Scheme = "oci://"
	// maxManifestBytes and maxSignatureBytes bound what is read before the
	// module: a manifest of two layers is well under a KiB, a base64
	// ed25519 signature 89 bytes.
	maxManifestBytes  = 64 << 10
	maxSignatureBytes = 1 << 10
)

// ErrTooBig is a module larger than the bound, refused from the size its
// manifest declares, before any of it is downloaded.
var ErrTooBig = errors.New("module larger than max_module_bytes")

// ErrNotPlugin is an artifact that is not a plugin module.
var ErrNotPlugin = errors.New("not an arcade plugin artifact")

// Options say how to reach a registry.
type Options struct {
	// PlainHTTP speaks http, not https (a registry on loopback).
	PlainHTTP bool
	// DockerConfig is the docker config.json holding registry credentials;
	// empty means docker's own ($DOCKER_CONFIG or ~/.docker). A missing
	// file means no credentials.
	DockerConfig string
	// Credential, when set, is the registry's credential (a stored secret,
	// say): for the reference's registry it wins over the docker config,
	// which is then read only for other hosts. Nothing here prints it.
	Credential auth.Credential
	// Timeout bounds each request (default one minute).
	Timeout time.Duration
}

// Artifact is a pulled module.
type Artifact struct {
	// Digest is the manifest's digest ("sha256:…"): what the tag pointed at.
	Digest string
	// Module is the wasm module; ModuleDigest its layer digest.
	Module       []byte
	ModuleDigest string
	// Signature is the signature layer as pushed (base64 text); nil when
	// the artifact carries none.
	Signature []byte
}

// ParseReference reads "oci://REG/REPO:TAG" or "oci://REG/REPO@sha256:…"
// (the scheme is optional).
func ParseReference(s string) (registry.Reference, error) {
	ref, err := registry.ParseReference(strings.TrimPrefix(s, Scheme))
	if err != nil {
		return registry.Reference{}, fmt.Errorf("%q: %w", s, err)
	}
	if ref.Reference == "" {
		return registry.Reference{}, fmt.Errorf("%q names no tag or digest", s)
	}
	return ref, nil
}

// IsDigest reports whether ref pins a digest (it never moves).
func IsDigest(ref registry.Reference) bool {
	_, err := ref.Digest()
	return err == nil
}

func repository(ref registry.Reference, o Options) (*remote.Repository, error) {
	repo, err := remote.NewRepository(ref.Registry + "/" + ref.Repository)
	if err != nil {
		return nil, err
	}
	repo.PlainHTTP = o.PlainHTTP
	cred, err := o.credential(ref.Registry)
	if err != nil {
		return nil, err
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	repo.Client = &auth.Client{
		Client:     &http.Client{Timeout: timeout},
		Cache:      auth.NewCache(),
		Credential: cred,
	}
	repo.SkipReferrersGC = true
	return repo, nil
}

// credential is where the client finds the credential of a host: the
// static one for reg, when set; the docker config otherwise.
func (o Options) credential(reg string) (auth.CredentialFunc, error) {
	docker := func() (auth.CredentialFunc, error) {
		var store credentials.Store
		var err error
		if o.DockerConfig != "" {
			store, err = credentials.NewStore(o.DockerConfig, credentials.StoreOptions{})
		} else {
			store, err = credentials.NewStoreFromDocker(credentials.StoreOptions{})
		}
		if err != nil {
			return nil, fmt.Errorf("registry credentials: %w", err)
		}
		return credentials.Credential(store), nil
	}
	if o.Credential == auth.EmptyCredential {
		return docker()
	}
	static := auth.StaticCredential(reg, o.Credential)
	var (
		once     sync.Once
		fallback auth.CredentialFunc
		fbErr    error
	)
	return func(ctx context.Context, hostport string) (auth.Credential, error) {
		if c, _ := static(ctx, hostport); c != auth.EmptyCredential {
			return c, nil
		}
		// Another host (a token service elsewhere, say): the docker
		// config's, read only then.
		once.Do(func() { fallback, fbErr = docker() })
		if fbErr != nil {
			return auth.EmptyCredential, fbErr
		}
		return fallback(ctx, hostport)
	}, nil
}

// Push uploads module and its signature (base64 text, may be nil) as an
// artifact and tags it with ref's tag. It returns the manifest's digest.
func Push(ctx context.Context, refStr string, module, signature []byte, o Options) (string, error) {
	ref, err := ParseReference(refStr)
	if err != nil {
		return "", err
	}
	if IsDigest(ref) {
		return "", fmt.Errorf("%s: push to a tag, not a digest", refStr)
	}
	repo, err := repository(ref, o)
	if err != nil {
		return "", err
	}
	push := func(mediaType string, data []byte) (ocispec.Descriptor, error) {
		desc := content.NewDescriptorFromBytes(mediaType, data)
		if ok, err := repo.Exists(ctx, desc); err == nil && ok {
			return desc, nil
		}
		if err := repo.Push(ctx, desc, bytes.NewReader(data)); err != nil {
			return desc, fmt.Errorf("push %s: %w", mediaType, err)
		}
		return desc, nil
	}
	layers := make([]ocispec.Descriptor, 0, 2)
	mod, err := push(ModuleMediaType, module)
	if err != nil {
		return "", err
	}
	layers = append(layers, mod)
	if signature != nil {
		sig, err := push(SignatureMediaType, signature)
		if err != nil {
			return "", err
		}
		layers = append(layers, sig)
	}
	desc, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, ArtifactType,
		oras.PackManifestOptions{Layers: layers, ManifestAnnotations: map[string]string{ocispec.AnnotationCreated: "1970-01-01T00:00:00Z"}})
	if err != nil {
		return "", fmt.Errorf("push manifest: %w", err)
	}
	if err := repo.Tag(ctx, desc, ref.Reference); err != nil {
		return "", fmt.Errorf("tag %s: %w", ref.Reference, err)
	}
	return desc.Digest.String(), nil
}

// Resolve returns the digest ref points at now.
func Resolve(ctx context.Context, refStr string, o Options) (string, error) {
	ref, err := ParseReference(refStr)
	if err != nil {
		return "", err
	}
	repo, err := repository(ref, o)
	if err != nil {
		return "", err
	}
	desc, err := repo.Resolve(ctx, ref.Reference)
	if err != nil {
		return "", err
	}
	return desc.Digest.String(), nil
}

// Pull fetches the artifact ref points at. The module's size, as the
// manifest declares it, is checked against maxModule before the module is
// fetched; every blob read is checked against its digest (and a digest
// reference against the manifest's).
func Pull(ctx context.Context, refStr string, maxModule int64, o Options) (*Artifact, error) {
	ref, err := ParseReference(refStr)
	if err != nil {
		return nil, err
	}
	repo, err := repository(ref, o)
	if err != nil {
		return nil, err
	}
	desc, err := repo.Resolve(ctx, ref.Reference)
	if err != nil {
		return nil, err
	}
	if want, err := ref.Digest(); err == nil && desc.Digest != want {
		return nil, fmt.Errorf("%s resolved to %s", refStr, desc.Digest)
	}
	if desc.Size > maxManifestBytes {
		return nil, fmt.Errorf("%w: manifest of %d bytes", ErrNotPlugin, desc.Size)
	}
	raw, err := content.FetchAll(ctx, repo, desc)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	var man ocispec.Manifest
	if err := json.Unmarshal(raw, &man); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrNotPlugin, err)
	}
	if man.ArtifactType != ArtifactType && man.Config.MediaType != ArtifactType {
		return nil, fmt.Errorf("%w: artifact type %q", ErrNotPlugin, man.ArtifactType)
	}
	a := &Artifact{Digest: desc.Digest.String()}
	for _, l := range man.Layers {
		switch l.MediaType {
		case ModuleMediaType:
			if l.Size > maxModule {
				return nil, fmt.Errorf("%w: %s declares %d bytes, more than %d", ErrTooBig, l.Digest, l.Size, maxModule)
			}
			if a.Module, err = fetch(ctx, repo, l); err != nil {
				return nil, fmt.Errorf("module: %w", err)
			}
			a.ModuleDigest = l.Digest.String()
		case SignatureMediaType:
			if l.Size > maxSignatureBytes {
				return nil, fmt.Errorf("%w: signature layer of %d bytes", ErrNotPlugin, l.Size)
			}
			if a.Signature, err = fetch(ctx, repo, l); err != nil {
				return nil, fmt.Errorf("signature: %w", err)
			}
		}
	}
	if a.Module == nil {
		return nil, fmt.Errorf("%w: no %s layer", ErrNotPlugin, ModuleMediaType)
	}
	return a, nil
}

// fetch reads one blob, verifying its size and digest.
func fetch(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor) ([]byte, error) {
	if err := desc.Digest.Validate(); err != nil || desc.Digest.Algorithm() != digest.SHA256 {
		return nil, fmt.Errorf("layer digest %q: want sha256", desc.Digest)
	}
	rc, err := repo.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return content.ReadAll(io.LimitReader(rc, desc.Size+1), desc)
}
