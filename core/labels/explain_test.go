package labels

import (
	"slices"
	"testing"
)

func TestExplain(t *testing.T) {
	tests := []struct {
		selector string
		labels   map[string]string
		want     []string
	}{
		{"env in (prod)", map[string]string{"env": "dev"}, []string{"env in (prod): agent has env=dev"}},
		{"env in (prod,staging)", nil, []string{"env in (prod,staging): label missing"}},
		{"gpu", map[string]string{"env": "dev"}, []string{"gpu (exists): label missing"}},
		{"!spot", map[string]string{"spot": "yes"}, []string{"spot (not exists): agent has spot=yes"}},
		{"cores>8", map[string]string{"cores": "4"}, []string{"cores>8: agent has cores=4"}},
		{"cores>8", map[string]string{"cores": "many"}, []string{"cores>8: agent has cores=many, not an integer"}},
		{"mem<1024", map[string]string{}, []string{"mem<1024: label missing"}},
		{"tier!=free", map[string]string{"tier": "free"}, []string{"tier!=free: agent has tier=free"}},
		{"zone notin (a,b)", map[string]string{"zone": "b"}, []string{"zone notin (a,b): agent has zone=b"}},
		{"region=us-west", map[string]string{"region": "eu"}, []string{"region=us-west: agent has region=eu"}},
		{"region=us-west", nil, []string{"region=us-west: label missing"}},
		{"os=linux,env in (prod),gpu,cores>8", map[string]string{"os": "darwin", "env": "prod", "cores": "16"},
			[]string{"os=linux: agent has os=darwin", "gpu (exists): label missing"}},
		{"env in (prod),gpu", map[string]string{"env": "prod", "gpu": ""}, nil},
		{"", map[string]string{"a": "b"}, nil},
	}
	for _, tt := range tests {
		sel, err := Parse(tt.selector)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.selector, err)
		}
		var got []string
		for _, f := range sel.Explain(tt.labels) {
			got = append(got, f.String())
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%q over %v:\n got %q\nwant %q", tt.selector, tt.labels, got, tt.want)
		}
		if matches := sel.Matches(tt.labels); matches != (len(got) == 0) {
			t.Errorf("%q over %v: Matches = %v but Explain gives %d failures", tt.selector, tt.labels, matches, len(got))
		}
	}
}

func TestExplainBadGT(t *testing.T) {
	sel := Selector{Requirements: []Requirement{{Key: "cores", Op: GT, Values: []string{"x"}}}}
	f := sel.Explain(map[string]string{"cores": "4"})
	if len(f) != 1 || f[0].String() != `cores>x: the term's value "x" is not an integer` {
		t.Errorf("got %v", f)
	}
}
