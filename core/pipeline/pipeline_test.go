package pipeline

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/jobstate"
)

func TestExamplesParseAndValidate(t *testing.T) {
	files, _ := filepath.Glob("../../examples/pipelines/*.yaml")
	if len(files) == 0 {
		t.Fatal("no example pipelines")
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		p, err := ParseYAML(raw)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		// The files it includes, as the CLI sends them (one level here).
		for _, inc := range p.GetInclude() {
			data, err := os.ReadFile(filepath.Join(filepath.Dir(f), inc))
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if p.IncludeFiles == nil {
				p.IncludeFiles = map[string]string{}
			}
			p.IncludeFiles[inc] = string(data)
		}
		if _, err := Validate(p); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
}

// one wraps jobs lines (already indented for a job list) in a one-stage
// pipeline.
func pipelineYAML(stages string) string {
	return "name: p\nstages:\n" + stages
}

func TestValidationErrors(t *testing.T) {
	cases := []struct {
		name, yaml   string
		field, cause string
	}{
		{"cycle with its path", pipelineYAML(`
  - name: s
    jobs:
      - {name: a, commands: [x], depends_on: [c]}
      - {name: b, commands: [x], depends_on: [a]}
      - {name: c, commands: [x], depends_on: [b]}
`), "stages[0].jobs[0].depends_on", "cycle: a → c → b → a"},
		{"self dependency", pipelineYAML(`
  - name: s
    jobs:
      - {name: a, commands: [x], depends_on: [a]}
`), "stages[0].jobs[0].depends_on", "cycle: a → a"},
		{"unknown depends_on", pipelineYAML(`
  - name: s
    jobs:
      - {name: a, commands: [x], depends_on: [nope]}
`), "stages[0].jobs[0].depends_on[0]", `unknown job "nope"`},
		{"depends_on a later stage", pipelineYAML(`
  - name: s1
    jobs:
      - {name: a, commands: [x], depends_on: [b]}
  - name: s2
    jobs:
      - {name: b, commands: [x]}
`), "stages[0].jobs[0].depends_on[0]", "later stage"},
		{"duplicate job names", pipelineYAML(`
  - name: s1
    jobs:
      - {name: a, commands: [x]}
  - name: s2
    jobs:
      - {name: a, commands: [y]}
`), "stages[1].jobs[0].name", `duplicate job name "a" (also stages[0].jobs[0])`},
		{"bad selector", pipelineYAML(`
  - name: s
    jobs:
      - {name: a, commands: [x], selector: "cpu>>8"}
`), "stages[0].jobs[0].selector", "bad selector"},
		{"bad structured selector", pipelineYAML(`
  - name: s
    jobs:
      - name: a
        commands: [x]
        label_selector:
          match_expressions: [{key: cpu, operator: Gt, values: [lots]}]
`), "stages[0].jobs[0].label_selector.match_expressions[0].values[0]", "GT needs an integer"},
		{"negative timeout", pipelineYAML(`
  - name: s
    jobs:
      - {name: a, commands: [x], timeout: -5s}
`), "stages[0].jobs[0].timeout", "must not be negative"},
		{"unknown when", pipelineYAML(`
  - name: s
    jobs:
      - {name: a, commands: [x], when: sometimes}
`), "stages[0].jobs[0].when", `unknown when "sometimes"`},
		{"commands and uses", pipelineYAML(`
  - name: s
    jobs:
      - {name: a, commands: [x], uses: lint}
`), "stages[0].jobs[0]", "both commands and uses"},
		{"no commands", pipelineYAML(`
  - name: s
    jobs:
      - {name: a}
`), "stages[0].jobs[0].commands", "must not be empty"},
		{"no stages", "name: p\n", "stages", "must not be empty"},
		{"no name", "stages: [{name: s, jobs: [{name: a, commands: [x]}]}]", "name", "must not be empty"},
		{"unknown key", pipelineYAML(`
  - name: s
    jobs:
      - {name: a, comands: [x]}
`), "yaml", "comands"},
		{"webhook without secret", "name: p\ntriggers: [{type: webhook}]\nstages: [{name: s, jobs: [{name: a, commands: [x]}]}]", "triggers[0].secret", "must be set"},
		{"unknown trigger", "name: p\ntriggers: [{type: sometimes}]\nstages: [{name: s, jobs: [{name: a, commands: [x]}]}]", "triggers[0].type", "unknown trigger type"},
		{"bad retry outcome", pipelineYAML(`
  - name: s
    jobs:
      - {name: a, commands: [x], retry: {max_attempts: 2, on: [rain]}}
`), "stages[0].jobs[0].retry.on[0]", "unknown outcome"},
		{"bad artifact path", pipelineYAML(`
  - name: s
    jobs:
      - {name: a, commands: [x], artifacts: {paths: [/etc/passwd]}}
`), "stages[0].jobs[0].artifacts.paths[0]", "relative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := ParseYAML([]byte(c.yaml))
			if err == nil {
				_, err = Validate(p)
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("want *Error, got %v", err)
			}
			if pe.Field != c.field || !strings.Contains(pe.Reason, c.cause) {
				t.Fatalf("got %q: %q, want %q: …%q…", pe.Field, pe.Reason, c.field, c.cause)
			}
		})
	}
}

