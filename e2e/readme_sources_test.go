package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/internal/gittest"
)

// readmeYAML returns the first ```yaml block after heading in the README.
func readmeYAML(t *testing.T, heading string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(raw), "\n"+heading+"\n")
	_, rest, ok2 := strings.Cut(rest, "```yaml\n")
	block, _, ok3 := strings.Cut(rest, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatalf("no yaml block after %q", heading)
	}
	return block
}

// TestReadmeSourcesCommands creates the README's pipeline with a source
// (its URL pointed at a private repository served here, its stages from
// the repository's .arcade.yaml as it says) and runs the README's commands
// as written: the credential from stdin, a run of a tag, and arcade run in
// a working clone; then the examples of arcade run --help.
func TestReadmeSourcesCommands(t *testing.T) {
	const heading = "### Sources: repositories, forge webhooks, commit statuses, local runs"
	const token = "readme-token-5e1f"
	remote := gittest.New(t)
	repo := remote.Repo("app")
	repo.Commit(map[string]string{".arcade.yaml": "stages: [{name: s, jobs: [{name: show, commands: [\"git rev-parse HEAD\", \"cat version.txt\"]}]}]\n",
		"version.txt": "version one\n"}, "one")
	repo.Tag("v1.2.0", "release")
	tagged := repo.Head()
	repo.Commit(map[string]string{"version.txt": "version two\n"}, "two")
	os.WriteFile(filepath.Join(repo.Work, "version.txt"), []byte("version three, on disk only\n"), 0o644)
	h := remote.ServeHTTP("ci", token)
	h.Private("app")

	c, dir := shellCluster(t)
	c.startAgentWith("git-agent", 1, []string{"--data-dir", t.TempDir()})
	lines := readmeBlock(t, heading)
	if len(lines) != 3 || !strings.Contains(lines[0], "secret set APP_GIT") || !strings.Contains(lines[2], "arcade run") {
		t.Fatalf("the README's sources commands changed; update this test:\n%s", strings.Join(lines, "\n"))
	}
	run := func(line, in, wd string) string {
		t.Helper()
		line = strings.ReplaceAll(line, "bin/arcade ", arcadeBin+" ")
		if strings.HasPrefix(line, "arcade ") {
			line = arcadeBin + strings.TrimPrefix(line, "arcade")
		}
		cmd := exec.Command("sh", "-c", line)
		cmd.Dir = wd
		cmd.Stdin = strings.NewReader(in)
		cmd.Env = append(os.Environ(), "ARCADE_SERVER="+c.addr, "ARCADE_API_TOKEN="+apiToken, "ARCADE_CONTAINER_RUNTIME=none")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", line, err, out)
		}
		return string(out)
	}
	run(lines[0], "ci:"+token+"\n", dir)

	yaml := readmeYAML(t, heading)
	yaml = strings.Replace(yaml, "https://git.example.com/acme/app.git", h.RepoURL("app"), 1)
	var kept []string
	for _, l := range strings.Split(yaml, "\n") {
		// No forge-status plugin on this server; the stages come from the
		// repository (the definition line).
		if !strings.Contains(l, "status_plugin:") && !strings.HasPrefix(l, "stages:") {
			kept = append(kept, l)
		}
	}
	if _, err := c.jobs.CreatePipeline(context.Background(), &jobv1.CreatePipelineRequest{Yaml: strings.Join(kept, "\n")}); err != nil {
		t.Fatalf("the README's pipeline: %v\n%s", err, strings.Join(kept, "\n"))
	}
	if out := run(lines[1], "", dir); !strings.Contains(out, tagged) || !strings.Contains(out, "SUCCESS") {
		t.Fatalf("%s:\n%s", lines[1], out)
	}
	r := c.runs("app")[0]
	if log := logText(c.logOf(jobsByName(c.run(r.GetId()))["show"].GetId(), 0)); !strings.Contains(log, "version one") || !strings.Contains(log, tagged) {
		t.Fatalf("the tag's run did not build the tag:\n%s", log)
	}
	if out := run(lines[2], "", repo.Work); !strings.Contains(out, "version three, on disk only") || !strings.Contains(out, "SUCCESS") {
		t.Fatalf("%s:\n%s", lines[2], out)
	}
	// The examples of arcade run --help, in the same working clone.
	os.MkdirAll(filepath.Join(repo.Work, "ci"), 0o755)
	os.WriteFile(filepath.Join(repo.Work, "ci", "build.arcade.yaml"), []byte("stages: [{name: s, jobs: [{name: build, commands: [\"cat version.txt\"]}]}]\n"), 0o644)
	for _, line := range helpExamples(t, "run") {
		if out := run(line, "", repo.Work); !strings.Contains(out, "version three, on disk only") || !strings.Contains(out, "SUCCESS") {
			t.Fatalf("%s:\n%s", line, out)
		}
	}
}
