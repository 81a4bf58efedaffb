// Package plugincache keeps the plugin modules an agent runs as job steps.
// A module is known by its sha256: the cache holds DIR/SHA256.wasm, fetches
// a missing one from the server (DownloadPlugin, by name and sha256),
// checks its digest and, under a signature policy, its ed25519 signature,
// and writes it atomically. A module on disk is checked again each time it
// is used, so a file changed behind the agent's back is fetched anew.
package plugincache

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"google.golang.org/grpc"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	"github.com/go-arcade/arcade/host"
)

// Downloader fetches a module from the server; agentv1.AgentServiceClient
// is one.
type Downloader interface {
	DownloadPlugin(ctx context.Context, in *agentv1.DownloadPluginRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[agentv1.DownloadPluginResponse], error)
}

// Policy says which signatures the agent requires.
type Policy struct {
	// TrustedKeys check a module's signature when it has one.
	TrustedKeys []ed25519.PublicKey
	// Require refuses a module not signed by a trusted key.
	Require bool
	// MaxModuleBytes bounds a module: a larger one is refused from the size
	// the server announces, before it is downloaded (0:
	// host.DefaultMaxModuleBytes, the server's default bound).
	MaxModuleBytes int64
}

func (p Policy) maxBytes() int64 {
	if p.MaxModuleBytes > 0 {
		return p.MaxModuleBytes
	}
	return host.DefaultMaxModuleBytes
}

// ErrRefused marks a module the cache refuses: a wrong digest or size, a
// missing or bad signature.
var ErrRefused = errors.New("module refused")

// Cache is the agent's plugin module cache. It is safe for concurrent use.
type Cache struct {
	dir    string
	dl     Downloader
	policy Policy
	log    *slog.Logger

	mu       sync.Mutex
	fetching map[string]*sync.Mutex // by sha256: one fetch at a time
}

// New returns a cache in dir (created if missing) that fetches through dl.
func New(dir string, dl Downloader, policy Policy, logger *slog.Logger) (*Cache, error) {
	if policy.Require && len(policy.TrustedKeys) == 0 {
		return nil, errors.New("plugin signatures are required but no key is trusted")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("plugin cache: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Cache{dir: dir, dl: dl, policy: policy, log: logger, fetching: map[string]*sync.Mutex{}}, nil
}

var hexDigest = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Path is where the module with this sha256 is kept.
func (c *Cache) Path(sum string) string { return filepath.Join(c.dir, sum+".wasm") }

// Get returns the bytes of the module mod describes: from disk when cached,
// otherwise fetched from the server. The bytes have mod's sha256 and pass
// the signature policy (mod.Signature, as the server handed it out); an
// error wrapping ErrRefused says why not.
func (c *Cache) Get(ctx context.Context, mod *agentv1.PluginModule) ([]byte, error) {
	sum := strings.ToLower(mod.GetSha256())
	if !hexDigest.MatchString(sum) {
		return nil, fmt.Errorf("plugin %s: %w: sha256 %q is not 64 hex digits", mod.GetName(), ErrRefused, mod.GetSha256())
	}
	max := c.policy.maxBytes()
	if size := mod.GetSizeBytes(); size > max {
		return nil, fmt.Errorf("plugin %s: %w: %d bytes, more than this agent's max_module_bytes (%d)", mod.GetName(), ErrRefused, size, max)
	}
	lock := c.lockFor(sum)
	lock.Lock()
	defer lock.Unlock()

	path := c.Path(sum)
	data, err := readAtMost(path, max)
	switch {
	case err == nil:
		if digest(data) == sum {
			if err := c.checkSignature(mod, data); err != nil {
				return nil, err
			}
			return data, nil
		}
		c.log.Warn("cached plugin module changed on disk; fetching it again", "plugin", mod.GetName(), "path", path)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("plugin %s: read cache: %w", mod.GetName(), err)
	}
	data, err = c.fetch(ctx, mod, sum)
	if err != nil {
		return nil, err
	}
	if err := c.checkSignature(mod, data); err != nil {
		return nil, err
	}
	if err := writeAtomic(path, data); err != nil {
		return nil, fmt.Errorf("plugin %s: write cache: %w", mod.GetName(), err)
	}
	c.log.Info("plugin module fetched", "plugin", mod.GetName(), "version", mod.GetVersion(), "sha256", sum, "bytes", len(data))
	return data, nil
}

func (c *Cache) lockFor(sum string) *sync.Mutex {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.fetching[sum]
	if l == nil {
		l = new(sync.Mutex)
		c.fetching[sum] = l
	}
	return l
}

// fetch downloads the module and checks its size and digest.
func (c *Cache) fetch(ctx context.Context, mod *agentv1.PluginModule, sum string) ([]byte, error) {
	stream, err := c.dl.DownloadPlugin(ctx, &agentv1.DownloadPluginRequest{Name: mod.GetName(), Sha256: sum})
	if err != nil {
		return nil, fmt.Errorf("plugin %s: fetch from the server: %w", mod.GetName(), err)
	}
	var buf bytes.Buffer
	first := true
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("plugin %s: fetch from the server: %w", mod.GetName(), err)
		}
		if first {
			first = false
			if got := msg.GetModule().GetSha256(); got != "" && got != sum {
				return nil, fmt.Errorf("plugin %s: %w: the server sent %s, not %s", mod.GetName(), ErrRefused, got, sum)
			}
		}
		if max := c.policy.maxBytes(); int64(buf.Len()+len(msg.GetData())) > max {
			return nil, fmt.Errorf("plugin %s: %w: larger than this agent's max_module_bytes (%d)", mod.GetName(), ErrRefused, max)
		}
		buf.Write(msg.GetData())
	}
	data := buf.Bytes()
	if size := mod.GetSizeBytes(); size > 0 && int64(len(data)) != size {
		return nil, fmt.Errorf("plugin %s: %w: received %d bytes, want %d", mod.GetName(), ErrRefused, len(data), size)
	}
	if got := digest(data); got != sum {
		return nil, fmt.Errorf("plugin %s: %w: sha256 mismatch: received %s, want %s", mod.GetName(), ErrRefused, got, sum)
	}
	return data, nil
}

// checkSignature applies the policy: with trusted keys a signature present
// must verify; with Require one must be present.
func (c *Cache) checkSignature(mod *agentv1.PluginModule, data []byte) error {
	sig := mod.GetSignature()
	if len(sig) == 0 {
		if c.policy.Require {
			return fmt.Errorf("plugin %s: %w: unsigned, and this agent requires signatures", mod.GetName(), ErrRefused)
		}
		return nil
	}
	if len(c.policy.TrustedKeys) == 0 {
		return nil
	}
	if err := host.VerifyModule(data, sig, c.policy.TrustedKeys...); err != nil {
		return fmt.Errorf("plugin %s: %w: bad signature: not by a key this agent trusts, or the module changed after signing", mod.GetName(), ErrRefused)
	}
	return nil
}

// readAtMost reads a cached module of at most max bytes; a larger file
// reads as missing (it is fetched again, within the bound).
func readAtMost(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return nil, err
	} else if st.Size() > max {
		return nil, fs.ErrNotExist
	}
	return io.ReadAll(io.LimitReader(f, max))
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// writeAtomic writes data to path through a temporary file renamed into
// place, so a reader never sees half a module.
func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".fetch-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
