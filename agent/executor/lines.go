package executor

import (
	"bytes"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Output travels from the reader goroutines (one per stream) to the single
// goroutine that calls emit, as events. Besides lines, the script writes a
// marker line on both stdout and stderr before each command; the emitter
// holds back the output of a stream that has reached marker N until the
// other stream has reached it too, then emits "$ command N". This orders
// each "$ command" line after all earlier output and before the command's
// own, on both streams.

type eventKind int

const (
	lineEvent   eventKind = iota // a line of Stdout or Stderr
	markerEvent                  // the stream reached the marker of command n
	eofEvent                     // the stream is done
	systemEvent                  // a System line from Run
)

type event struct {
	kind   eventKind
	stream Stream // Stdout or Stderr, but for systemEvent
	text   string
	n      int // markerEvent: 1-based command number
	time   time.Time
	// continued: the line goes on in the stream's next line event.
	continued bool
}

// markerPrefix returns the text that starts each marker; it is followed by
// the command number. The nonce keeps a job's own output from being taken
// for a marker.
func markerPrefix(nonce string) string { return "\x1earcade-" + nonce + "-" }

// splitter cuts one stream into lines and markers.
type splitter struct {
	stream Stream
	marker []byte // "\x1earcade-NONCE-"
	nonce  []byte // "arcade-NONCE-": a line holding it but no marker is the shell's trace of the script
	send   func(event)
	buf    []byte
}

func newSplitter(stream Stream, nonce string, send func(event)) *splitter {
	return &splitter{
		stream: stream,
		marker: []byte(markerPrefix(nonce)),
		nonce:  []byte(markerPrefix(nonce)[1:]),
		send:   send,
	}
}

// reserve is how many bytes of an unterminated line are kept back when a
// long line is split early, so that a marker is never cut in two.
const reserve = 64

func (s *splitter) write(p []byte) {
	s.buf = append(s.buf, p...)
	start := 0
	for {
		i := bytes.IndexByte(s.buf[start:], '\n')
		if i < 0 {
			break
		}
		s.line(s.buf[start:start+i], true)
		start += i + 1
	}
	// A long line without its end yet: pass on whole pieces now rather
	// than buffering without bound.
	for len(s.buf)-start >= MaxLineBytes+reserve {
		cut := cutPoint(s.buf[start:])
		s.text(s.buf[start:start+cut], true)
		start += cut
	}
	n := copy(s.buf, s.buf[start:])
	s.buf = s.buf[:n]
	if cap(s.buf) > 4*MaxLineBytes && n < MaxLineBytes {
		s.buf = append([]byte(nil), s.buf...)
	}
}

// flush passes on a last line that has no line ending.
func (s *splitter) flush() {
	if len(s.buf) > 0 {
		s.line(s.buf, false)
		s.buf = s.buf[:0]
	}
}

func (s *splitter) line(b []byte, terminated bool) {
	if j := bytes.LastIndex(b, s.marker); j >= 0 {
		if n, err := strconv.Atoi(string(b[j+len(s.marker):])); err == nil && n > 0 {
			if j > 0 {
				// The command before wrote a last line without a line
				// ending; the marker was appended to it.
				s.text(b[:j], false)
			}
			s.send(event{kind: markerEvent, stream: s.stream, n: n, time: time.Now()})
			return
		}
	}
	if bytes.Contains(b, s.nonce) {
		// The shell tracing (set -x) the script's own marker commands.
		return
	}
	if terminated && len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	s.text(b, false)
}

// text sends b as one or more lines of at most MaxLineBytes; more says the
// line goes on after b.
func (s *splitter) text(b []byte, more bool) {
	for {
		cut := len(b)
		if cut > MaxLineBytes {
			cut = cutPoint(b)
		}
		s.send(event{kind: lineEvent, stream: s.stream, text: strings.ToValidUTF8(string(b[:cut]), "\uFFFD"), time: time.Now(),
			continued: more || cut < len(b)})
		b = b[cut:]
		if len(b) == 0 {
			return
		}
	}
}

// cutPoint returns where to split b, longer than MaxLineBytes: at
// MaxLineBytes, moved back to the start of a UTF-8 character if one is cut.
func cutPoint(b []byte) int {
	cut := MaxLineBytes
	for i := cut; i > cut-utf8.UTFMax && i > 0; i-- {
		if utf8.RuneStart(b[i]) {
			return i
		}
	}
	return cut
}

// A stream that has reached the marker of command N is held there until
// the other stream reaches it too: the other stream's lines until then were
// written before command N began, and are emitted first. Both markers are
// written back to back, so the wait lasts as long as the other stream's
// backlog. But the job may have redirected a stream's markers away (exec
// 2>/dev/null, say): a stream that brings nothing for barrierTimeout while
// it is waited for, or whose wait holds back more than maxHeldBytes of the
// other stream, "lags": it is no longer waited for, and its lines are
// passed on as they come, until it shows a marker again.
const (
	barrierTimeout = time.Second
	maxHeldBytes   = 16 << 20
)

// emitter is the one goroutine that calls emit.
type emitter struct {
	emit     func(Line)
	commands []string
	queue    [2][]event // pending events of Stdout and Stderr
	held     [2]int     // bytes of lines in queue
	closed   [2]bool
	lagging  [2]bool
	passed   int // markers passed: commands announced
}

func streamIndex(s Stream) int {
	if s == Stderr {
		return 1
	}
	return 0
}

// run consumes events until ch is closed, then emits what is left.
func (e *emitter) run(ch <-chan event) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	armed := false

	for {
		var timeout <-chan time.Time
		if e.heldAt() != 0 {
			if !armed {
				timer.Reset(barrierTimeout)
				armed = true
			}
			timeout = timer.C
		} else if armed {
			timer.Stop()
			armed = false
		}

		select {
		case ev, ok := <-ch:
			if !ok {
				e.closed = [2]bool{true, true}
				e.process()
				return
			}
			if armed && ev.kind != systemEvent && e.nextMarker(streamIndex(ev.stream)) == 0 {
				// The stream waited for is coming along.
				timer.Reset(barrierTimeout)
			}
			e.add(ev)
			if e.held[0]+e.held[1] > maxHeldBytes {
				e.giveUpWaiting()
			}
		case <-timeout:
			armed = false
			// Take in whatever is already there before giving up.
			for drained := false; !drained; {
				select {
				case ev, ok := <-ch:
					if !ok {
						e.closed = [2]bool{true, true}
						e.process()
						return
					}
					e.add(ev)
				default:
					drained = true
				}
			}
			e.process()
			e.giveUpWaiting()
		}
		e.process()
	}
}

