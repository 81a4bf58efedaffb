package labels

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Parse reads a selector in the compact text form: terms separated by
// commas, with whitespace around tokens ignored and commas inside
// parentheses belonging to the set:
//
//	k=v, k==v        match label (the same key twice with different values is an error)
//	k!=v             NotIn with the single value v
//	k in (a,b)       In       (keywords are case-insensitive)
//	k notin (a,b)    NotIn
//	k                Exists
//	!k               NotExists
//	k>n, k<n         GT, LT   (n a base-10 int64, possibly negative)
//
// Values may be empty in k=v and k!=v but not in a set, and a set may not be
// empty. An empty or all-whitespace text is the empty selector.
//
// The result is valid (see Selector.Validate). Errors are a *FieldError with
// Field "selector" and a Reason naming the 1-based term, e.g.
// `term 3 "cpu>x": GT needs an integer, got "x"`.
func Parse(text string) (Selector, error) {
	if strings.TrimSpace(text) == "" {
		return Selector{}, nil
	}
	terms, err := splitTerms(text)
	if err != nil {
		return Selector{}, err
	}
	var s Selector
	setBy := map[string]int{} // match label key -> index of the term that set it
	for i, term := range terms {
		fail := func(format string, args ...any) (Selector, error) {
			return Selector{}, termError(i, term, fmt.Sprintf(format, args...))
		}
		if term == "" {
			switch {
			case i == len(terms)-1:
				return fail("empty term after trailing comma")
			case i == 0:
				return fail("empty term before leading comma")
			}
			return fail("empty term between commas")
		}
		key, pair, req, reason := parseTerm(term)
		if reason != "" {
			return fail("%s", reason)
		}
		if !pair {
			s.Requirements = append(s.Requirements, req)
			continue
		}
		value := req.Values[0]
		if have, ok := s.MatchLabels[key]; ok {
			if have != value {
				return fail("key %q is already %q (term %d)", key, have, setBy[key]+1)
			}
			continue
		}
		if s.MatchLabels == nil {
			s.MatchLabels = map[string]string{}
		}
		s.MatchLabels[key] = value
		setBy[key] = i
	}
	return s, nil
}

// termError returns the error for the term at index i.
func termError(i int, term, reason string) error {
	return &FieldError{Field: "selector", Reason: fmt.Sprintf("term %d %q: %s", i+1, term, reason)}
}

// splitTerms splits text at the commas outside parentheses and trims each
// term. It rejects unbalanced and nested parentheses.
func splitTerms(text string) ([]string, error) {
	var terms []string
	start, open := 0, -1 // open: offset of the unclosed '(' or -1
	for i := 0; i < len(text); i++ {
		switch text[i] {
		case '(':
			if open >= 0 {
				return nil, termError(len(terms), strings.TrimSpace(text[start:]),
					fmt.Sprintf(`nested "(" at offset %d`, i))
			}
			open = i
		case ')':
			if open < 0 {
				end := strings.IndexByte(text[i:], ',')
				if end < 0 {
					end = len(text)
				} else {
					end += i
				}
				return nil, termError(len(terms), strings.TrimSpace(text[start:end]),
					fmt.Sprintf(`unbalanced parentheses: ")" at offset %d has no "("`, i))
			}
			open = -1
		case ',':
			if open < 0 {
				terms = append(terms, strings.TrimSpace(text[start:i]))
				start = i + 1
			}
		}
	}
	if open >= 0 {
		return nil, termError(len(terms), strings.TrimSpace(text[start:]),
			fmt.Sprintf(`unbalanced parentheses: "(" at offset %d is not closed`, open))
	}
	return append(terms, strings.TrimSpace(text[start:])), nil
}

// parseTerm parses one trimmed, non-empty term. For a match label it returns
// pair true, the key, and the value as req.Values[0]; otherwise the
// requirement. reason is non-empty when the term is invalid.
func parseTerm(term string) (key string, pair bool, req Requirement, reason string) {
	if rest, ok := strings.CutPrefix(term, "!"); ok && !strings.HasPrefix(rest, "=") {
		key, rest = scanKey(strings.TrimSpace(rest))
		if rest = strings.TrimSpace(rest); rest != "" {
			return "", false, req, fmt.Sprintf(`unexpected %q after "!%s" (NotExists takes a bare key)`, rest, key)
		}
		if reason := keyProblem(key); reason != "" {
			return "", false, req, reason
		}
		return key, false, Requirement{Key: key, Op: NotExists}, ""
	}

	key, rest := scanKey(term)
	rest = strings.TrimSpace(rest)
	var op Operator
	var value string
	switch {
	case rest == "":
		op = Exists
	case strings.HasPrefix(rest, "=="):
		pair, value = true, rest[2:]
	case strings.HasPrefix(rest, "="):
		pair, value = true, rest[1:]
	case strings.HasPrefix(rest, "!="):
		op, value = NotIn, rest[2:]
	case strings.HasPrefix(rest, ">"):
		op, value = GT, rest[1:]
	case strings.HasPrefix(rest, "<"):
		op, value = LT, rest[1:]
	default:
		var set string
		var ok bool
		if op, set, ok = cutKeyword(rest); !ok {
			if key == "" {
				return "", false, req, fmt.Sprintf("expected a key, got %q", rest)
			}
			return "", false, req, fmt.Sprintf("unexpected %q after key %q (expected =, ==, !=, <, >, in or notin)", rest, key)
		}
		if reason := keyProblem(key); reason != "" {
			return "", false, req, reason
		}
		values, reason := parseSet(op, set)
		if reason != "" {
			return "", false, req, reason
		}
		return key, false, Requirement{Key: key, Op: op, Values: values}, ""
	}
	if reason := keyProblem(key); reason != "" {
		return "", false, req, reason
	}
	value = strings.TrimSpace(value)
	switch op {
	case Exists:
		return key, false, Requirement{Key: key, Op: Exists}, ""
	case GT, LT:
		if reason := integerProblem(op, value); reason != "" {
			return "", false, req, reason
		}
	default: // match label or NotIn
		if reason := valueProblem(value); reason != "" {
			return "", false, req, reason
		}
	}
	return key, pair, Requirement{Key: key, Op: op, Values: []string{value}}, ""
}

