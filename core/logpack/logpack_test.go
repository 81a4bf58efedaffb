package logpack

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func sample(n int) []Line {
	base := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	var lines []Line
	for i := range n {
		lines = append(lines, Line{Line: int64(100 + i), Time: base.Add(time.Duration(i*i) * time.Millisecond).Add(-time.Duration(i%3) * time.Second),
			Level: int16(i % 5), Stream: int16(i % 4), Content: strings.Repeat("é", i) + fmt.Sprint(i)})
	}
	return lines
}

func same(t *testing.T, got, want []Line) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Line != want[i].Line || !got[i].Time.Equal(want[i].Time) || got[i].Level != want[i].Level ||
			got[i].Stream != want[i].Stream || got[i].Content != want[i].Content {
			t.Fatalf("line %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestRoundTrip(t *testing.T) {
	lines := sample(50)
	data := Encode(lines)
	got, err := Decode(nil, data, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	same(t, got, lines)
	tail, err := Decode(nil, data, 100, 140)
	if err != nil {
		t.Fatal(err)
	}
	same(t, tail, lines[40:])
	if n, err := Count(data); err != nil || n != 50 {
		t.Errorf("Count = %d, %v", n, err)
	}
	if _, err := Decode(nil, data[:len(data)-3], 100, 0); err == nil {
		t.Error("truncated pack decoded without error")
	}
	if _, err := Count(data[:len(data)-3]); err == nil {
		t.Error("truncated pack counted without error")
	}
}

func TestSkip(t *testing.T) {
	lines := sample(30)
	data := Encode(lines)
	for _, n := range []int{0, 1, 7, 29, 30} {
		rest, err := Skip(data, n)
		if err != nil {
			t.Fatalf("Skip(%d): %v", n, err)
		}
		got, err := Decode(nil, rest, 100+int64(n), 0)
		if err != nil {
			t.Fatalf("decode after Skip(%d): %v", n, err)
		}
		same(t, got, lines[n:])
	}
	if _, err := Skip(data, 31); err == nil {
		t.Error("skipping past the end succeeded")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode([]Line{{Line: 1, Time: time.Unix(5, 0), Content: "hi"}}), 0)
	f.Fuzz(func(t *testing.T, data []byte, skip int) {
		lines, err := Decode(nil, data, 1, 1) // must not panic
		n, cerr := Count(data)
		if (err == nil) != (cerr == nil) || (err == nil && n != len(lines)) {
			t.Fatalf("Decode %d lines (%v), Count %d (%v)", len(lines), err, n, cerr)
		}
		if err == nil && skip >= 0 && skip <= n {
			rest, err := Skip(data, skip)
			if err != nil {
				t.Fatal(err)
			}
			tail, err := Decode(nil, rest, int64(1+skip), 0)
			if err != nil || len(tail) != n-skip {
				t.Fatalf("after Skip(%d): %d lines, %v", skip, len(tail), err)
			}
			for i := range tail {
				if !tail[i].Time.Equal(lines[skip+i].Time) || tail[i].Content != lines[skip+i].Content {
					t.Fatalf("after Skip(%d), line %d differs", skip, i)
				}
			}
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	lines := make([]Line, 2000)
	for i := range lines {
		lines[i] = Line{Line: int64(i + 1), Time: time.Now(), Content: strings.Repeat("x", 80)}
	}
	b.SetBytes(int64(len(lines) * 80))
	for b.Loop() {
		Encode(lines)
	}
}
