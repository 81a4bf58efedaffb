package executor

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/url"
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
		m := NewMasker([]string{"short", secret}, DefaultMaskMinLength)
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
	m := NewMasker([]string{"0123456789"}, 100)
	if s := m.Mask(Stdout, "0123", true); s != "" {
		t.Errorf("a piece shorter than a secret shipped %q", s)
	}
	if got := m.Flush()[Stdout]; got != "0123" {
		t.Errorf("flush = %q", got)
	}
	if NewMasker([]string{"", ""}, DefaultMaskMinLength) != nil {
		t.Error("a masker without secrets")
	}
}

// A secret is masked in the forms it commonly takes in output: base64
// (both alphabets, with any bytes around it, so at each alignment), hex,
// URL and JSON escaping. Of a base64 form only the characters shared with
// its neighbours may stay.
func TestMaskerEncodings(t *testing.T) {
	const secret = `Sup3rs3cr3t/+?&<"é>`
	m := NewMasker([]string{secret}, DefaultMaskMinLength)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding} {
		for pre := range 6 {
			for post := range 4 {
				data := strings.Repeat("p", pre) + secret + strings.Repeat("q", post)
				e := enc.EncodeToString([]byte(data))
				got := m.Mask(Stdout, "token: "+e, false)
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
		got := m.Mask(Stdout, "x="+form+" end", false)
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
	m := NewMasker([]string{short, long}, 8)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	if got := m.Mask(Stdout, short+" "+long, false); got != "*** ***" {
		t.Errorf("as typed: %q", got)
	}
	if got := m.Mask(Stdout, b64(short), false); got != b64(short) {
		t.Errorf("a short secret's base64 was masked: %q", got)
	}
	if got := m.Mask(Stdout, b64(long), false); got == b64(long) {
		t.Errorf("a long secret's base64 passed: %q", got)
	}
	m = NewMasker([]string{long}, 9)
	if got := m.Mask(Stdout, b64(long), false); got != b64(long) {
		t.Errorf("minimum 9 masked an 8-byte secret's base64: %q", got)
	}
}
