package labels

import (
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Failure is one selector term that a set of labels fails, with the reason
// in words: Term "env in (prod)", Reason "agent has env=dev".
type Failure struct {
	// Term is the term as the text form writes it; Exists and NotExists
	// terms name their operator, e.g. "gpu (exists)".
	Term   string
	Reason string
}

// String returns "term: reason".
func (f Failure) String() string { return f.Term + ": " + f.Reason }

// Explain returns the terms of s that labels fail, match labels first
// (sorted by key) then the requirements in order; none when s matches.
// A nil labels map is the same as an empty one.
func (s Selector) Explain(labels map[string]string) []Failure {
	var out []Failure
	for _, k := range slices.Sorted(maps.Keys(s.MatchLabels)) {
		want := s.MatchLabels[k]
		have, ok := labels[k]
		switch {
		case !ok:
			out = append(out, Failure{Term: k + "=" + want, Reason: "label missing"})
		case have != want:
			out = append(out, Failure{Term: k + "=" + want, Reason: "agent has " + k + "=" + have})
		}
	}
	for _, r := range s.Requirements {
		if r.matches(labels) {
			continue
		}
		out = append(out, Failure{Term: r.term(), Reason: r.reason(labels)})
	}
	return out
}

// term writes a requirement for an explanation.
func (r Requirement) term() string {
	switch r.Op {
	case Exists:
		return r.Key + " (exists)"
	case NotExists:
		return r.Key + " (not exists)"
	}
	return Selector{Requirements: []Requirement{r}}.String()
}

// reason says why a failing requirement fails for labels.
func (r Requirement) reason(labels map[string]string) string {
	v, ok := labels[r.Key]
	has := "agent has " + r.Key + "=" + v
	switch r.Op {
	case In, Exists:
		if !ok {
			return "label missing"
		}
		return has
	case NotIn, NotExists:
		return has
	case GT, LT:
		if !ok {
			return "label missing"
		}
		if len(r.Values) != 1 {
			return "the term needs exactly one integer value"
		}
		if _, err := strconv.ParseInt(r.Values[0], 10, 64); err != nil {
			return "the term's value " + strconv.Quote(r.Values[0]) + " is not an integer"
		}
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			return has + ", not an integer"
		}
		return has
	}
	return "unknown operator " + r.Op.String() + " " + strings.Join(r.Values, ",")
}
