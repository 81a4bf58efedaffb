package host

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/tetratelabs/wazero/sys"
)

// Reason classifies a plugin error. Each Reason is itself an error, so
// errors.Is(err, host.ErrTimeout) tells what went wrong.
type Reason string

// Error returns the reason's text.
func (r Reason) Error() string { return string(r) }

// Reasons for a failed call.
const (
	ErrNotFound        Reason = "not found"
	ErrNotLoaded       Reason = "not loaded"
	ErrUnknownFunction Reason = "unknown function"
	ErrTimeout         Reason = "timed out"
	ErrCanceled        Reason = "canceled"
	ErrOutOfMemory     Reason = "out of memory"
	// ErrStackOverflow: the guest's stack ran out (runaway recursion). It
	// is not ErrOutOfMemory, even when a Go guest says so while growing its
	// stack, and not a plain ErrCrashed.
	ErrStackOverflow  Reason = "stack overflow"
	ErrPathNotGranted Reason = "path not granted"
	ErrHostNotGranted Reason = "host not granted"
	// ErrUnreachable: an HTTP request the plugin made through the host got
	// no answer (connection refused, name not found, reset…).
	ErrUnreachable  Reason = "unreachable"
	ErrCrashed      Reason = "crashed"
	ErrPluginFailed Reason = "failed"
	ErrBadOutput    Reason = "bad output"
	ErrWrongKind    Reason = "wrong kind"
	ErrClosed       Reason = "host closed"
)

// Reasons for a refused load.
const (
	ErrInvalidModule   Reason = "invalid module"
	ErrHashMismatch    Reason = "sha256 mismatch"
	ErrKindMismatch    Reason = "kind mismatch"
	ErrMissingFunction Reason = "missing function"
	ErrContract        Reason = "unsupported contract version"
	ErrVersionMismatch Reason = "version mismatch"
	ErrBadMetadata     Reason = "bad metadata"
	ErrNameConflict    Reason = "name conflict"
	ErrUnsigned        Reason = "unsigned"
	ErrBadSignature    Reason = "bad signature"
	// ErrRegistry: a module's registry did not answer, or answered with an
	// error: not a verdict on the module, so it is tried again.
	ErrRegistry Reason = "registry unavailable"
	// ErrRegistryAuth: the registry credential could not be had (the
	// secret registry_auth names is missing, or is no credential for the
	// registry) or the registry refused it. Not a verdict on the module
	// either: a secret set or rotated is picked up at the next pull.
	ErrRegistryAuth Reason = "registry credential"
	// ErrBadConfig: the config names a key the plugin does not declare, or
	// lacks one it requires, or takes a value from a stored secret that
	// does not exist (or on a host that keeps none).
	ErrBadConfig Reason = "bad config"
	// ErrDependedOn: a configuration edit would unload a plugin something
	// depends on (see WithDependencies); the edit is refused.
	ErrDependedOn Reason = "depended on"
)

// Error is a failed plugin load or call. Its message names the plugin and
// the reason in words meant for users; Err keeps the raw cause.
type Error struct {
	Plugin   string
	Function string // empty for a load
	Reason   Reason
	// Detail completes the reason, e.g. "configured ci, module declares custom".
	Detail string
	// Limit is the limit that was hit: the timeout or the memory limit.
	Timeout     time.Duration
	MemoryLimit uint32 // MiB
	Err         error
	// Marked is set when the plugin marked its error permanent.
	Marked bool
}

// Permanent reports whether calling again with the same input cannot
// succeed: the plugin said so (pdk.Permanent), or the host refused the call
// for a reason no retry changes (a host or path not granted, an unknown
// function or plugin, a plugin of another kind, an answer that does not
// parse). Timeouts, crashes, unreachable hosts and other plugin errors are
// worth retrying.
func (e *Error) Permanent() bool {
	switch e.Reason {
	case ErrHostNotGranted, ErrPathNotGranted, ErrUnknownFunction, ErrNotFound, ErrWrongKind, ErrBadOutput:
		return true
	}
	return e.Marked
}

// Error returns the condensed, user-facing message.
func (e *Error) Error() string {
	var s string
	switch e.Reason {
	case ErrTimeout:
		s = fmt.Sprintf("plugin %s timed out after %s", e.Plugin, e.Timeout)
	case ErrOutOfMemory:
		s = fmt.Sprintf("plugin %s ran out of memory (limit %d MiB)", e.Plugin, e.MemoryLimit)
	case ErrPluginFailed:
		s = fmt.Sprintf("plugin %s: %s failed", e.Plugin, e.Function)
	case ErrCrashed:
		s = fmt.Sprintf("plugin %s crashed in %s", e.Plugin, e.Function)
	case ErrStackOverflow:
		s = fmt.Sprintf("plugin %s overflowed its stack in %s", e.Plugin, e.Function)
	case ErrInvalidModule, ErrHashMismatch, ErrKindMismatch, ErrMissingFunction,
		ErrContract, ErrVersionMismatch, ErrBadMetadata, ErrNameConflict, ErrUnsigned, ErrBadSignature:
		s = fmt.Sprintf("plugin %s refused: %s", e.Plugin, e.Reason)
	default:
		s = fmt.Sprintf("plugin %s: %s", e.Plugin, e.Reason)
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap exposes the reason and the raw cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Reason}
	}
	return []error{e.Reason, e.Err}
}

// Is makes a timeout answer context.DeadlineExceeded as well.
func (e *Error) Is(target error) bool {
	return target == context.DeadlineExceeded && e.Reason == ErrTimeout
}

