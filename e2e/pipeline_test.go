package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/server/trigger"
)

const skipped = agentv1.JobStatus_JOB_STATUS_SKIPPED

// newPipelineCluster is a cluster whose server also serves the webhook
// endpoint; it returns the endpoint's base URL.
func newPipelineCluster(t *testing.T, dsn string) (*cluster, string) {
	t.Helper()
	c := &cluster{t: t, dsn: dsn, dataDir: t.TempDir(), addr: freeAddr(t), agents: map[string]*proc{}}
	_, port, _ := net.SplitHostPort(freeAddr(t))
	c.server = start(t, "server", "server", "--listen", c.addr, "--db", c.dsn, "--data-dir", c.dataDir,
		"--heartbeat-interval", "300ms", "--max-poll-wait", "5s", "--config", os.DevNull,
		"--plugins-config", filepath.Join(c.dataDir, "no-plugins.yaml"), "--plugin-dirs", filepath.Join(c.dataDir, "no-plugins"),
		"--webhook-port", port)
	c.waitHealthy()
	c.conn = c.dialAPI()
	c.jobs = jobv1.NewJobServiceClient(c.conn)
	c.agentsC = agentv1.NewAgentServiceClient(c.conn)
	return c, "http://127.0.0.1:" + port
}

func (c *cluster) createPipeline(yaml string) *jobv1.PipelineDetail {
	c.t.Helper()
	resp, err := c.jobs.CreatePipeline(context.Background(), &jobv1.CreatePipelineRequest{Yaml: yaml})
	if err != nil {
		c.t.Fatalf("CreatePipeline: %v\n%s", err, yaml)
	}
	return resp.GetPipeline()
}

func (c *cluster) trigger(name string, params map[string]string) *jobv1.PipelineRun {
	c.t.Helper()
	resp, err := c.jobs.TriggerPipeline(context.Background(), &jobv1.TriggerPipelineRequest{PipelineId: name, Params: params})
	if err != nil {
		c.t.Fatalf("TriggerPipeline(%s): %v", name, err)
	}
	return resp.GetRun()
}

func (c *cluster) run(id string) *jobv1.PipelineRun {
	c.t.Helper()
	resp, err := c.jobs.GetPipelineRun(context.Background(), &jobv1.GetPipelineRunRequest{RunId: id})
	if err != nil {
		c.t.Fatalf("GetPipelineRun(%s): %v", id, err)
	}
	return resp.GetRun()
}

func (c *cluster) runs(pipeline string) []*jobv1.PipelineRun {
	c.t.Helper()
	resp, err := c.jobs.ListPipelineRuns(context.Background(), &jobv1.ListPipelineRunsRequest{PipelineId: pipeline, PageSize: 100})
	if err != nil {
		c.t.Fatalf("ListPipelineRuns(%s): %v", pipeline, err)
	}
	return resp.GetRuns()
}

// waitRun waits until a run ended and every one of its jobs is final.
func (c *cluster) waitRun(id string) *jobv1.PipelineRun {
	c.t.Helper()
	var r *jobv1.PipelineRun
	c.waitFor("run "+id+" to end", func() bool {
		r = c.run(id)
		switch r.GetStatus() {
		case success, failed, cancelled:
		default:
			return false
		}
		for _, j := range r.GetJobs() {
			switch j.GetStatus() {
			case pending, running:
				return false
			}
		}
		return true
	})
	return r
}

func jobsByName(r *jobv1.PipelineRun) map[string]*jobv1.JobDetail {
	m := map[string]*jobv1.JobDetail{}
	for _, j := range r.GetJobs() {
		m[j.GetName()] = j
	}
	return m
}

// rendezvous is a shell snippet that creates DIR/me and waits (up to 60 s)
// for DIR/other: two such jobs only succeed when they run at the same time.
func rendezvous(dir, me, other string) string {
	return fmt.Sprintf(`touch %[1]s/%[2]s; i=0; while [ ! -f %[1]s/%[3]s ]; do i=$((i+1)); [ $i -gt 1200 ] && exit 9; sleep 0.05; done`, dir, me, other)
}

