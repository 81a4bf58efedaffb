package store

import (
	"encoding/binary"
	"errors"
	"time"
)

// encodeLines packs consecutive lines into a chunk's data: per line, the
// time as a signed delta from the previous line (nanoseconds), level,
// stream, and the length-prefixed content. The line numbers are implied by
// the chunk's first line.
func encodeLines(lines []LogLine) []byte {
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

var errBadChunk = errors.New("corrupt log chunk")

// decodeLines unpacks a chunk whose first line is first, appending to dst
// the lines numbered from on.
func decodeLines(dst []LogLine, data []byte, first, from int64) ([]LogLine, error) {
	var prev int64
	for n := first; len(data) > 0; n++ {
		dt, k := binary.Varint(data)
		if k <= 0 || len(data) < k+2 {
			return dst, errBadChunk
		}
		prev += dt
		level, stream := int16(data[k]), int16(data[k+1])
		data = data[k+2:]
		size, k := binary.Uvarint(data)
		if k <= 0 || uint64(len(data)-k) < size {
			return dst, errBadChunk
		}
		content := data[k : k+int(size)]
		data = data[k+int(size):]
		if n < from {
			continue
		}
		dst = append(dst, LogLine{Line: n, Time: time.Unix(0, prev).UTC(), Level: level, Stream: stream, Content: string(content)})
	}
	return dst, nil
}