func refused(plugin string, r Reason, format string, args ...any) *Error {
	return &Error{Plugin: plugin, Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// callFacts is what classifyCallError needs to know about the call.
type callFacts struct {
	plugin, function string
	timeout          time.Duration
	memoryLimitMiB   uint32
	callerErr        error  // the caller's context error, if any
	timedOut         bool   // the call's own deadline passed
	stderr           string // what the guest wrote to stderr during the call
	refused          string // the first guest path refused as leading outside the grants
}

var hostNotAllowed = regexp.MustCompile(`HTTP request to '([^']*)' is not allowed`)

// classifyCallError turns an error from the Extism SDK into an *Error whose
// message says what happened without the wasm stack trace.
func classifyCallError(f callFacts, err error) *Error {
	e := &Error{Plugin: f.plugin, Function: f.function, Err: err,
		Timeout: f.timeout, MemoryLimit: f.memoryLimitMiB}
	msg := err.Error()
	var exit *sys.ExitError
	switch {
	case errors.As(err, &exit) && (exit.ExitCode() == sys.ExitCodeDeadlineExceeded ||
		exit.ExitCode() == sys.ExitCodeContextCanceled),
		// An HTTP request cut short by the end of the call.
		unreachable(err) != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)):
		if f.callerErr != nil {
			e.Reason, e.Detail = ErrCanceled, f.callerErr.Error()
		} else {
			e.Reason = ErrTimeout
		}
	case stackOverflow(msg, f.stderr):
		e.Reason = ErrStackOverflow // the raw cause (Err) keeps the trace; a Go guest says "out of memory"
	case strings.Contains(f.stderr, "out of memory") || strings.Contains(msg, "out of memory"):
		e.Reason = ErrOutOfMemory
	case f.callerErr != nil && !isGuestError(err):
		// Ended by its caller in a host function (an HTTP request, say).
		e.Reason, e.Detail = ErrCanceled, f.callerErr.Error()
	case f.timedOut && !isGuestError(err):
		// Its deadline ended a host function (an HTTP request waiting on a
		// server that does not answer): a timeout, not a crash.
		e.Reason = ErrTimeout
	case hostNotAllowed.MatchString(msg):
		e.Reason = ErrHostNotGranted
		raw := hostNotAllowed.FindStringSubmatch(msg)[1]
		if u, perr := url.Parse(raw); perr == nil && u.Hostname() != "" {
			e.Detail = u.Hostname()
		} else {
			e.Detail = raw
		}
	case unreachable(err) != nil:
		e.Reason, e.Detail = ErrUnreachable, unreachable(err).Error()
	case isGuestError(err) && f.refused != "":
		// The mounts refused a name that leads outside every grant (through
		// ".." or a link): the host knows it, whatever the guest made of it.
		e.Reason, e.Detail = ErrPathNotGranted, f.refused+" leads outside the granted folders"
	case isGuestError(err):
		if p, ok := pathNotGranted(msg); ok {
			e.Reason, e.Detail = ErrPathNotGranted, p
		} else {
			e.Reason, e.Detail = ErrPluginFailed, msg
			var g *guestError
			e.Marked = errors.As(err, &g) && g.permanent
		}
	default:
		e.Reason, e.Detail = ErrCrashed, crashDetail(msg, f.stderr)
	}
	return e
}

// unreachable returns the failure of an HTTP request the kernel's
// http_request made for the plugin, nil when err is not one. The SDK panics
// with the client's error, which wazero keeps wrapped.
func unreachable(err error) *url.Error {
	var u *url.Error
	if errors.As(err, &u) {
		return u
	}
	return nil
}

// guestError marks an error the plugin reported itself with error_set.
type guestError struct {
	msg       string
	permanent bool // the plugin marked it permanent (PermanentVar)
}

// PermanentVar is the plugin variable a plugin sets to mark the error it
// reports permanent (the PDK's pdk.PermanentVar).
const PermanentVar = "arcade.error.permanent"

func (g *guestError) Error() string { return g.msg }

func isGuestError(err error) bool {
	var g *guestError
	return errors.As(err, &g)
}

// pathNotGranted recognises the EBADF a WASI guest gets for a path outside
// every granted directory ("open /etc/passwd: Bad file number").
func pathNotGranted(msg string) (string, bool) {
	for _, marker := range []string{": Bad file number", ": bad file descriptor", ": EBADF"} {
		if i := strings.Index(msg, marker); i >= 0 {
			return strings.TrimSpace(msg[:i]), true
		}
	}
	return "", false
}

// crashDetail keeps the first line of a wasm error and the guest's panic
// message, and drops the stack traces.
func crashDetail(msg, stderr string) string {
	first, _, _ := strings.Cut(msg, "\n")
	first = strings.TrimPrefix(first, "error while executing at wasm address ")
	for _, line := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ") {
			return line + " (" + first + ")"
		}
	}
	return first
}

// stackOverflow recognises a guest whose stack ran out: wazero's trap, the
// Go runtime's "goroutine stack exceeds", or a Go guest that ran out of
// memory while growing its stack (runaway recursion: the wasm stack trace
// passes through runtime.morestack), which no heap allocation does.
func stackOverflow(msg, stderr string) bool {
	return strings.Contains(msg, "stack overflow") || strings.Contains(stderr, "stack overflow") ||
		strings.Contains(stderr, "goroutine stack exceeds") || strings.Contains(msg, ".runtime.morestack(")
}
