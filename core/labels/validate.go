package labels

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Limits on label keys and values, as in Kubernetes.
const (
	maxPrefixLen = 253 // DNS subdomain
	maxNameLen   = 63
	maxValueLen  = 63
)

// FieldError is the error returned by validation and parsing. Field names
// the offending field by its path in the wire form (agentv1.LabelSelector),
// for example `match_labels["Bad Key"]`, `match_expressions[0].key`,
// `match_expressions[2].operator`, `match_expressions[1].values` or
// `match_expressions[1].values[0]`, so that a server can report it as a
// field violation; Parse uses the field "selector". Reason says what is
// wrong.
type FieldError struct {
	Field  string
	Reason string
}

// Error returns Field + ": " + Reason.
func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// ValidateKey checks that key is a valid label key: an optional prefix and
// '/' followed by a name. The prefix is a lowercase DNS subdomain of at most
// 253 characters; the name has 1 to 63 characters, alphanumerics (either
// case), '-', '_' and '.', starting and ending with an alphanumeric. The
// error is a *FieldError with Field "key".
func ValidateKey(key string) error {
	if reason := keyProblem(key); reason != "" {
		return &FieldError{Field: "key", Reason: reason}
	}
	return nil
}

// ValidateValue checks that v is a valid label value: empty, or 1 to 63
// characters following the rules for a key's name. The error is a
// *FieldError with Field "value".
func ValidateValue(v string) error {
	if reason := valueProblem(v); reason != "" {
		return &FieldError{Field: "value", Reason: reason}
	}
	return nil
}

// ValidateLabels checks the keys and values of an agent's or a job's own
// labels, in key order, and returns the first problem as a *FieldError with
// Field `labels["key"]`. Having more than MaxRecommendedLabels labels is not
// an error.
func ValidateLabels(m map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if reason := pairProblem(k, m[k]); reason != "" {
			return &FieldError{Field: fmt.Sprintf("labels[%q]", k), Reason: reason}
		}
	}
	return nil
}

// Validate checks the selector: every match label's key and value, then
// every requirement's key, operator and values, in that order. It returns
// the first problem as a *FieldError naming the field in the wire form. The
// empty selector is valid. The single value of GT and LT must be a base-10
// int64 (negative numbers included) and is not held to the label value
// rules.
func (s Selector) Validate() error {
	for _, k := range slices.Sorted(maps.Keys(s.MatchLabels)) {
		if reason := pairProblem(k, s.MatchLabels[k]); reason != "" {
			return &FieldError{Field: fmt.Sprintf("match_labels[%q]", k), Reason: reason}
		}
	}
	for i, r := range s.Requirements {
		if field, reason := requirementProblem(r); reason != "" {
			return &FieldError{Field: fmt.Sprintf("match_expressions[%d].%s", i, field), Reason: reason}
		}
	}
	return nil
}

// pairProblem describes what is wrong with a key=value label, or returns "".
func pairProblem(k, v string) string {
	if reason := keyProblem(k); reason != "" {
		return reason
	}
	return valueProblem(v)
}

// requirementProblem describes what is wrong with r, or returns "" for the
// reason. field is the offending field relative to the requirement: "key",
// "operator", "values" or "values[i]".
func requirementProblem(r Requirement) (field, reason string) {
	if reason := keyProblem(r.Key); reason != "" {
		return "key", reason
	}
	switch {
	case r.Op == 0:
		return "operator", "operator must be specified"
	case !r.Op.valid():
		return "operator", fmt.Sprintf("unknown operator %d", int(r.Op))
	}
	switch r.Op {
	case In, NotIn:
		if len(r.Values) == 0 {
			return "values", fmt.Sprintf("%v needs at least one value", r.Op)
		}
		for i, v := range r.Values {
			if reason := valueProblem(v); reason != "" {
				return fmt.Sprintf("values[%d]", i), reason
			}
		}
	case Exists, NotExists:
		if len(r.Values) != 0 {
			return "values", fmt.Sprintf("%v takes no values, got %d", r.Op, len(r.Values))
		}
	case GT, LT:
		if len(r.Values) != 1 {
			return "values", fmt.Sprintf("%v needs exactly one value, got %d", r.Op, len(r.Values))
		}
		if reason := integerProblem(r.Op, r.Values[0]); reason != "" {
			return "values[0]", reason
		}
	}
	return "", ""
}

// integerProblem describes why v is not a valid operand of GT or LT, or
// returns "". The operand is any base-10 int64, negative numbers included;
// it is not held to the label value character rules.
func integerProblem(op Operator, v string) string {
	_, err := strconv.ParseInt(v, 10, 64)
	switch {
	case err == nil:
		return ""
	case errors.Is(err, strconv.ErrRange):
		return fmt.Sprintf("%v needs an integer that fits in 64 bits, got %q", op, v)
	}
	return fmt.Sprintf("%v needs an integer, got %q", op, v)
}

// keyProblem describes what is wrong with a label key, or returns "".
func keyProblem(key string) string {
	if reason := keyDetail(key); reason != "" {
		return fmt.Sprintf("invalid key %q: %s", key, reason)
	}
	return ""
}

func keyDetail(key string) string {
	if key == "" {
		return "must not be empty"
	}
	name := key
	if prefix, rest, ok := strings.Cut(key, "/"); ok {
		if strings.Contains(rest, "/") {
			return `must be a name with an optional prefix and '/', as in "example.com/name"`
		}
		switch {
		case prefix == "":
			return "prefix must not be empty"
		case len(prefix) > maxPrefixLen:
			return fmt.Sprintf("prefix must be no more than %d characters", maxPrefixLen)
		case !isDNSSubdomain(prefix):
			return "prefix must be a lowercase DNS subdomain: dot-separated parts of 'a'-'z', '0'-'9' and '-', each starting and ending with a letter or digit"
		}
		name = rest
	}
	switch {
	case name == "":
		return "name must not be empty"
	case len(name) > maxNameLen:
		return fmt.Sprintf("name must be no more than %d characters", maxNameLen)
	case !isName(name):
		return "name must consist of alphanumerics, '-', '_' or '.', and start and end with an alphanumeric"
	}
	return ""
}

// valueProblem describes what is wrong with a label value, or returns "".
func valueProblem(v string) string {
	switch {
	case v == "":
		return ""
	case len(v) > maxValueLen:
		return fmt.Sprintf("invalid value %q: must be no more than %d characters", v, maxValueLen)
	case !isName(v):
		return fmt.Sprintf("invalid value %q: must be empty or consist of alphanumerics, '-', '_' or '.', and start and end with an alphanumeric", v)
	}
	return ""
}

// isName reports whether s is non-empty, consists of ASCII alphanumerics,
// '-', '_' and '.', and starts and ends with an alphanumeric.
func isName(s string) bool {
	if s == "" || !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

// isDNSSubdomain reports whether s is a lowercase RFC 1123 subdomain:
// dot-separated non-empty parts of 'a'-'z', '0'-'9' and '-', each starting
// and ending with a letter or digit. The length is checked by the caller.
func isDNSSubdomain(s string) bool {
	for part := range strings.SplitSeq(s, ".") {
		if part == "" || !isLowerAlnum(part[0]) || !isLowerAlnum(part[len(part)-1]) {
			return false
		}
		for i := 0; i < len(part); i++ {
			if c := part[i]; !isLowerAlnum(c) && c != '-' {
				return false
			}
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isLowerAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
}
