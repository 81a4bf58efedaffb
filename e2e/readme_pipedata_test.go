package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReadmePipelineData runs the README's commands for pipelines that
// carry work as written, from the repository's root (RUN_ID standing for
// the run the trigger line started), then the examples of the --help of
// pipeline lint, approve and reject.
func TestReadmePipelineData(t *testing.T) {
	c := storeCluster(t, "sqlite://"+filepath.Join(t.TempDir(), "arcade.db"), t.TempDir())
	c.startAgent("readme-data", 4)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	runIDOf := func(out string) string {
		m := regexp.MustCompile(`(?m)^id (\S+),`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no run id in:\n%s", out)
		}
		return m[1]
	}
	waitGate := func(runID, job string) {
		c.waitFor(job+" to wait for a decision", func() bool {
			g := jobsByName(c.run(runID))[job]
			return g.GetId() != "" && g.GetHeld() != ""
		})
	}

	var all strings.Builder
	runID := ""
	for _, line := range readmeBlock(t, "#### Pipelines that carry work") {
		if strings.Contains(line, "RUN_ID") {
			waitGate(runID, "approve")
			line = strings.ReplaceAll(line, "RUN_ID", runID)
		}
		out := c.sh(t, root, line)
		all.WriteString(out)
		if strings.Contains(line, "pipeline trigger release") {
			runID = runIDOf(out)
		}
	}
	for _, want := range []string{"# release: 5 jobs in 2 stages, expanded", "name: build (darwin, arm64)", "group: production",
		"build (linux, amd64)", "approve: approved by api_token"} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("the README's commands did not say %q:\n%s", want, all.String())
		}
	}
	r := c.waitRun(runID)
	jobs := jobsByName(r)
	if r.GetStatus() != success {
		t.Fatalf("the README's run: %v %s", r.GetStatus(), r.GetMessage())
	}
	if log := jobLog(c, jobs["publish"].GetId()); !strings.Contains(log, "publishing 1.0.1: app for linux/amd64") {
		t.Errorf("publish's log:\n%s", log)
	}
	if _, ok := jobs["build (darwin, amd64)"]; ok || len(jobs) != 5 {
		t.Errorf("the run's jobs: %v", jobs)
	}

	// The --help examples: lint in a folder holding its two files, approve
	// and reject on the runs of a pipeline with a deploy-approval job.
	dir := t.TempDir()
	example, err := os.ReadFile(filepath.Join(root, "examples", "pipelines", "release.arcade.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile(filepath.Join(root, "examples", "pipelines", "templates", "go.arcade.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{".arcade.yaml": example, "templates/go.arcade.yaml": tmpl,
		"ci/pipeline.arcade.yaml": example, "ci/templates/go.arcade.yaml": tmpl} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, line := range helpExamples(t, "pipeline", "lint") {
		if out := c.sh(t, dir, line); !strings.Contains(out, "build (linux, arm64)") {
			t.Errorf("%s:\n%s", line, out)
		}
	}
	c.createPipeline("name: gates\nstages:\n  - {name: s, jobs: [{name: deploy-approval, type: approval}]}\n")
	for _, verb := range []string{"approve", "reject"} {
		runID := runIDOf(c.sh(t, dir, "arcade pipeline trigger gates"))
		waitGate(runID, "deploy-approval")
		for _, line := range helpExamples(t, "pipeline", verb) {
			out := c.sh(t, dir, strings.ReplaceAll(line, "RUN_ID", runID))
			if want := map[string]string{"approve": "approved", "reject": "rejected"}[verb]; !strings.Contains(out, "deploy-approval: "+want+" by api_token") {
				t.Errorf("%s:\n%s", line, out)
			}
		}
	}
}
