package e2e

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestClientCommands drives the job and agent commands of the CLI against a
// real server and agent, as a person at a terminal would.
func TestClientCommands(t *testing.T) {
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db")
	c.startAgent("cli-agent", 1, "env=staging")
	run := func(wantOK bool, args ...string) string {
		t.Helper()
		cmd := exec.Command(arcadeBin, args...)
		cmd.Env = append(os.Environ(), "ARCADE_SERVER="+c.addr, "ARCADE_API_TOKEN="+apiToken)
		out, err := cmd.CombinedOutput()
		if (err == nil) != wantOK {
			t.Fatalf("arcade %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	out := run(true, "job", "create", "--name", "greet", "--selector", "env in (staging,production)",
		"--env", "WHO=world", "--cmd", `echo "hello $WHO"`, "--cmd", "echo oops >&2", "--follow")
	if !strings.Contains(out, "hello world") || !strings.Contains(out, "stderr| oops") || !strings.Contains(out, "SUCCESS") {
		t.Errorf("job create --follow:\n%s", out)
	}
	id := regexp.MustCompile(`job (\S+) \(greet\) created`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("no job id in:\n%s", out)
	}
	if out := run(true, "job", "get", id[1]); !strings.Contains(out, "SUCCESS") || !strings.Contains(out, "cli-agent") {
		t.Errorf("job get:\n%s", out)
	}
	if out := run(true, "job", "logs", id[1]); !strings.Contains(out, "hello world") {
		t.Errorf("job logs:\n%s", out)
	}
	if out := run(true, "job", "list", "--status", "success"); !strings.Contains(out, id[1]) {
		t.Errorf("job list:\n%s", out)
	}
	// A failing job: --follow exits non-zero with the job's outcome.
	out = run(false, "job", "create", "--name", "breaks", "--cmd", "exit 4", "--follow")
	if !strings.Contains(out, "FAILED") || !strings.Contains(out, "exit status 4") {
		t.Errorf("failing job:\n%s", out)
	}
	fid := regexp.MustCompile(`job (\S+) \(breaks\) created`).FindStringSubmatch(out)
	if out := run(true, "job", "retry", fid[1]); !strings.Contains(out, "PENDING") && !strings.Contains(out, "RUNNING") {
		t.Errorf("job retry:\n%s", out)
	}
	if out := run(true, "agent", "list"); !strings.Contains(out, "cli-agent") || !strings.Contains(out, "env=staging") {
		t.Errorf("agent list:\n%s", out)
	}
	if out := run(false, "job", "create", "--selector", "cpu>many", "--cmd", "true"); !strings.Contains(out, "InvalidArgument") || !strings.Contains(out, "selector") {
		t.Errorf("bad selector:\n%s", out)
	}
	if out := run(false, "job", "get", "missing"); !strings.Contains(out, "NotFound") {
		t.Errorf("job get missing:\n%s", out)
	}
}
