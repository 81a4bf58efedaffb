package labels

import (
	"reflect"
	"testing"
)

// normalize returns s with empty maps and slices replaced by nil, so that
// selectors can be compared with reflect.DeepEqual.
func normalize(s Selector) Selector {
	var out Selector
	if len(s.MatchLabels) > 0 {
		out.MatchLabels = s.MatchLabels
	}
	for _, r := range s.Requirements {
		out.Requirements = append(out.Requirements, r.clone())
	}
	return out
}

// equal reports whether a and b are the same selector, treating nil and
// empty maps and slices alike.
func equal(a, b Selector) bool {
	return reflect.DeepEqual(normalize(a), normalize(b))
}

func req(key string, op Operator, values ...string) Requirement {
	return Requirement{Key: key, Op: op, Values: values}
}

func TestMatches(t *testing.T) {
	agent := map[string]string{
		"env":       "staging",
		"gpu":       "",
		"cpu-cores": "16",
		"mem":       "512",
		"temp":      "-5",
		"version":   "v2",
		"team/name": "infra",
	}
	tests := []struct {
		name   string
		sel    Selector
		labels map[string]string
		want   bool
	}{
		{"empty selector, labels", Selector{}, agent, true},
		{"empty selector, nil labels", Selector{}, nil, true},
		{"empty non-nil selector", Selector{MatchLabels: map[string]string{}, Requirements: []Requirement{}}, nil, true},

		{"match label equal", Selector{MatchLabels: map[string]string{"env": "staging"}}, agent, true},
		{"match label prefixed key", Selector{MatchLabels: map[string]string{"team/name": "infra"}}, agent, true},
		{"match label other value", Selector{MatchLabels: map[string]string{"env": "production"}}, agent, false},
		{"match label missing key", Selector{MatchLabels: map[string]string{"region": "eu"}}, agent, false},
		{"match label empty value present", Selector{MatchLabels: map[string]string{"gpu": ""}}, agent, true},
		{"match label empty value missing", Selector{MatchLabels: map[string]string{"spot": ""}}, agent, false},
		{"match labels all must hold", Selector{MatchLabels: map[string]string{"env": "staging", "gpu": "x"}}, agent, false},

		{"in match", Selector{Requirements: []Requirement{req("env", In, "production", "staging")}}, agent, true},
		{"in no match", Selector{Requirements: []Requirement{req("env", In, "production")}}, agent, false},
		{"in missing key", Selector{Requirements: []Requirement{req("region", In, "eu")}}, agent, false},
		{"in empty value", Selector{Requirements: []Requirement{req("gpu", In, "")}}, agent, true},

		{"notin value in set", Selector{Requirements: []Requirement{req("env", NotIn, "staging")}}, agent, false},
		{"notin value not in set", Selector{Requirements: []Requirement{req("env", NotIn, "production", "dev")}}, agent, true},
		{"notin missing key", Selector{Requirements: []Requirement{req("region", NotIn, "eu")}}, agent, true},
		{"notin nil labels", Selector{Requirements: []Requirement{req("region", NotIn, "eu")}}, nil, true},

		{"exists", Selector{Requirements: []Requirement{req("gpu", Exists)}}, agent, true},
		{"exists missing", Selector{Requirements: []Requirement{req("spot", Exists)}}, agent, false},
		{"notexists present", Selector{Requirements: []Requirement{req("gpu", NotExists)}}, agent, false},
		{"notexists missing", Selector{Requirements: []Requirement{req("spot", NotExists)}}, agent, true},
		{"notexists nil labels", Selector{Requirements: []Requirement{req("spot", NotExists)}}, nil, true},

		{"gt greater", Selector{Requirements: []Requirement{req("cpu-cores", GT, "8")}}, agent, true},
		{"gt equal", Selector{Requirements: []Requirement{req("cpu-cores", GT, "16")}}, agent, false},
		{"gt less", Selector{Requirements: []Requirement{req("cpu-cores", GT, "32")}}, agent, false},
		{"gt missing key", Selector{Requirements: []Requirement{req("disk", GT, "0")}}, agent, false},
		{"gt non-integer label", Selector{Requirements: []Requirement{req("version", GT, "1")}}, agent, false},
		{"gt empty label", Selector{Requirements: []Requirement{req("gpu", GT, "-1")}}, agent, false},
		{"gt negative bound", Selector{Requirements: []Requirement{req("cpu-cores", GT, "-3")}}, agent, true},
		{"gt negative label", Selector{Requirements: []Requirement{req("temp", GT, "-10")}}, agent, true},
		{"gt negative label fails", Selector{Requirements: []Requirement{req("temp", GT, "0")}}, agent, false},
		{"gt float label", Selector{Requirements: []Requirement{req("x", GT, "1")}}, map[string]string{"x": "2.5"}, false},
		{"gt hex label", Selector{Requirements: []Requirement{req("x", GT, "1")}}, map[string]string{"x": "0x10"}, false},
		{"gt overflowing label", Selector{Requirements: []Requirement{req("x", GT, "1")}}, map[string]string{"x": "99999999999999999999"}, false},
		{"gt leading zero label", Selector{Requirements: []Requirement{req("x", GT, "7")}}, map[string]string{"x": "08"}, true},
		{"gt non-integer bound", Selector{Requirements: []Requirement{req("cpu-cores", GT, "x")}}, agent, false},
		{"gt no bound", Selector{Requirements: []Requirement{req("cpu-cores", GT)}}, agent, false},
		{"gt two bounds", Selector{Requirements: []Requirement{req("cpu-cores", GT, "1", "2")}}, agent, false},

		{"lt less", Selector{Requirements: []Requirement{req("mem", LT, "1024")}}, agent, true},
		{"lt equal", Selector{Requirements: []Requirement{req("mem", LT, "512")}}, agent, false},
		{"lt greater", Selector{Requirements: []Requirement{req("mem", LT, "256")}}, agent, false},
		{"lt missing key", Selector{Requirements: []Requirement{req("disk", LT, "100")}}, agent, false},
		{"lt non-integer label", Selector{Requirements: []Requirement{req("env", LT, "100")}}, agent, false},
		{"lt negative", Selector{Requirements: []Requirement{req("temp", LT, "-4")}}, agent, true},
		{"lt negative equal", Selector{Requirements: []Requirement{req("temp", LT, "-5")}}, agent, false},
		{"lt min int64", Selector{Requirements: []Requirement{req("x", LT, "-9223372036854775807")}}, map[string]string{"x": "-9223372036854775808"}, true},

		{"unknown operator", Selector{Requirements: []Requirement{req("env", Operator(0), "staging")}}, agent, false},
		{"out of range operator", Selector{Requirements: []Requirement{req("env", Operator(42))}}, agent, false},

		{"all hold", Selector{
			MatchLabels: map[string]string{"env": "staging"},
			Requirements: []Requirement{
				req("gpu", Exists), req("spot", NotExists), req("cpu-cores", GT, "8"),
				req("mem", LT, "1024"), req("region", NotIn, "eu"),
			},
		}, agent, true},
		{"one fails", Selector{
			MatchLabels: map[string]string{"env": "staging"},
			Requirements: []Requirement{
				req("gpu", Exists), req("spot", NotExists), req("cpu-cores", GT, "8"),
				req("mem", LT, "100"),
			},
		}, agent, false},
		{"requirement without labels", Selector{Requirements: []Requirement{req("gpu", Exists)}}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.sel.Matches(tt.labels); got != tt.want {
				t.Errorf("%v.Matches(%v) = %v, want %v", tt.sel, tt.labels, got, tt.want)
			}
		})
	}
}

