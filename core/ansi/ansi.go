// Package ansi cleans terminal output for display: a job's log keeps its
// colours (SGR sequences, ESC [ … m) and loses everything else a terminal
// would act on — cursor movement, screen clearing, window titles and
// hyperlinks (OSC), device controls, bells, backspaces — which, printed
// raw, would move the reader's cursor or rewrite their terminal.
package ansi

import (
	"strings"
	"unicode/utf8"
)

const esc = 0x1b

// KeepColours returns line with its SGR sequences and printable text only.
// A carriage return starts the line over, as on a terminal: what follows
// the last one that has text after it is kept (progress bars show their
// last state; a CRLF ending is dropped).
func KeepColours(line string) string {
	if !needsWork(line) {
		return line
	}
	if strings.ContainsRune(line, '\r') {
		parts := strings.Split(line, "\r")
		line = parts[0]
		for _, p := range parts[1:] {
			if visible(p) {
				line = p
			}
		}
	}
	var b strings.Builder
	b.Grow(len(line))
	for i := 0; i < len(line); {
		c := line[i]
		switch {
		case c == esc:
			n, keep := sequence(line[i:])
			if keep {
				b.WriteString(line[i : i+n])
			}
			i += n
		case c == '\t':
			b.WriteByte(c)
			i++
		case c < 0x20 || c == 0x7f:
			i++ // other C0 controls: bell, backspace, …
		case c < utf8.RuneSelf:
			b.WriteByte(c)
			i++
		default:
			r, n := utf8.DecodeRuneInString(line[i:])
			if r == utf8.RuneError && n == 1 {
				b.WriteString("\uFFFD")
			} else if r < 0x80 || r > 0x9f { // C1 controls are dropped
				b.WriteString(line[i : i+n])
			}
			i += n
		}
	}
	return b.String()
}

// needsWork reports whether s holds anything but printable ASCII, tabs and
// valid UTF-8 above the C1 range: most lines do not.
func needsWork(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f || c >= 0x80 {
			return true
		}
	}
	return false
}

// visible reports whether s has text once escapes are left out.
func visible(s string) bool {
	for i := 0; i < len(s); {
		if s[i] == esc {
			n, _ := sequence(s[i:])
			i += n
			continue
		}
		if s[i] >= 0x20 {
			return true
		}
		i++
	}
	return false
}

// sequence measures the escape sequence at the start of s (s[0] is ESC)
// and reports whether it is SGR. An unfinished sequence runs to the end.
func sequence(s string) (n int, sgr bool) {
	if len(s) < 2 {
		return len(s), false
	}
	switch s[1] {
	case '[': // CSI: parameters and intermediates, then a final byte
		for i := 2; i < len(s); i++ {
			c := s[i]
			if c >= 0x40 && c <= 0x7e {
				return i + 1, c == 'm' && sgrParams(s[2:i])
			}
			if c < 0x20 || c > 0x7e {
				return i, false // broken: drop what came so far
			}
		}
		return len(s), false
	case ']', 'P', 'X', '^', '_': // OSC, DCS, SOS, PM, APC: up to BEL or ST
		for i := 2; i < len(s); i++ {
			if s[i] == 0x07 {
				return i + 1, false
			}
			if s[i] == esc && i+1 < len(s) && s[i+1] == '\\' {
				return i + 2, false
			}
		}
		return len(s), false
	}
	// ESC, intermediates (0x20–0x2F), a final byte: ESC ( B, ESC 7, ESC c …
	i := 1
	for i < len(s) && s[i] >= 0x20 && s[i] <= 0x2f {
		i++
	}
	if i < len(s) {
		i++
	}
	return i, false
}

// sgrParams reports whether p are SGR parameters: digits, ';' and ':'.
func sgrParams(p string) bool {
	for i := 0; i < len(p); i++ {
		if c := p[i]; (c < '0' || c > '9') && c != ';' && c != ':' {
			return false
		}
	}
	return true
}
