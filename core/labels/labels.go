// Package labels implements Kubernetes-style label selectors, which route
// jobs to agents: a job carries a Selector and runs only on an agent whose
// labels it matches.
//
// A Selector is the conjunction of exact key=value pairs (MatchLabels) and
// Requirements (In, NotIn, Exists, NotExists, GT, LT). It converts to and
// from the wire form (agentv1.LabelSelector) and to and from a compact text
// form used by the CLI and pipeline files:
//
//	env in (staging,production),gpu,!spot,cpu-cores>8,mem<1024,region=us-west,tier!=free,zone notin (a,b)
//
// The package is pure logic: no I/O and no global state.
package labels

import (
	"maps"
	"slices"
	"strconv"
)

// MaxRecommendedLabels is the number of labels on an agent or job above which
// the server logs a warning. Exceeding it is not an error.
const MaxRecommendedLabels = 20

// Operator is the operator of a Requirement. The zero value is not a valid
// operator; Validate reports it as unspecified.
type Operator int

// The operators, numbered as LabelOperator in the wire form.
const (
	// In holds when the key is present and its value is one of Values.
	In Operator = iota + 1
	// NotIn holds when the key is absent or its value is none of Values.
	NotIn
	// Exists holds when the key is present, whatever its value.
	Exists
	// NotExists holds when the key is absent.
	NotExists
	// GT holds when the key is present, its value is a base-10 int64 and it
	// is strictly greater than the single integer in Values.
	GT
	// LT holds when the key is present, its value is a base-10 int64 and it
	// is strictly less than the single integer in Values.
	LT
)

// String returns the operator's name: "In", "NotIn", "Exists", "NotExists",
// "GT", "LT", "Unspecified" for the zero value, or "Operator(n)" otherwise.
func (o Operator) String() string {
	switch o {
	case 0:
		return "Unspecified"
	case In:
		return "In"
	case NotIn:
		return "NotIn"
	case Exists:
		return "Exists"
	case NotExists:
		return "NotExists"
	case GT:
		return "GT"
	case LT:
		return "LT"
	}
	return "Operator(" + strconv.Itoa(int(o)) + ")"
}

// valid reports whether o is one of the defined operators.
func (o Operator) valid() bool { return o >= In && o <= LT }

// Requirement is one expression of a Selector: Key, an operator and the
// values it compares with. In and NotIn take one or more values, Exists and
// NotExists none, GT and LT exactly one integer.
type Requirement struct {
	Key    string
	Op     Operator
	Values []string
}

// matches reports whether the requirement holds for labels. A requirement
// with an unknown operator matches nothing.
func (r Requirement) matches(labels map[string]string) bool {
	v, ok := labels[r.Key]
	switch r.Op {
	case In:
		return ok && slices.Contains(r.Values, v)
	case NotIn:
		return !ok || !slices.Contains(r.Values, v)
	case Exists:
		return ok
	case NotExists:
		return !ok
	case GT, LT:
		if !ok || len(r.Values) != 1 {
			return false
		}
		have, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return false
		}
		want, err := strconv.ParseInt(r.Values[0], 10, 64)
		if err != nil {
			return false
		}
		if r.Op == GT {
			return have > want
		}
		return have < want
	}
	return false
}

// Selector selects labels: every MatchLabels pair must be present with that
// exact value and every Requirement must hold. The zero value is the empty
// selector, which matches everything.
type Selector struct {
	MatchLabels  map[string]string
	Requirements []Requirement
}

// Matches reports whether labels satisfy the selector. A nil labels map is
// the same as an empty one. Matches does not validate the selector: a
// requirement with an unknown operator, or a GT or LT without exactly one
// integer value, matches nothing; other invalid requirements are evaluated
// as written.
func (s Selector) Matches(labels map[string]string) bool {
	for k, want := range s.MatchLabels {
		if have, ok := labels[k]; !ok || have != want {
			return false
		}
	}
	for _, r := range s.Requirements {
		if !r.matches(labels) {
			return false
		}
	}
	return true
}

// Empty reports whether the selector has no match labels and no
// requirements, and so matches everything.
func (s Selector) Empty() bool {
	return len(s.MatchLabels) == 0 && len(s.Requirements) == 0
}

// And returns a selector that matches exactly the labels both a and b match.
// Match labels are merged; when a and b require different values for the
// same key, a's pair is kept in MatchLabels and b's value becomes an In
// requirement, so the result faithfully matches nothing. Requirements are a's
// followed by b's. The result shares no maps or slices with a or b.
func And(a, b Selector) Selector {
	var out Selector
	if n := len(a.MatchLabels) + len(b.MatchLabels); n > 0 {
		out.MatchLabels = make(map[string]string, n)
		maps.Copy(out.MatchLabels, a.MatchLabels)
	}
	var conflicts []Requirement
	for _, k := range slices.Sorted(maps.Keys(b.MatchLabels)) {
		v := b.MatchLabels[k]
		if have, ok := out.MatchLabels[k]; ok && have != v {
			conflicts = append(conflicts, Requirement{Key: k, Op: In, Values: []string{v}})
			continue
		}
		out.MatchLabels[k] = v
	}
	if n := len(a.Requirements) + len(b.Requirements) + len(conflicts); n > 0 {
		out.Requirements = make([]Requirement, 0, n)
		for _, r := range a.Requirements {
			out.Requirements = append(out.Requirements, r.clone())
		}
		for _, r := range b.Requirements {
			out.Requirements = append(out.Requirements, r.clone())
		}
		out.Requirements = append(out.Requirements, conflicts...)
	}
	return out
}

// clone returns r with its own copy of Values (nil when empty).
func (r Requirement) clone() Requirement {
	r.Values = cloneValues(r.Values)
	return r
}

// cloneValues returns a copy of v, or nil when v is empty.
func cloneValues(v []string) []string {
	if len(v) == 0 {
		return nil
	}
	return slices.Clone(v)
}
