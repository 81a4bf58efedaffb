package pipeline

import (
	"context"
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
	// Deps are the jobs named by depends_on (in the same or earlier
	// stages): the job starts as soon as they are done, even while an
	// earlier stage still runs. A job without depends_on has no Deps and
	// waits for its stage barrier instead: every job of every earlier
	// stage (see Barrier).
	Deps []string

	// v is the node's vertex in the plan's graph; at its place in the
	// stage.
	v  int32
	at int
}

// Barrier reports whether the job waits for every job of the earlier
// stages (it declares no depends_on and is not in the first stage).
func (n *Node) Barrier() bool { return len(n.Deps) == 0 && n.StageIndex > 0 }

// Plan is the dependency graph of a pipeline's jobs. The stage barrier is a
// vertex of its own per stage (every job of the stage, and the barrier of
// the stage before), so the graph holds the edges users declare plus one
// per job: planning, and each Next, are linear in jobs + edges.
type Plan struct {
	// Nodes are in a topological order: every job after its Deps.
	Nodes []*Node
	// Spec is the pipeline planned, expanded; Expanded how it was.
	Spec     *jobv1.PipelineDetail
	Expanded *Expanded
	byName   map[string]*Node
	// stages are the stage names, in order.
	stages []string
	// The graph over vertices: jobs (0..jobs-1, in file order) then one
	// barrier per stage (jobs+i: every job of stages 0..i done).
	deps  [][]int32 // deps[v], in the order failures are reported
	names []string  // job name of a job vertex; "" for a barrier
	order []int32   // every vertex, topologically
	jobs  int
}

// Node returns a job of the plan by name.
func (p *Plan) Node(name string) *Node { return p.byName[name] }

// WaitingFor says what a job that has not started waits for, for people:
// its depends_on, or the stage before its own.
func (p *Plan) WaitingFor(n *Node) string {
	switch {
	case len(n.Deps) > 0:
		return strings.Join(n.Deps, ", ")
	case n.StageIndex > 0:
		return "stage " + p.stages[n.StageIndex-1]
	}
	return "nothing"
}

// cancelCheckEvery is how many vertices planning handles between looks at
// the caller's context.
const cancelCheckEvery = 1024

// newPlan builds the graph of a pipeline whose names are already checked.
// Time and memory are linear in jobs + declared edges; ctx ending stops it.
func newPlan(ctx context.Context, p *jobv1.PipelineDetail) (*Plan, error) {
	stages := p.GetStages()
	jobs := 0
	for _, st := range stages {
		jobs += len(st.GetJobs())
	}
	plan := &Plan{byName: make(map[string]*Node, jobs), jobs: jobs, stages: make([]string, len(stages)),
		deps: make([][]int32, jobs+len(stages)), names: make([]string, jobs+len(stages))}
	file := make([]*Node, 0, jobs) // in file order: vertex v is file[v]
	for si, st := range stages {
		plan.stages[si] = st.GetName()
		for ji, j := range st.GetJobs() {
			n := &Node{Name: j.GetName(), Stage: st.GetName(), StageIndex: si, Job: j, v: int32(len(file)), at: ji}
			plan.byName[n.Name] = n
			plan.names[n.v] = n.Name
			file = append(file, n)
		}
	}
	barrier := func(stage int) int32 { return int32(jobs + stage) }
	v := 0
	for si, st := range stages {
		b := barrier(si)
		if si > 0 {
			plan.deps[b] = append(plan.deps[b], barrier(si-1))
		}
		for ji, j := range st.GetJobs() {
			n := file[v]
			v++
			plan.deps[b] = append(plan.deps[b], n.v)
			if v%cancelCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
			}
			declared := j.GetDependsOn()
			if len(declared) == 0 {
				if si > 0 {
					plan.deps[n.v] = []int32{barrier(si - 1)}
				}
				continue
			}
			field := jobField(si, ji) + ".depends_on"
			n.Deps = make([]string, 0, len(declared))
			plan.deps[n.v] = make([]int32, 0, len(declared))
			var seen map[string]bool
			if len(declared) > 1 {
				seen = make(map[string]bool, len(declared))
			}
			for i, d := range declared {
				dep, ok := plan.byName[d]
				switch {
				case !ok:
					return nil, errorf(indexField(field, i), "unknown job %q", d)
				case dep.StageIndex > si:
					return nil, errorf(indexField(field, i), "job %q is in the later stage %q; depends_on may name jobs of the same or earlier stages", d, dep.Stage)
				case seen[d]:
					return nil, errorf(indexField(field, i), "job %q listed twice", d)
				}
				if seen != nil {
					seen[d] = true
				}
				n.Deps = append(n.Deps, d)
				plan.deps[n.v] = append(plan.deps[n.v], dep.v)
			}
		}
	}
	if err := plan.sort(ctx, file); err != nil {
		return nil, err
	}
	plan.Nodes = make([]*Node, 0, jobs)
	for _, v := range plan.order {
		if int(v) < jobs {
			plan.Nodes = append(plan.Nodes, file[v])
		}
	}
	return plan, nil
}

// sort orders the vertices depth-first, in file order, each after its
// deps, without recursion; a grey vertex met again closes a cycle, which
// is reported with its path. Only depends_on edges inside one stage can
// close one: barriers and other depends_on point to earlier stages.
func (p *Plan) sort(ctx context.Context, file []*Node) error {
	const (
		white = iota
		grey
		black
	)
	color := make([]uint8, len(p.deps))
	p.order = make([]int32, 0, len(p.deps))
	var stack []frame
	done := 0
	for root := range p.deps {
		if color[root] != white {
			continue
		}
		stack = append(stack[:0], frame{v: int32(root)})
		color[root] = grey
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			if top.next < len(p.deps[top.v]) {
				d := p.deps[top.v][top.next]
				top.next++
				switch color[d] {
				case white:
					color[d] = grey
					stack = append(stack, frame{v: d})
				case grey:
					return p.cycle(stack, d, file)
				}
				continue
			}
			color[top.v] = black
			p.order = append(p.order, top.v)
			stack = stack[:len(stack)-1]
			if done++; done%cancelCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// frame is a vertex on the search stack and the next of its deps to see.
type frame struct {
	v    int32
	next int
}

// cycle reports the cycle that closes at d on the search stack: a → b
// means a depends on b.
func (p *Plan) cycle(stack []frame, d int32, file []*Node) error {
	start := 0
	for i, f := range stack {
		if f.v == d {
			start = i
		}
	}
	path := make([]string, 0, len(stack)-start+1)
	for _, f := range stack[start:] {
		path = append(path, p.names[f.v])
	}
	path = append(path, p.names[d])
	n := file[stack[start].v]
	return errorf(jobField(n.StageIndex, n.at)+".depends_on", "cycle: %s", strings.Join(path, " → "))
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
