package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// commandPaths lists every command of the tree, as arguments.
func commandPaths(c *cobra.Command, prefix []string) [][]string {
	var out [][]string
	for _, sub := range c.Commands() {
		if sub.Hidden || sub.Name() == "help" || sub.Name() == "completion" {
			continue
		}
		path := append(append([]string{}, prefix...), sub.Name())
		out = append(out, path)
		out = append(out, commandPaths(sub, path)...)
	}
	return out
}

// helpOf runs `arcade ARGS --help` in process.
func helpOf(t *testing.T, args ...string) string {
	t.Helper()
	root := newRoot()
	var b bytes.Buffer
	root.SetOut(&b)
	root.SetErr(&b)
	root.SetArgs(append(args, "--help"))
	if err := root.Execute(); err != nil {
		t.Fatalf("arcade %s --help: %v", strings.Join(args, " "), err)
	}
	return b.String()
}

// No command's help prints a token, whether it comes from the environment
// or from the configuration files the help reads for its defaults.
func TestHelpNeverPrintsTokens(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "conf.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"server.yaml": "api_token: file-api-secret\nagent_token: file-agent-secret\nsecret_key: file-sealing-secret\napi_tokens: [{token: file-scoped-secret, scope: read}]\n",
		"agent.yaml":  "agent_token: file-agent-secret-2\nmax_jobs: 3\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, "conf.d", name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	t.Setenv("ARCADE_API_TOKEN", "env-api-secret")
	t.Setenv("ARCADE_AGENT_TOKEN", "env-agent-secret")
	t.Setenv("ARCADE_SECRET_KEY", "env-sealing-secret")
	paths := append([][]string{{}}, commandPaths(newRoot(), nil)...)
	if len(paths) < 30 {
		t.Fatalf("only %d commands found", len(paths))
	}
	secret := regexp.MustCompile(`(file|env)-[a-z-]*secret`)
	for _, p := range paths {
		if out := helpOf(t, p...); secret.MatchString(out) {
			t.Errorf("arcade %s --help prints a secret: %s", strings.Join(p, " "), secret.FindString(out))
		}
	}
}

// Help shows the defaults a run would use: the shipped agent.yaml's
// max_jobs, not the built-in 1.
func TestHelpShowsEffectiveDefaults(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "conf.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"server.yaml", "agent.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "conf.d", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "conf.d", name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	maxJobs := regexp.MustCompile(`--max-jobs int\s+jobs run at once \[default from conf\.d/agent\.yaml\] \(default 2\)`)
	for _, cmd := range [][]string{{"agent"}, {"up"}} {
		if out := helpOf(t, cmd...); !maxJobs.MatchString(out) {
			t.Errorf("arcade %s --help does not show max-jobs 2 from conf.d/agent.yaml:\n%s", cmd[0], out)
		}
	}
	t.Setenv("ARCADE_MAX_JOBS", "7")
	if out := helpOf(t, "agent"); !strings.Contains(out, "[default from ARCADE_MAX_JOBS] (default 7)") {
		t.Errorf("arcade agent --help with ARCADE_MAX_JOBS=7:\n%s", out)
	}
	if out := helpOf(t, "server"); !strings.Contains(out, `[default from conf.d/server.yaml] (default "fs-store")`) {
		t.Errorf("arcade server --help does not show the shipped artifact_store:\n%s", out)
	}
}
