package pluginoci_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"oras.land/oras-go/v2/registry/remote/auth"

	"github.com/go-arcade/arcade/host/pluginoci"
	"github.com/go-arcade/arcade/internal/dockertest"
)

// countingProxy fronts the registry and counts the blob downloads.
func countingProxy(t *testing.T, addr string) (string, *atomic.Int32) {
	t.Helper()
	target, _ := url.Parse("http://" + addr)
	var blobs atomic.Int32
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
			blobs.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), &blobs
}

func TestPushPull(t *testing.T) {
	reg := dockertest.StartRegistry(t, dockertest.RegistryOptions{})
	addr, blobs := countingProxy(t, reg.Addr)
	ctx := context.Background()
	o := pluginoci.Options{PlainHTTP: true, DockerConfig: t.TempDir() + "/none.json"}
	module := append([]byte("\x00asm\x01\x00\x00\x00"), bytes.Repeat([]byte{7}, 100_000)...)
	sig := []byte("c2lnbmF0dXJl\n")
	ref := addr + "/arcade/tool:stable"
	digest, err := pluginoci.Push(ctx, ref, module, sig, o)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("round trip by tag and by digest", func(t *testing.T) {
		for _, r := range []string{pluginoci.Scheme + ref, pluginoci.Scheme + addr + "/arcade/tool@" + digest} {
			a, err := pluginoci.Pull(ctx, r, int64(len(module)), o)
			if err != nil {
				t.Fatalf("%s: %v", r, err)
			}
			if a.Digest != digest || !bytes.Equal(a.Module, module) || !bytes.Equal(a.Signature, sig) {
				t.Fatalf("%s: pulled %s, %d bytes, signature %q", r, a.Digest, len(a.Module), a.Signature)
			}
		}
		if got, err := pluginoci.Resolve(ctx, ref, o); err != nil || got != digest {
			t.Fatalf("resolve: %s %v, want %s", got, err, digest)
		}
	})

	t.Run("a module over the bound is refused before it is downloaded", func(t *testing.T) {
		before := blobs.Load()
		_, err := pluginoci.Pull(ctx, pluginoci.Scheme+ref, int64(len(module))-1, o)
		if !errors.Is(err, pluginoci.ErrTooBig) || !strings.Contains(err.Error(), "declares 100008 bytes, more than 100007") {
			t.Fatalf("pull over the bound: %v", err)
		}
		if n := blobs.Load() - before; n != 0 {
			t.Fatalf("%d blobs downloaded before the refusal", n)
		}
	})

	t.Run("an unsigned artifact pulls without a signature", func(t *testing.T) {
		other, err := pluginoci.Push(ctx, addr+"/arcade/tool:other", module, nil, o)
		if err != nil {
			t.Fatal(err)
		}
		a, err := pluginoci.Pull(ctx, pluginoci.Scheme+addr+"/arcade/tool@"+other, int64(len(module)), o)
		if err != nil || a.Signature != nil || a.Digest == digest {
			t.Fatalf("unsigned artifact: %+v %v", a, err)
		}
	})

	t.Run("bad references", func(t *testing.T) {
		for _, r := range []string{"oci://" + addr + "/arcade/tool", "oci://no slash"} {
			if _, err := pluginoci.Pull(ctx, r, 1<<20, o); err == nil {
				t.Errorf("%s: pulled", r)
			}
		}
		if _, err := pluginoci.Push(ctx, addr+"/arcade/tool@"+digest, module, nil, o); err == nil || !strings.Contains(err.Error(), "push to a tag") {
			t.Errorf("push to a digest: %v", err)
		}
	})
}

// TestStaticCredential: a credential given in Options reaches a registry
// behind htpasswd, and wins over the docker config's for that registry; a
// broken docker config is not even read then.
func TestStaticCredential(t *testing.T) {
	reg := dockertest.StartRegistry(t, dockertest.RegistryOptions{User: "ci", Password: "Pa55-static"})
	ctx := context.Background()
	dir := t.TempDir()
	wrong := filepath.Join(dir, "wrong.json")
	b64 := base64.StdEncoding.EncodeToString([]byte("ci:not-it"))
	if err := os.WriteFile(wrong, []byte(`{"auths": {"`+reg.Addr+`": {"auth": "`+b64+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(dir, "broken.json")
	if err := os.WriteFile(broken, []byte(`{not json`), 0o600); err != nil {
		t.Fatal(err)
	}
	module := []byte("\x00asm\x01\x00\x00\x00static")
	ref := reg.Addr + "/arcade/tool:stable"
	right := auth.Credential{Username: "ci", Password: "Pa55-static"}

	// The docker config's wrong credential alone is refused.
	if _, err := pluginoci.Push(ctx, ref, module, nil, pluginoci.Options{PlainHTTP: true, DockerConfig: wrong}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("push with the docker config's wrong credential: %v", err)
	}
	for name, config := range map[string]string{"wrong": wrong, "broken": broken, "none": filepath.Join(dir, "none.json")} {
		o := pluginoci.Options{PlainHTTP: true, DockerConfig: config, Credential: right}
		digest, err := pluginoci.Push(ctx, ref, module, nil, o)
		if err != nil {
			t.Fatalf("push, docker config %s: %v", name, err)
		}
		a, err := pluginoci.Pull(ctx, pluginoci.Scheme+ref, 1<<20, o)
		if err != nil || a.Digest != digest || !bytes.Equal(a.Module, module) {
			t.Fatalf("pull, docker config %s: %v", name, err)
		}
	}
	// A wrong static credential is not saved by the docker config.
	o := pluginoci.Options{PlainHTTP: true, DockerConfig: wrong, Credential: auth.Credential{Username: "ci", Password: "nope"}}
	if _, err := pluginoci.Resolve(ctx, ref, o); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("resolve with a wrong static credential: %v", err)
	}
}