// scanKey splits s into its leading run of label key characters and the rest.
func scanKey(s string) (key, rest string) {
	i := 0
	for i < len(s) {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '_' && c != '.' && c != '/' {
			break
		}
		i++
	}
	return s[:i], s[i:]
}

// cutKeyword recognises "in" or "notin" (any case) at the start of s,
// followed by whitespace or '(', and returns the operator and what follows.
func cutKeyword(s string) (op Operator, rest string, ok bool) {
	for _, kw := range []struct {
		word string
		op   Operator
	}{{"notin", NotIn}, {"in", In}} {
		if len(s) < len(kw.word) || !strings.EqualFold(s[:len(kw.word)], kw.word) {
			continue
		}
		rest = s[len(kw.word):]
		if r, _ := utf8.DecodeRuneInString(rest); rest == "" || r == '(' || unicode.IsSpace(r) {
			return kw.op, strings.TrimSpace(rest), true
		}
	}
	return 0, "", false
}

// parseSet parses "(a,b,...)" for the operator op; s is trimmed.
func parseSet(op Operator, s string) (values []string, reason string) {
	if !strings.HasPrefix(s, "(") {
		return nil, fmt.Sprintf("%v needs a parenthesized set, as in (a,b)", op)
	}
	end := strings.IndexByte(s, ')')
	if end < 0 { // splitTerms has checked the balance
		return nil, fmt.Sprintf("%v set is not closed", op)
	}
	if after := strings.TrimSpace(s[end+1:]); after != "" {
		return nil, fmt.Sprintf("unexpected %q after the set", after)
	}
	inner := s[1:end]
	if strings.TrimSpace(inner) == "" {
		return nil, fmt.Sprintf("empty set: %v needs at least one value", op)
	}
	for elem := range strings.SplitSeq(inner, ",") {
		v := strings.TrimSpace(elem)
		if v == "" {
			return nil, fmt.Sprintf("empty value in the set (value %d)", len(values)+1)
		}
		if reason := valueProblem(v); reason != "" {
			return nil, reason
		}
		values = append(values, v)
	}
	return values, ""
}

// String returns the selector in the compact text form read by Parse: the
// match labels sorted by key, then the requirements in order, joined by
// commas, with set values in their given order. A single-value NotIn prints
// as k!=v, which Parse reads back to the same requirement. The empty
// selector prints as "".
//
// For a valid selector whose In and NotIn sets hold no empty value (as every
// selector Parse returns), Parse(s.String()) returns an equal selector. The
// text form cannot express an empty value in a set, nor an invalid selector;
// String still prints them, for messages, but Parse rejects the result.
func (s Selector) String() string {
	var b strings.Builder
	sep := func() {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
	}
	for _, k := range slices.Sorted(maps.Keys(s.MatchLabels)) {
		sep()
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(s.MatchLabels[k])
	}
	for _, r := range s.Requirements {
		sep()
		switch r.Op {
		case In:
			writeSet(&b, r.Key, " in ", r.Values)
		case NotIn:
			if len(r.Values) == 1 {
				b.WriteString(r.Key)
				b.WriteString("!=")
				b.WriteString(r.Values[0])
			} else {
				writeSet(&b, r.Key, " notin ", r.Values)
			}
		case Exists:
			b.WriteString(r.Key)
		case NotExists:
			b.WriteByte('!')
			b.WriteString(r.Key)
		case GT, LT:
			b.WriteString(r.Key)
			if r.Op == GT {
				b.WriteByte('>')
			} else {
				b.WriteByte('<')
			}
			b.WriteString(strings.Join(r.Values, " "))
		default:
			writeSet(&b, r.Key, " "+r.Op.String()+" ", r.Values)
		}
	}
	return b.String()
}

func writeSet(b *strings.Builder, key, op string, values []string) {
	b.WriteString(key)
	b.WriteString(op)
	b.WriteByte('(')
	b.WriteString(strings.Join(values, ","))
	b.WriteByte(')')
}
