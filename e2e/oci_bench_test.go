package e2e

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/moby/client"

	"github.com/go-arcade/arcade/host"
	"github.com/go-arcade/arcade/host/pluginoci"
	"github.com/go-arcade/arcade/internal/dockertest"
)

// padModule appends a custom section of n random bytes to a wasm module:
// still a valid module, n bytes larger, incompressible like an image layer.
func padModule(t testing.TB, module []byte, n int) []byte {
	t.Helper()
	name := []byte("arcade.pad")
	payload := make([]byte, n)
	if _, err := rand.Read(payload); err != nil {
		t.Fatal(err)
	}
	body := append(binary.AppendUvarint(nil, uint64(len(name))), name...)
	body = append(body, payload...)
	out := append(append([]byte{}, module...), 0)
	out = binary.AppendUvarint(out, uint64(len(body)))
	return append(out, body...)
}

// BenchmarkPluginOCIPull compares, against one registry in one run, a
// server's pull + digest and signature check + load (compile and metadata
// call) of a 5 MB plugin from oci:// with docker pull of an image of the
// same size.
func BenchmarkPluginOCIPull(b *testing.B) {
	reg := dockertest.StartRegistry(b, dockertest.RegistryOptions{})
	e := dockertest.Start(b)
	dir := b.TempDir()
	wasm := filepath.Join(dir, "steptool.wasm")
	buildPlugin(b, "./testdata/steptool", wasm)
	raw, err := os.ReadFile(wasm)
	if err != nil {
		b.Fatal(err)
	}
	const size = 5 << 20
	module := raw
	if len(raw) < size {
		module = padModule(b, raw, size-len(raw))
	}
	pub, priv, _ := host.GenerateKey()
	ctx := context.Background()
	opts := pluginoci.Options{PlainHTTP: true, DockerConfig: filepath.Join(dir, "none.json")}
	ref := reg.Addr + "/arcade/steptool:bench"
	if _, err := pluginoci.Push(ctx, ref, module, host.EncodeSignature(host.SignModule(priv, module)), opts); err != nil {
		b.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "plugins.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(`trusted_keys: [%s]
require_signatures: true
oci: {plain_http: true, docker_config: %s}
plugins:
  - name: steptool
    source: oci://%s
    kind: ci
`, host.EncodePublicKey(pub), opts.DockerConfig, ref)), 0o644); err != nil {
		b.Fatal(err)
	}

	// The image: busybox and random bytes, as large as the module once
	// compressed (random bytes do not compress).
	img := reg.Addr + "/arcade/bench:5m"
	pad := make([]byte, size-1<<20)
	if _, err := rand.Read(pad); err != nil {
		b.Fatal(err)
	}
	e.BuildBusybox(b, dockertest.Image{Ref: img, Files: map[string]string{"pad": string(pad)}})
	e.PushAndForget(b, img, reg)

	b.Logf("module %d bytes (steptool %d bytes and a custom section)", len(module), len(raw))
	b.Run("oci-pull-verify", func(b *testing.B) {
		b.SetBytes(int64(len(module)))
		for b.Loop() {
			a, err := pluginoci.Pull(ctx, pluginoci.Scheme+ref, host.DefaultMaxModuleBytes, opts)
			if err != nil {
				b.Fatal(err)
			}
			sig, err := host.ParseSignature(a.Signature)
			if err != nil {
				b.Fatal(err)
			}
			if err := host.VerifyModule(a.Module, sig, pub); err != nil {
				b.Fatal(err)
			}
		}
	})
	load := func(b *testing.B, cacheDir string) {
		b.SetBytes(int64(len(module)))
		for b.Loop() {
			m := host.NewManager(nil, host.WithCacheDir(cacheDir))
			if err := m.LoadPluginsFromConfig(cfgPath); err != nil {
				b.Fatal(err)
			}
			if err := m.Init(ctx); err != nil {
				b.Fatal(err)
			}
			if _, err := m.Get("steptool"); err != nil {
				b.Fatal(err)
			}
			_ = m.Close(ctx)
		}
	}
	// Cold: a module the server has not compiled before (a new version on
	// the tag). Warm: one its compilation cache holds (a restart).
	b.Run("oci-pull-verify-load-cold", func(b *testing.B) { load(b, "-") })
	warm := b.TempDir()
	b.Run("oci-pull-verify-load-warm", func(b *testing.B) { load(b, warm) })
	b.Run("docker-pull", func(b *testing.B) {
		b.SetBytes(int64(len(module)))
		for b.Loop() {
			resp, err := e.Client.ImagePull(ctx, img, client.ImagePullOptions{})
			if err != nil {
				b.Fatal(err)
			}
			for _, err := range resp.JSONMessages(ctx) {
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if _, err := e.Client.ImageRemove(ctx, img, client.ImageRemoveOptions{PruneChildren: true}); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
}
