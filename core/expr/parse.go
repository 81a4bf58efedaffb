package expr

import (
	"strconv"
	"strings"
)

// node is a parsed expression.
type node interface {
	pos() int
}

type (
	litNode struct {
		at int
		v  Value
	}
	refNode struct {
		at   int
		path []string
	}
	unaryNode struct {
		at int
		x  node
	}
	binNode struct {
		at   int
		op   string
		l, r node
	}
	callNode struct {
		at   int
		name string
		args []node
	}
)

func (n *litNode) pos() int   { return n.at }
func (n *refNode) pos() int   { return n.at }
func (n *unaryNode) pos() int { return n.at }
func (n *binNode) pos() int   { return n.at }
func (n *callNode) pos() int  { return n.at }

// Expr is a parsed expression.
type Expr struct {
	src  string
	root node
}

// Source is the expression's text.
func (e *Expr) Source() string { return e.src }

// Parse reads an expression. A whole "${{ … }}" around it is allowed (as
// if: conditions are often written).
func Parse(src string) (*Expr, error) {
	if len(src) > MaxSource {
		return nil, errAt(0, "longer than %d bytes", MaxSource)
	}
	body, off := src, 0
	if t := strings.TrimSpace(src); strings.HasPrefix(t, "${{") && strings.HasSuffix(t, "}}") && strings.Count(t, "${{") == 1 {
		off = strings.Index(src, "${{") + 3
		body = src[off:strings.LastIndex(src, "}}")]
	}
	p := &parser{src: body, off: off}
	if err := p.lex(); err != nil {
		return nil, err
	}
	if len(p.toks) == 0 {
		return nil, errAt(off, "empty expression")
	}
	root, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	if p.i < len(p.toks) {
		t := p.toks[p.i]
		return nil, errAt(t.at, "unexpected %q", t.text)
	}
	return &Expr{src: src, root: root}, nil
}

type tokKind int

const (
	tIdent tokKind = iota
	tString
	tNumber
	tOp
)

type token struct {
	kind tokKind
	text string // ident, operator, or the string's value
	num  float64
	at   int
}

type parser struct {
	src  string
	off  int
	toks []token
	i    int
}

var twoCharOps = []string{"==", "!=", "<=", ">=", "&&", "||"}

func (p *parser) lex() error {
	s := p.src
	for i := 0; i < len(s); {
		c := s[i]
		at := p.off + i
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '\'' || c == '"':
			// A quote inside is doubled: 'it''s'.
			var b strings.Builder
			j := i + 1
			for {
				if j >= len(s) {
					return errAt(at, "unterminated string")
				}
				if s[j] == c {
					if j+1 < len(s) && s[j+1] == c {
						b.WriteByte(c)
						j += 2
						continue
					}
					break
				}
				b.WriteByte(s[j])
				j++
			}
			p.toks = append(p.toks, token{kind: tString, text: b.String(), at: at})
			i = j + 1
		case c >= '0' && c <= '9' || c == '-' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' && p.wantsOperand():
			j := i + 1
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
				j++
			}
			f, err := strconv.ParseFloat(s[i:j], 64)
			if err != nil {
				return errAt(at, "bad number %q", s[i:j])
			}
			p.toks = append(p.toks, token{kind: tNumber, text: s[i:j], num: f, at: at})
			i = j
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i + 1
			for j < len(s) && (s[j] == '_' || s[j] == '-' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			p.toks = append(p.toks, token{kind: tIdent, text: s[i:j], at: at})
			i = j
		default:
			op := ""
			for _, o := range twoCharOps {
				if strings.HasPrefix(s[i:], o) {
					op = o
				}
			}
			if op == "" && strings.IndexByte("()[].,!<>", c) >= 0 {
				op = string(c)
			}
			if op == "" {
				return errAt(at, "unexpected character %q", c)
			}
			p.toks = append(p.toks, token{kind: tOp, text: op, at: at})
			i += len(op)
		}
		if len(p.toks) > MaxSource {
			return errAt(at, "too many tokens")
		}
	}
	return nil
}

// wantsOperand reports whether the next token starts an operand (so a "-"
// is a sign).
func (p *parser) wantsOperand() bool {
	if len(p.toks) == 0 {
		return true
	}
	t := p.toks[len(p.toks)-1]
	return t.kind == tOp && t.text != ")" && t.text != "]"
}

func (p *parser) peek() *token {
	if p.i < len(p.toks) {
		return &p.toks[p.i]
	}
	return nil
}

func (p *parser) isOp(text string) bool {
	t := p.peek()
	return t != nil && t.kind == tOp && t.text == text
}

func (p *parser) end() int { return p.off + len(p.src) }

// Precedence climbing: || < && < comparison.
var precedence = map[string]int{"||": 1, "&&": 2, "==": 3, "!=": 3, "<": 3, "<=": 3, ">": 3, ">=": 3}

func (p *parser) expr(depth int) (node, error) {
	return p.binary(1, depth)
}

func (p *parser) binary(min, depth int) (node, error) {
	if depth > MaxDepth {
		return nil, errAt(p.posNow(), "nested deeper than %d", MaxDepth)
	}
	l, err := p.unary(depth + 1)
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		if t == nil || t.kind != tOp {
			return l, nil
		}
		prec, ok := precedence[t.text]
		if !ok || prec < min {
			return l, nil
		}
		p.i++
		next := prec + 1
		r, err := p.binary(next, depth+1)
		if err != nil {
			return nil, err
		}
		if prec == 3 {
			if b, ok := l.(*binNode); ok && precedence[b.op] == 3 {
				return nil, errAt(t.at, "comparisons do not chain; use && between them")
			}
		}
		l = &binNode{at: t.at, op: t.text, l: l, r: r}
		depth++
		if depth > MaxDepth {
			return nil, errAt(t.at, "nested deeper than %d", MaxDepth)
		}
	}
}

