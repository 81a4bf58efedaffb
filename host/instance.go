package host

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

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
	// log functions run on the calling goroutine, inside the call. done is
	// ctx's Done, read by sleep: the guest's sleeps end with the call.
	ctx    context.Context
	logger *slog.Logger
	attrs  []any
	done   <-chan struct{}
	// logs counts what the call in progress logged (logging.go).
	logs logBudget
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
		WithNanosleep(inst.sleep).
		WithStdin(strings.NewReader("")).
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

// sleep is the guest's clock wait (nanosleep, and poll_oneoff's timeout):
// wazero's own sleeps the whole time whatever happens, so a plugin sleeping
// an hour held its call and instance that long. This one ends when the call
// does (its timeout or its caller), after which the module is closed at
// its next instruction boundary.
func (i *instance) sleep(ns int64) {
	if ns <= 0 {
		return
	}
	if ns < int64(time.Millisecond) {
		// The Go runtime's own short waits (its scheduler and GC sleep
		// often, briefly): nothing to cut short.
		time.Sleep(time.Duration(ns))
		return
	}
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	select {
	case <-t.C:
	case <-i.done:
	}
}

func (i *instance) log(level extism.LogLevel, msg string) {
	if i.logger != nil && !sdkChatter(level, msg) && i.logs.allow(len(msg)) {
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
//
// The call ends at lim.Timeout whatever the guest does (a busy loop is
// interrupted, a sleep or an HTTP request ends); timedOut says so. What the
// call logs is bounded by lim.LogLines and lim.LogBytes.
func (i *instance) call(ctx context.Context, logger *slog.Logger, attrs []any, fn string, input []byte, lim Limits) (out []byte, stderr string, timedOut bool, err error) {
	if lim.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(lim.Timeout))
		defer cancel()
		defer func() { timedOut = err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) }()
	}
	i.ctx, i.logger, i.attrs, i.done = ctx, logger, attrs, ctx.Done()
	i.logs.set(lim.LogLines, lim.LogBytes)
	i.logs.reset()
	defer func() { i.ctx, i.logger, i.attrs, i.done = nil, nil, nil, nil }()
	var rc uint32
	if i.fast != nil && i.started {
		rc, out, err = i.fast.call(ctx, i.p, fn, input)
	} else {
		rc, out, err = i.p.CallWithContext(ctx, fn, input)
	}
	i.started = true
	stdout, stderr := i.stdout.take(), i.stderr.take()
	i.logLines(ctx, logger, slog.LevelInfo, stdout, slices.Concat(attrs, []any{"stream", "stdout"})...)
	i.logLines(ctx, logger, slog.LevelWarn, stderr, slices.Concat(attrs, []any{"stream", "stderr"})...)
	if n := i.logs.dropped; n > 0 {
		logger.Log(ctx, slog.LevelWarn, fmt.Sprintf("%d lines dropped (the plugin logged more than %d lines or %d bytes in one call)",
			n, i.logs.maxLines, i.logs.maxBytes), attrs...)
	}
	// The plugin marks an error permanent through a plugin variable (the
	// PDK's Permanent); it is taken, so that it marks this call only.
	_, permanent := i.p.Var[PermanentVar]
	delete(i.p.Var, PermanentVar)
	if err != nil {
		if msg := i.p.GetError(); msg != "" && msg == err.Error() {
			return nil, stderr, false, &guestError{msg: msg, permanent: permanent}
		}
		return nil, stderr, false, err
	}
	if rc != 0 {
		return nil, stderr, false, &guestError{msg: "returned code " + itoa(rc) + " without an error message", permanent: permanent}
	}
	return out, stderr, false, nil
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
