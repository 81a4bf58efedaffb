package host

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"slices"
	"strings"

	extism "github.com/extism/go-sdk"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental/sysfs"
)

// instance is one Extism plugin instance. It serves one call at a time; the
// pool hands it to one goroutine at a time.
type instance struct {
	p      *extism.Plugin
	stdout *capped
	stderr *capped
	// fast is the module's fast data path, nil without one; it serves from
	// the second call on, once the guest runtime has started (the SDK starts
	// it lazily, inside the first call).
	fast    *fastPath
	started bool
	// ctx, logger and attrs belong to the call in progress; the kernel's
	// log functions run on the calling goroutine, inside the call.
	ctx    context.Context
	logger *slog.Logger
	attrs  []any
	// refused records the paths outside its grants the plugin was refused
	// during the call in progress; mounts are closed with the instance.
	refused refusals
	mounts  []guestMount
}

// newInstance instantiates the compiled module with its own stdout and
// stderr buffers, a log callback that follows the current call, and the
// granted folders that mount opens (nil: none).
func newInstance(ctx context.Context, c *extism.CompiledPlugin, mount mounter) (*instance, error) {
	inst := &instance{stdout: &capped{max: 64 << 10}, stderr: &capped{max: 64 << 10}}
	mc := wazero.NewModuleConfig().
		WithStdout(inst.stdout).
		WithStderr(inst.stderr).
		WithSysWalltime().
		WithSysNanotime().
		WithSysNanosleep().
		WithRandSource(rand.Reader)
	if mount != nil {
		mounts, err := mount(&inst.refused)
		if err != nil {
			return nil, err
		}
		inst.mounts = mounts
		fsc := wazero.NewFSConfig()
		for _, m := range mounts {
			fsc = fsc.(sysfs.FSConfig).WithSysFSMount(m.fs, m.guest)
		}
		mc = mc.WithFSConfig(fsc)
	}
	p, err := c.Instance(ctx, extism.PluginInstanceConfig{ModuleConfig: mc})
	if err != nil {
		inst.close()
		return nil, err
	}
	inst.p = p
	inst.fast = findFastPath(p)
	p.SetLogger(inst.log)
	return inst, nil
}

func (i *instance) log(level extism.LogLevel, msg string) {
	if i.logger != nil && !sdkChatter(level, msg) {
		i.logger.Log(i.ctx, slogLevel(level), msg, i.attrs...)
	}
}

// sdkChatter recognises the SDK's own debug lines, which go through the
// same callback as the plugin's.
func sdkChatter(level extism.LogLevel, msg string) bool {
	return level <= extism.LogLevelDebug && (strings.HasPrefix(msg, "Calling function : ") ||
		strings.HasPrefix(msg, "Initializing runtime for ") || msg == "Calling _initialize")
}

// call runs one function. A non-nil error is either a *guestError (the
// plugin reported it with error_set and the instance is still sound) or a
// failure of the instance (trap, exit, timeout), after which the instance
// must be dropped. stderr is what the guest wrote to stderr.
func (i *instance) call(ctx context.Context, logger *slog.Logger, attrs []any, fn string, input []byte) (out []byte, stderr string, err error) {
	i.ctx, i.logger, i.attrs = ctx, logger, attrs
	defer func() { i.ctx, i.logger, i.attrs = nil, nil, nil }()
	var rc uint32
	if i.fast != nil && i.started {
		rc, out, err = i.fast.call(ctx, i.p, fn, input)
	} else {
		rc, out, err = i.p.CallWithContext(ctx, fn, input)
	}
	i.started = true
	stdout, stderr := i.stdout.take(), i.stderr.take()
	logLines(ctx, logger, slog.LevelInfo, stdout, slices.Concat(attrs, []any{"stream", "stdout"})...)
	logLines(ctx, logger, slog.LevelWarn, stderr, slices.Concat(attrs, []any{"stream", "stderr"})...)
	if err != nil {
		if msg := i.p.GetError(); msg != "" && msg == err.Error() {
			return nil, stderr, &guestError{msg: msg}
		}
		return nil, stderr, err
	}
	if rc != 0 {
		return nil, stderr, &guestError{msg: "returned code " + itoa(rc) + " without an error message"}
	}
	return out, stderr, nil
}

func (i *instance) close() {
	if i.p != nil {
		_ = i.p.Close(context.Background())
	}
	for _, m := range i.mounts {
		_ = m.close()
	}
	i.mounts = nil
}

func itoa(u uint32) string {
	if u == 0 {
		return "0"
	}
	var b [10]byte
	n := len(b)
	for u > 0 {
		n--
		b[n] = byte('0' + u%10)
		u /= 10
	}
	return string(b[n:])
}

// errPoolClosed is returned by a pool whose version was retired and closed.
var errPoolClosed = errors.New("instance pool closed")