// giveUpWaiting makes the streams that the emitter waits for lag.
func (e *emitter) giveUpWaiting() {
	if e.heldAt() == 0 {
		return
	}
	for i := range e.queue {
		if e.nextMarker(i) == 0 {
			e.lagging[i] = true
		}
	}
}

func (e *emitter) add(ev event) {
	switch ev.kind {
	case systemEvent:
		// Not part of either stream: out at once.
		e.emit(Line{Stream: System, Text: ev.text, Time: ev.time})
		return
	case eofEvent:
		e.closed[streamIndex(ev.stream)] = true
		return
	case markerEvent:
		e.lagging[streamIndex(ev.stream)] = false
	}
	i := streamIndex(ev.stream)
	e.queue[i] = append(e.queue[i], ev)
	e.held[i] += len(ev.text)
}

// nextMarker returns the first marker ahead (not yet passed) in the queue
// of stream i, or 0.
func (e *emitter) nextMarker(i int) int {
	for _, ev := range e.queue[i] {
		if ev.kind == markerEvent && ev.n > e.passed {
			return ev.n
		}
	}
	return 0
}

// heldAt returns the marker the emitter is held at, or 0.
func (e *emitter) heldAt() int {
	held := 0
	for i := range e.queue {
		if n := e.nextMarker(i); n != 0 && (held == 0 || n < held) {
			held = n
		}
	}
	return held
}

// process emits every line it may, and announces commands whose marker
// every stream has reached.
func (e *emitter) process() {
	for {
		// Each stream's lines up to its next marker ahead.
		for i := range e.queue {
			q := e.queue[i]
			for len(q) > 0 {
				ev := q[0]
				if ev.kind == markerEvent && ev.n > e.passed {
					break
				}
				if ev.kind == lineEvent {
					e.emit(Line{Stream: ev.stream, Text: ev.text, Time: ev.time, Continued: ev.continued})
					e.held[i] -= len(ev.text)
				}
				q[0] = event{}
				q = q[1:]
			}
			if len(q) == 0 {
				q = nil // let the backing array go
			}
			e.queue[i] = q
		}

		// Every stream must now be at a marker ahead, or lag, or be done.
		target, at := 0, time.Time{}
		for i := range e.queue {
			if len(e.queue[i]) > 0 {
				if ev := e.queue[i][0]; target == 0 || ev.n < target {
					target, at = ev.n, ev.time
				}
				continue
			}
			if !e.closed[i] && !e.lagging[i] {
				return
			}
		}
		if target == 0 {
			return
		}
		for n := e.passed + 1; n <= target; n++ {
			e.announce(n, at)
		}
		e.passed = target
	}
}

// announce emits "$ command" for command n; the lines after the first of a
// command that spans lines are shown with "> ".
func (e *emitter) announce(n int, at time.Time) {
	if n < 1 || n > len(e.commands) {
		return
	}
	for i, l := range strings.Split(e.commands[n-1], "\n") {
		prefix := "> "
		if i == 0 {
			prefix = "$ "
		}
		e.emit(Line{Stream: System, Text: strings.ToValidUTF8(prefix+l, "\uFFFD"), Time: at})
	}
}