func TestEmpty(t *testing.T) {
	tests := []struct {
		sel  Selector
		want bool
	}{
		{Selector{}, true},
		{Selector{MatchLabels: map[string]string{}, Requirements: []Requirement{}}, true},
		{Selector{MatchLabels: map[string]string{"a": "b"}}, false},
		{Selector{Requirements: []Requirement{req("a", Exists)}}, false},
	}
	for _, tt := range tests {
		if got := tt.sel.Empty(); got != tt.want {
			t.Errorf("%#v.Empty() = %v, want %v", tt.sel, got, tt.want)
		}
	}
}

func TestOperatorString(t *testing.T) {
	tests := []struct {
		op   Operator
		want string
	}{
		{0, "Unspecified"},
		{In, "In"},
		{NotIn, "NotIn"},
		{Exists, "Exists"},
		{NotExists, "NotExists"},
		{GT, "GT"},
		{LT, "LT"},
		{Operator(9), "Operator(9)"},
		{Operator(-1), "Operator(-1)"},
	}
	for _, tt := range tests {
		if got := tt.op.String(); got != tt.want {
			t.Errorf("Operator(%d).String() = %q, want %q", int(tt.op), got, tt.want)
		}
	}
}

func TestAnd(t *testing.T) {
	tests := []struct {
		name string
		a, b Selector
		want Selector
	}{
		{"both empty", Selector{}, Selector{}, Selector{}},
		{"left empty", Selector{}, Selector{MatchLabels: map[string]string{"a": "1"}}, Selector{MatchLabels: map[string]string{"a": "1"}}},
		{"right empty", Selector{Requirements: []Requirement{req("a", Exists)}}, Selector{}, Selector{Requirements: []Requirement{req("a", Exists)}}},
		{
			"merge",
			Selector{MatchLabels: map[string]string{"a": "1", "b": "2"}, Requirements: []Requirement{req("x", Exists)}},
			Selector{MatchLabels: map[string]string{"b": "2", "c": "3"}, Requirements: []Requirement{req("y", In, "p", "q")}},
			Selector{
				MatchLabels:  map[string]string{"a": "1", "b": "2", "c": "3"},
				Requirements: []Requirement{req("x", Exists), req("y", In, "p", "q")},
			},
		},
		{
			"conflict",
			Selector{MatchLabels: map[string]string{"env": "staging", "z": "1"}},
			Selector{MatchLabels: map[string]string{"env": "production", "a": "2", "z": "9"}, Requirements: []Requirement{req("gpu", Exists)}},
			Selector{
				MatchLabels:  map[string]string{"env": "staging", "z": "1", "a": "2"},
				Requirements: []Requirement{req("gpu", Exists), req("env", In, "production"), req("z", In, "9")},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := And(tt.a, tt.b)
			if !equal(got, tt.want) {
				t.Errorf("And(%v, %v) = %#v, want %#v", tt.a, tt.b, got, tt.want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("And(...).Validate() = %v", err)
			}
		})
	}
}

// TestAndSemantics checks that And matches exactly what both sides match.
func TestAndSemantics(t *testing.T) {
	sels := []Selector{
		{},
		{MatchLabels: map[string]string{"env": "staging"}},
		{MatchLabels: map[string]string{"env": "production"}},
		{MatchLabels: map[string]string{"env": "staging", "gpu": "a100"}},
		{Requirements: []Requirement{req("gpu", Exists)}},
		{Requirements: []Requirement{req("env", NotIn, "staging")}},
		{Requirements: []Requirement{req("cpu", GT, "4"), req("spot", NotExists)}},
	}
	labelSets := []map[string]string{
		nil,
		{"env": "staging"},
		{"env": "production"},
		{"env": "staging", "gpu": "a100", "cpu": "8"},
		{"env": "production", "gpu": "t4", "cpu": "2", "spot": ""},
		{"gpu": "a100", "cpu": "16"},
	}
	for _, a := range sels {
		for _, b := range sels {
			and := And(a, b)
			for _, l := range labelSets {
				if got, want := and.Matches(l), a.Matches(l) && b.Matches(l); got != want {
					t.Errorf("And(%q, %q) = %q: Matches(%v) = %v, want %v", a, b, and, l, got, want)
				}
			}
		}
	}
	// A conflict matches nothing, even labels that satisfy either side.
	conflict := And(sels[1], sels[2])
	for _, l := range labelSets {
		if conflict.Matches(l) {
			t.Errorf("%q matches %v, want nothing", conflict, l)
		}
	}
}

func TestAndDoesNotAlias(t *testing.T) {
	a := Selector{MatchLabels: map[string]string{"a": "1"}, Requirements: []Requirement{req("x", In, "p")}}
	b := Selector{MatchLabels: map[string]string{"b": "2"}, Requirements: []Requirement{req("y", In, "q")}}
	got := And(a, b)
	got.MatchLabels["a"] = "changed"
	got.Requirements[0].Values[0] = "changed"
	got.Requirements[1].Values[0] = "changed"
	if a.MatchLabels["a"] != "1" || a.Requirements[0].Values[0] != "p" || b.Requirements[0].Values[0] != "q" {
		t.Errorf("And's result shares memory with its inputs: a = %#v, b = %#v", a, b)
	}
}

func BenchmarkMatches(b *testing.B) {
	sel := Selector{
		MatchLabels: map[string]string{"region": "us-west"},
		Requirements: []Requirement{
			req("env", In, "staging", "production"),
			req("gpu", Exists),
			req("spot", NotExists),
			req("cpu-cores", GT, "8"),
		},
	}
	labels := map[string]string{
		"region":             "us-west",
		"env":                "production",
		"gpu":                "a100",
		"cpu-cores":          "32",
		"mem":                "65536",
		"kubernetes.io/arch": "amd64",
		"kubernetes.io/os":   "linux",
		"team/project":       "arcade",
		"zone":               "us-west-2a",
		"tier":               "paid",
	}
	if !sel.Matches(labels) {
		b.Fatal("selector does not match")
	}
	b.ReportAllocs()
	for b.Loop() {
		if !sel.Matches(labels) {
			b.Fatal("selector does not match")
		}
	}
}
