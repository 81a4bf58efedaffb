package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
)

// readmeBlock returns the lines of the first ```sh block after heading in
// the README.
func readmeBlock(t *testing.T, heading string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(raw), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README has no heading %q", heading)
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatalf("no sh block after %q", heading)
	}
	var lines []string
	for _, l := range strings.Split(block, "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// helpExamples returns the example lines of a command's --help.
func helpExamples(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command(arcadeBin, append(args, "--help")...).Output()
	if err != nil {
		t.Fatalf("arcade %s --help: %v", strings.Join(args, " "), err)
	}
	_, ex, ok := strings.Cut(string(out), "Examples:\n")
	if !ok {
		t.Fatalf("arcade %s --help has no examples", strings.Join(args, " "))
	}
	ex, _, _ = strings.Cut(ex, "\n\n")
	var lines []string
	for _, l := range strings.Split(ex, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// shellCluster is a server whose data directory is DIR/data and whose
// database is SQLite in it (the README's defaults), with a pipeline named
// deploy and the file registry.pass in DIR.
func shellCluster(t *testing.T) (*cluster, string) {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	c := &cluster{t: t, dsn: "sqlite://" + filepath.Join(data, "arcade.db"), dataDir: data, addr: freeAddr(t), agents: map[string]*proc{}}
	c.startServer()
	c.conn = c.dialAPI()
	c.jobs = jobv1.NewJobServiceClient(c.conn)
	c.agentsC = agentv1.NewAgentServiceClient(c.conn)
	if _, err := c.jobs.CreatePipeline(context.Background(), &jobv1.CreatePipelineRequest{
		Yaml: "name: deploy\nstages: [{name: s, jobs: [{name: ship, commands: [true]}]}]"}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "registry.pass"), []byte(randomValue("registry")), 0o600); err != nil {
		t.Fatal(err)
	}
	return c, dir
}

// sh runs a documented command line in dir, the arcade binary standing for
// "bin/arcade" and "arcade".
func (c *cluster) sh(t *testing.T, dir, line string) string {
	t.Helper()
	line = strings.ReplaceAll(line, "bin/arcade ", arcadeBin+" ")
	if strings.HasPrefix(line, "arcade ") || strings.Contains(line, "| arcade ") {
		line = strings.ReplaceAll(" "+line, " arcade ", " "+arcadeBin+" ")
	}
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "ARCADE_SERVER="+c.addr, "ARCADE_API_TOKEN="+apiToken, "DEPLOY_TOKEN="+randomValue("deploy"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
	return string(out)
}

// TestReadmeIdentityCommands runs the README's secrets, tokens, audit and
// trust commands as written, then the examples of those commands' --help.
func TestReadmeIdentityCommands(t *testing.T) {
	c, dir := shellCluster(t)
	c.startAgent("deploy-1", 1) // the agent the README labels
	var all strings.Builder
	for _, line := range readmeBlock(t, "### Secrets, tokens, audit and trust") {
		all.WriteString(c.sh(t, dir, line))
	}
	for _, want := range []string{"secret DEPLOY_TOKEN (global) set, version 1", "secret REGISTRY_PASSWORD (pipeline deploy) set",
		"arc_", "ci-reader", "token ci-reader revoked", "SecretService/CreateSecret", "trusted labels: pool=deploy", "agent deploy-1 labels:",
		"pipeline deploy: allowed on trusted agents for branches main", "re-sealed 2 value(s)", "secret REGISTRY_PASSWORD deleted"} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("the README's commands did not say %q:\n%s", want, all.String())
		}
	}

	c2, dir2 := shellCluster(t)
	c2.startAgent("deploy-1", 1)
	for _, cmd := range [][]string{{"secret", "set"}, {"token", "create"}, {"audit"}, {"server", "rekey"}, {"agent", "label"}} {
		for _, line := range helpExamples(t, cmd...) {
			c2.sh(t, dir2, line)
		}
	}
}
