package expr

import (
	"strings"
)

// Template is a string with ${{ expression }} parts, such as a cache key
// ("go-${{ hashFiles('go.sum') }}") or an env value
// ("${{ jobs.build.outputs.version }}").
type Template struct {
	src   string
	parts []part
}

type part struct {
	text string
	x    *Expr // nil: literal text
}

// ParseTemplate reads a template. Text outside ${{ }} is literal; "${{"
// inside literal text cannot be written (it always opens an expression).
func ParseTemplate(src string) (*Template, error) {
	if len(src) > MaxSource {
		return nil, errAt(0, "longer than %d bytes", MaxSource)
	}
	t := &Template{src: src}
	rest, off := src, 0
	for {
		i := strings.Index(rest, "${{")
		if i < 0 {
			if rest != "" {
				t.parts = append(t.parts, part{text: rest})
			}
			return t, nil
		}
		if i > 0 {
			t.parts = append(t.parts, part{text: rest[:i]})
		}
		end := closing(rest[i+3:])
		if end < 0 {
			return nil, errAt(off+i, "${{ without its }}")
		}
		body := rest[i+3 : i+3+end]
		p := &parser{src: body, off: off + i + 3}
		if err := p.lex(); err != nil {
			return nil, err
		}
		if len(p.toks) == 0 {
			return nil, errAt(off+i, "empty ${{ }}")
		}
		root, err := p.expr(0)
		if err != nil {
			return nil, err
		}
		if p.i < len(p.toks) {
			tk := p.toks[p.i]
			return nil, errAt(tk.at, "unexpected %q", tk.text)
		}
		t.parts = append(t.parts, part{x: &Expr{src: body, root: root}})
		adv := i + 3 + end + 2
		rest, off = rest[adv:], off+adv
	}
}

// closing finds the "}}" that ends an expression, skipping quoted strings.
func closing(s string) int {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '}' && i+1 < len(s) && s[i+1] == '}':
			return i
		}
	}
	return -1
}

// HasExpr reports whether s holds a ${{ }} part.
func HasExpr(s string) bool { return strings.Contains(s, "${{") }

// Source is the template's text.
func (t *Template) Source() string { return t.src }

// Exprs are the template's expressions.
func (t *Template) Exprs() []*Expr {
	var out []*Expr
	for _, p := range t.parts {
		if p.x != nil {
			out = append(out, p.x)
		}
	}
	return out
}

// Check checks every expression of the template for where it is evaluated.
func (t *Template) Check(w Where) error {
	for _, x := range t.Exprs() {
		if err := x.Check(w); err != nil {
			return err
		}
	}
	return nil
}

// Eval fills the template in.
func (t *Template) Eval(c Context) (string, error) {
	var b strings.Builder
	for _, p := range t.parts {
		if p.x == nil {
			b.WriteString(p.text)
		} else {
			v, err := p.x.Eval(c)
			if err != nil {
				return "", err
			}
			b.WriteString(v.Text())
		}
		if b.Len() > MaxValue {
			return "", errAt(0, "the value is longer than %d bytes", MaxValue)
		}
	}
	return b.String(), nil
}

// Partial fills in the parts whose names all start with one of namespaces
// (and that call no agent-only function), and writes the others back as
// they were: matrix values are filled in at expansion, the rest later.
// The result parses back to a template that means the same: a value (or
// the text after it) that would read as "${{" beside what precedes it is
// written as a quoted string expression, so a matrix value such as
// "${{ secrets.TOKEN }}" stays text and is never evaluated later.
func (t *Template) Partial(c Context, namespaces ...string) (string, error) {
	var b strings.Builder
	write := func(s string) {
		if opensExpr(b.String(), s) {
			b.WriteString("${{ '" + strings.ReplaceAll(s, "'", "''") + "' }}")
			return
		}
		b.WriteString(s)
	}
	for _, p := range t.parts {
		if p.x == nil {
			write(p.text)
			continue
		}
		if !onlyReads(p.x, namespaces) {
			b.WriteString("${{" + p.x.src + "}}")
			continue
		}
		v, err := p.x.Eval(c)
		if err != nil {
			return "", err
		}
		write(v.Text())
		if b.Len() > MaxValue {
			return "", errAt(0, "the value is longer than %d bytes", MaxValue)
		}
	}
	return b.String(), nil
}

// opensExpr reports whether writing text s after prev would make a "${{"
// that was not there: in s, or across the boundary (prev ending in "$" or
// "${"). prev holds no such "${{" itself, and its expressions end in "}}".
func opensExpr(prev, s string) bool {
	tail := prev[max(0, len(prev)-2):]
	return strings.Contains(tail+s, "${{")
}

func onlyReads(x *Expr, namespaces []string) bool {
	for _, c := range x.calls() {
		if strings.EqualFold(c.name, "hashFiles") {
			return false
		}
	}
	for _, r := range x.Refs() {
		found := false
		for _, ns := range namespaces {
			if r.Path[0] == ns {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Map is a Context over a map of dotted names ("env.GOOS",
// "jobs.build.outputs.version"); it hashes no files.
type Map map[string]string

// Lookup implements Context.
func (m Map) Lookup(path []string) (Value, bool) {
	v, ok := m[strings.Join(path, ".")]
	if !ok {
		return Value{}, false
	}
	return Str(v), true
}

// HashFiles implements Context: a Map hashes no files.
func (m Map) HashFiles([]string) (string, error) {
	return "", errAt(0, "hashFiles is evaluated on the agent only")
}
