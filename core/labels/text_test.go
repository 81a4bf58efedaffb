package labels

import (
	"strings"
	"testing"
)

const fullExample = `env in (staging,production),gpu,!spot,cpu-cores>8,mem<1024,region=us-west,tier!=free,zone notin (a,b)`

func TestParse(t *testing.T) {
	tests := []struct {
		text string
		want Selector
		str  string // want.String()
	}{
		{"", Selector{}, ""},
		{"   \t\n", Selector{}, ""},
		{
			fullExample,
			Selector{
				MatchLabels: map[string]string{"region": "us-west"},
				Requirements: []Requirement{
					req("env", In, "staging", "production"),
					req("gpu", Exists),
					req("spot", NotExists),
					req("cpu-cores", GT, "8"),
					req("mem", LT, "1024"),
					req("tier", NotIn, "free"),
					req("zone", NotIn, "a", "b"),
				},
			},
			`region=us-west,env in (staging,production),gpu,!spot,cpu-cores>8,mem<1024,tier!=free,zone notin (a,b)`,
		},
		{"env in (staging,production)", Selector{Requirements: []Requirement{req("env", In, "staging", "production")}}, "env in (staging,production)"},
		{"gpu", Selector{Requirements: []Requirement{req("gpu", Exists)}}, "gpu"},
		{"!spot", Selector{Requirements: []Requirement{req("spot", NotExists)}}, "!spot"},
		{"cpu-cores>8", Selector{Requirements: []Requirement{req("cpu-cores", GT, "8")}}, "cpu-cores>8"},
		{"mem<1024", Selector{Requirements: []Requirement{req("mem", LT, "1024")}}, "mem<1024"},
		{"region=us-west", Selector{MatchLabels: map[string]string{"region": "us-west"}}, "region=us-west"},
		{"region==us-west", Selector{MatchLabels: map[string]string{"region": "us-west"}}, "region=us-west"},
		{"tier!=free", Selector{Requirements: []Requirement{req("tier", NotIn, "free")}}, "tier!=free"},
		{"zone notin (a,b)", Selector{Requirements: []Requirement{req("zone", NotIn, "a", "b")}}, "zone notin (a,b)"},
		{"zone notin (a)", Selector{Requirements: []Requirement{req("zone", NotIn, "a")}}, "zone!=a"},
		{"zone in (a)", Selector{Requirements: []Requirement{req("zone", In, "a")}}, "zone in (a)"},

		// Whitespace and case.
		{
			"  env  IN  ( staging , production ) ,  gpu , ! spot , cpu-cores > 8 , mem < 1024 , region = us-west , tier != free , zone NotIn(a ,b)  ",
			Selector{
				MatchLabels: map[string]string{"region": "us-west"},
				Requirements: []Requirement{
					req("env", In, "staging", "production"),
					req("gpu", Exists),
					req("spot", NotExists),
					req("cpu-cores", GT, "8"),
					req("mem", LT, "1024"),
					req("tier", NotIn, "free"),
					req("zone", NotIn, "a", "b"),
				},
			},
			`region=us-west,env in (staging,production),gpu,!spot,cpu-cores>8,mem<1024,tier!=free,zone notin (a,b)`,
		},
		{"env in(a)", Selector{Requirements: []Requirement{req("env", In, "a")}}, "env in (a)"},
		{"env\tin\n(a)", Selector{Requirements: []Requirement{req("env", In, "a")}}, "env in (a)"},
		{"env\u00a0in\u00a0(a)", Selector{Requirements: []Requirement{req("env", In, "a")}}, "env in (a)"},

		// Keys named like keywords, prefixed keys.
		{"in", Selector{Requirements: []Requirement{req("in", Exists)}}, "in"},
		{"notin in (in)", Selector{Requirements: []Requirement{req("notin", In, "in")}}, "notin in (in)"},
		{"!in", Selector{Requirements: []Requirement{req("in", NotExists)}}, "!in"},
		{"kubernetes.io/arch=amd64,team/project", Selector{
			MatchLabels:  map[string]string{"kubernetes.io/arch": "amd64"},
			Requirements: []Requirement{req("team/project", Exists)},
		}, "kubernetes.io/arch=amd64,team/project"},

		// Empty values, negative and signed numbers, sorting, duplicates.
		{"k=", Selector{MatchLabels: map[string]string{"k": ""}}, "k="},
		{"k==", Selector{MatchLabels: map[string]string{"k": ""}}, "k="},
		{"k!=", Selector{Requirements: []Requirement{req("k", NotIn, "")}}, "k!="},
		{"temp>-5", Selector{Requirements: []Requirement{req("temp", GT, "-5")}}, "temp>-5"},
		{"temp<+5", Selector{Requirements: []Requirement{req("temp", LT, "+5")}}, "temp<+5"},
		{"n>007", Selector{Requirements: []Requirement{req("n", GT, "007")}}, "n>007"},
		{"z=1,a=2,m=3", Selector{MatchLabels: map[string]string{"z": "1", "a": "2", "m": "3"}}, "a=2,m=3,z=1"},
		{"a=1,a==1", Selector{MatchLabels: map[string]string{"a": "1"}}, "a=1"},
		{"a=1,a in (2)", Selector{
			MatchLabels:  map[string]string{"a": "1"},
			Requirements: []Requirement{req("a", In, "2")},
		}, "a=1,a in (2)"},
		{"s in (b,a,b)", Selector{Requirements: []Requirement{req("s", In, "b", "a", "b")}}, "s in (b,a,b)"},
		{"gpu,gpu", Selector{Requirements: []Requirement{req("gpu", Exists), req("gpu", Exists)}}, "gpu,gpu"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			got, err := Parse(tt.text)
			if err != nil {
				t.Fatalf("Parse(%q) error: %v", tt.text, err)
			}
			if !equal(got, tt.want) {
				t.Fatalf("Parse(%q) = %#v, want %#v", tt.text, got, tt.want)
			}
			if s := got.String(); s != tt.str {
				t.Errorf("Parse(%q).String() = %q, want %q", tt.text, s, tt.str)
			}
			if s := tt.want.String(); s != tt.str {
				t.Errorf("%#v.String() = %q, want %q", tt.want, s, tt.str)
			}
			back, err := Parse(tt.str)
			if err != nil {
				t.Fatalf("Parse(%q) (String's output) error: %v", tt.str, err)
			}
			if !equal(back, tt.want) {
				t.Errorf("Parse(%q) = %#v, want %#v", tt.str, back, tt.want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Parse(%q).Validate() = %v", tt.text, err)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		text   string
		reason string // substring of FieldError.Reason; Field is always "selector"
	}{
		// Parentheses.
		{"env in (a,b", `term 1 "env in (a,b": unbalanced parentheses: "(" at offset 7 is not closed`},
		{"gpu,env in (a,b", `term 2 "env in (a,b": unbalanced parentheses`},
		{"env in a,b)", `term 2 "b)": unbalanced parentheses: ")" at offset 10 has no "("`},
		{"env in (a)),gpu", `term 1 "env in (a))": unbalanced parentheses`},
		{"env in ((a))", `term 1 "env in ((a))": nested "(" at offset 8`},
		{"env in (a)(b)", `unexpected "(b)" after the set`},
		{"env in (a) x", `unexpected "x" after the set`},
		{"k=(a)", `invalid value "(a)"`},

		// Sets.
		{"k in ()", `term 1 "k in ()": empty set: In needs at least one value`},
		{"k notin ( )", "empty set: NotIn needs at least one value"},
		{"k in (a,)", "empty value in the set (value 2)"},
		{"k in (,a)", "empty value in the set (value 1)"},
		{"k in (a,,b)", "empty value in the set (value 2)"},
		{"k in (a b)", `invalid value "a b"`},
		{"k in a", "In needs a parenthesized set"},
		{"k in", "In needs a parenthesized set"},
		{"k notin", "NotIn needs a parenthesized set"},
		{"k in (-a)", `invalid value "-a"`},

		// Numbers.
		{"cpu>x", `term 1 "cpu>x": GT needs an integer, got "x"`},
		{"gpu,env=a,cpu>x", `term 3 "cpu>x": GT needs an integer, got "x"`},
		{"mem<", `LT needs an integer, got ""`},
		{"mem<1.5", `LT needs an integer, got "1.5"`},
		{"mem>=5", `GT needs an integer, got "=5"`},
		{"mem<99999999999999999999", "fits in 64 bits"},
		{"mem>0x10", `GT needs an integer, got "0x10"`},

		// Keys.
		{"Bad Key", `unexpected "Key" after key "Bad"`},
		{"Bad Key=1", `unexpected "Key=1" after key "Bad"`},
		{"-x", `invalid key "-x"`},
		{"-x=1", `invalid key "-x"`},
		{"!-x", `invalid key "-x"`},
		{"a/b/c", `invalid key "a/b/c"`},
		{"a/b/c in (x)", `invalid key "a/b/c"`},
		{"Example.com/x>1", `invalid key "Example.com/x"`},
		{strings.Repeat("k", 64), "name must be no more than 63 characters"},
		{"=v", `invalid key "": must not be empty`},
		{"!=v", `invalid key "": must not be empty`},
		{"!", `invalid key "": must not be empty`},
		{"(a)", `expected a key, got "(a)"`},
		{"é", `expected a key, got "é"`},
		{"!k=v", `unexpected "=v" after "!k"`},
		{"! k in (a)", `unexpected "in (a)" after "!k"`},
		{"k!v", `unexpected "!v" after key "k"`},
		{"k:v", `unexpected ":v" after key "k"`},

		// Values.
		{"k=a b", `invalid value "a b"`},
		{"k==a=b", `invalid value "a=b"`},
		{"k===v", `invalid value "=v"`},
		{"k!=a b", `invalid value "a b"`},
		{"k=" + strings.Repeat("v", 64), "no more than 63 characters"},

		// Commas.
		{"gpu,", `term 2 "": empty term after trailing comma`},
		{",gpu", `term 1 "": empty term before leading comma`},
		{"gpu,,spot", `term 2 "": empty term between commas`},
		{",", "empty term"},

		// Conflicting match labels.
		{"region=us-west,gpu,region=eu", `term 3 "region=eu": key "region" is already "us-west" (term 1)`},
		{"a==1,a=", `term 2 "a=": key "a" is already "1" (term 1)`},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			got, err := Parse(tt.text)
			checkFieldError(t, "Parse("+quote(tt.text)+")", err, "selector", tt.reason)
			if !got.Empty() {
				t.Errorf("Parse(%q) returned %#v with its error, want the empty selector", tt.text, got)
			}
		})
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		sel  Selector
		want string
	}{
		{Selector{}, ""},
		{Selector{MatchLabels: map[string]string{}, Requirements: []Requirement{}}, ""},
		{Selector{
			MatchLabels:  map[string]string{"b": "2", "a": "1", "c": ""},
			Requirements: []Requirement{req("z", NotExists), req("y", Exists)},
		}, "a=1,b=2,c=,!z,y"},
		{Selector{Requirements: []Requirement{req("k", NotIn, "only")}}, "k!=only"},
		{Selector{Requirements: []Requirement{req("k", NotIn, "x", "y", "z")}}, "k notin (x,y,z)"},
		{Selector{Requirements: []Requirement{req("k", In, "y", "x")}}, "k in (y,x)"},
		// Not expressible in the text form; printed for messages only.
		{Selector{Requirements: []Requirement{req("k", In, "")}}, "k in ()"},
		{Selector{Requirements: []Requirement{req("k", Operator(0), "v")}}, "k Unspecified (v)"},
	}
	for _, tt := range tests {
		if got := tt.sel.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.sel, got, tt.want)
		}
	}
}

// TestStringDeterministic checks that String sorts match labels, whatever the
// map's iteration order.
func TestStringDeterministic(t *testing.T) {
	sel := Selector{MatchLabels: map[string]string{}}
	for _, k := range strings.Split("q w e r t y u i o p a s d f g h j k l z x c v b n m", " ") {
		sel.MatchLabels[k] = "v"
	}
	first := sel.String()
	for range 50 {
		if got := sel.String(); got != first {
			t.Fatalf("String() = %q, then %q", first, got)
		}
	}
	if !strings.HasPrefix(first, "a=v,b=v,c=v,") {
		t.Errorf("String() = %q, want match labels sorted by key", first)
	}
}
