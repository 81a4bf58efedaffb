package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayering holds the dependency directions docs/architecture.md states:
// core imports neither server, agent, host nor cmd; server and agent never
// import each other; pdk and plugins import neither host nor server.
func TestLayering(t *testing.T) {
	const mod = "github.com/go-arcade/arcade/"
	rules := map[string][]string{
		"./core/...":    {"server", "agent", "host", "cmd"},
		"./server/...":  {"agent", "cmd"},
		"./agent/...":   {"server", "cmd"},
		"./pdk":         {"host", "server", "agent", "cmd"},
		"./plugins/...": {"host", "server", "agent", "cmd"},
	}
	for pattern, banned := range rules {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "../../"+strings.TrimPrefix(pattern, "./")).Output()
		if err != nil {
			t.Skipf("go list: %v", err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, b := range banned {
				if dep == mod+b || strings.HasPrefix(dep, mod+b+"/") {
					t.Errorf("%s depends on %s", pattern, dep)
				}
			}
		}
	}
}