func (p *parser) posNow() int {
	if t := p.peek(); t != nil {
		return t.at
	}
	return p.end()
}

func (p *parser) unary(depth int) (node, error) {
	if depth > MaxDepth {
		return nil, errAt(p.posNow(), "nested deeper than %d", MaxDepth)
	}
	if p.isOp("!") {
		at := p.toks[p.i].at
		p.i++
		x, err := p.unary(depth + 1)
		if err != nil {
			return nil, err
		}
		return &unaryNode{at: at, x: x}, nil
	}
	return p.primary(depth)
}

func (p *parser) primary(depth int) (node, error) {
	t := p.peek()
	if t == nil {
		return nil, errAt(p.end(), "unexpected end of expression")
	}
	p.i++
	switch t.kind {
	case tString:
		return &litNode{at: t.at, v: Str(t.text)}, nil
	case tNumber:
		return &litNode{at: t.at, v: Num(t.num)}, nil
	case tOp:
		if t.text == "(" {
			x, err := p.binary(1, depth+1)
			if err != nil {
				return nil, err
			}
			if !p.isOp(")") {
				return nil, errAt(p.posNow(), "missing )")
			}
			p.i++
			return x, nil
		}
		return nil, errAt(t.at, "unexpected %q", t.text)
	}
	switch t.text {
	case "true", "false":
		return &litNode{at: t.at, v: Boolean(t.text == "true")}, nil
	case "null":
		return &litNode{at: t.at, v: Value{}}, nil
	}
	if p.isOp("(") {
		p.i++
		call := &callNode{at: t.at, name: t.text}
		if _, ok := functions[strings.ToLower(call.name)]; !ok {
			return nil, errAt(t.at, "unknown function %s; the functions are %s", call.name, functionNames())
		}
		if !p.isOp(")") {
			for {
				arg, err := p.binary(1, depth+1)
				if err != nil {
					return nil, err
				}
				call.args = append(call.args, arg)
				if len(call.args) > MaxArgs {
					return nil, errAt(arg.pos(), "more than %d arguments", MaxArgs)
				}
				if p.isOp(",") {
					p.i++
					continue
				}
				break
			}
		}
		if !p.isOp(")") {
			return nil, errAt(p.posNow(), "missing ) after the arguments of %s", call.name)
		}
		p.i++
		f := functions[strings.ToLower(call.name)]
		if len(call.args) < f.min || f.max >= 0 && len(call.args) > f.max {
			return nil, errAt(t.at, "%s takes %s", call.name, f.arity())
		}
		return call, nil
	}
	ref := &refNode{at: t.at, path: []string{t.text}}
	for {
		switch {
		case p.isOp("."):
			p.i++
			n := p.peek()
			if n == nil || n.kind != tIdent {
				return nil, errAt(p.posNow(), "a name must follow \".\"")
			}
			p.i++
			ref.path = append(ref.path, n.text)
		case p.isOp("["):
			p.i++
			n := p.peek()
			if n == nil || n.kind != tString {
				return nil, errAt(p.posNow(), "[ takes a quoted name, like jobs['build (linux)']")
			}
			p.i++
			if !p.isOp("]") {
				return nil, errAt(p.posNow(), "missing ]")
			}
			p.i++
			ref.path = append(ref.path, n.text)
		default:
			if len(ref.path) > 8 {
				return nil, errAt(t.at, "a name has at most 8 parts")
			}
			return ref, nil
		}
	}
}

// String is the expression in a canonical form (fully parenthesised), which
// parses back to the same expression.
func (e *Expr) String() string {
	var b strings.Builder
	write(&b, e.root)
	return b.String()
}

func write(b *strings.Builder, n node) {
	switch n := n.(type) {
	case *litNode:
		switch n.v.Kind {
		case String:
			b.WriteString("'" + strings.ReplaceAll(n.v.Str, "'", "''") + "'")
		case Null:
			b.WriteString("null")
		case Number:
			b.WriteString(strconv.FormatFloat(n.v.Num, 'f', -1, 64))
		default:
			b.WriteString(n.v.Text())
		}
	case *refNode:
		b.WriteString(n.path[0])
		for _, p := range n.path[1:] {
			b.WriteString("['" + strings.ReplaceAll(p, "'", "''") + "']")
		}
	case *unaryNode:
		b.WriteString("!")
		paren(b, n.x, 4)
	case *binNode:
		prec := precedence[n.op]
		paren(b, n.l, prec)
		b.WriteString(" " + n.op + " ")
		// Operators group to the left: a right operand of the same
		// precedence needs its parentheses.
		paren(b, n.r, prec+1)
	case *callNode:
		b.WriteString(n.name + "(")
		for i, a := range n.args {
			if i > 0 {
				b.WriteString(", ")
			}
			write(b, a)
		}
		b.WriteString(")")
	}
}

// paren writes n, in parentheses when it is an operation that binds less
// tightly than min (4: tighter than any operator).
func paren(b *strings.Builder, n node, min int) {
	if bn, ok := n.(*binNode); ok && precedence[bn.op] < min {
		b.WriteString("(")
		write(b, n)
		b.WriteString(")")
		return
	}
	write(b, n)
}
