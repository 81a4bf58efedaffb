package store

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestLogCodecRoundTrip(t *testing.T) {
	base := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	var lines []LogLine
	for i := range 50 {
		lines = append(lines, LogLine{Line: int64(100 + i), Time: base.Add(time.Duration(i*i) * time.Millisecond).Add(-time.Duration(i%3) * time.Second),
			Level: int16(i % 5), Stream: int16(i % 4), Content: strings.Repeat("é", i) + fmt.Sprint(i)})
	}
	data := encodeLines(lines)
	got, err := decodeLines(nil, data, 100, 0)
	if err != nil || len(got) != len(lines) {
		t.Fatalf("decode: %d lines, %v", len(got), err)
	}
	for i := range lines {
		if got[i].Line != lines[i].Line || !got[i].Time.Equal(lines[i].Time) || got[i].Level != lines[i].Level ||
			got[i].Stream != lines[i].Stream || got[i].Content != lines[i].Content {
			t.Fatalf("line %d: %+v, want %+v", i, got[i], lines[i])
		}
	}
	tail, err := decodeLines(nil, data, 100, 140)
	if err != nil || len(tail) != 10 || tail[0].Line != 140 {
		t.Errorf("decode from 140: %d lines, %v", len(tail), err)
	}
	if _, err := decodeLines(nil, data[:len(data)-3], 100, 0); err == nil {
		t.Error("truncated chunk decoded without error")
	}
}

func FuzzDecodeLines(f *testing.F) {
	f.Add(encodeLines([]LogLine{{Line: 1, Time: time.Unix(5, 0), Content: "hi"}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = decodeLines(nil, data, 1, 1) // must not panic
	})
}

func BenchmarkEncodeLines(b *testing.B) {
	lines := make([]LogLine, 2000)
	for i := range lines {
		lines[i] = LogLine{Line: int64(i + 1), Time: time.Now(), Content: strings.Repeat("x", 80)}
	}
	b.SetBytes(int64(len(lines) * 80))
	for b.Loop() {
		encodeLines(lines)
	}
}
