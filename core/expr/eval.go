package expr

import (
	"math"
	"slices"
	"strconv"
	"strings"
)

// function is one of the fixed set.
type function struct {
	min, max int // max < 0: any number
	where    []Where
	call     func(c Context, args []Value, at int) (Value, error)
}

func (f function) arity() string {
	switch {
	case f.max < 0:
		return "at least " + strconv.Itoa(f.min) + " argument(s)"
	case f.min == f.max:
		return strconv.Itoa(f.min) + " argument(s)"
	}
	return strconv.Itoa(f.min) + " to " + strconv.Itoa(f.max) + " arguments"
}

var everywhere = []Where{OnServer, OnAgent, AtExpansion}

var functions map[string]function

func init() {
	functions = map[string]function{
		"contains": {2, 2, everywhere, func(_ Context, a []Value, _ int) (Value, error) {
			return Boolean(strings.Contains(a[0].Text(), a[1].Text())), nil
		}},
		"startswith": {2, 2, everywhere, func(_ Context, a []Value, _ int) (Value, error) {
			return Boolean(strings.HasPrefix(a[0].Text(), a[1].Text())), nil
		}},
		"endswith": {2, 2, everywhere, func(_ Context, a []Value, _ int) (Value, error) {
			return Boolean(strings.HasSuffix(a[0].Text(), a[1].Text())), nil
		}},
		"lower": {1, 1, everywhere, func(_ Context, a []Value, _ int) (Value, error) {
			return Str(strings.ToLower(a[0].Text())), nil
		}},
		"upper": {1, 1, everywhere, func(_ Context, a []Value, _ int) (Value, error) {
			return Str(strings.ToUpper(a[0].Text())), nil
		}},
		"join": {1, -1, everywhere, func(_ Context, a []Value, at int) (Value, error) {
			parts := make([]string, 0, len(a)-1)
			for _, v := range a[1:] {
				parts = append(parts, v.Text())
			}
			return bounded(strings.Join(parts, a[0].Text()), at)
		}},
		"format": {1, -1, everywhere, formatFn},
		"hashfiles": {1, -1, []Where{OnAgent}, func(c Context, a []Value, at int) (Value, error) {
			pats := make([]string, len(a))
			for i, v := range a {
				pats[i] = v.Text()
			}
			h, err := c.HashFiles(pats)
			if err != nil {
				return Value{}, errAt(at, "hashFiles: %v", err)
			}
			return Str(h), nil
		}},
	}
}

// functionNames lists the functions for messages.
func functionNames() string {
	return "contains, startsWith, endsWith, format, join, lower, upper, hashFiles"
}

func bounded(s string, at int) (Value, error) {
	if len(s) > MaxValue {
		return Value{}, errAt(at, "the value is longer than %d bytes", MaxValue)
	}
	return Str(s), nil
}

// formatFn replaces {0}, {1}… by the arguments after the format; {{ and }}
// are literal braces.
func formatFn(_ Context, a []Value, at int) (Value, error) {
	f := a[0].Text()
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		c := f[i]
		switch {
		case c == '{' && i+1 < len(f) && f[i+1] == '{':
			b.WriteByte('{')
			i++
		case c == '}' && i+1 < len(f) && f[i+1] == '}':
			b.WriteByte('}')
			i++
		case c == '{':
			end := strings.IndexByte(f[i:], '}')
			if end < 0 {
				return Value{}, errAt(at, "format: unclosed {")
			}
			n, err := strconv.Atoi(f[i+1 : i+end])
			if err != nil || n < 0 || n+1 >= len(a) {
				return Value{}, errAt(at, "format: {%s} names no argument", f[i+1:i+end])
			}
			b.WriteString(a[n+1].Text())
			i += end
		default:
			b.WriteByte(c)
		}
		if b.Len() > MaxValue {
			return Value{}, errAt(at, "the value is longer than %d bytes", MaxValue)
		}
	}
	return Str(b.String()), nil
}

// Eval evaluates the expression.
func (e *Expr) Eval(c Context) (Value, error) {
	return eval(e.root, c)
}

func eval(n node, c Context) (Value, error) {
	switch n := n.(type) {
	case *litNode:
		return n.v, nil
	case *refNode:
		v, _ := c.Lookup(n.path)
		return v, nil
	case *unaryNode:
		x, err := eval(n.x, c)
		if err != nil {
			return Value{}, err
		}
		return Boolean(!x.Truthy()), nil
	case *binNode:
		l, err := eval(n.l, c)
		if err != nil {
			return Value{}, err
		}
		// && and || return an operand, as in shells: a || 'default'.
		switch n.op {
		case "&&":
			if !l.Truthy() {
				return l, nil
			}
			return eval(n.r, c)
		case "||":
			if l.Truthy() {
				return l, nil
			}
			return eval(n.r, c)
		}
		r, err := eval(n.r, c)
		if err != nil {
			return Value{}, err
		}
		return Boolean(compare(n.op, l, r)), nil
	case *callNode:
		args := make([]Value, len(n.args))
		for i, a := range n.args {
			v, err := eval(a, c)
			if err != nil {
				return Value{}, err
			}
			args[i] = v
		}
		return functions[strings.ToLower(n.name)].call(c, args, n.at)
	}
	return Value{}, errAt(0, "unknown node")
}

