package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUpRunsExampleJob runs the README's first command: arcade up with the
// example job, on embedded SQLite, and checks what a user sees.
func TestUpRunsExampleJob(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(arcadeBin, "up", "--run", filepath.Join("..", "examples", "jobs", "hello.yaml"),
		"--listen", freeAddr(t), "--http-listen", freeAddr(t), "--data-dir", filepath.Join(dir, "data"), "--work-dir", filepath.Join(dir, "work"),
		"--config", os.DevNull, "--log-format", "text")
	// No tokens in the environment: up generates them.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ARCADE_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("arcade up: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"hello from ", "step 3", "stderr| this line goes to stderr", "$ echo"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(stderr.String(), "SUCCESS") {
		t.Errorf("stderr does not report SUCCESS:\n%s", stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "arcade.db")); err != nil {
		t.Errorf("no SQLite database in the data dir: %v", err)
	}
}

// TestUpRunsExamplePipeline runs the README's first command: arcade up with
// the example pipeline, logs prefixed by job, the run's table at the end;
// like arcade run (its alias for pipelines), it builds the working tree.
func TestUpRunsExamplePipeline(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(arcadeBin, "up", "--run", filepath.Join("..", "examples", "pipelines", "build-test-deploy.arcade.yaml"),
		"--listen", freeAddr(t), "--http-listen", freeAddr(t), "--data-dir", filepath.Join(dir, "data"), "--work-dir", filepath.Join(dir, "work"),
		"--config", os.DevNull, "--plugins-config", os.DevNull, "--log-format", "text")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("arcade up: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"compile        | hello from compile (run 1", "deploy         | deploying",
		"build-test-deploy run #1  SUCCESS", "notify-failure  SKIPPED"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// As arcade run does, it builds the working tree (this repository's).
	if !strings.Contains(stderr.String(), "building the working tree") {
		t.Errorf("arcade up --run of a pipeline built no working tree:\n%s", stderr.String())
	}
}
