package agent

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/go-arcade/arcade/agent/executor"
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
		m := newMasker([]string{"short", secret}, DefaultMaskMinLength)
		var got strings.Builder
		got.WriteString(m.mask(executor.Stdout, pieces[0], true))
		if s := m.mask(executor.Stderr, "other "+secret, false); s != "other ***" {
			t.Fatalf("cut %d: stderr line %q", cut, s)
		}
		got.WriteString(m.mask(executor.Stdout, pieces[1], false))
		want := strings.Repeat("a", 100) + "***" + strings.Repeat("b", 50) + "***é end"
		if got.String() != want {
			t.Errorf("cut %d: shipped %q, want %q", cut, got.String(), want)
		}
	}
}

func TestMaskerHoldsShortPiecesAndFlushes(t *testing.T) {
	m := newMasker([]string{"0123456789"}, 100)
	if s := m.mask(executor.Stdout, "0123", true); s != "" {
		t.Errorf("a piece shorter than a secret shipped %q", s)
	}
	if got := m.flush()[executor.Stdout]; got != "0123" {
		t.Errorf("flush = %q", got)
	}
	if newMasker([]string{"", ""}, DefaultMaskMinLength) != nil {
		t.Error("a masker without secrets")
	}
}

// A secret is masked in the forms it commonly takes in output: base64
// (both alphabets, with any bytes around it, so at each alignment), hex,
// URL and JSON escaping. Of a base64 form only the characters shared with
// its neighbours may stay.
func TestMaskerEncodings(t *testing.T) {
	const secret = `Sup3rs3cr3t/+?&<"é>`
	m := newMasker([]string{secret}, DefaultMaskMinLength)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding} {
		for pre := range 6 {
			for post := range 4 {
				data := strings.Repeat("p", pre) + secret + strings.Repeat("q", post)
				e := enc.EncodeToString([]byte(data))
				got := m.mask(executor.Stdout, "token: "+e, false)
				// What may stay: the characters of the bytes around the
				// secret, one shared at each edge, and padding.
				visible := len(got) - len("token: ***")
				allowed := (8*pre+5)/6 + (8*post+5)/6 + 2 + strings.Count(e, "=")
				if !strings.Contains(got, "***") || visible > allowed {
					t.Errorf("base64 %q: shipped %q (%d characters left, %d allowed)", e, got, visible, allowed)
				}
			}
		}
	}
	js, _ := json.Marshal(map[string]string{"token": secret})
	for name, form := range map[string]string{
		"hex": hex.EncodeToString([]byte(secret)), "HEX": strings.ToUpper(hex.EncodeToString([]byte(secret))),
		"query": url.QueryEscape(secret), "path": url.PathEscape(secret), "json": string(js),
	} {
		got := m.mask(executor.Stdout, "x="+form+" end", false)
		if strings.Contains(got, secret) || !strings.Contains(got, "***") || strings.Contains(form, "***") {
			t.Errorf("%s %q: shipped %q", name, form, got)
		}
		for _, piece := range []string{hex.EncodeToString([]byte(secret))[:20], "Sup3rs3cr3t%2F", `\u003c\"`} {
			if strings.Contains(got, piece) {
				t.Errorf("%s: %q still shows %q", name, got, piece)
			}
		}
	}
}

// Short secrets are masked as they are, never in encoded forms (too short
// not to match by chance); the minimum is the agent's setting.
func TestMaskerMinLength(t *testing.T) {
	short, long := "abc12", "abcdef12"
	m := newMasker([]string{short, long}, 8)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	if got := m.mask(executor.Stdout, short+" "+long, false); got != "*** ***" {
		t.Errorf("as typed: %q", got)
	}
	if got := m.mask(executor.Stdout, b64(short), false); got != b64(short) {
		t.Errorf("a short secret's base64 was masked: %q", got)
	}
	if got := m.mask(executor.Stdout, b64(long), false); got == b64(long) {
		t.Errorf("a long secret's base64 passed: %q", got)
	}
	m = newMasker([]string{long}, 9)
	if got := m.mask(executor.Stdout, b64(long), false); got != b64(long) {
		t.Errorf("minimum 9 masked an 8-byte secret's base64: %q", got)
	}
}

// A status message is cut to what the server takes, kept valid UTF-8
// without NUL.
func TestStatusMessage(t *testing.T) {
	long := strings.Repeat("é", maxStatusMessage)
	got := statusMessage(long)
	if len(got) > maxStatusMessage || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
		t.Errorf("long: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
	if got := statusMessage("a\x00b\xffc"); got != "a\uFFFDb\uFFFDc" {
		t.Errorf("NUL and invalid UTF-8: %q", got)
	}
	if got := statusMessage("exit status 1"); got != "exit status 1" {
		t.Errorf("short: %q", got)
	}
}
