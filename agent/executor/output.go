package executor

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"time"
)

// Output turns the two output streams of one step run elsewhere (in a
// container, say) into Lines, exactly as Run does for the host: a System
// line "$ command" before each command's output, long lines split, CRLF
// and invalid UTF-8 handled. The step's script must come from Script with
// the same nonce. Write to Stdout and to Stderr from one goroutine each (or
// the same one); call Close once both streams ended.
type Output struct {
	events  chan event
	emitted chan struct{}
	stdout  *splitter
	stderr  *splitter
}

// NewOutput returns the Output of a step running commands, whose lines go
// to emit (from one goroutine, never after Close returns).
func NewOutput(commands []string, nonce string, emit func(Line)) *Output {
	if emit == nil {
		emit = func(Line) {}
	}
	o := &Output{events: make(chan event, 256), emitted: make(chan struct{})}
	send := func(ev event) { o.events <- ev }
	o.stdout = newSplitter(Stdout, nonce, send)
	o.stderr = newSplitter(Stderr, nonce, send)
	go func() {
		(&emitter{emit: emit, commands: commands}).run(o.events)
		close(o.emitted)
	}()
	return o
}

type streamWriter struct{ s *splitter }

func (w streamWriter) Write(p []byte) (int, error) {
	w.s.write(p)
	return len(p), nil
}

// Stdout is where the step's standard output goes.
func (o *Output) Stdout() io.Writer { return streamWriter{o.stdout} }

// Stderr is where the step's standard error goes.
func (o *Output) Stderr() io.Writer { return streamWriter{o.stderr} }

// System emits a System line (a notice of the executor), at once.
func (o *Output) System(text string) {
	o.events <- event{kind: systemEvent, text: text, time: time.Now()}
}

// Close ends both streams and waits until every line was emitted.
func (o *Output) Close() {
	for _, s := range []*splitter{o.stdout, o.stderr} {
		s.flush()
		o.events <- event{kind: eofEvent, stream: s.stream, time: time.Now()}
	}
	close(o.events)
	<-o.emitted
}

// NewNonce returns a fresh nonce for Script and NewOutput.
func NewNonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Script returns the "sh -e" script that runs commands, each after the
// markers NewOutput recognises with the same nonce.
func Script(commands []string, nonce string) string { return script(commands, nonce) }

// Validate checks what any executor refuses in a spec: a missing directory
// name, NUL bytes in commands, bad environment variable names.
func Validate(spec Spec) error { return validate(spec) }
