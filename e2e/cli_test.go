package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
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
	if out := run(false, "job", "create", "--selector", "cpu>many", "--cmd", "true"); !strings.HasPrefix(out, "arcade: selector") || strings.Contains(out, "rpc error") {
		t.Errorf("bad selector:\n%s", out)
	}
	if out := run(false, "job", "get", "missing"); !strings.Contains(out, "job missing not found") || strings.Contains(out, "rpc error") {
		t.Errorf("job get missing:\n%s", out)
	}
}

// TestCLIFirstHour holds what a new user met in the first hour with the CLI:
// errors in plain sentences, unknown commands named, the wrong port or a
// URL as --server, ids by unique prefix, pages, the job's state after a
// cancel, why a followed job waits, the selector in its text form, one job
// as JSON, and logs whose colours stay and other escapes go.
func TestCLIFirstHour(t *testing.T) {
	httpAddr := freeAddr(t)
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db", "--http-listen", httpAddr)
	c.startAgent("first-hour", 2, "env=dev")
	cli := func(wantOK bool, args ...string) string {
		t.Helper()
		out, err := c.cli(args...)
		if (err == nil) != wantOK {
			t.Fatalf("arcade %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}

	// A job no agent matches: --follow says why after a few seconds and
	// keeps waiting (the test cancels the job from outside).
	cmd := exec.Command(arcadeBin, "job", "create", "--name", "needs-gpu", "--selector", "gpu", "--cmd", "true", "--follow")
	cmd.Env = append(os.Environ(), "ARCADE_SERVER="+c.addr, "ARCADE_API_TOKEN="+apiToken)
	var follow lockedBuffer
	cmd.Stdout, cmd.Stderr = &follow, &follow
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.waitFor("the why summary", func() bool { return strings.Contains(follow.String(), "still waits:") })
	waiting := regexp.MustCompile(`job (\S+) \(needs-gpu\) created`).FindStringSubmatch(follow.String())
	if waiting == nil || !strings.Contains(follow.String(), "gpu") {
		t.Fatalf("job create --follow of a job no agent matches:\n%s", follow.String())
	}
	if cmd.ProcessState != nil {
		t.Fatal("the follower stopped waiting")
	}
	// The selector in its text form.
	if out := cli(true, "job", "get", waiting[1]); !regexp.MustCompile(`(?m)^Selector:\s+gpu$`).MatchString(out) {
		t.Errorf("job get shows the selector as:\n%s", out)
	}
	// Cancelling a pending job prints it cancelled; the follower ends.
	if out := cli(true, "job", "cancel", waiting[1]); !strings.Contains(out, "CANCELLED") {
		t.Errorf("job cancel of a pending job:\n%s", out)
	}
	cmd.Wait()

	// Cancelling a running job prints the state after the cancel, not
	// RUNNING.
	sleeper := c.create(&jobv1.CreateJobRequest{Name: "sleeper", Commands: []string{"sleep 60"}})
	c.waitStatus(sleeper.GetId(), running)
	if out := cli(true, "job", "cancel", sleeper.GetId()); !strings.Contains(out, "CANCELLED") || strings.Contains(out, "RUNNING") {
		t.Errorf("job cancel of a running job:\n%s", out)
	}
	// Cancelling it again: one plain sentence, not gRPC's text twice.
	out := cli(false, "job", "cancel", sleeper.GetId())
	if !strings.Contains(out, "already ended") || strings.Contains(out, "rpc error") || strings.Count(out, sleeper.GetId()) != 1 {
		t.Errorf("cancel of an ended job:\n%s", out)
	}

	// Ids by unique prefix, looked up by the server.
	jobs := make([]*jobv1.JobDetail, 3)
	for i := range jobs {
		jobs[i] = c.create(&jobv1.CreateJobRequest{Name: fmt.Sprintf("p%d", i), Commands: []string{`printf '\033[31mred\033[0m \033]0;title\007\033[2Jplain\n'`}})
		c.waitStatus(jobs[i].GetId(), success)
	}
	// The shortest prefix of the last job that no other id of the test
	// starts with.
	all := append([]*jobv1.JobDetail{sleeper}, jobs...)
	id := jobs[2].GetId()
	short := ""
	for n := 4; n <= len(id); n++ {
		unique := true
		for _, j := range all[:len(all)-1] {
			if strings.HasPrefix(j.GetId(), id[:n]) {
				unique = false
			}
		}
		if unique {
			short = id[:n]
			break
		}
	}
	// What the first and the last of them start with (time-ordered ids
	// share a long prefix): several ids start with it.
	common := ""
	for n := range len(id) {
		if jobs[0].GetId()[n] != id[n] {
			common = id[:n]
			break
		}
	}
	if out := cli(true, "job", "get", short); !strings.Contains(out, id) {
		t.Errorf("job get %s (a unique prefix):\n%s", short, out)
	}
	if out := cli(true, "job", "logs", short); !strings.Contains(out, "\x1b[31mred\x1b[0m plain") || strings.Contains(out, "\x1b]") || strings.Contains(out, "\x1b[2J") {
		t.Errorf("job logs keeps colours only: %q", out)
	}
	if out := cli(false, "job", "get", common); !strings.Contains(out, "is the start of several job ids") || !strings.Contains(out, jobs[0].GetId()) {
		t.Errorf("job get %s (ambiguous):\n%s", common, out)
	}
	if out := cli(false, "job", "get", "ffffffff"); !strings.Contains(out, "no job has an id starting with ffffffff") {
		t.Errorf("job get of a prefix nothing has:\n%s", out)
	}
	// Runs and agents by prefix too.
	agentID := c.agent("first-hour").GetId()
	if out := cli(true, "job", "list", "--page-size", "100"); !strings.Contains(out, id) {
		t.Errorf("job list:\n%s", out)
	}
	if _, err := c.agentsC.GetAgent(context.Background(), &agentv1.GetAgentRequest{AgentId: agentID[:len(agentID)-4]}); err != nil {
		t.Errorf("GetAgent by prefix: %v", err)
	}

	// Pages: the next page's token is printed, and --page-token shows it.
	out = cli(true, "job", "list", "--page-size", "2")
	next := regexp.MustCompile(`--page-token (\S+)`).FindStringSubmatch(out)
	if next == nil || !strings.Contains(out, "2 of 5 jobs shown") {
		t.Fatalf("job list --page-size 2:\n%s", out)
	}
	page2 := cli(true, "job", "list", "--page-size", "2", "--page-token", next[1])
	for _, j := range all {
		if strings.Contains(out, j.GetId()) && strings.Contains(page2, j.GetId()) {
			t.Errorf("job %s on pages 1 and 2", j.GetId())
		}
	}
	if strings.Count(page2, "\n") < 3 {
		t.Errorf("page 2:\n%s", page2)
	}

	// One job as JSON, alone.
	out = cli(true, "job", "create", "--cmd", "true", "-o", "json")
	var created map[string]any
	if err := json.Unmarshal([]byte(out), &created); err != nil || created["id"] == nil || created["jobs"] != nil {
		t.Errorf("job create -o json: %v\n%s", err, out)
	}

	// A run is RUNNING while its job runs (arcade watch shows it), and
	// lasts at least as long as its job.
	if _, err := c.jobs.CreatePipeline(context.Background(), &jobv1.CreatePipelineRequest{Yaml: "name: slow\nstages: [{name: s, jobs: [{name: nap, commands: [sleep 2]}]}]\n"}); err != nil {
		t.Fatal(err)
	}
	tr, err := c.jobs.TriggerPipeline(context.Background(), &jobv1.TriggerPipelineRequest{PipelineId: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	runID := tr.GetRun().GetId()
	if out := cliUntil(t, c, "RUNNING", "watch", runID[:len(runID)-2]); !strings.Contains(out, "slow run #1  RUNNING") {
		t.Errorf("arcade watch of a run whose job runs:\n%s", out)
	}
	ended := c.waitRun(runID)
	if d := ended.GetFinishedAt().AsTime().Sub(ended.GetStartedAt().AsTime()); d < 2*time.Second || ended.GetStartedAt().AsTime().Before(ended.GetCreatedAt().AsTime()) {
		t.Errorf("the run lasted %v (its job slept 2s): created %v started %v", d, ended.GetCreatedAt().AsTime(), ended.GetStartedAt().AsTime())
	}
	if out := cli(true, "pipeline", "runs", "slow"); !regexp.MustCompile(`QUEUED\s+DURATION`).MatchString(out) {
		t.Errorf("pipeline runs shows no queue time:\n%s", out)
	}

	// Unknown commands are named as such.
	if out := cli(false, "job", "creat", "--cmd", "true"); !strings.Contains(out, `unknown command "creat" for "arcade job"`) || !strings.Contains(out, "create") {
		t.Errorf("job creat:\n%s", out)
	}
	// The dashboard's port, a URL, a port where nothing listens.
	if out := cli(false, "job", "list", "--server", httpAddr); !strings.Contains(out, "is the dashboard's HTTP port") || !strings.Contains(out, "--server "+c.addr) {
		t.Errorf("--server on the HTTP port:\n%s", out)
	}
	if out := cli(true, "job", "list", "--server", "http://"+c.addr); !strings.Contains(out, id) {
		t.Errorf("--server http://…:\n%s", out)
	}
	if out := cli(false, "job", "list", "--server", freeAddr(t)); !strings.Contains(out, "nothing listens there") {
		t.Errorf("--server where nothing listens:\n%s", out)
	}
}
