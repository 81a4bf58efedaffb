// Package logpack is the packed form of consecutive log lines, used on the
// wire (agents → server → followers) and in the store, so that a batch of
// lines travels and is stored as one byte string instead of one message per
// line.
//
// A pack holds lines numbered from a first line given beside it. Per line:
// the time as a signed varint delta (nanoseconds) from the previous line's
// (the first from 0, i.e. Unix nanoseconds), one byte of level, one byte of
// stream, an unsigned varint length and the content bytes. Levels and
// streams use the numbers of arcade.agent.v1.LogLevel and LogStream.
package logpack

import (
	"encoding/binary"
	"errors"
	"time"
)

// Line is one log line.
type Line struct {
	Line    int64
	Time    time.Time
	Level   int16
	Stream  int16
	Content string
}

// ErrCorrupt is returned for bytes that are not a pack.
var ErrCorrupt = errors.New("corrupt log pack")

// Encode packs lines (their numbers are implied by the first line).
func Encode(lines []Line) []byte {
	size := 0
	for _, l := range lines {
		size += len(l.Content) + 16
	}
	b := make([]byte, 0, size)
	var prev int64
	for _, l := range lines {
		t := l.Time.UnixNano()
		b = binary.AppendVarint(b, t-prev)
		prev = t
		b = append(b, byte(l.Level), byte(l.Stream))
		b = binary.AppendUvarint(b, uint64(len(l.Content)))
		b = append(b, l.Content...)
	}
	return b
}

// next reads one line's fields; it returns the time delta and the rest.
func next(data []byte) (dt int64, level, stream int16, content, rest []byte, err error) {
	dt, k := binary.Varint(data)
	if k <= 0 || len(data) < k+2 {
		return 0, 0, 0, nil, nil, ErrCorrupt
	}
	level, stream = int16(data[k]), int16(data[k+1])
	data = data[k+2:]
	size, k := binary.Uvarint(data)
	if k <= 0 || uint64(len(data)-k) < size {
		return 0, 0, 0, nil, nil, ErrCorrupt
	}
	return dt, level, stream, data[k : k+int(size)], data[k+int(size):], nil
}

// Decode appends to dst the lines of a pack whose first line is first,
// from line from on.
func Decode(dst []Line, data []byte, first, from int64) ([]Line, error) {
	var prev int64
	for n := first; len(data) > 0; n++ {
		dt, level, stream, content, rest, err := next(data)
		if err != nil {
			return dst, err
		}
		data = rest
		prev += dt
		if n < from {
			continue
		}
		dst = append(dst, Line{Line: n, Time: time.Unix(0, prev).UTC(), Level: level, Stream: stream, Content: string(content)})
	}
	return dst, nil
}

// Count checks a pack and returns how many lines it holds.
func Count(data []byte) (int, error) {
	n := 0
	for len(data) > 0 {
		_, _, _, _, rest, err := next(data)
		if err != nil {
			return n, err
		}
		data = rest
		n++
	}
	return n, nil
}

// Skip returns a pack of the lines of data after its first n, with the
// time deltas made whole again.
func Skip(data []byte, n int) ([]byte, error) {
	var t int64
	for range n {
		dt, _, _, _, rest, err := next(data)
		if err != nil {
			return nil, err
		}
		t += dt
		data = rest
	}
	if len(data) == 0 || t == 0 {
		return data, nil
	}
	// The first remaining line's delta becomes absolute.
	dt, k := binary.Varint(data)
	out := binary.AppendVarint(make([]byte, 0, len(data)+10), t+dt)
	return append(out, data[k:]...), nil
}