func TestPipelines(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		c, hookURL := newPipelineCluster(t, dsn)
		t.Run("validation", func(t *testing.T) { pipelineValidation(t, c) })
		// Two agents of one slot each: jobs that overlap ran on both.
		parallelDone(
			func() { c.startAgent("pa", 1, "pool=pipe") },
			func() { c.startAgent("pb", 1, "pool=pipe") },
		)
		t.Run("fan-out and fan-in", func(t *testing.T) { pipelineFan(t, c) })
		t.Run("failure skips dependents, always cleans up", func(t *testing.T) { pipelineFailure(t, c) })
		t.Run("retry succeeds on attempt 2", func(t *testing.T) { pipelineRetry(t, c) })
		t.Run("stop", func(t *testing.T) { pipelineStop(t, c) })
		t.Run("webhook", func(t *testing.T) { pipelineWebhook(t, c, hookURL) })
		t.Run("statistics and pipeline-completed", func(t *testing.T) { pipelineStatistics(t, c) })
	})
}

func pipelineValidation(t *testing.T, c *cluster) {
	// Errors name the field and, for a file, its line.
	one := func(jobs string) string { return "name: bad\nstages:\n  - name: s\n    jobs:\n" + jobs }
	cases := []struct{ name, yaml, want string }{
		{"cycle", one("      - {name: a, commands: [x], depends_on: [b]}\n      - {name: b, commands: [x], depends_on: [a]}\n"),
			"stages[0].jobs[0].depends_on (line 5): cycle: a → b → a"},
		{"unknown depends_on", one("      - {name: a, commands: [x], depends_on: [ghost]}\n"),
			`stages[0].jobs[0].depends_on[0] (line 5): unknown job "ghost"`},
		{"duplicate job names", one("      - {name: a, commands: [x]}\n      - {name: a, commands: [y]}\n"),
			`stages[0].jobs[1].name (line 6): duplicate job name "a"`},
		{"bad selector", one("      - {name: a, commands: [x], selector: 'env in (a'}\n"),
			"stages[0].jobs[0].selector (line 5): bad selector"},
		{"negative timeout", one("      - {name: a, commands: [x], timeout: -1m}\n"),
			"stages[0].jobs[0].timeout (line 5): must not be negative"},
		{"unknown when", one("      - {name: a, commands: [x], when: maybe}\n"),
			`stages[0].jobs[0].when: unknown when "maybe"`},
		{"bad cron", "name: bad\ntriggers: [{type: cron, cron: 'every day'}]\nstages: [{name: s, jobs: [{name: a, commands: [x]}]}]",
			"triggers[0].cron: bad cron expression"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.jobs.CreatePipeline(context.Background(), &jobv1.CreatePipelineRequest{Yaml: tc.yaml})
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tc.want) {
				t.Fatalf("got %v, want InvalidArgument %q", err, tc.want)
			}
		})
	}
	// The message form is checked the same way.
	_, err := c.jobs.CreatePipeline(context.Background(), &jobv1.CreatePipelineRequest{Pipeline: &jobv1.PipelineDetail{
		Name: "bad", Stages: []*jobv1.Stage{{Name: "s", Jobs: []*jobv1.PipelineJob{{Name: "a", Commands: []string{"x"}, When: 7}}}}}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "stages[0].jobs[0].when") {
		t.Fatalf("message with an unknown when: %v", err)
	}
	resp, err := c.jobs.ListPipelines(context.Background(), &jobv1.ListPipelinesRequest{})
	if err != nil || len(resp.GetPipelines()) != 0 {
		t.Fatalf("bad pipelines were stored: %v %v", resp, err)
	}
}

