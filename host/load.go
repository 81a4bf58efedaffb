package host

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	extism "github.com/extism/go-sdk"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"google.golang.org/protobuf/encoding/protojson"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
)

// version is one loaded version of a plugin: a compiled module and its pool
// of instances. Calls hold a reference; a retired version is closed when the
// last call on it returns.
type version struct {
	spec    Spec
	meta    *pluginv1.PluginMetadata
	sha256  string
	digest  [sha256.Size]byte
	sig     []byte // the signature accepted at load; nil when unsigned
	shipSig []byte // the signature handed to agents: sig, or the one found unchecked
	// warning is what enforce would say of this unsigned module in
	// signature_mode warn (nil: nothing).
	warning atomic.Pointer[string]
	data    []byte // the module's bytes, served to agents
	// ociDigest and ociSig are, for a module pulled from a registry, the
	// manifest it came from and the signature layer it carried.
	ociDigest string
	ociSig    []byte
	compiled  *extism.CompiledPlugin
	pool      *pool
	guard     *hostGuard // nil when no host is granted
	// secretConfig are the config values taken from stored secrets.
	secretConfig map[string]string
	loadedAt     time.Time
	loadTime     time.Duration

	mu       sync.Mutex
	inflight int
	retired  bool
}

// enter registers a call; false means the version was retired meanwhile and
// the caller must look up the current one again.
func (v *version) enter() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.retired {
		return false
	}
	v.inflight++
	return true
}

func (v *version) leave() {
	v.mu.Lock()
	v.inflight--
	done := v.retired && v.inflight == 0
	v.mu.Unlock()
	if done {
		v.close()
	}
}

// retire stops new calls and closes the version once calls in flight end.
func (v *version) retire() {
	v.mu.Lock()
	v.retired = true
	done := v.inflight == 0
	v.mu.Unlock()
	if done {
		v.close()
	}
}

func (v *version) close() {
	v.pool.close()
	_ = v.compiled.Close(context.Background())
}

var wasmMagic = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

// moduleTooBig is a module over max_module_bytes.
type moduleTooBig struct {
	path string
	size int64
	max  int64
}

func (e *moduleTooBig) Error() string {
	return fmt.Sprintf("%s is %d bytes, more than max_module_bytes (%d)", e.path, e.size, e.max)
}

// readModule reads a module file of at most max bytes: a larger one is
// refused from its size before any of it is read, and one that grows while
// it is read stops at max+1 bytes.
func readModule(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > max {
		return nil, &moduleTooBig{path: path, size: st.Size(), max: max}
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, &moduleTooBig{path: path, size: int64(len(data)), max: max}
	}
	return data, nil
}

// loadVersion reads, checks, compiles and validates a plugin module. Any
// failure is an *Error naming the plugin and the reason.
func (m *Manager) loadVersion(ctx context.Context, spec Spec) (*version, error) {
	start := time.Now()
	if spec.Source != "" {
		return m.loadPulled(ctx, spec, start)
	}
	data, err := readModule(spec.Path, m.cfg.maxModuleBytes())
	if errors.Is(err, fs.ErrNotExist) {
		detail := err.Error()
		if firstParty(spec.Path) {
			detail += " (not built yet? `make plugins` builds the first-party plugins)"
		}
		return nil, &Error{Plugin: spec.Name, Reason: ErrInvalidModule, Err: err, Detail: detail}
	}
	var big *moduleTooBig
	if errors.As(err, &big) {
		return nil, refused(spec.Name, ErrInvalidModule, "%s", big)
	}
	if err != nil {
		return nil, &Error{Plugin: spec.Name, Reason: ErrInvalidModule, Detail: err.Error(), Err: err}
	}
	sum, err := checkModule(&spec, data, spec.Path)
	if err != nil {
		return nil, err
	}
	sig, warning, err := m.cfg.checkSignature(&spec, sum, nil)
	if err != nil {
		return nil, err
	}
	if warning != nil {
		m.logger.Warn("plugin unsigned; enforce would refuse it", "plugin", spec.Name, "err", warning)
	}
	shipSig := sig
	if shipSig == nil {
		// Not checked here, but agents that trust keys check it.
		shipSig, _, _ = readSignature(&spec)
	}
	secretConfig, err := m.resolveSecrets(ctx, &spec)
	if err != nil {
		return nil, err
	}
	v, err := compileVersion(ctx, compiler{cache: m.cache, workers: m.opts.workers, logger: m.logger}, spec, secretConfig, data, sum)
	if err != nil {
		return nil, err
	}
	v.sig, v.shipSig = sig, shipSig
	v.setWarning(warning)
	v.loadTime = time.Since(start)
	return v, nil
}

