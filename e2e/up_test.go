package e2e

import (
	"bytes"
	"net"
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

// TestUpOnABusyPort: a second arcade up on the same machine finds the
// shipped ports taken and says what to do, naming the flag, instead of
// gRPC's bind error alone.
func TestUpOnABusyPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, c := range []struct{ flag, other string }{{"--listen", "--http-listen"}, {"--http-listen", "--listen"}} {
		dir := t.TempDir()
		cmd := exec.Command(arcadeBin, "up", c.flag, busy.Addr().String(), c.other, freeAddr(t),
			"--data-dir", filepath.Join(dir, "data"), "--work-dir", filepath.Join(dir, "work"),
			"--config", os.DevNull, "--plugins-config", os.DevNull, "--log-format", "text")
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("arcade up %s on a busy port: no error\n%s", c.flag, out)
		}
		last := strings.TrimSpace(string(out))
		last = last[strings.LastIndex(last, "\n")+1:]
		if !strings.Contains(last, busy.Addr().String()+" is in use") || !strings.Contains(last, c.flag) {
			t.Errorf("arcade up %s on a busy port says:\n%s", c.flag, last)
		}
	}
}
