package labels

import (
	"errors"
	"strings"
	"testing"
)

// checkFieldError fails unless err is a *FieldError with the given field and
// a reason containing reason; field "" and reason "" mean no error.
func checkFieldError(t *testing.T, what string, err error, field, reason string) {
	t.Helper()
	if field == "" && reason == "" {
		if err != nil {
			t.Errorf("%s = %v, want nil", what, err)
		}
		return
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Errorf("%s = %v (%T), want a *FieldError", what, err, err)
		return
	}
	if fe.Field != field || !strings.Contains(fe.Reason, reason) {
		t.Errorf("%s = Field %q, Reason %q; want Field %q, Reason containing %q", what, fe.Field, fe.Reason, field, reason)
	}
	if got, want := fe.Error(), fe.Field+": "+fe.Reason; got != want {
		t.Errorf("%s.Error() = %q, want %q", what, got, want)
	}
}

func TestValidateKey(t *testing.T) {
	tests := []struct {
		key    string
		reason string // "" means valid
	}{
		{"a", ""},
		{"cpu-cores", ""},
		{"team/project", ""},
		{"kubernetes.io/arch", ""},
		{"app.kubernetes.io/name", ""},
		{"Upper_Case.name-1", ""},
		{"my-org.example.com/Build_Pool", ""},
		{"0", ""},
		{"a.b", ""},
		{strings.Repeat("n", 63), ""},
		{strings.Repeat("p", 63) + "." + strings.Repeat("q", 63) + "/x", ""},
		{strings.Repeat("a.", 126) + "a/name", ""}, // 253-character prefix

		{"", "must not be empty"},
		{"Bad Key", "name must consist of"},
		{"-x", "name must consist of"},
		{"x-", "name must consist of"},
		{"_x", "name must consist of"},
		{".x", "name must consist of"},
		{"x.", "name must consist of"},
		{"a=b", "name must consist of"},
		{"é", "name must consist of"},
		{"a/b/c", "optional prefix and '/'"},
		{"/name", "prefix must not be empty"},
		{"prefix/", "name must not be empty"},
		{strings.Repeat("n", 64), "name must be no more than 63 characters"},
		{"Example.com/name", "prefix must be a lowercase DNS subdomain"},
		{"a_b.com/name", "prefix must be a lowercase DNS subdomain"},
		{"-a.com/name", "prefix must be a lowercase DNS subdomain"},
		{"a-.com/name", "prefix must be a lowercase DNS subdomain"},
		{"a..com/name", "prefix must be a lowercase DNS subdomain"},
		{".com/name", "prefix must be a lowercase DNS subdomain"},
		{strings.Repeat("a.", 127) + "a/name", "prefix must be no more than 253 characters"},
	}
	for _, tt := range tests {
		field := ""
		if tt.reason != "" {
			field = "key"
		}
		checkFieldError(t, "ValidateKey("+quote(tt.key)+")", ValidateKey(tt.key), field, tt.reason)
	}
}

func TestValidateValue(t *testing.T) {
	tests := []struct {
		value  string
		reason string
	}{
		{"", ""},
		{"staging", ""},
		{"us-west-2a", ""},
		{"V1.2_rc.3", ""},
		{"8", ""},
		{strings.Repeat("v", 63), ""},

		{strings.Repeat("v", 64), "must be no more than 63 characters"},
		{"a b", "must be empty or consist of"},
		{"-5", "must be empty or consist of"},
		{"a/b", "must be empty or consist of"},
		{"x-", "must be empty or consist of"},
		{" ", "must be empty or consist of"},
		{"a,b", "must be empty or consist of"},
	}
	for _, tt := range tests {
		field := ""
		if tt.reason != "" {
			field = "value"
		}
		checkFieldError(t, "ValidateValue("+quote(tt.value)+")", ValidateValue(tt.value), field, tt.reason)
	}
}

func TestValidateLabels(t *testing.T) {
	many := map[string]string{}
	for i := range MaxRecommendedLabels + 5 {
		many["label-"+strings.Repeat("x", i+1)] = "v"
	}
	tests := []struct {
		name   string
		labels map[string]string
		field  string
		reason string
	}{
		{"nil", nil, "", ""},
		{"good", map[string]string{"env": "staging", "gpu": "", "kubernetes.io/arch": "amd64"}, "", ""},
		{"more than recommended is fine", many, "", ""},
		{"bad key", map[string]string{"env": "staging", "Bad Key": "x"}, `labels["Bad Key"]`, `invalid key "Bad Key"`},
		{"bad value", map[string]string{"env": "stag ing"}, `labels["env"]`, `invalid value "stag ing"`},
		{"first in key order", map[string]string{"b": "-", "a": "-"}, `labels["a"]`, "invalid value"},
		{"empty key", map[string]string{"": "x"}, `labels[""]`, "must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkFieldError(t, "ValidateLabels", ValidateLabels(tt.labels), tt.field, tt.reason)
		})
	}
}

