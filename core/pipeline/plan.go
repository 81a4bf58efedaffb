package pipeline

import (
	"fmt"
	"strings"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
)

// Node is one job of a plan.
type Node struct {
	Name       string
	Stage      string
	StageIndex int
	Job        *jobv1.PipelineJob
	// Deps are the jobs this one waits for. With depends_on they are exactly
	// those jobs (which may be in the same or earlier stages): the job starts
	// as soon as they are done, even while an earlier stage still runs.
	// Without depends_on they are every job of every earlier stage: the
	// stage barrier.
	Deps []string
	// upstream is every job reachable through Deps.
	upstream []string
}

// Plan is the dependency graph of a pipeline's jobs.
type Plan struct {
	// Nodes are in a topological order: every job after its Deps.
	Nodes []*Node
	// Spec is the pipeline planned, expanded; Expanded how it was.
	Spec     *jobv1.PipelineDetail
	Expanded *Expanded
	byName   map[string]*Node
}

// Node returns a job of the plan by name.
func (p *Plan) Node(name string) *Node { return p.byName[name] }

// newPlan builds the graph of a pipeline whose names are already checked.
func newPlan(p *jobv1.PipelineDetail) (*Plan, error) {
	plan := &Plan{byName: map[string]*Node{}}
	var file []*Node // in file order
	fields := map[string]string{}
	for si, st := range p.GetStages() {
		for ji, j := range st.GetJobs() {
			n := &Node{Name: j.GetName(), Stage: st.GetName(), StageIndex: si, Job: j}
			plan.byName[n.Name] = n
			file = append(file, n)
			fields[n.Name] = jobField(si, ji)
		}
	}
	for _, n := range file {
		field := fields[n.Name] + ".depends_on"
		if len(n.Job.GetDependsOn()) == 0 {
			for _, m := range file {
				if m.StageIndex < n.StageIndex {
					n.Deps = append(n.Deps, m.Name)
				}
			}
			continue
		}
		seen := map[string]bool{}
		for i, d := range n.Job.GetDependsOn() {
			df := fmt.Sprintf("%s[%d]", field, i)
			dep, ok := plan.byName[d]
			switch {
			case !ok:
				return nil, errorf(df, "unknown job %q", d)
			case dep.StageIndex > n.StageIndex:
				return nil, errorf(df, "job %q is in the later stage %q; depends_on may name jobs of the same or earlier stages", d, dep.Stage)
			case seen[d]:
				return nil, errorf(df, "job %q listed twice", d)
			}
			seen[d] = true
			n.Deps = append(n.Deps, d)
		}
	}
	// Depth-first search: a grey node met again closes a cycle.
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var visit func(n *Node) error
	visit = func(n *Node) error {
		color[n.Name] = grey
		stack = append(stack, n.Name)
		for _, d := range n.Deps {
			dep := plan.byName[d]
			switch color[d] {
			case grey:
				start := 0
				for i, s := range stack {
					if s == d {
						start = i
					}
				}
				cycle := append(append([]string{}, stack[start:]...), d)
				// The path reads along "depends on": a → b means a depends on b.
				return errorf(fields[cycle[0]]+".depends_on", "cycle: %s", strings.Join(cycle, " → "))
			case white:
				if err := visit(dep); err != nil {
					return err
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n.Name] = black
		plan.Nodes = append(plan.Nodes, n)
		return nil
	}
	for _, n := range file {
		if color[n.Name] == white {
			if err := visit(n); err != nil {
				return nil, err
			}
		}
	}
	for _, n := range plan.Nodes { // topological: deps' upstream is known
		seen := map[string]bool{}
		for _, d := range n.Deps {
			for _, u := range append([]string{d}, plan.byName[d].upstream...) {
				if !seen[u] {
					seen[u] = true
					n.upstream = append(n.upstream, u)
				}
			}
		}
	}
	return plan, nil
}

// Steps are the steps a pipeline job runs: its steps, or its plugin step
// (uses and with) as one step; nil for a job of commands only.
func Steps(j *jobv1.PipelineJob) []*agentv1.Step {
	if len(j.GetSteps()) > 0 {
		return j.GetSteps()
	}
	if strings.TrimSpace(j.GetUses()) != "" {
		return []*agentv1.Step{{Uses: strings.TrimSpace(j.GetUses()), With: j.GetWith()}}
	}
	return nil
}
