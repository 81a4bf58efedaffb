package plugincache

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	"github.com/go-arcade/arcade/host"
)

// server is a DownloadPlugin that serves one module, possibly tampered with.
type server struct {
	mod   *agentv1.PluginModule
	data  []byte
	calls atomic.Int32
}

type stream struct {
	grpc.ClientStream
	msgs []*agentv1.DownloadPluginResponse
}

func (s *stream) Recv() (*agentv1.DownloadPluginResponse, error) {
	if len(s.msgs) == 0 {
		return nil, io.EOF
	}
	m := s.msgs[0]
	s.msgs = s.msgs[1:]
	return m, nil
}

func (s *server) DownloadPlugin(_ context.Context, in *agentv1.DownloadPluginRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[agentv1.DownloadPluginResponse], error) {
	s.calls.Add(1)
	if in.GetName() != s.mod.GetName() || in.GetSha256() != s.mod.GetSha256() {
		return nil, status.Error(codes.NotFound, "no such module")
	}
	half := len(s.data) / 2
	return &stream{msgs: []*agentv1.DownloadPluginResponse{{Module: s.mod, Data: s.data[:half]}, {Data: s.data[half:]}}}, nil
}

func module(data []byte) *agentv1.PluginModule {
	sum := sha256.Sum256(data)
	return &agentv1.PluginModule{Name: "lint", Version: "1.0.0", Sha256: hex.EncodeToString(sum[:]), SizeBytes: int64(len(data))}
}

func TestFetchVerifyReuse(t *testing.T) {
	data := []byte("\x00asm\x01\x00\x00\x00 a module")
	srv := &server{mod: module(data), data: data}
	c, err := New(t.TempDir(), srv, Policy{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	got, err := c.Get(ctx, srv.mod)
	if err != nil || string(got) != string(data) {
		t.Fatalf("first Get: %q %v", got, err)
	}
	if b, err := os.ReadFile(c.Path(srv.mod.GetSha256())); err != nil || string(b) != string(data) {
		t.Fatalf("cached file: %q %v", b, err)
	}
	if _, err := c.Get(ctx, srv.mod); err != nil || srv.calls.Load() != 1 {
		t.Fatalf("second Get: %v, %d fetches, want the cached module", err, srv.calls.Load())
	}

	// A cached file changed on disk is fetched again.
	if err := os.WriteFile(c.Path(srv.mod.GetSha256()), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, srv.mod); err != nil || string(got) != string(data) || srv.calls.Load() != 2 {
		t.Fatalf("Get after corruption: %q %v %d", got, err, srv.calls.Load())
	}

	// Bytes that are not the module asked for are refused and not kept.
	other := module([]byte("another module"))
	tampered := &server{mod: other, data: []byte("another modulE")}
	c2, _ := New(t.TempDir(), tampered, Policy{}, nil)
	if _, err := c2.Get(ctx, other); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "sha256 mismatch") {
		t.Fatalf("tampered module: %v", err)
	}
	if _, err := os.Stat(c2.Path(other.GetSha256())); !os.IsNotExist(err) {
		t.Errorf("a refused module was cached: %v", err)
	}
	// An unknown module is the server's NotFound.
	if _, err := c2.Get(ctx, module([]byte("nope"))); status.Code(err) != codes.NotFound {
		t.Errorf("unknown module: %v", err)
	}
}

func TestSignaturePolicy(t *testing.T) {
	data := []byte("\x00asm\x01\x00\x00\x00 signed module")
	pub, priv, _ := host.GenerateKey()
	_, otherPriv, _ := host.GenerateKey()
	ctx := context.Background()
	strict := Policy{TrustedKeys: []ed25519.PublicKey{pub}, Require: true}

	cases := []struct {
		name string
		sig  []byte
		ok   bool
		why  string
	}{
		{"signed by a trusted key", host.SignModule(priv, data), true, ""},
		{"unsigned", nil, false, "unsigned"},
		{"signed by another key", host.SignModule(otherPriv, data), false, "bad signature"},
		{"signature of other bytes", host.SignModule(priv, []byte("other")), false, "bad signature"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mod := module(data)
			mod.Signature = tc.sig
			c, err := New(t.TempDir(), &server{mod: mod, data: data}, strict, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Get(ctx, mod)
			if tc.ok != (err == nil) || (!tc.ok && (!errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.why))) {
				t.Fatalf("Get: %v, want ok=%v (%s)", err, tc.ok, tc.why)
			}
			if !tc.ok {
				if _, err := os.Stat(c.Path(mod.GetSha256())); !os.IsNotExist(err) {
					t.Errorf("a refused module was cached")
				}
			}
		})
	}
	if _, err := New(t.TempDir(), nil, Policy{Require: true}, nil); err == nil {
		t.Error("requiring signatures without a trusted key was accepted")
	}
}

// A module larger than the agent's bound is refused from the size the
// server announces, before any download; one whose stream runs past the
// bound (a server announcing less than it sends) is refused too.
func TestModuleSizeBound(t *testing.T) {
	data := []byte("\x00asm\x01\x00\x00\x00" + strings.Repeat("x", 100))
	srv := &server{mod: module(data), data: data}
	c, err := New(t.TempDir(), srv, Policy{MaxModuleBytes: 64}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Get(context.Background(), srv.mod)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "108 bytes, more than this agent's max_module_bytes (64)") {
		t.Fatalf("an announced 108-byte module under a 64-byte bound: %v", err)
	}
	if n := srv.calls.Load(); n != 0 {
		t.Fatalf("%d downloads of a module refused by its size", n)
	}
	understated := module(data)
	understated.SizeBytes = 10
	srv.mod = understated
	if _, err := c.Get(context.Background(), understated); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "larger than this agent's max_module_bytes (64)") {
		t.Fatalf("a stream past the bound: %v", err)
	}
}