func TestSelectorValidate(t *testing.T) {
	tests := []struct {
		name   string
		sel    Selector
		field  string
		reason string
	}{
		{"empty", Selector{}, "", ""},
		{"every operator", Selector{
			MatchLabels: map[string]string{"region": "us-west", "gpu": ""},
			Requirements: []Requirement{
				req("env", In, "staging", "production"),
				req("tier", NotIn, "free"),
				req("kubernetes.io/arch", Exists),
				req("spot", NotExists),
				req("cpu-cores", GT, "8"),
				req("temp", LT, "-5"),
				req("x", GT, "+3"),
				req("y", In, ""),
			},
		}, "", ""},

		{"match label bad key", Selector{MatchLabels: map[string]string{"ok": "1", "Bad Key": "1"}},
			`match_labels["Bad Key"]`, `invalid key "Bad Key"`},
		{"match label bad value", Selector{MatchLabels: map[string]string{"env": "a b"}},
			`match_labels["env"]`, `invalid value "a b"`},
		{"match labels before requirements", Selector{
			MatchLabels:  map[string]string{"env": "a b"},
			Requirements: []Requirement{req("-x", Exists)},
		}, `match_labels["env"]`, "invalid value"},

		{"requirement bad key", Selector{Requirements: []Requirement{req("a/b/c", Exists)}},
			"match_expressions[0].key", `invalid key "a/b/c"`},
		{"requirement empty key", Selector{Requirements: []Requirement{req("gpu", Exists), req("", Exists)}},
			"match_expressions[1].key", "must not be empty"},
		{"unspecified operator", Selector{Requirements: []Requirement{req("a", Exists), req("b", Exists), req("c", 0, "x")}},
			"match_expressions[2].operator", "operator must be specified"},
		{"unknown operator", Selector{Requirements: []Requirement{req("c", Operator(7))}},
			"match_expressions[0].operator", "unknown operator 7"},
		{"key before operator", Selector{Requirements: []Requirement{req("-c", 0)}},
			"match_expressions[0].key", "invalid key"},

		{"in without values", Selector{Requirements: []Requirement{req("a", Exists), req("env", In)}},
			"match_expressions[1].values", "In needs at least one value"},
		{"notin without values", Selector{Requirements: []Requirement{req("env", NotIn)}},
			"match_expressions[0].values", "NotIn needs at least one value"},
		{"in bad value", Selector{Requirements: []Requirement{req("env", In, "ok", "not ok")}},
			"match_expressions[0].values[1]", `invalid value "not ok"`},
		{"notin bad value", Selector{Requirements: []Requirement{req("env", NotIn, strings.Repeat("x", 64))}},
			"match_expressions[0].values[0]", "no more than 63 characters"},
		{"exists with values", Selector{Requirements: []Requirement{req("gpu", Exists, "a100")}},
			"match_expressions[0].values", "Exists takes no values, got 1"},
		{"notexists with values", Selector{Requirements: []Requirement{req("gpu", NotExists, "a", "b")}},
			"match_expressions[0].values", "NotExists takes no values, got 2"},
		{"gt without value", Selector{Requirements: []Requirement{req("cpu", GT)}},
			"match_expressions[0].values", "GT needs exactly one value, got 0"},
		{"lt with two values", Selector{Requirements: []Requirement{req("cpu", LT, "1", "2")}},
			"match_expressions[0].values", "LT needs exactly one value, got 2"},
		{"gt non-integer", Selector{Requirements: []Requirement{req("cpu", GT, "x")}},
			"match_expressions[0].values[0]", `GT needs an integer, got "x"`},
		{"lt float", Selector{Requirements: []Requirement{req("cpu", LT, "1.5")}},
			"match_expressions[0].values[0]", `LT needs an integer, got "1.5"`},
		{"lt empty", Selector{Requirements: []Requirement{req("cpu", LT, "")}},
			"match_expressions[0].values[0]", `LT needs an integer, got ""`},
		{"gt overflow", Selector{Requirements: []Requirement{req("cpu", GT, "9223372036854775808")}},
			"match_expressions[0].values[0]", "fits in 64 bits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkFieldError(t, "Validate", tt.sel.Validate(), tt.field, tt.reason)
		})
	}
}

func quote(s string) string {
	if len(s) > 20 {
		s = s[:20] + "..."
	}
	return `"` + s + `"`
}