func TestValidateMessageForms(t *testing.T) {
	job := func(name string) *jobv1.PipelineJob { return &jobv1.PipelineJob{Name: name, Commands: []string{"x"}} }
	p := &jobv1.PipelineDetail{Name: "p", Stages: []*jobv1.Stage{{Name: "s", Jobs: []*jobv1.PipelineJob{job("a")}}}}
	p.Stages[0].Jobs[0].When = 9
	if _, err := Validate(p); err == nil || !strings.Contains(err.Error(), "stages[0].jobs[0].when: unknown when 9") {
		t.Fatalf("unknown when enum: %v", err)
	}
	p.Stages[0].Jobs[0].When = 0
	p.Stages[0].Jobs[0].Timeout = durationpb.New(-time.Second)
	if _, err := Validate(p); err == nil || !strings.Contains(err.Error(), "timeout: must not be negative") {
		t.Fatalf("negative timeout: %v", err)
	}
	if _, err := Validate(nil); err == nil {
		t.Fatal("nil pipeline accepted")
	}
}

// fanPlan is 7 jobs over 3 stages: a fans out to b1..b3 (b3 needs b1),
// c1 fans in b1,b2,b3, c2 waits for the stage barrier, c3 needs only a.
const fanYAML = `name: fan
stages:
  - name: one
    jobs:
      - {name: a, commands: [x]}
  - name: two
    jobs:
      - {name: b1, commands: [x], depends_on: [a]}
      - {name: b2, commands: [x], depends_on: [a]}
      - {name: b3, commands: [x], depends_on: [a, b1]}
  - name: three
    jobs:
      - {name: c1, commands: [x], depends_on: [b1, b2, b3]}
      - {name: c2, commands: [x]}
      - {name: c3, commands: [x], depends_on: [a]}
`

