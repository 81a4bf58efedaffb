package agent

import (
	"maps"
	"strings"
	"testing"
)

func TestParseOutputs(t *testing.T) {
	got, err := ParseOutputs([]byte("version=1.4.0\n\nnotes<<EOF\nline one\nline=two\nEOF\nversion=1.4.1\r\nempty=\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"version": "1.4.1", "notes": "line one\nline=two", "empty": ""}
	if !maps.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for _, bad := range []string{"no equals sign", "1bad=x", "x<<EOF\nnever closed", "=v"} {
		if _, err := ParseOutputs([]byte(bad)); err == nil || !strings.Contains(err.Error(), "line") {
			t.Errorf("ParseOutputs(%q) = %v, want an error naming the line", bad, err)
		}
	}
}

func FuzzParseOutputs(f *testing.F) {
	f.Add([]byte("a=b\nc<<X\nd\nX\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := ParseOutputs(data)
		if err == nil && len(out) > len(data) {
			t.Fatalf("%d outputs from %d bytes", len(out), len(data))
		}
	})
}
