package pipeline

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/expr"
)

func planOf(t *testing.T, yaml string, files map[string]string) *Plan {
	t.Helper()
	p, err := ParseYAML([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	p.IncludeFiles = files
	plan, err := Validate(p)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func names(plan *Plan) []string {
	var out []string
	for _, st := range plan.Spec.GetStages() {
		for _, j := range st.GetJobs() {
			out = append(out, j.GetName())
		}
	}
	return out
}

func TestMatrix(t *testing.T) {
	plan := planOf(t, `
name: m
stages:
  - name: build
    jobs:
      - name: build
        image: golang:${{ matrix.go }}
        commands: ["go build -o out/${{ matrix.os }} ./..."]
        env: {KEY: "${{ matrix.os }}-${{ arcade.branch }}"}
        matrix:
          os: [linux, darwin]
          go: ["1.22", "1.23", "1.20"]
          exclude: [{os: darwin, go: "1.20"}]
          include:
            - {os: linux, go: "1.23", experimental: "yes"}
            - {os: windows, go: "1.23"}
          fail_fast: true
  - name: ship
    jobs:
      - {name: ship, commands: [x], depends_on: [build]}
`, nil)
	want := []string{"build (linux, 1.22)", "build (linux, 1.23)", "build (linux, 1.20)", "build (darwin, 1.22)",
		"build (darwin, 1.23)", "build (windows, 1.23)", "ship"}
	if got := names(plan); !slices.Equal(got, want) {
		t.Fatalf("jobs %q, want %q", got, want)
	}
	j := plan.Node("build (linux, 1.23)").Job
	if j.GetImage() != "golang:1.23" || j.GetCommands()[0] != "go build -o out/linux ./..." {
		t.Errorf("matrix values not filled in: image %q, commands %q", j.GetImage(), j.GetCommands())
	}
	if j.GetEnv()["os"] != "linux" || j.GetEnv()["go"] != "1.23" || j.GetEnv()["experimental"] != "yes" {
		t.Errorf("env %v lacks the matrix values", j.GetEnv())
	}
	if j.GetEnv()["KEY"] != "linux-${{ arcade.branch }}" {
		t.Errorf("env KEY = %q: the server's part must stay", j.GetEnv()["KEY"])
	}
	if mi := j.GetMatrixInstance(); mi.GetGroup() != "build" || !mi.GetFailFast() || len(mi.GetValues()) != 3 {
		t.Errorf("matrix instance %v", mi)
	}
	if deps := plan.Node("ship").Deps; len(deps) != 6 {
		t.Errorf("ship waits for %q, want the 6 combinations", deps)
	}
	// Fail fast: one combination failed for good stops the others.
	out := map[string]Outcome{"build (linux, 1.22)": Failed, "build (linux, 1.23)": Succeeded, "build (linux, 1.20)": Active}
	stop := plan.FailFast(out)
	if !slices.Contains(stop, "build (linux, 1.20)") || !slices.Contains(stop, "build (windows, 1.23)") ||
		slices.Contains(stop, "build (linux, 1.23)") || slices.Contains(stop, "ship") {
		t.Errorf("fail fast stops %q", stop)
	}
	// Expanding again changes nothing.
	again, err := Validate(plan.Spec)
	if err != nil || !slices.Equal(names(again), want) {
		t.Fatalf("expanded pipeline does not validate as it is: %v", err)
	}
}

// TestMatrixValuesStayText: a matrix value that reads as an expression
// is filled in as text; it is not evaluated when the server fills in the
// rest of the env value.
func TestMatrixValuesStayText(t *testing.T) {
	plan := planOf(t, `
name: m
stages:
  - name: build
    jobs:
      - name: build
        commands: ["echo $A $B"]
        env:
          A: "${{ matrix.v }} on ${{ arcade.branch }}"
          B: "$${{ matrix.empty }}{{ arcade.branch }}"
        matrix:
          v: ["${{ arcade.branch }}"]
          empty: [""]
`, nil)
	j := plan.Spec.GetStages()[0].GetJobs()[0]
	c := expr.Map{"arcade.branch": "main"}
	for k, want := range map[string]string{"A": "${{ arcade.branch }} on main", "B": "${{ arcade.branch }}"} {
		v := j.GetEnv()[k]
		tp, err := expr.ParseTemplate(v)
		if err != nil {
			t.Fatalf("env %s = %q does not parse: %v", k, v, err)
		}
		if got, err := tp.Eval(c); err != nil || got != want {
			t.Errorf("env %s = %q evaluates to %q, %v; want %q", k, v, got, err, want)
		}
	}
	if again, err := Validate(plan.Spec); err != nil || again.Spec.GetStages()[0].GetJobs()[0].GetEnv()["A"] != j.GetEnv()["A"] {
		t.Fatalf("expanded pipeline does not validate as it is: %v", err)
	}
}

func TestMatrixLimit(t *testing.T) {
	p, err := ParseYAML([]byte(`
name: m
stages:
  - name: s
    jobs:
      - name: big
        commands: [x]
        matrix: {a: [1,2,3,4,5,6,7,8,9,10], b: [1,2,3,4,5,6,7,8,9,10], c: [1,2,3,4,5,6,7,8,9,10]}
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Expand(p, nil, 500)
	var le *LimitError
	if !errors.As(err, &le) || le.Limit != "pipeline_limits.jobs" || le.Max != 500 || !strings.Contains(err.Error(), "stages[0].jobs[0].matrix") {
		t.Fatalf("err = %v, want the jobs limit named on the matrix", err)
	}
}

func TestExtends(t *testing.T) {
	plan := planOf(t, `
name: x
templates:
  base:
    image: golang:1.22
    env: {A: base, B: base}
    commands: [base]
    timeout: 10m
    retry: {max_attempts: 3, on: [failure]}
    artifacts: {paths: [a, b]}
  lint:
    extends: base
    env: {B: lint, C: lint}
    timeout: 1500ms
stages:
  - name: s
    jobs:
      - name: j
        extends: [lint]
        commands: [own]
        env: {C: own}
        artifacts: {paths: [c]}
        retry: {max_attempts: 5}
`, nil)
	j := plan.Node("j").Job
	if j.GetImage() != "golang:1.22" {
		t.Errorf("image %q: not taken from the template", j.GetImage())
	}
	if e := j.GetEnv(); e["A"] != "base" || e["B"] != "lint" || e["C"] != "own" {
		t.Errorf("env %v: maps merge by key, later wins", e)
	}
	if !slices.Equal(j.GetCommands(), []string{"own"}) || !slices.Equal(j.GetArtifacts().GetPaths(), []string{"c"}) {
		t.Errorf("commands %q, artifacts %q: lists replace", j.GetCommands(), j.GetArtifacts().GetPaths())
	}
	if d := j.GetTimeout().AsDuration(); d != 1500*time.Millisecond {
		t.Errorf("timeout %v: a duration replaces, it is not merged", d)
	}
	if r := j.GetRetry(); r.GetMaxAttempts() != 5 || !r.GetOnFailure() {
		t.Errorf("retry %v: messages merge field by field", r)
	}
	if len(plan.Spec.GetTemplates()) != 0 || len(j.GetExtends()) != 0 {
		t.Error("templates left after expansion")
	}
}

func TestIncludes(t *testing.T) {
	files := map[string]string{
		"ci/common.yaml":    "env: {A: common, B: common}\ninclude: [ci/templates.yaml]\n",
		"ci/templates.yaml": "templates:\n  go: {image: golang:1.22, commands: [go test]}\nenv: {A: tpl, T: tpl}\n",
	}
	plan := planOf(t, `
name: inc
include: [ci/common.yaml]
env: {B: main}
stages:
  - name: s
    jobs: [{name: t, extends: go}]
`, files)
	if e := plan.Spec.GetEnv(); e["A"] != "common" || e["B"] != "main" || e["T"] != "tpl" {
		t.Errorf("env %v: later wins, the file itself last", e)
	}
	if plan.Node("t").Job.GetImage() != "golang:1.22" {
		t.Error("a template from an included file was not applied")
	}
	if len(plan.Spec.GetIncludeFiles()) != 0 || len(plan.Spec.GetInclude()) != 0 {
		t.Error("include left after expansion")
	}
}

func TestExpansionErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		files      map[string]string
		field, msg string
		line       int
	}{
		{"include cycle with its path", "name: p\ninclude: [a.yaml]\nstages: [{name: s, jobs: [{name: j, commands: [x]}]}]\n",
			map[string]string{"a.yaml": "include: [b.yaml]\n", "b.yaml": "include: [a.yaml]\n"},
			"b.yaml: include[0]", "include cycle: (pipeline) → a.yaml → b.yaml → a.yaml", 0},
		{"missing include", "name: p\ninclude: [nope.yaml]\nstages: [{name: s, jobs: [{name: j, commands: [x]}]}]\n", nil,
			"include[0]", "no such file nope.yaml", 2},
		{"include outside", "name: p\ninclude: [../x.yaml]\nstages: [{name: s, jobs: [{name: j, commands: [x]}]}]\n", nil,
			"include[0]", "inside it", 2},
		{"extends cycle", "name: p\ntemplates:\n  a: {extends: b}\n  b: {extends: a}\nstages:\n  - name: s\n    jobs:\n      - {name: j, extends: a, commands: [x]}\n", nil,
			"templates.b.extends[0]", "extends cycle: a → b → a", 4},
		{"unknown template", "name: p\nstages:\n  - name: s\n    jobs:\n      - {name: j, extends: nope, commands: [x]}\n", nil,
			"stages[0].jobs[0].extends[0]", `unknown template "nope"`, 5},
		{"unknown output", `name: p
stages:
  - name: s
    jobs:
      - {name: build, commands: [x], outputs: [version]}
      - name: use
        depends_on: [build]
        commands: [x]
        env: {V: "${{ jobs.build.outputs.versoin }}"}
`, nil, `stages[0].jobs[1].env["V"]`, `declares no output "versoin"`, 9},
		{"unknown job in if", "name: p\nstages:\n  - name: s\n    jobs:\n      - {name: a, commands: [x], if: \"jobs.nope.status == 'success'\"}\n", nil,
			"stages[0].jobs[0].if", `unknown job "nope"`, 5},
		{"output of a job that is not upstream", `name: p
stages:
  - name: s
    jobs:
      - {name: a, commands: [x], outputs: [o]}
      - {name: b, commands: [x], if: "jobs.a.outputs.o == '1'"}
`, nil, "stages[0].jobs[1].if", "does not run before b", 6},
		{"hashFiles on the server", "name: p\nstages:\n  - name: s\n    jobs:\n      - {name: a, commands: [x], env: {K: \"${{ hashFiles('x') }}\"}}\n", nil,
			`stages[0].jobs[0].env["K"]`, "hashFiles cannot be used on the server", 5},
		{"expression in a command", "name: p\nstages:\n  - name: s\n    jobs:\n      - {name: a, commands: [\"echo ${{ env.X }}\"]}\n", nil,
			"stages[0].jobs[0].commands[0]", "may read matrix values only", 5},
		{"cache path outside", "name: p\nstages:\n  - name: s\n    jobs:\n      - name: a\n        commands: [x]\n        cache: {key: k, paths: [../up]}\n", nil,
			"stages[0].jobs[0].cache.paths[0]", "inside the job workspace", 7},
		{"cache key reads jobs", "name: p\nstages:\n  - name: s\n    jobs:\n      - name: a\n        commands: [x]\n        cache: {key: \"${{ jobs.b.outputs.c }}\", paths: [x]}\n", nil,
			"stages[0].jobs[0].cache.key", "cannot be read on the agent", 7},
		{"needs_artifacts of a job that keeps none", "name: p\nstages:\n  - name: a\n    jobs: [{name: a, commands: [x]}]\n  - name: b\n    jobs: [{name: b, commands: [x], needs_artifacts: [a]}]\n", nil,
			"stages[1].jobs[0].needs_artifacts[0]", "keeps no artifacts", 6},
		{"approval with commands", "name: p\nstages:\n  - name: s\n    jobs:\n      - {name: ok, type: approval, commands: [x]}\n", nil,
			"stages[0].jobs[0].type", "runs nothing", 5},
		{"matrix exclude of no axis", "name: p\nstages:\n  - name: s\n    jobs:\n      - name: m\n        commands: [x]\n        matrix: {os: [a], exclude: [{arch: x}]}\n", nil,
			"stages[0].jobs[0].matrix.exclude[0]", `"arch" is not an axis`, 7},
		{"matrix job as a whole in an expression", `name: p
stages:
  - name: s
    jobs:
      - {name: b, commands: [x], outputs: [o], matrix: {os: [a, b]}}
      - {name: u, commands: [x], depends_on: [b], if: "jobs.b.outputs.o"}
`, nil, "stages[0].jobs[1].if", "is a matrix of 2 jobs", 6},
		{"depends_on a combination's unknown", "name: p\nstages:\n  - name: s\n    jobs:\n      - {name: b, commands: [x], matrix: {os: [a]}}\n      - {name: u, commands: [x], depends_on: [nope]}\n", nil,
			"stages[0].jobs[1].depends_on[0]", `unknown job "nope"`, 6},
		{"concurrency group reads jobs", "name: p\nconcurrency: {group: \"${{ jobs.a.status }}\"}\nstages: [{name: s, jobs: [{name: a, commands: [x]}]}]\n", nil,
			"concurrency.group", "cannot be read here", 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseYAML([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			p.IncludeFiles = tc.files
			_, err = Validate(p)
			err = IndexLines([]byte(tc.yaml)).Annotate(err, nil)
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want an *Error", err)
			}
			if pe.Field != tc.field || !strings.Contains(pe.Reason, tc.msg) {
				t.Fatalf("err = %v, want field %s and %q", err, tc.field, tc.msg)
			}
			if tc.line > 0 && pe.Line != tc.line {
				t.Fatalf("err = %v, want line %d", err, tc.line)
			}
		})
	}
}

func TestApprovalJob(t *testing.T) {
	plan := planOf(t, `
name: deploy
stages:
  - name: gate
    jobs: [{name: approve, type: approval, timeout: 1h}]
  - name: go
    jobs: [{name: deploy, commands: [x]}]
`, nil)
	if plan.Node("approve").Job.GetType() != jobv1.JobType_JOB_TYPE_APPROVAL {
		t.Fatal("type not parsed")
	}
}

// FuzzExpand holds expansion to: no panics, errors that name a field (or a
// limit), and a result that expands to itself.
func FuzzExpand(f *testing.F) {
	f.Add([]byte("name: m\ntemplates: {t: {image: x, env: {A: b}}}\nstages: [{name: s, jobs: [{name: b, extends: t, commands: [x], matrix: {os: [a, b], go: ['1', '2'], exclude: [{os: a}], include: [{os: c, go: '3'}]}}, {name: c, commands: [y], depends_on: [b]}]}]"))
	f.Add([]byte("name: i\ninclude: [a.yaml]\nstages: [{name: s, jobs: [{name: a, commands: [x]}]}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseYAML(data)
		if err != nil {
			return
		}
		p.IncludeFiles = map[string]string{"a.yaml": string(data)}
		exp, err := Expand(p, nil, 200)
		if err != nil {
			var pe *Error
			var le *LimitError
			if !errors.As(err, &pe) && !errors.As(err, &le) {
				t.Fatalf("error of another type: %T %v", err, err)
			}
			return
		}
		if !IsExpanded(exp.Pipeline) {
			t.Fatal("something left to expand")
		}
		again, err := Expand(exp.Pipeline, nil, 200)
		if err != nil || again.Pipeline != exp.Pipeline {
			t.Fatalf("expanding an expanded pipeline: %v", err)
		}
		if _, err := Validate(exp.Pipeline); err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.Field == "" {
				t.Fatalf("validation error without a field: %v", err)
			}
		}
	})
}

// locatedFiles are files read from somewhere a missing one is named by.
type locatedFiles struct{ MapFiles }

func (locatedFiles) Where() string { return "in file:///r.git at 0123456789ab" }

// A missing include read through Located files is named with where they
// are read from; read from sent files, the message says how to send them.
func TestIncludeMissingNamesWhere(t *testing.T) {
	p, err := ParseYAML([]byte("name: p\ninclude: [ci/a.yaml]\nstages: [{name: s, jobs: [{name: j, commands: [x]}]}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = DefaultLimits.ValidateFiles(t.Context(), p, locatedFiles{MapFiles{}})
	if err == nil || !strings.Contains(err.Error(), "no such file ci/a.yaml in file:///r.git at 0123456789ab") {
		t.Fatalf("located: %v", err)
	}
	_, err = DefaultLimits.ValidateFiles(t.Context(), p, nil)
	if err == nil || !strings.Contains(err.Error(), "included files are sent with the pipeline") {
		t.Fatalf("sent files: %v", err)
	}
}

// A run's snapshot with no stages (it failed before it had a definition)
// plans to no job; one with stages still fails without them.
func TestReplanNoStages(t *testing.T) {
	plan, err := Replan(t.Context(), &jobv1.PipelineDetail{Name: "p"})
	if err != nil || len(plan.Nodes) != 0 || plan.Spec.GetName() != "p" {
		t.Fatalf("no stages: %v %v", plan, err)
	}
	if _, err := Replan(t.Context(), &jobv1.PipelineDetail{Name: "p", Include: []string{"a.yaml"}}); err == nil {
		t.Fatal("an include to read planned")
	}
}
