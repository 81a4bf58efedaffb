package lifecycle

import (
	"strings"
	"testing"

	"github.com/go-arcade/arcade/server/store"
)

// TestRunTrust: which runs may use trusted agents, and why.
func TestRunTrust(t *testing.T) {
	p := &store.Pipeline{Name: "deploy", TrustedAgents: true, TrustedBranches: []string{"main", "release/*"}}
	for _, tt := range []struct {
		p    *store.Pipeline
		o    RunOrigin
		want bool
		why  string
	}{
		{p, RunOrigin{}, true, "allowed"},
		{p, RunOrigin{Branch: "main"}, true, "branch main"},
		{p, RunOrigin{Branch: "release/1.2"}, true, "branch release/1.2"},
		{p, RunOrigin{Branch: "feature"}, false, "branch feature is not one"},
		{p, RunOrigin{Branch: "main", Untrusted: true, Why: "pull request #3 from a fork"}, false, "pull request #3 from a fork"},
		{&store.Pipeline{Name: "build"}, RunOrigin{}, false, "not allowed"},
	} {
		got, why := runTrust(tt.p, tt.o)
		if got != tt.want || !strings.Contains(why, tt.why) {
			t.Errorf("runTrust(%s, %+v) = %v %q", tt.p.Name, tt.o, got, why)
		}
	}
}
