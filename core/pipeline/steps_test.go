package pipeline

import (
	"errors"
	"testing"
	"time"
)

func TestParseSteps(t *testing.T) {
	p, err := ParseYAML([]byte(`
name: steps
stages:
  - name: build
    jobs:
      - name: mixed
        steps:
          - run: echo hello > greeting.txt
          - name: lint
            uses: go-lint@1.0.0
            with: {dir: /workspace/src, strict: true}
            function: lint
            timeout: 20s
          - commands: [go vet ./..., go test ./...]
      - name: scan
        uses: secret-scan
        with: {fail_on: high}
`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Validate(p); err != nil {
		t.Fatal(err)
	}
	jobs := p.GetStages()[0].GetJobs()
	steps := Steps(jobs[0])
	if len(steps) != 3 {
		t.Fatalf("steps: %v", steps)
	}
	if got := steps[0].GetCommands(); len(got) != 1 || got[0] != "echo hello > greeting.txt" {
		t.Errorf("run step: %v", got)
	}
	lint := steps[1]
	if lint.GetName() != "lint" || lint.GetUses() != "go-lint@1.0.0" || lint.GetFunction() != "lint" ||
		lint.GetWith()["strict"] != "true" || lint.GetWith()["dir"] != "/workspace/src" || lint.GetTimeout().AsDuration() != 20*time.Second {
		t.Errorf("plugin step: %v", lint)
	}
	if len(steps[2].GetCommands()) != 2 {
		t.Errorf("commands step: %v", steps[2])
	}
	// The short form is one plugin step.
	short := Steps(jobs[1])
	if len(short) != 1 || short[0].GetUses() != "secret-scan" || short[0].GetWith()["fail_on"] != "high" {
		t.Errorf("uses job: %v", short)
	}
}

func TestStepErrors(t *testing.T) {
	cases := []struct{ name, job, field string }{
		{"unknown key", "steps: [{run: x, shell: bash}]", "yaml"},
		{"run and commands", "steps: [{run: x, commands: [y]}]", "stages[0].jobs[0].steps[0]"},
		{"bad timeout", "steps: [{run: x, timeout: soon}]", "stages[0].jobs[0].steps[0].timeout"},
		{"empty step", "steps: [{name: nothing}]", "stages[0].jobs[0].steps[0].commands"},
		{"both", "steps: [{run: x, uses: go-lint}]", "stages[0].jobs[0].steps[0]"},
		{"with without uses", "steps: [{run: x, with: {a: b}}]", "stages[0].jobs[0].steps[0].with"},
		{"function without uses", "steps: [{run: x, function: lint}]", "stages[0].jobs[0].steps[0].function"},
		{"bad uses", "steps: [{run: x}, {uses: 'go lint'}]", "stages[0].jobs[0].steps[1].uses"},
		{"empty version", "steps: [{uses: go-lint@}]", "stages[0].jobs[0].steps[0].uses"},
		{"duplicate names", "steps: [{name: a, run: x}, {name: a, run: y}]", "stages[0].jobs[0].steps[1].name"},
		{"steps and commands", "commands: [x]\n        steps: [{run: y}]", "stages[0].jobs[0].steps"},
		{"steps and uses", "uses: go-lint\n        steps: [{run: y}]", "stages[0].jobs[0].steps"},
		{"bad short uses", "uses: '@1.0'", "stages[0].jobs[0].uses"},
		{"negative timeout", "steps: [{run: x, timeout: -1s}]", "stages[0].jobs[0].steps[0].timeout"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := "name: p\nstages:\n  - name: s\n    jobs:\n      - name: j\n        " + c.job + "\n"
			p, err := ParseYAML([]byte(src))
			if err == nil {
				_, err = Validate(p)
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.Field != c.field {
				t.Fatalf("got %v, want an error on %s", err, c.field)
			}
		})
	}
}