// compare: two numbers (or a number and a string that reads as one) compare
// as numbers; otherwise as text. Null equals null and "" only.
func compare(op string, l, r Value) bool {
	numeric := (l.Kind == Number || r.Kind == Number) && !math.IsNaN(l.number()) && !math.IsNaN(r.number())
	if l.Kind == Bool || r.Kind == Bool {
		numeric = false
		if op == "==" || op == "!=" {
			eq := l.Kind == r.Kind && l.Bool == r.Bool
			return eq == (op == "==")
		}
	}
	var cmp int
	if numeric {
		a, b := l.number(), r.number()
		switch {
		case a < b:
			cmp = -1
		case a > b:
			cmp = 1
		}
	} else {
		cmp = strings.Compare(l.Text(), r.Text())
	}
	switch op {
	case "==":
		return cmp == 0
	case "!=":
		return cmp != 0
	case "<":
		return cmp < 0
	case "<=":
		return cmp <= 0
	case ">":
		return cmp > 0
	case ">=":
		return cmp >= 0
	}
	return false
}

// Ref is a name an expression reads, with its offset.
type Ref struct {
	Path []string
	Pos  int
}

// Refs lists the names the expression reads, in order.
func (e *Expr) Refs() []Ref {
	var out []Ref
	walk(e.root, func(n node) {
		if r, ok := n.(*refNode); ok {
			out = append(out, Ref{Path: slices.Clone(r.path), Pos: r.at})
		}
	})
	return out
}

// Calls lists the functions the expression calls (lower case), with their
// offsets.
func (e *Expr) calls() []*callNode {
	var out []*callNode
	walk(e.root, func(n node) {
		if c, ok := n.(*callNode); ok {
			out = append(out, c)
		}
	})
	return out
}

func walk(n node, fn func(node)) {
	fn(n)
	switch n := n.(type) {
	case *unaryNode:
		walk(n.x, fn)
	case *binNode:
		walk(n.l, fn)
		walk(n.r, fn)
	case *callNode:
		for _, a := range n.args {
			walk(a, fn)
		}
	}
}

// Namespaces are the first parts of names, by where they may be read.
var namespaces = map[string][]Where{
	"env":    {OnServer, OnAgent},
	"matrix": {OnServer, OnAgent, AtExpansion},
	"jobs":   {OnServer},
	"arcade": {OnServer, OnAgent},
}

// agentOnly are names of the arcade namespace only the agent knows.
var agentOnly = map[string]bool{"os": true, "arch": true}

// ArcadeNames are the names of the arcade namespace.
var ArcadeNames = []string{"pipeline", "run_number", "branch", "trigger", "os", "arch"}

// Check refuses names and functions the expression may not use where it is
// evaluated. It checks the shape of names (jobs.JOB.outputs.KEY or
// jobs.JOB.status; arcade.NAME), not whether a job or output exists: the
// caller, which knows the pipeline, does (through Refs).
func (e *Expr) Check(w Where) error {
	for _, c := range e.calls() {
		f := functions[strings.ToLower(c.name)]
		if !slices.Contains(f.where, w) {
			return errAt(c.at, "%s cannot be used %s", c.name, w)
		}
	}
	for _, r := range e.Refs() {
		ns := r.Path[0]
		allowed, ok := namespaces[ns]
		switch {
		case !ok:
			return errAt(r.Pos, "unknown name %s; names start with env., matrix., jobs. or arcade.", strings.Join(r.Path, "."))
		case !slices.Contains(allowed, w):
			return errAt(r.Pos, "%s cannot be read %s", strings.Join(r.Path, "."), w)
		}
		switch ns {
		case "env", "matrix":
			if len(r.Path) != 2 {
				return errAt(r.Pos, "want %s.NAME, got %s", ns, strings.Join(r.Path, "."))
			}
		case "arcade":
			if len(r.Path) != 2 || !slices.Contains(ArcadeNames, r.Path[1]) {
				return errAt(r.Pos, "unknown name %s; arcade. has %s", strings.Join(r.Path, "."), strings.Join(ArcadeNames, ", "))
			}
			if agentOnly[r.Path[1]] && w != OnAgent {
				return errAt(r.Pos, "%s is known on the agent only (cache keys)", strings.Join(r.Path, "."))
			}
		case "jobs":
			ok := len(r.Path) == 4 && r.Path[2] == "outputs" || len(r.Path) == 3 && r.Path[2] == "status"
			if !ok {
				return errAt(r.Pos, "want jobs.JOB.outputs.NAME or jobs.JOB.status, got %s", strings.Join(r.Path, "."))
			}
		}
	}
	return nil
}