func pipelineFan(t *testing.T, c *cluster) {
	dir := t.TempDir()
	c.createPipeline(fmt.Sprintf(`name: fan
env: {SEL: pipe}
stages:
  - name: one
    jobs:
      - {name: a, commands: ["echo a"], selector: "pool=pipe"}
  - name: two
    jobs:
      - {name: b1, depends_on: [a], commands: [%q]}
      - {name: b2, depends_on: [a], commands: [%q]}
      - {name: b3, depends_on: [a], commands: ["echo b3"]}
  - name: three
    jobs:
      - {name: c1, depends_on: [b1, b2], commands: ["echo c1"]}
      - {name: c2, depends_on: [b3], commands: ["echo c2"]}
      - {name: c3, commands: ["echo c3 after every earlier stage"]}
`, rendezvous(dir, "b1", "b2"), rendezvous(dir, "b2", "b1")))
	r := c.trigger("fan", nil)
	if r.GetNumber() != 1 || r.GetTrigger() != jobv1.TriggerType_TRIGGER_TYPE_MANUAL || r.GetTriggeredBy() == "" {
		t.Fatalf("run %v", r)
	}
	r = c.waitRun(r.GetId())
	if r.GetStatus() != success {
		t.Fatalf("run %v", r)
	}
	jobs := jobsByName(r)
	deps := map[string][]string{
		"b1": {"a"}, "b2": {"a"}, "b3": {"a"}, "c1": {"b1", "b2"}, "c2": {"b3"}, "c3": {"a", "b1", "b2", "b3"},
	}
	if len(jobs) != 7 {
		t.Fatalf("%d jobs", len(jobs))
	}
	for name, j := range jobs {
		if j.GetStatus() != success || j.GetAttempt() != 1 {
			t.Fatalf("job %s: %v attempt %d", name, j.GetStatus(), j.GetAttempt())
		}
		for _, d := range deps[name] {
			if j.GetStartedAt().AsTime().Before(jobs[d].GetFinishedAt().AsTime()) {
				t.Errorf("%s started at %s, before %s finished at %s", name, j.GetStartedAt().AsTime(), d, jobs[d].GetFinishedAt().AsTime())
			}
		}
	}
	// b1 and b2 wait for each other, so they ran at once: on both agents.
	if jobs["b1"].GetAgentName() == jobs["b2"].GetAgentName() {
		t.Errorf("b1 and b2 both ran on %s", jobs["b1"].GetAgentName())
	}
	all, err := c.jobs.ListJobs(context.Background(), &jobv1.ListJobsRequest{RunId: r.GetId()})
	if err != nil || all.GetTotalSize() != 7 {
		t.Fatalf("the run has %d job rows (%v), want each job once", all.GetTotalSize(), err)
	}
	// The CLI's one-screen view.
	cmd := exec.Command(arcadeBin, "pipeline", "runs", "fan", "1", "--server", c.addr, "--token", apiToken)
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("fan run #1  SUCCESS")) || !bytes.Contains(out, []byte("c3")) {
		t.Fatalf("arcade pipeline runs: %v\n%s", err, out)
	}
}

func pipelineFailure(t *testing.T, c *cluster) {
	c.createPipeline(`name: breaks
stages:
  - name: build
    jobs:
      - {name: build, commands: ["echo building; exit 3"]}
      - {name: test, depends_on: [build], commands: ["echo never"]}
  - name: deploy
    jobs:
      - {name: deploy, commands: ["echo never"]}
      - {name: cleanup, when: always, commands: ["echo cleaning"]}
`)
	r := c.waitRun(c.trigger("breaks", nil).GetId())
	jobs := jobsByName(r)
	want := map[string]agentv1.JobStatus{"build": failed, "test": skipped, "deploy": skipped, "cleanup": success}
	for name, st := range want {
		if jobs[name].GetStatus() != st {
			t.Errorf("%s is %v, want %v (%s)", name, jobs[name].GetStatus(), st, jobs[name].GetMessage())
		}
	}
	if r.GetStatus() != failed {
		t.Fatalf("run is %v, want failed", r.GetStatus())
	}
	if jobs["test"].GetStartedAt() != nil || jobs["test"].GetAgentName() != "" {
		t.Fatalf("skipped job ran: %v", jobs["test"])
	}
}