// loadPulled is loadVersion for a module pulled from an OCI registry: its
// signature is the one its artifact carries (or plugins.yaml's).
func (m *Manager) loadPulled(ctx context.Context, spec Spec, start time.Time) (*version, error) {
	a, err := m.pullModule(ctx, &spec)
	if err != nil {
		return nil, err
	}
	sum, err := checkModule(&spec, a.Module, spec.Source+" ("+a.Digest+")")
	if err != nil {
		return nil, err
	}
	sig, warning, err := m.cfg.checkSignature(&spec, sum, a.Signature)
	if err != nil {
		return nil, err
	}
	if warning != nil {
		m.logger.Warn("plugin unsigned; enforce would refuse it", "plugin", spec.Name, "err", warning)
	}
	shipSig := sig
	if shipSig == nil && a.Signature != nil {
		shipSig, _ = ParseSignature(a.Signature)
	}
	secretConfig, err := m.resolveSecrets(ctx, &spec)
	if err != nil {
		return nil, err
	}
	v, err := compileVersion(ctx, compiler{cache: m.cache, workers: m.opts.workers, logger: m.logger}, spec, secretConfig, a.Module, sum)
	if err != nil {
		return nil, err
	}
	v.sig, v.shipSig = sig, shipSig
	v.ociDigest, v.ociSig = a.Digest, a.Signature
	v.setWarning(warning)
	v.loadTime = time.Since(start)
	m.logger.Info("plugin pulled", "plugin", spec.Name, "source", spec.Source, "digest", a.Digest, "sha256", v.sha256)
	return v, nil
}

// setWarning records (or, with nil, clears) the signature warning.
func (v *version) setWarning(w error) {
	if w == nil {
		v.warning.Store(nil)
		return
	}
	// The warning is shown with the plugin's name: its detail says it all
	// ("signature_mode warn: enforce would refuse it: …").
	s := w.Error()
	var e *Error
	if errors.As(w, &e) && e.Detail != "" {
		s = e.Detail
	}
	v.warning.Store(&s)
}

// firstParty reports whether a missing module is one `make plugins` builds:
// its sources are beside it (plugins/NAME.wasm ← plugins/NAME/main.go).
func firstParty(path string) bool {
	src := filepath.Join(filepath.Dir(path), strings.TrimSuffix(filepath.Base(path), ".wasm"), "main.go")
	_, err := os.Stat(src)
	return err == nil
}

// checkModule checks that data is a wasm module with the sha256 the spec
// pins, if it pins one, and returns its digest. from names the module in
// messages.
func checkModule(spec *Spec, data []byte, from string) ([sha256.Size]byte, error) {
	if !bytes.HasPrefix(data, wasmMagic) {
		return [sha256.Size]byte{}, refused(spec.Name, ErrInvalidModule, "%s is not a wasm module", from)
	}
	sum := sha256.Sum256(data)
	if spec.SHA256 != "" && !strings.EqualFold(spec.SHA256, hex.EncodeToString(sum[:])) {
		return sum, refused(spec.Name, ErrHashMismatch, "pinned %s, %s has %s", spec.SHA256, from, hex.EncodeToString(sum[:]))
	}
	return sum, nil
}

// compileSlot lets one module compile at a time in the process. A compile
// already uses every core (WithCompilationWorkers), so running several
// only shares them out, and needs the memory of each at once; and wazero
// 1.12 may hand a module compiled by one runtime to another before its
// entry preambles exist when both read it from a shared cache at once (a
// panic at instantiation). Loads still overlap where plugins get stuck:
// in their metadata call, which runs outside the slot.
var compileSlot = make(chan struct{}, 1)

// compiler is what compiling a module needs: the compilation cache, how
// many goroutines compile, and where the metadata call logs.
type compiler struct {
	cache   wazero.CompilationCache
	workers int
	logger  *slog.Logger
	// mount, when set, replaces confinedMounts (benchmarks compare mounts).
	mount func([]PathGrant) mounter
}

