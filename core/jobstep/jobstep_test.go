package jobstep

import (
	"slices"
	"testing"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
)

func TestParseUses(t *testing.T) {
	for in, want := range map[string][2]string{"go-lint": {"go-lint", ""}, "go-lint@1.2.0": {"go-lint", "1.2.0"}, " semver ": {"semver", ""}} {
		name, version, err := ParseUses(in)
		if err != nil || name != want[0] || version != want[1] {
			t.Errorf("ParseUses(%q) = %q %q %v", in, name, version, err)
		}
	}
	for _, bad := range []string{"", "@1", "a b", "x@", "a/b", "x@1@2"} {
		if _, _, err := ParseUses(bad); err == nil {
			t.Errorf("ParseUses(%q) accepted", bad)
		}
	}
}

func TestPluginsAndCapabilities(t *testing.T) {
	steps := []*agentv1.Step{{Uses: "b@1"}, {Commands: []string{"x"}}, {Uses: "a"}, {Uses: "b"}}
	need := Plugins(steps)
	if !slices.Equal(need, []string{"a", "b"}) {
		t.Fatalf("Plugins = %v", need)
	}
	cases := []struct {
		offered []string
		missing []string
	}{
		{nil, nil},
		{[]string{"*"}, nil},
		{[]string{"a", "b", "c"}, nil},
		{[]string{"a"}, []string{"b"}},
		{[]string{"-"}, []string{"a", "b"}},
	}
	for _, c := range cases {
		if got := Missing(c.offered, need); !slices.Equal(got, c.missing) {
			t.Errorf("Missing(%v) = %v, want %v", c.offered, got, c.missing)
		}
		if Covers(c.offered, need) != (len(c.missing) == 0) {
			t.Errorf("Covers(%v) disagrees with Missing", c.offered)
		}
	}
	if !Covers([]string{"-"}, nil) {
		t.Error("a job without plugin steps runs on an agent offering none")
	}
	if Name(steps[0], 0) != "b" || Name(steps[1], 1) != "step 2" || Name(&agentv1.Step{Name: "x", Uses: "a"}, 0) != "x" {
		t.Error("Name")
	}
	for kind, fn := range map[string]string{"ci": "build", "security": "scan", "cd": "deploy", "custom": "execute", "notify": ""} {
		if DefaultFunction(kind) != fn {
			t.Errorf("DefaultFunction(%s) = %q", kind, DefaultFunction(kind))
		}
	}
}

func FuzzParseUses(f *testing.F) {
	for _, s := range []string{"go-lint", "go-lint@1.0.0", "@", "a@b@c", " x "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, version, err := ParseUses(s)
		if err != nil {
			return
		}
		joined := name
		if version != "" {
			joined += "@" + version
		}
		n2, v2, err := ParseUses(joined)
		if err != nil || n2 != name || v2 != version {
			t.Fatalf("ParseUses(%q) = %q %q, but %q parses to %q %q %v", s, name, version, joined, n2, v2, err)
		}
	})
}