func pipelineRetry(t *testing.T, c *cluster) {
	dir := t.TempDir()
	c.createPipeline(fmt.Sprintf(`name: flaky
stages:
  - name: s
    jobs:
      - name: flaky
        retry: {max_attempts: 2, on: [failure], backoff: 200ms}
        commands: ["if [ -f %[1]s/once ]; then echo second try; else touch %[1]s/once; echo first try; exit 1; fi"]
`, dir))
	r := c.waitRun(c.trigger("flaky", nil).GetId())
	j := jobsByName(r)["flaky"]
	if r.GetStatus() != success || j.GetStatus() != success || j.GetAttempt() != 2 {
		t.Fatalf("run %v, job %v attempt %d", r.GetStatus(), j.GetStatus(), j.GetAttempt())
	}
	has := func(attempt int32, text string) bool {
		for _, l := range c.logOf(j.GetId(), attempt) {
			if l.GetStream() == agentv1.LogStream_LOG_STREAM_STDOUT && l.GetContent() == text {
				return true
			}
		}
		return false
	}
	if !has(1, "first try") || has(1, "second try") || !has(2, "second try") {
		t.Fatalf("each attempt should keep its own log: 1=%v 2=%v", c.logOf(j.GetId(), 1), c.logOf(j.GetId(), 2))
	}
}

func pipelineStop(t *testing.T, c *cluster) {
	c.createPipeline(`name: long
stages:
  - name: s
    jobs:
      - {name: l1, commands: ["sleep 120"]}
      - {name: l2, commands: ["sleep 120"]}
  - name: later
    jobs:
      - {name: after, commands: ["echo never"]}
`)
	r := c.trigger("long", nil)
	c.waitFor("both long jobs running", func() bool {
		js := jobsByName(c.run(r.GetId()))
		return js["l1"].GetStatus() == running && js["l2"].GetStatus() == running
	})
	resp, err := c.jobs.StopPipeline(context.Background(), &jobv1.StopPipelineRequest{RunId: r.GetId(), Reason: "test stop"})
	if err != nil || resp.GetRun().GetStatus() != cancelled {
		t.Fatalf("StopPipeline: %v %v", resp, err)
	}
	r = c.waitRun(r.GetId())
	for _, j := range r.GetJobs() {
		if j.GetStatus() != cancelled {
			t.Errorf("%s is %v after stop", j.GetName(), j.GetStatus())
		}
	}
	c.waitFor("agents idle", func() bool {
		return c.agent("pa").GetRunningJobs() == 0 && c.agent("pb").GetRunningJobs() == 0
	})
	if _, err := c.jobs.StopPipeline(context.Background(), &jobv1.StopPipelineRequest{RunId: r.GetId()}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("stopping an ended run: %v", err)
	}
}

