package host

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/sys"
)

func TestClassifyCallError(t *testing.T) {
	facts := callFacts{plugin: "p", function: "build", timeout: 2 * time.Second, memoryLimitMiB: 8}
	trace := "\nwasm stack trace:\n\tmain.build()\n\t..."
	for _, tc := range []struct {
		name   string
		facts  func(callFacts) callFacts
		err    error
		reason Reason
		msg    string
	}{
		{"timeout", nil, sys.NewExitError(sys.ExitCodeDeadlineExceeded), ErrTimeout, "plugin p timed out after 2s"},
		{"caller canceled", func(f callFacts) callFacts { f.callerErr = context.Canceled; return f },
			sys.NewExitError(sys.ExitCodeContextCanceled), ErrCanceled, "plugin p: canceled: context canceled"},
		{"oom", func(f callFacts) callFacts { f.stderr = "fatal error: out of memory\n"; return f },
			errors.New("wasm error: unreachable" + trace), ErrOutOfMemory, "plugin p ran out of memory (limit 8 MiB)"},
		{"host", nil, errors.New("HTTP request to 'https://evil.example:8443/x' is not allowed" + trace),
			ErrHostNotGranted, "plugin p: host not granted: evil.example"},
		{"path", nil, &guestError{msg: "open /etc/shadow: Bad file number"}, ErrPathNotGranted,
			"plugin p: path not granted: open /etc/shadow"},
		{"guest", nil, &guestError{msg: "3 tests failed"}, ErrPluginFailed, "plugin p: build failed: 3 tests failed"},
		{"panic", func(f callFacts) callFacts { f.stderr = "panic: nil map\n\ngoroutine 1\n"; return f },
			errors.New("wasm error: unreachable" + trace), ErrCrashed, "plugin p crashed in build: panic: nil map (wasm error: unreachable)"},
		{"stack overflow", func(f callFacts) callFacts {
			f.stderr = "runtime: out of memory: cannot allocate 8192-byte block\nfatal error: out of memory\n"
			return f
		}, errors.New("wasm error: unreachable\nwasm stack trace:\n\tmain.deep()\n\t.runtime.morestack()\n\t..."),
			ErrStackOverflow, "plugin p overflowed its stack in build"},
		{"http deadline", func(f callFacts) callFacts { f.timedOut = true; return f },
			&url.Error{Op: "Get", URL: "http://127.0.0.1:1/", Err: context.DeadlineExceeded}, ErrTimeout,
			"plugin p timed out after 2s"},
		{"trap", nil, errors.New("wasm error: integer divide by zero" + trace), ErrCrashed,
			"plugin p crashed in build: wasm error: integer divide by zero"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := facts
			if tc.facts != nil {
				f = tc.facts(f)
			}
			e := classifyCallError(f, tc.err)
			if !errors.Is(e, tc.reason) || e.Error() != tc.msg {
				t.Fatalf("got %q (%s), want %q (%s)", e, e.Reason, tc.msg, tc.reason)
			}
			if !errors.Is(e, tc.err) {
				t.Fatal("raw cause lost")
			}
		})
	}
}
