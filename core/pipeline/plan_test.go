package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/jobstate"
)

// referenceNext is Next as the plan first did it: each job with every job
// of every earlier stage as dependencies (the stage barrier spelt out) and
// its whole upstream closure collected. Slow and plain; the plan must agree.
func referenceNext(p *jobv1.PipelineDetail, outcomes map[string]Outcome) Step {
	type node struct {
		job      *jobv1.PipelineJob
		deps     []string
		upstream []string
	}
	nodes := map[string]*node{}
	var file []string
	stageOf := map[string]int{}
	for si, st := range p.GetStages() {
		for _, j := range st.GetJobs() {
			nodes[j.GetName()] = &node{job: j}
			file = append(file, j.GetName())
			stageOf[j.GetName()] = si
		}
	}
	for _, name := range file {
		n := nodes[name]
		if len(n.job.GetDependsOn()) > 0 {
			n.deps = n.job.GetDependsOn()
			continue
		}
		for _, m := range file {
			if stageOf[m] < stageOf[name] {
				n.deps = append(n.deps, m)
			}
		}
	}
	var order []string
	seen := map[string]bool{}
	var visit func(string)
	visit = func(name string) {
		seen[name] = true
		for _, d := range nodes[name].deps {
			if !seen[d] {
				visit(d)
			}
		}
		order = append(order, name)
	}
	for _, name := range file {
		if !seen[name] {
			visit(name)
		}
	}
	for _, name := range order {
		n := nodes[name]
		have := map[string]bool{}
		for _, d := range n.deps {
			for _, u := range append([]string{d}, nodes[d].upstream...) {
				if !have[u] {
					have[u] = true
					n.upstream = append(n.upstream, u)
				}
			}
		}
	}
	cur := map[string]Outcome{}
	for k, v := range outcomes {
		cur[k] = v
	}
	step := Step{Skip: map[string]string{}}
	for _, name := range order {
		n := nodes[name]
		if cur[name] != Waiting {
			continue
		}
		ready := true
		for _, d := range n.deps {
			ready = ready && cur[d].Done()
		}
		if !ready {
			continue
		}
		failedUp := ""
		for _, u := range n.upstream {
			if cur[u].bad() {
				failedUp = u
				break
			}
		}
		run, reason := false, ""
		switch n.job.GetWhen() {
		case jobv1.RunCondition_RUN_CONDITION_ALWAYS:
			run = true
		case jobv1.RunCondition_RUN_CONDITION_ON_FAILURE:
			run, reason = failedUp != "", "skipped: nothing upstream failed (when: on_failure)"
		default:
			run, reason = failedUp == "", fmt.Sprintf("skipped: %s did not succeed", failedUp)
		}
		if run {
			step.Start = append(step.Start, name)
			cur[name] = Active
		} else {
			step.Skip[name] = reason
			cur[name] = Skipped
		}
	}
	step.Done, step.Status = true, jobstate.Success
	for _, name := range order {
		switch o := cur[name]; {
		case !o.Done():
			step.Done = false
		case o.bad():
			step.Status = jobstate.Failed
		}
	}
	if !step.Done {
		step.Status = 0
	}
	return step
}

// randomPipeline is a valid pipeline of a few stages whose jobs depend on
// random earlier jobs (or on the stage barrier) with random conditions.
func randomPipeline(r *rand.Rand) *jobv1.PipelineDetail {
	p := &jobv1.PipelineDetail{Name: "random"}
	var names []string
	whens := []jobv1.RunCondition{jobv1.RunCondition_RUN_CONDITION_ON_SUCCESS, jobv1.RunCondition_RUN_CONDITION_ON_FAILURE,
		jobv1.RunCondition_RUN_CONDITION_ALWAYS, jobv1.RunCondition_RUN_CONDITION_UNSPECIFIED}
	for si := range 1 + r.IntN(5) {
		st := &jobv1.Stage{Name: fmt.Sprintf("s%d", si)}
		for range 1 + r.IntN(4) {
			j := &jobv1.PipelineJob{Name: fmt.Sprintf("j%d", len(names)), Commands: []string{"x"}, When: whens[r.IntN(len(whens))]}
			if len(names) > 0 && r.IntN(2) == 0 {
				for _, k := range r.Perm(len(names))[:1+r.IntN(min(3, len(names)))] {
					j.DependsOn = append(j.DependsOn, names[k])
				}
			}
			names = append(names, j.Name)
			st.Jobs = append(st.Jobs, j)
		}
		p.Stages = append(p.Stages, st)
	}
	return p
}

// TestNextMatchesReference drives random pipelines through random runs and
// checks every step against the plain reference.
func TestNextMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	outcomes := []Outcome{Succeeded, Failed, Cancelled, Succeeded, Succeeded}
	for i := range 2000 {
		p := randomPipeline(r)
		plan, err := Validate(p)
		if err != nil {
			t.Fatalf("pipeline %d: %v", i, err)
		}
		cur := map[string]Outcome{}
		for round := 0; ; round++ {
			got, want := plan.Next(cur), referenceNext(p, cur)
			if !slices.Equal(got.Start, want.Start) || fmt.Sprint(got.Skip) != fmt.Sprint(want.Skip) ||
				got.Done != want.Done || got.Status != want.Status {
				t.Fatalf("pipeline %d round %d, outcomes %v:\n got %+v\nwant %+v", i, round, cur, got, want)
			}
			if got.Done {
				break
			}
			for name, reason := range got.Skip {
				_ = reason
				cur[name] = Skipped
			}
			for _, name := range got.Start {
				cur[name] = outcomes[r.IntN(len(outcomes))]
			}
			if round > 100 {
				t.Fatalf("pipeline %d never ends", i)
			}
		}
	}
}

