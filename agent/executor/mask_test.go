package executor

import (
	"strings"
	"testing"
)

// A secret cut in two by the split of a long line is still masked, at any
// cut position, with other output interleaved on the other stream; nothing
// else of the line is lost or changed.
func TestMaskerAcrossSplitLines(t *testing.T) {
	const secret = "s3cr3t-ÄPI-T0KEN"
	for cut := 0; cut <= len(secret); cut++ {
		line := strings.Repeat("a", 100) + secret + strings.Repeat("b", 50) + secret + "é end"
		split := 100 + cut
		pieces := []string{line[:split], line[split:]}
		m := NewMasker([]string{"short", secret})
		var got strings.Builder
		got.WriteString(m.Mask(Stdout, pieces[0], true))
		if s := m.Mask(Stderr, "other "+secret, false); s != "other ***" {
			t.Fatalf("cut %d: stderr line %q", cut, s)
		}
		got.WriteString(m.Mask(Stdout, pieces[1], false))
		want := strings.Repeat("a", 100) + "***" + strings.Repeat("b", 50) + "***é end"
		if got.String() != want {
			t.Errorf("cut %d: shipped %q, want %q", cut, got.String(), want)
		}
	}
}

func TestMaskerHoldsShortPiecesAndFlushes(t *testing.T) {
	m := NewMasker([]string{"0123456789"})
	if s := m.Mask(Stdout, "0123", true); s != "" {
		t.Errorf("a piece shorter than a secret shipped %q", s)
	}
	if got := m.Flush()[Stdout]; got != "0123" {
		t.Errorf("flush = %q", got)
	}
	if NewMasker([]string{"", ""}) != nil {
		t.Error("a masker without secrets")
	}
}