// resolveSecrets returns the config values spec takes from stored secrets.
func (m *Manager) resolveSecrets(ctx context.Context, spec *Spec) (map[string]string, error) {
	if len(spec.Secrets) == 0 {
		return nil, nil
	}
	if m.opts.secrets == nil {
		return nil, refused(spec.Name, ErrBadConfig, "secrets: this host keeps no secrets")
	}
	names := make([]string, 0, len(spec.Secrets))
	for _, n := range spec.Secrets {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	vals, err := m.opts.secrets(ctx, names)
	if err != nil {
		return nil, refused(spec.Name, ErrBadConfig, "secrets: %v", err)
	}
	out := make(map[string]string, len(spec.Secrets))
	for key, n := range spec.Secrets {
		out[key] = vals[n]
	}
	return out, nil
}

// SecretUsers returns the plugins whose configuration takes a value from
// the named stored secret, or whose registry credential it is (to load them
// again when it changes).
func (m *Manager) SecretUsers(name string) []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []string
	for n, p := range m.plugins {
		p.mu.Lock()
		uses := slices.Contains(slices.Collect(maps.Values(p.spec.Secrets)), name) || p.spec.RegistryAuth == name
		p.mu.Unlock()
		if uses {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// compileVersion compiles a checked module with the grants of spec (and
// the config values taken from secrets), calls its metadata and applies the
// contract checks.
func compileVersion(ctx context.Context, c compiler, spec Spec, secretConfig map[string]string, data []byte, sum [sha256.Size]byte) (*version, error) {
	config := spec.Config
	if len(secretConfig) > 0 {
		config = maps.Clone(spec.Config)
		if config == nil {
			config = map[string]string{}
		}
		maps.Copy(config, secretConfig)
	}
	manifest := extism.Manifest{
		Wasm: []extism.Wasm{extism.WasmData{Data: data, Name: "main"}},
		Memory: &extism.ManifestMemory{
			MaxPages:             spec.Grants.MemoryLimitMiB * 16, // 64 KiB pages
			MaxHttpResponseBytes: maxHTTPResponseBytes,
			MaxVarBytes:          maxVarBytes,
		},
		Config:       config,
		AllowedHosts: spec.Grants.AllowedHosts,
		Timeout:      uint64(time.Duration(spec.Grants.Timeout).Milliseconds()),
	}
	// Granted folders are mounted by each instance through its module
	// config (confinedMounts), never through manifest.AllowedPaths: the SDK
	// would mount them with wazero's DirFS, which follows links anywhere.
	var mount mounter
	if len(spec.Grants.AllowedPaths) > 0 {
		mount = confinedMounts(spec.Grants.AllowedPaths)
		if c.mount != nil {
			mount = c.mount(spec.Grants.AllowedPaths)
		}
		if missing := missingFolders(spec.Grants.AllowedPaths); len(missing) > 0 {
			c.logger.Warn("granted folders missing; the plugin finds nothing there until they exist",
				"plugin", spec.Name, "folders", missing)
		}
	}
	var guard *hostGuard
	if len(spec.Grants.AllowedHosts) > 0 {
		var err error
		if guard, err = newHostGuard(spec.Grants.AllowedHosts); err != nil {
			return nil, refused(spec.Name, ErrInvalidModule, "allowed_hosts: %v", err)
		}
	}
	rc := wazero.NewRuntimeConfig().WithCompilationCache(c.cache)
	cctx := experimental.WithCompilationWorkers(ctx, c.workers)
	select {
	case compileSlot <- struct{}{}:
	case <-ctx.Done():
		return nil, &Error{Plugin: spec.Name, Reason: ErrCanceled, Detail: "load: " + ctx.Err().Error(), Err: ctx.Err()}
	}
	compiled, err := extism.NewCompiledPlugin(cctx, manifest, extism.PluginConfig{
		EnableWasi:    true,
		RuntimeConfig: rc,
		// The kernel's http_headers (pdk.FetchWithHeaders): S3's ETags.
		EnableHttpResponseHeaders: true,
	}, nil)
	<-compileSlot
	if err != nil {
		return nil, &Error{Plugin: spec.Name, Reason: ErrInvalidModule, Detail: firstLine(err.Error()), Err: err}
	}
	v := &version{spec: spec, sha256: hex.EncodeToString(sum[:]), digest: sum, data: data, compiled: compiled, guard: guard,
		pool: newPool(compiled, mount, spec.Grants.MaxInstances), secretConfig: secretConfig}
	fail := func(e error) (*version, error) {
		v.close()
		return nil, e
	}

	inst, err := newInstance(ctx, compiled, mount)
	if err != nil {
		return fail(&Error{Plugin: spec.Name, Reason: ErrInvalidModule, Detail: firstLine(err.Error()), Err: err})
	}
	if !inst.p.FunctionExists(MetadataFunction) {
		inst.close()
		return fail(refused(spec.Name, ErrMissingFunction, "module does not export %s", MetadataFunction))
	}
	logger := c.logger.With("plugin", spec.Name)
	out, stderr, timedOut, err := inst.call(ctx, logger, nil, MetadataFunction, nil, spec.Grants.Limits)
	if err != nil {
		inst.close()
		ce := classifyCallError(callFacts{plugin: spec.Name, function: MetadataFunction, callerErr: ctx.Err(), timedOut: timedOut,
			timeout: time.Duration(spec.Grants.Timeout), memoryLimitMiB: spec.Grants.MemoryLimitMiB, stderr: stderr}, err)
		return fail(&Error{Plugin: spec.Name, Reason: ErrBadMetadata, Detail: ce.Error(), Err: ce})
	}
	md := &pluginv1.PluginMetadata{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(out, md); err != nil {
		inst.close()
		return fail(&Error{Plugin: spec.Name, Reason: ErrBadMetadata, Detail: err.Error(), Err: err})
	}
	if e := checkMetadata(&spec, md, inst.p.FunctionExists); e != nil {
		inst.close()
		return fail(e)
	}
	if missing := ungranted(&spec, md); len(missing) > 0 {
		logger.Info("plugin asks for capabilities that are not granted", "not_granted", missing)
	}
	v.meta = md
	v.pool.add(inst)
	v.loadedAt = time.Now()
	return v, nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// describe returns "name version (sha256 prefix)" for logs.
func (v *version) describe() string {
	return fmt.Sprintf("%s %s (%s)", v.spec.Name, v.meta.GetVersion(), v.sha256[:12])
}
