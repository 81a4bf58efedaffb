package pipeline

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyDirection holds the layering: pipeline logic imports no
// server, agent, host or command package.
func TestDependencyDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"server", "agent", "host", "cmd"} {
			if p := "github.com/go-arcade/arcade/" + banned; dep == p || strings.HasPrefix(dep, p+"/") {
				t.Errorf("core/pipeline depends on %s", dep)
			}
		}
	}
}
