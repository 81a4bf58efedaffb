package ansi

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestKeepColours(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text", "plain text"},
		{"\x1b[31mred\x1b[0m and \x1b[1;38;5;208mbold orange\x1b[m", "\x1b[31mred\x1b[0m and \x1b[1;38;5;208mbold orange\x1b[m"},
		{"\x1b[38:2:255:0:0mtruecolour\x1b[0m", "\x1b[38:2:255:0:0mtruecolour\x1b[0m"},
		{"\x1b]0;my window title\x07after", "after"},
		{"\x1b]8;;https://example.com\x1b\\link\x1b]8;;\x1b\\", "link"},
		{"\x1b[2J\x1b[Hcleared", "cleared"},
		{"up\x1b[1A\x1b[2Kover", "upover"},
		{"\x1b[?25lhidden cursor\x1b[?25h", "hidden cursor"},
		{"bell\x07 back\bspace", "bell backspace"},
		{"10%\r20%\r30%", "30%"},
		{"windows line\r", "windows line"},
		{"\x1b(Bcharset", "charset"},
		{"tab\there", "tab\there"},
		{"ünïcödé ✓", "ünïcödé ✓"},
		{"c1\u009bcontrol", "c1control"},
		{"unfinished \x1b[31", "unfinished "},
		{"\x1bPdevice control\x1b\\ok", "ok"},
		{"broken \xff byte", "broken \uFFFD byte"},
	} {
		if got := KeepColours(tc.in); got != tc.want {
			t.Errorf("KeepColours(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzKeepColours: the result holds no control character but tabs and
// the ESC of SGR sequences, is valid UTF-8, and cleaning it again changes
// nothing.
func FuzzKeepColours(f *testing.F) {
	for _, s := range []string{"\x1b[31mred\x1b[0m", "\x1b]0;t\x07x", "a\rb", "\x1b[1A", "\x1b", "\x1b[", "\x1b]", "\u009b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := KeepColours(s)
		if !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8 from %q: %q", s, out)
		}
		if again := KeepColours(out); again != out {
			t.Fatalf("not stable: %q → %q → %q", s, out, again)
		}
		rest := out
		for {
			i := strings.IndexByte(rest, 0x1b)
			if i < 0 {
				break
			}
			n, sgr := sequence(rest[i:])
			if !sgr {
				t.Fatalf("a non-SGR escape kept from %q: %q", s, out)
			}
			rest = rest[i+n:]
		}
		for _, r := range out {
			if (r < 0x20 && r != '\t' && r != 0x1b) || r == 0x7f || (r >= 0x80 && r <= 0x9f) {
				t.Fatalf("control %U kept from %q: %q", r, s, out)
			}
		}
	})
}