func mustPlan(t *testing.T, y string) *Plan {
	t.Helper()
	p, err := ParseYAML([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Validate(p)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func TestPlanTopologicalAndDeps(t *testing.T) {
	plan := mustPlan(t, fanYAML)
	pos := map[string]int{}
	for i, n := range plan.Nodes {
		pos[n.Name] = i
	}
	for _, n := range plan.Nodes {
		for _, d := range n.Deps {
			if pos[d] >= pos[n.Name] {
				t.Fatalf("%s before its dependency %s", n.Name, d)
			}
		}
	}
	// c2 declares no depends_on: it waits for the stage barrier, which the
	// plan holds once, not as an edge to every earlier job.
	c2 := plan.Node("c2")
	if len(c2.Deps) != 0 || !c2.Barrier() || plan.WaitingFor(c2) != "stage two" {
		t.Fatalf("c2: deps %v, barrier %v, waiting for %q", c2.Deps, c2.Barrier(), plan.WaitingFor(c2))
	}
	if a := plan.Node("a"); a.Barrier() || plan.WaitingFor(a) != "nothing" {
		t.Fatalf("a: barrier %v, waiting for %q", a.Barrier(), plan.WaitingFor(a))
	}
	if got := plan.WaitingFor(plan.Node("c1")); got != "b1, b2, b3" {
		t.Fatalf("c1 waits for %q", got)
	}
}

func TestNext(t *testing.T) {
	plan := mustPlan(t, fanYAML)
	S, F, A := Succeeded, Failed, Active
	cases := []struct {
		name  string
		in    map[string]Outcome
		start []string
		skip  []string
		done  bool
		final jobstate.Status
	}{
		{"nothing ran", nil, []string{"a"}, nil, false, 0},
		{"a running", map[string]Outcome{"a": A}, nil, nil, false, 0},
		{"a done: fan out; c3 starts early", map[string]Outcome{"a": S}, []string{"b1", "b2", "c3"}, nil, false, 0},
		{"b3 waits for b1", map[string]Outcome{"a": S, "b1": A, "b2": S, "c3": S}, nil, nil, false, 0},
		{"fan in", map[string]Outcome{"a": S, "b1": S, "b2": S, "b3": S, "c3": A}, []string{"c1", "c2"}, nil, false, 0},
		{"all good", map[string]Outcome{"a": S, "b1": S, "b2": S, "b3": S, "c1": S, "c2": S, "c3": S}, nil, nil, true, jobstate.Success},
		{"a fails: everything downstream skipped at once", map[string]Outcome{"a": F}, nil,
			[]string{"b1", "b2", "b3", "c1", "c2", "c3"}, true, jobstate.Failed},
		{"b1 fails: b3, c1 and the barrier job c2 skipped", map[string]Outcome{"a": S, "b1": F, "b2": S, "c3": S}, nil,
			[]string{"b3", "c1", "c2"}, true, jobstate.Failed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := plan.Next(c.in)
			var skip []string
			for k := range st.Skip {
				skip = append(skip, k)
			}
			slices.Sort(skip)
			if !slices.Equal(st.Start, c.start) || !slices.Equal(skip, c.skip) || st.Done != c.done || st.Status != c.final {
				t.Fatalf("got start %v skip %v done %v %v", st.Start, skip, st.Done, st.Status)
			}
		})
	}
}

func TestNextWhen(t *testing.T) {
	plan := mustPlan(t, `name: w
stages:
  - name: build
    jobs:
      - {name: build, commands: [x]}
      - {name: test, commands: [x], depends_on: [build]}
  - name: after
    jobs:
      - {name: notify, commands: [x], when: on_failure}
      - {name: cleanup, commands: [x], when: always}
  - name: last
    jobs:
      - {name: publish, commands: [x]}
`)
	// build fails: test skipped; notify and cleanup run; publish skipped.
	st := plan.Next(map[string]Outcome{"build": Failed})
	if !slices.Equal(st.Start, []string{"notify", "cleanup"}) || st.Skip["test"] == "" {
		t.Fatalf("after a failure: %+v", st)
	}
	st = plan.Next(map[string]Outcome{"build": Failed, "test": Skipped, "notify": Succeeded, "cleanup": Succeeded})
	if _, ok := st.Skip["publish"]; !ok || !st.Done || st.Status != jobstate.Failed {
		t.Fatalf("end of a failed run: %+v", st)
	}
	// All good: notify is skipped, which does not block publish.
	st = plan.Next(map[string]Outcome{"build": Succeeded, "test": Succeeded})
	if !slices.Equal(st.Start, []string{"cleanup"}) || st.Skip["notify"] == "" {
		t.Fatalf("good run, stage after: %+v", st)
	}
	st = plan.Next(map[string]Outcome{"build": Succeeded, "test": Succeeded, "notify": Skipped, "cleanup": Succeeded})
	if !slices.Equal(st.Start, []string{"publish"}) {
		t.Fatalf("a skipped on_failure job blocked publish: %+v", st)
	}
	st = plan.Next(map[string]Outcome{"build": Succeeded, "test": Succeeded, "notify": Skipped, "cleanup": Succeeded, "publish": Succeeded})
	if !st.Done || st.Status != jobstate.Success {
		t.Fatalf("good run end: %+v", st)
	}
}

func TestRetryAfter(t *testing.T) {
	job := func(r *jobv1.RetryPolicy) *jobv1.PipelineJob { return &jobv1.PipelineJob{Retry: r} }
	failOnly := &jobv1.RetryPolicy{MaxAttempts: 3, OnFailure: true, Backoff: durationpb.New(time.Second)}
	cases := []struct {
		name    string
		j       *jobv1.PipelineJob
		s       jobstate.Status
		lost    bool
		attempt int32
		wait    time.Duration
		ok      bool
	}{
		{"no policy", job(nil), jobstate.Failed, false, 1, 0, false},
		{"failure retried", job(failOnly), jobstate.Failed, false, 1, time.Second, true},
		{"backoff doubles", job(failOnly), jobstate.Failed, false, 2, 2 * time.Second, true},
		{"attempts spent", job(failOnly), jobstate.Failed, false, 3, 0, false},
		{"timeout not chosen", job(failOnly), jobstate.Timeout, false, 1, 0, false},
		{"lost not chosen", job(failOnly), jobstate.Failed, true, 1, 0, false},
		{"lost chosen", job(&jobv1.RetryPolicy{MaxAttempts: 2, OnAgentLost: true}), jobstate.Failed, true, 1, 0, true},
		{"none chosen: every bad outcome", job(&jobv1.RetryPolicy{MaxAttempts: 2}), jobstate.Timeout, false, 1, 0, true},
		{"success never", job(&jobv1.RetryPolicy{MaxAttempts: 2}), jobstate.Success, false, 1, 0, false},
		{"cancel never", job(&jobv1.RetryPolicy{MaxAttempts: 2}), jobstate.Cancelled, false, 1, 0, false},
	}
	for _, c := range cases {
		wait, ok := RetryAfter(c.j, c.s, c.lost, c.attempt)
		if wait != c.wait || ok != c.ok {
			t.Errorf("%s: got %s %v, want %s %v", c.name, wait, ok, c.wait, c.ok)
		}
	}
}

func TestCheckRun(t *testing.T) {
	P, R, S, F, C := jobstate.Pending, jobstate.Running, jobstate.Success, jobstate.Failed, jobstate.Cancelled
	allowed := [][2]jobstate.Status{{P, R}, {P, C}, {R, S}, {R, F}, {R, C}}
	all := []jobstate.Status{P, R, S, F, C}
	for _, from := range all {
		for _, to := range all {
			want := slices.Contains(allowed, [2]jobstate.Status{from, to})
			err := CheckRun(from, to)
			var te *RunTransitionError
			if (err == nil) != want || (err != nil && !errors.As(err, &te)) {
				t.Errorf("%s → %s: %v", jobstate.Name(from), jobstate.Name(to), err)
			}
		}
	}
}

func TestEnvFor(t *testing.T) {
	p, err := ParseYAML([]byte(`name: e
env: {A: pipeline, B: pipeline, C: pipeline, D: pipeline}
stages:
  - name: s
    env: {B: stage, C: stage, D: stage}
    jobs:
      - {name: j, commands: [x], env: {C: job, D: job}}
`))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Validate(p)
	if err != nil {
		t.Fatal(err)
	}
	env := EnvFor(p, plan.Node("j"), map[string]string{"D": "param"})
	want := map[string]string{"A": "pipeline", "B": "stage", "C": "job", "D": "param"}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
}

// FuzzParse holds the parser and the graph builder to: no panics, errors
// always name a field, and a valid pipeline's plan is topological and runs
// every job exactly once when all succeed.
func FuzzParse(f *testing.F) {
	f.Add([]byte(fanYAML))
	f.Add([]byte(pipelineYAML("  - {name: s, jobs: [{name: a, commands: [x], depends_on: [a]}]}\n")))
	f.Add([]byte("name: p\ntriggers: [{type: cron, cron: '* * * * *'}]\nstages: [{name: s, jobs: [{name: a, uses: lint, with: {k: v}}]}]"))
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseYAML(data)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.Field == "" {
				t.Fatalf("parse error without a field: %v", err)
			}
			return
		}
		plan, err := Validate(p)
		if err != nil {
			var pe *Error
			var le *LimitError
			if errors.As(err, &le) {
				return
			}
			if !errors.As(err, &pe) || pe.Field == "" {
				t.Fatalf("validation error without a field: %v", err)
			}
			return
		}
		out := map[string]Outcome{}
		for range len(plan.Nodes) + 1 {
			st := plan.Next(out)
			if len(st.Skip) > 0 {
				t.Fatalf("skips in an all-good run: %v", st.Skip)
			}
			for _, n := range st.Start {
				if out[n] != Waiting {
					t.Fatalf("%s started twice", n)
				}
				out[n] = Succeeded
			}
			if st.Done {
				if len(out) != len(plan.Nodes) || st.Status != jobstate.Success {
					t.Fatalf("done with %d of %d jobs, %v", len(out), len(plan.Nodes), st.Status)
				}
				return
			}
		}
		t.Fatal("the run never ended")
	})
}
