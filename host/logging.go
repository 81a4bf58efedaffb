package host

import (
	"context"
	"log/slog"
	"strings"

	extism "github.com/extism/go-sdk"
)

type loggerKey struct{}

// WithLogger returns a context whose plugin calls send the plugin's log
// lines, stdout and stderr to logger: the agent passes a logger that writes
// to the job's log, so a step's plugin output lands there.
func WithLogger(ctx context.Context, logger *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, logger)
}

func callLogger(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok && l != nil {
		return l
	}
	return fallback
}

// slogLevel maps a kernel log level to slog.
func slogLevel(l extism.LogLevel) slog.Level {
	switch l {
	case extism.LogLevelTrace:
		return slog.LevelDebug - 4
	case extism.LogLevelDebug:
		return slog.LevelDebug
	case extism.LogLevelWarn:
		return slog.LevelWarn
	case extism.LogLevelError:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// capped is an io.Writer that keeps at most max bytes of a call's output.
type capped struct {
	buf []byte
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - len(c.buf); room > 0 {
		c.buf = append(c.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (c *capped) take() string {
	s := string(c.buf)
	c.buf = c.buf[:0]
	return s
}

// logLines logs each non-empty line of s at level, within the call's log
// budget.
func (i *instance) logLines(ctx context.Context, l *slog.Logger, level slog.Level, s string, attrs ...any) {
	for line := range strings.SplitSeq(strings.TrimRight(s, "\n"), "\n") {
		if line != "" && i.logs.allow(len(line)) {
			l.Log(ctx, level, line, attrs...)
		}
	}
}

// logBudget bounds what one call may log (kernel log lines, stdout and
// stderr together): past maxLines lines or maxBytes bytes, lines are
// dropped and counted, and the call ends with one line saying how many.
// A plugin logging without end costs its own call, not the server's log or
// memory.
type logBudget struct {
	maxLines, maxBytes int
	lines, bytes       int
	dropped            int
}

func (b *logBudget) set(lines, bytes int) { b.maxLines, b.maxBytes = lines, bytes }

func (b *logBudget) reset() { b.lines, b.bytes, b.dropped = 0, 0, 0 }

// allow reports whether a line of n bytes may be logged, and counts it.
func (b *logBudget) allow(n int) bool {
	if b.maxLines <= 0 || b.maxBytes <= 0 {
		return true // not set: a test's instance
	}
	if b.dropped > 0 || b.lines >= b.maxLines || b.bytes+n > b.maxBytes {
		b.dropped++
		return false
	}
	b.lines++
	b.bytes += n
	return true
}
