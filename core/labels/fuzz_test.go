package labels

import (
	"testing"
)

// fuzzLabelSets are the label sets on which a parsed selector and its
// reparsed String must agree.
var fuzzLabelSets = []map[string]string{
	nil,
	{"env": "staging", "gpu": "", "cpu-cores": "16", "mem": "512", "region": "us-west"},
	{"env": "production", "spot": "true", "cpu-cores": "4", "mem": "2048", "tier": "free", "zone": "a"},
	{"k": "", "a": "1", "in": "notin", "temp": "-5", "n": "x", "kubernetes.io/arch": "amd64"},
}

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"",
		fullExample,
		"env in (staging,production)",
		"gpu",
		"!spot",
		"cpu-cores>8",
		"mem<1024",
		"region=us-west",
		"region==us-west",
		"tier!=free",
		"zone notin (a,b)",
		"k=,k2!=",
		"temp>-5,temp<+5",
		"kubernetes.io/arch=amd64,team/project",
		" env IN ( a , b ) , ! x ",
		"a=1,a=2",
		"k in ()",
		"k in (a,b",
		"gpu,",
		"cpu>x",
		"Bad Key",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		sel, err := Parse(text)
		if err != nil {
			if !sel.Empty() {
				t.Fatalf("Parse(%q) returned %#v with error %v", text, sel, err)
			}
			if _, ok := err.(*FieldError); !ok {
				t.Fatalf("Parse(%q) error %v is a %T, want *FieldError", text, err, err)
			}
			return
		}
		if err := sel.Validate(); err != nil {
			t.Fatalf("Parse(%q) = %#v, which does not validate: %v", text, sel, err)
		}
		str := sel.String()
		back, err := Parse(str)
		if err != nil {
			t.Fatalf("Parse(%q) = %#v; Parse of its String %q failed: %v", text, sel, str, err)
		}
		if !equal(sel, back) {
			t.Fatalf("Parse(%q) = %#v; Parse(%q) = %#v", text, sel, str, back)
		}
		if again := back.String(); again != str {
			t.Fatalf("String not stable: %q, then %q", str, again)
		}
		pbBack, err := FromProto(sel.Proto())
		if err != nil {
			t.Fatalf("FromProto(Proto()) of %q failed: %v", str, err)
		}
		if !equal(sel, pbBack) {
			t.Fatalf("FromProto(Proto()) = %#v, want %#v", pbBack, sel)
		}
		for _, l := range fuzzLabelSets {
			if a, b := sel.Matches(l), back.Matches(l); a != b {
				t.Fatalf("Matches(%v): %v for Parse(%q), %v for Parse(%q)", l, a, text, b, str)
			}
		}
	})
}
