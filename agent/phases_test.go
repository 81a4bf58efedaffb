package agent

import (
	"slices"
	"testing"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
)

// TestJobPhases holds the one order of a job's phases, where each runs and
// that each fails with a reason of its own.
func TestJobPhases(t *testing.T) {
	var names []string
	reasons := map[agentv1.EndReason]string{}
	for _, ph := range jobPhases {
		names = append(names, ph.name)
		if prev, dup := reasons[ph.reason]; dup || ph.reason == agentv1.EndReason_END_REASON_UNSPECIFIED {
			t.Errorf("phase %s: reason %v (also %s)", ph.name, ph.reason, prev)
		}
		reasons[ph.reason] = ph.name
		if want := map[bool]Where{true: InExecutor, false: OnHost}[ph.name == "steps"]; ph.where != want {
			t.Errorf("phase %s runs %s, want %s", ph.name, ph.where, want)
		}
	}
	want := []string{"checkout", "inputs", "cache restore", "steps", "outputs", "cache save", "artifact upload"}
	if !slices.Equal(names, want) {
		t.Errorf("phases %q, want %q", names, want)
	}
}
