package executor

import (
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

// NewMasker returns a masker for the secret values; nil without any.
func NewMasker(values []string) *Masker {
	var secrets []string
	for _, v := range values {
		if v != "" {
			secrets = append(secrets, v)
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