func pipelineWebhook(t *testing.T, c *cluster, hookURL string) {
	c.createPipeline(`name: hooked
triggers:
  - {type: webhook, secret: "hush", branches: [main]}
stages:
  - name: s
    jobs:
      - {name: show, commands: ["echo commit=$ARCADE_COMMIT branch=$ARCADE_BRANCH author=$ARCADE_AUTHOR"]}
`)
	payload := []byte(`{"ref":"refs/heads/main","after":"0123456789abcdef0123456789abcdef01234567",
"head_commit":{"id":"0123456789abcdef0123456789abcdef01234567","message":"fix","author":{"name":"Ada"}},
"repository":{"full_name":"org/app"}}`)
	post := func(sig string) int {
		req, _ := http.NewRequest(http.MethodPost, hookURL+"/hooks/hooked", bytes.NewReader(payload))
		req.Header.Set(trigger.SignatureHeader, sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(trigger.Sign("wrong", payload)); code != http.StatusUnauthorized {
		t.Fatalf("bad signature answered %d", code)
	}
	if n := len(c.runs("hooked")); n != 0 {
		t.Fatalf("a bad signature started %d run(s)", n)
	}
	if code := post(trigger.Sign("hush", payload)); code != http.StatusCreated {
		t.Fatalf("good signature answered %d", code)
	}
	rs := c.runs("hooked")
	if len(rs) != 1 || rs[0].GetTrigger() != jobv1.TriggerType_TRIGGER_TYPE_WEBHOOK || !strings.Contains(rs[0].GetTriggeredBy(), "push to main by Ada") {
		t.Fatalf("runs %v", rs)
	}
	r := c.waitRun(rs[0].GetId())
	j := jobsByName(r)["show"]
	want := "commit=0123456789abcdef0123456789abcdef01234567 branch=main author=Ada"
	found := false
	for _, l := range c.logOf(j.GetId(), 0) {
		found = found || l.GetStream() == agentv1.LogStream_LOG_STREAM_STDOUT && l.GetContent() == want
	}
	if r.GetStatus() != success || !found || j.GetEnv()["ARCADE_COMMIT"] == "" {
		t.Fatalf("run %v, log has %q: %v", r.GetStatus(), want, found)
	}
	// The secret is never shown.
	p, err := c.jobs.GetPipeline(context.Background(), &jobv1.GetPipelineRequest{PipelineId: "hooked"})
	if err != nil || p.GetPipeline().GetTriggers()[0].GetSecret() != "" || !p.GetPipeline().GetTriggers()[0].GetHasSecret() {
		t.Fatalf("GetPipeline shows the secret: %v %v", p, err)
	}
}

func pipelineStatistics(t *testing.T, c *cluster) {
	c.createPipeline(`name: mixed
stages:
  - name: s
    jobs:
      - {name: maybe, commands: ['echo FAIL=$FAIL; test "$FAIL" != 1']}
`)
	c.createPipeline(`name: after-mixed
triggers: [{type: pipeline, pipeline: mixed}]
stages: [{name: s, jobs: [{name: report, commands: ["echo mixed succeeded"]}]}]
`)
	var runs []*jobv1.PipelineRun
	for _, fail := range []string{"0", "1", "0", "1", "0"} {
		r := c.waitRun(c.trigger("mixed", map[string]string{"FAIL": fail}).GetId())
		if (fail == "1") != (r.GetStatus() == failed) {
			t.Fatalf("run with FAIL=%s ended %v", fail, r.GetStatus())
		}
		runs = append(runs, r)
	}
	resp, err := c.jobs.GetPipeline(context.Background(), &jobv1.GetPipelineRequest{PipelineId: "mixed"})
	if err != nil {
		t.Fatal(err)
	}
	st := resp.GetPipeline().GetStatistics()
	var total time.Duration
	for _, r := range runs {
		total += r.GetFinishedAt().AsTime().Sub(r.GetStartedAt().AsTime())
	}
	avg := total / time.Duration(len(runs))
	if st.GetTotalRuns() != 5 || st.GetSuccessRate() != 0.6 || st.GetLastRunStatus() != success ||
		!st.GetLastRunAt().AsTime().Equal(runs[4].GetCreatedAt().AsTime()) {
		t.Fatalf("statistics %v", st)
	}
	if d := st.GetAverageDuration().AsDuration() - avg; d > time.Millisecond || d < -time.Millisecond {
		t.Fatalf("average duration %s, want %s", st.GetAverageDuration().AsDuration(), avg)
	}
	// Each successful run of mixed started one run of after-mixed.
	var after []*jobv1.PipelineRun
	c.waitFor("after-mixed runs", func() bool { after = c.runs("after-mixed"); return len(after) == 3 })
	for _, r := range after {
		if r.GetTrigger() != jobv1.TriggerType_TRIGGER_TYPE_PIPELINE || !strings.HasPrefix(r.GetTriggeredBy(), "pipeline mixed run #") {
			t.Fatalf("after-mixed run %v by %q", r.GetTrigger(), r.GetTriggeredBy())
		}
		c.waitRun(r.GetId())
	}
}