// chain is n jobs in one stage, each depending on the one before.
func chain(n int) *jobv1.PipelineDetail {
	st := &jobv1.Stage{Name: "s"}
	for i := range n {
		j := &jobv1.PipelineJob{Name: fmt.Sprintf("j%d", i), Commands: []string{"true"}}
		if i > 0 {
			j.DependsOn = []string{fmt.Sprintf("j%d", i-1)}
		}
		st.Jobs = append(st.Jobs, j)
	}
	return &jobv1.PipelineDetail{Name: "chain", Stages: []*jobv1.Stage{st}}
}

// staged is stages × perStage jobs without depends_on: every job waits for
// the stage barrier.
func staged(stages, perStage int) *jobv1.PipelineDetail {
	p := &jobv1.PipelineDetail{Name: "staged"}
	for s := range stages {
		st := &jobv1.Stage{Name: fmt.Sprintf("s%d", s)}
		for j := range perStage {
			st.Jobs = append(st.Jobs, &jobv1.PipelineJob{Name: fmt.Sprintf("s%dj%d", s, j), Commands: []string{"true"}})
		}
		p.Stages = append(p.Stages, st)
	}
	return p
}

func TestLimits(t *testing.T) {
	l := Limits{Jobs: 10, Stages: 3, Edges: 5}
	cases := []struct {
		name  string
		p     *jobv1.PipelineDetail
		limit string
	}{
		{"jobs", staged(2, 6), "pipeline_limits.jobs"},
		{"stages", staged(4, 1), "pipeline_limits.stages"},
		{"edges", chain(7), "pipeline_limits.edges"},
	}
	for _, c := range cases {
		_, err := l.Validate(context.Background(), c.p)
		var le *LimitError
		if !errors.As(err, &le) || le.Limit != c.limit || !strings.Contains(err.Error(), c.limit) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	if _, err := l.Validate(context.Background(), chain(6)); err != nil {
		t.Errorf("within the limits: %v", err)
	}
	_, err := Limits{YAMLBytes: 64}.ParseYAML([]byte(fanYAML))
	var le *LimitError
	if !errors.As(err, &le) || le.Field != "yaml" || le.Max != 64 || le.Got != len(fanYAML) {
		t.Errorf("yaml bytes: %v", err)
	}
	// The size bounds the definition as parsed too (YAML aliases can make
	// it larger than its file).
	if _, err := (Limits{YAMLBytes: 1000}).Validate(context.Background(), staged(1, 100)); !errors.As(err, &le) || le.Field != "pipeline" {
		t.Errorf("definition bytes: %v", err)
	}
	// The stage barrier is no edge: 1,000 stages of 10 jobs declare none.
	if _, err := (Limits{Edges: 1}).Validate(context.Background(), staged(1000, 10)); err != nil {
		t.Errorf("barriers counted as edges: %v", err)
	}
	if _, err := Validate(staged(1, DefaultLimits.Jobs+1)); !errors.As(err, &le) || le.Limit != "pipeline_limits.jobs" {
		t.Errorf("default job limit: %v", err)
	}
}

func TestValidateHonoursCancellation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := DefaultLimits.Validate(ctx, chain(5000)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled planning: %v", err)
	}
}

// TestBigPlansStayLinear plans the shapes that were quadratic and checks
// the memory they hold: a barrier per stage and the declared edges, no
// closure per job.
func TestBigPlansStayLinear(t *testing.T) {
	for name, p := range map[string]*jobv1.PipelineDetail{"chain": chain(10_000), "stages": staged(1000, 10), "wide": staged(2, 5000)} {
		plan, err := Validate(p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		edges := 0
		for _, d := range plan.deps {
			edges += len(d)
		}
		if jobs := len(plan.Nodes); edges > 2*jobs+len(p.GetStages()) {
			t.Errorf("%s: %d edges for %d jobs", name, edges, jobs)
		}
		// A whole good run, one step at a time.
		cur := map[string]Outcome{}
		for steps := 0; ; steps++ {
			st := plan.Next(cur)
			if st.Done {
				if st.Status != jobstate.Success || len(cur) != len(plan.Nodes) {
					t.Fatalf("%s: ended %v with %d of %d jobs", name, st.Status, len(cur), len(plan.Nodes))
				}
				break
			}
			if len(st.Start) == 0 {
				t.Fatalf("%s: stuck after %d steps", name, steps)
			}
			for _, n := range st.Start {
				cur[n] = Succeeded
			}
			if name == "chain" && steps > 100 {
				break // the chain takes 10,000 steps; a hundred show it moves
			}
		}
	}
}

func BenchmarkPlan(b *testing.B) {
	for name, p := range map[string]*jobv1.PipelineDetail{
		"chain-2000": chain(2000), "stages-1000": staged(1000, 1), "wide-2x1000": staged(2, 1000),
	} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := Validate(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
