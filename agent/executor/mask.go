package executor

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"
)

// Masker replaces a job's secret values with *** in its output. A line
// longer than MaxLineBytes reaches the agent in pieces; a secret
// cut in two by such a split would escape a piece-by-piece replacement, so
// of a piece that continues, the tail that could begin a secret is held
// back and shipped at the front of the next piece of the same stream.
type Masker struct {
	secrets []string // longest first, so one that contains another is masked whole
	longest int
	rep     *strings.Replacer
	carry   map[Stream]string
}

// DefaultMaskMinLength is the shortest secret whose encoded forms are
// masked too, when the agent's configuration says nothing.
const DefaultMaskMinLength = 8

// NewMasker returns a masker for the secret values; nil without any. A
// secret of at least minLen bytes is masked in its common encodings too
// (see encodings); a shorter one only as it is, since its encoded forms
// are short enough to turn up by chance.
func NewMasker(values []string, minLen int) *Masker {
	seen := map[string]bool{}
	var secrets []string
	add := func(v string) {
		if v != "" && !seen[v] {
			seen[v] = true
			secrets = append(secrets, v)
		}
	}
	for _, v := range values {
		add(v)
		if len(v) >= minLen {
			for _, e := range encodings(v) {
				if len(e) >= minLen {
					add(e)
				}
			}
		}
	}
	if len(secrets) == 0 {
		return nil
	}
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(secrets))
	for _, v := range secrets {
		pairs = append(pairs, v, "***")
	}
	return &Masker{secrets: secrets, longest: len(secrets[0]), rep: strings.NewReplacer(pairs...), carry: map[Stream]string{}}
}

// encodings are the forms a secret commonly takes in output, as the most
// used CI runners mask them: base64 (standard and URL alphabets) at each of
// the three alignments the secret may have in the encoded data, hex (both
// cases), URL escaping (query and path) and JSON string escaping. Of a
// base64 form only the characters the secret alone decides are kept: the
// one or two at each end that it shares with its neighbours stay visible.
func encodings(s string) []string {
	var out []string
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		for k := range 3 { // bytes before the secret in its 3-byte group
			buf := make([]byte, k+len(s))
			copy(buf[k:], s)
			e := enc.EncodeToString(buf)
			// Characters before start hold bits of the bytes before; from
			// end on, bits of the bytes after.
			start, end := (8*k+5)/6, 8*(k+len(s))/6
			if end > start {
				out = append(out, e[start:end])
			}
		}
	}
	out = append(out, hex.EncodeToString([]byte(s)), strings.ToUpper(hex.EncodeToString([]byte(s))),
		url.QueryEscape(s), url.PathEscape(s))
	for _, html := range []bool{true, false} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		if enc.Encode(s) == nil {
			q := strings.TrimSuffix(b.String(), "\n") // Encode ends with a newline
			out = append(out, q[1:len(q)-1])          // without the quotes
		}
	}
	return out
}

// Mask returns the text of a piece of output to ship now, masked.
func (m *Masker) Mask(stream Stream, text string, continued bool) string {
	if held, ok := m.carry[stream]; ok {
		text = held + text
		delete(m.carry, stream)
	}
	if !continued {
		return m.rep.Replace(text)
	}
	// Hold back what could be the start of a secret, and any secret that
	// straddles the cut.
	cut := len(text) - (m.longest - 1)
	if cut <= 0 {
		m.carry[stream] = text
		return ""
	}
	for _, s := range m.secrets {
		for i := max(0, cut-len(s)+1); i < cut; i++ {
			if strings.HasPrefix(text[i:], s) {
				cut = i
				break
			}
		}
	}
	for cut > 0 && !utf8.RuneStart(text[cut]) {
		cut--
	}
	m.carry[stream] = text[cut:]
	return m.rep.Replace(text[:cut])
}

// Flush returns what is held back of each stream, masked (the output ended
// without the rest of its line).
func (m *Masker) Flush() map[Stream]string {
	out := map[Stream]string{}
	for st, held := range m.carry {
		out[st] = m.rep.Replace(held)
	}
	clear(m.carry)
	return out
}
