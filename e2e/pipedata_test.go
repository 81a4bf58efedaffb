package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	secretv1 "github.com/go-arcade/arcade/api/secret/v1"
	"github.com/go-arcade/arcade/client"
	"github.com/go-arcade/arcade/server/store"
)

const timeout = agentv1.JobStatus_JOB_STATUS_TIMEOUT

// TestPipelineData runs, on each database, what pipelines carry: a matrix
// (2×3 with one exclude) whose combinations set outputs and keep artifacts
// that a downstream job receives, an if: that skips, a fail_fast matrix,
// approval gates (approved by a named write token, rejected, timed out; a
// read token refused), an artifact corrupted in the store refused by its
// sha256, extends and include rules, and an output holding a secret masked.
func TestPipelineData(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		storeDir := t.TempDir()
		c := storeCluster(t, dsn, storeDir)
		c.startAgent("data", 4)
		t.Run("matrix, outputs and inputs", func(t *testing.T) { matrixOutputsInputs(t, c) })
		t.Run("fail fast", func(t *testing.T) { matrixFailFast(t, c) })
		t.Run("approvals and a corrupted input", func(t *testing.T) { approvals(t, c, storeDir) })
		t.Run("extends and include", func(t *testing.T) { extendsInclude(t, c) })
		t.Run("a secret output masked", func(t *testing.T) { secretOutput(t, c) })
	})
}

func matrixOutputsInputs(t *testing.T, c *cluster) {
	c.createPipeline(`
name: data
stages:
  - name: build
    jobs:
      - name: build
        matrix:
          os: [linux, darwin]
          arch: [amd64, arm64, riscv]
          exclude: [{os: darwin, arch: riscv}]
        commands:
          - mkdir -p out && echo "$os-$arch" > out/$os-$arch.txt
          - echo "target=$os/$arch" >> "$ARCADE_OUTPUT"
          - printf 'notes<<END\nfirst\nsecond\nEND\n' >> "$ARCADE_OUTPUT"
        outputs: [target, notes]
        artifacts: {paths: ["out/*"]}
  - name: use
    jobs:
      - name: use
        depends_on: [build]
        needs_artifacts: ["build (linux, amd64)"]
        env:
          T: "${{ jobs['build (linux, amd64)'].outputs.target }}"
          N: "${{ jobs['build (linux, amd64)'].outputs.notes }}"
        commands:
          - test "$T" = linux/amd64
          - test "$N" = "$(printf 'first\nsecond')"
          - test "$(cat out/linux-amd64.txt)" = linux-amd64
          - test ! -e out/darwin-arm64.txt
      - name: never
        depends_on: ["build (linux, amd64)"]
        if: "jobs['build (linux, amd64)'].outputs.target == 'nope'"
        commands: ["false"]
`)
	r := c.waitRun(c.trigger("data", nil).GetId())
	jobs := jobsByName(r)
	var combos []string
	for _, j := range r.GetJobs() {
		if j.GetMatrix().GetGroup() == "build" {
			combos = append(combos, j.GetName())
			if j.GetStatus() != success || j.GetEnv()["os"] == "" || j.GetEnv()["arch"] == "" {
				t.Errorf("%s: %v, env %v", j.GetName(), j.GetStatus(), j.GetEnv())
			}
		}
	}
	want := []string{"build (linux, amd64)", "build (linux, arm64)", "build (linux, riscv)", "build (darwin, amd64)", "build (darwin, arm64)"}
	if !slices.Equal(combos, want) {
		t.Fatalf("matrix jobs %q, want %q", combos, want)
	}
	if out := jobs["build (darwin, arm64)"].GetOutputs(); out["target"] != "darwin/arm64" || out["notes"] != "first\nsecond" {
		t.Errorf("outputs %v", out)
	}
	if u := jobs["use"]; u.GetStatus() != success || u.GetEnv()["T"] != "linux/amd64" {
		t.Fatalf("use: %v %q, env %v", u.GetStatus(), u.GetMessage(), u.GetEnv())
	}
	if n := jobs["never"]; n.GetStatus() != skipped || !strings.Contains(n.GetMessage(), "if:") {
		t.Errorf("never: %v %q", n.GetStatus(), n.GetMessage())
	}
	if r.GetStatus() != success {
		t.Errorf("run %v: %s", r.GetStatus(), r.GetMessage())
	}
	log := jobLog(c, jobs["use"].GetId())
	if !strings.Contains(log, "input out/linux-amd64.txt of job build (linux, amd64) restored") {
		t.Errorf("use's log does not say its input was restored:\n%s", log)
	}
}

func jobLog(c *cluster, id string) string { return logText(c.logOf(id, 0)) }

// secretOutput: an output holding a pipeline secret reaches the job
// downstream, and is masked wherever it is shown: the outputs and env of
// the run's jobs, and the downstream job's log.
func secretOutput(t *testing.T, c *cluster) {
	value := randomValue("output-secret")
	_, err := c.jobs.CreatePipeline(context.Background(), &jobv1.CreatePipelineRequest{Pipeline: &jobv1.PipelineDetail{Secrets: map[string]string{"DEPLOY_TOKEN": value}}, Yaml: `
name: secret-out
stages:
  - name: mint
    jobs:
      - name: mint
        commands: ['echo "token=bearer-$DEPLOY_TOKEN" >> "$ARCADE_OUTPUT"', 'echo "plain=hello" >> "$ARCADE_OUTPUT"']
        outputs: [token, plain]
  - name: use
    jobs:
      - name: use
        env: {TOK: "${{ jobs.mint.outputs.token }}", PLAIN: "${{ jobs.mint.outputs.plain }}"}
        commands: ['test "$TOK" = "bearer-$DEPLOY_TOKEN"', 'test "$PLAIN" = hello', 'echo "the token is $TOK"']
`})
	if err != nil {
		t.Fatal(err)
	}
	r := c.waitRun(c.trigger("secret-out", nil).GetId())
	jobs := jobsByName(r)
	if r.GetStatus() != success {
		t.Fatalf("run %v %s; use: %q", r.GetStatus(), r.GetMessage(), jobs["use"].GetMessage())
	}
	if out := jobs["mint"].GetOutputs(); out["plain"] != "hello" || out["token"] == "" || strings.Contains(out["token"], value) {
		t.Errorf("mint's outputs as shown: %v", out)
	}
	if env := jobs["use"].GetEnv(); env["PLAIN"] != "hello" || strings.Contains(env["TOK"], value) {
		t.Errorf("use's env as shown: %v", env)
	}
	if shown := protojson.Format(r); strings.Contains(shown, value) {
		t.Errorf("the run shows the secret:\n%s", shown)
	}
	log := jobLog(c, jobs["use"].GetId())
	if strings.Contains(log, value) || !strings.Contains(log, "the token is ") {
		t.Errorf("use's log:\n%s", log)
	}
	if log := jobLog(c, jobs["mint"].GetId()); strings.Contains(log, value) || !strings.Contains(log, "output token set (it holds a secret: masked)") {
		t.Errorf("mint's log:\n%s", log)
	}
}

func matrixFailFast(t *testing.T, c *cluster) {
	c.createPipeline(`
name: fast
stages:
  - name: s
    jobs:
      - name: t
        matrix: {n: ["1", "2", "3"], fail_fast: true}
        commands: ['if [ "$n" = 1 ]; then sleep 1; exit 3; fi; sleep 60']
`)
	began := time.Now()
	r := c.waitRun(c.trigger("fast", nil).GetId())
	if took := time.Since(began); took > 40*time.Second {
		t.Errorf("the run took %s: the other combinations were not stopped", took)
	}
	jobs := jobsByName(r)
	if jobs["t (1)"].GetStatus() != failed || r.GetStatus() != failed {
		t.Fatalf("t (1) %v, run %v", jobs["t (1)"].GetStatus(), r.GetStatus())
	}
	for _, n := range []string{"t (2)", "t (3)"} {
		if j := jobs[n]; j.GetStatus() != cancelled || !strings.Contains(j.GetMessage(), "fail_fast") {
			t.Errorf("%s: %v %q", n, j.GetStatus(), j.GetMessage())
		}
	}
}

// tokenConn is a connection with a named token of scope made through the
// API.
func tokenConn(t *testing.T, c *cluster, name string, scope secretv1.TokenScope) jobv1.JobServiceClient {
	t.Helper()
	resp, err := secretv1.NewTokenServiceClient(c.conn).CreateToken(context.Background(), &secretv1.CreateTokenRequest{Name: name, Scope: scope})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := client.Dial(c.addr, client.Static(resp.GetSecret()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return jobv1.NewJobServiceClient(conn)
}

func approvals(t *testing.T, c *cluster, storeDir string) {
	ctx := context.Background()
	c.createPipeline(`
name: gate
stages:
  - name: make
    jobs: [{name: make, commands: ["mkdir -p dist && echo payload > dist/app.txt"], artifacts: {paths: ["dist/*"]}}]
  - name: gate
    jobs: [{name: approve, type: approval, timeout: 1h}]
  - name: ship
    jobs: [{name: ship, needs_artifacts: [make], commands: ['test "$(cat dist/app.txt)" = payload']}]
`)
	approver := tokenConn(t, c, "release-manager", secretv1.TokenScope_TOKEN_SCOPE_WRITE)
	reader := tokenConn(t, c, "dashboard-viewer", secretv1.TokenScope_TOKEN_SCOPE_READ)
	waitHeld := func(runID string) *jobv1.JobDetail {
		var gate *jobv1.JobDetail
		c.waitFor("the approval job to wait", func() bool {
			gate = jobsByName(c.run(runID))["approve"]
			return gate.GetId() != "" && gate.GetHeld() != ""
		})
		why, err := c.jobs.ExplainJob(ctx, &jobv1.ExplainJobRequest{JobId: gate.GetId()})
		if err != nil || !strings.Contains(why.GetSummary(), "waiting for approval") {
			t.Errorf("job why: %q, %v", why.GetSummary(), err)
		}
		return gate
	}

	// Approved by a named write token; a read token is refused.
	r1 := c.trigger("gate", nil)
	waitHeld(r1.GetId())
	if _, err := reader.ApproveJob(ctx, &jobv1.ApproveJobRequest{RunId: r1.GetId(), Job: "approve"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a read token approved: %v", err)
	}
	before := time.Now()
	resp, err := approver.ApproveJob(ctx, &jobv1.ApproveJobRequest{RunId: r1.GetId(), Job: "approve", Comment: "notes read"})
	if err != nil {
		t.Fatal(err)
	}
	a := resp.GetJob().GetApproval()
	if a.GetDecision() != "approved" || a.GetBy() != "release-manager" || a.GetAt().AsTime().Before(before.Add(-time.Second)) || a.GetComment() != "notes read" {
		t.Errorf("approval recorded as %v", a)
	}
	if _, err := approver.ApproveJob(ctx, &jobv1.ApproveJobRequest{RunId: r1.GetId(), Job: "approve"}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("approved twice: %v", err)
	}
	if done := c.waitRun(r1.GetId()); done.GetStatus() != success || jobsByName(done)["ship"].GetStatus() != success {
		t.Fatalf("approved run %v: ship %v %q", done.GetStatus(), jobsByName(done)["ship"].GetStatus(), jobsByName(done)["ship"].GetMessage())
	}

	// Rejected through the CLI: the gate fails, what follows is skipped.
	r2 := c.trigger("gate", nil)
	waitHeld(r2.GetId())
	if out := c.mustCLI(t, "pipeline", "reject", r2.GetId(), "approve", "--comment", "not today"); !strings.Contains(out, "approve: rejected by api_token") {
		t.Errorf("reject said %q", out)
	}
	done := c.waitRun(r2.GetId())
	if j := jobsByName(done); done.GetStatus() != failed || j["approve"].GetStatus() != failed || j["ship"].GetStatus() != skipped {
		t.Fatalf("rejected run %v: approve %v, ship %v", done.GetStatus(), j["approve"].GetStatus(), j["ship"].GetStatus())
	}

	// An artifact whose bytes are not those it was kept as: the job that
	// receives it refuses it by its sha256 (the record says one sum, the
	// bytes served hash to another), and none of it stays in its workspace.
	r3 := c.trigger("gate", nil)
	waitHeld(r3.GetId())
	mk := jobsByName(c.run(r3.GetId()))["make"]
	st, err := store.Open(ctx, c.dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	art, err := st.GetArtifact(ctx, mk.GetId(), 0, "dist/app.txt")
	if err != nil {
		t.Fatal(err)
	}
	art.SHA256 = strings.Repeat("ab", 32)
	if err := st.SaveArtifact(ctx, art); err != nil {
		t.Fatal(err)
	}
	st.Close()
	c.mustCLI(t, "pipeline", "approve", r3.GetId(), "approve")
	done = c.waitRun(r3.GetId())
	ship := jobsByName(done)["ship"]
	if ship.GetStatus() != failed || !strings.Contains(ship.GetMessage(), "sha256 mismatch") {
		t.Fatalf("ship with a mismatched input: %v %q", ship.GetStatus(), ship.GetMessage())
	}
	_ = storeDir

	// Timed out: nobody decides within the approval's timeout.
	c.createPipeline(`
name: gate-timeout
stages:
  - name: gate
    jobs: [{name: approve, type: approval, timeout: 2s}]
  - name: ship
    jobs: [{name: ship, commands: ["true"]}]
`)
	done = c.waitRun(c.trigger("gate-timeout", nil).GetId())
	j := jobsByName(done)
	if j["approve"].GetStatus() != timeout || j["approve"].GetApproval().GetDecision() != "timed_out" || j["ship"].GetStatus() != skipped {
		t.Fatalf("timed-out approval: %v %v, ship %v", j["approve"].GetStatus(), j["approve"].GetApproval(), j["ship"].GetStatus())
	}
}

func extendsInclude(t *testing.T, c *cluster) {
	ctx := context.Background()
	files := map[string]string{
		"ci/base.yaml": "env: {FROM_INCLUDE: yes, WHO: include}\ntemplates:\n  base:\n    env: {A: base, B: base}\n    commands: [\"echo base\"]\n    timeout: 10m\n",
	}
	_, err := c.jobs.CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Files: files, Yaml: `
name: merged
include: [ci/base.yaml]
env: {WHO: file}
templates:
  lint:
    extends: base
    env: {B: lint, C: lint}
stages:
  - name: s
    jobs:
      - name: j
        extends: lint
        env: {C: job}
        commands: ['test "$A/$B/$C/$WHO/$FROM_INCLUDE" = "base/lint/job/file/yes"']
`})
	if err != nil {
		t.Fatal(err)
	}
	r := c.waitRun(c.trigger("merged", nil).GetId())
	j := jobsByName(r)["j"]
	if j.GetStatus() != success || !slices.Equal(j.GetCommands(), []string{`test "$A/$B/$C/$WHO/$FROM_INCLUDE" = "base/lint/job/file/yes"`}) ||
		j.GetTimeout().AsDuration() != 10*time.Minute {
		t.Fatalf("j: %v %q, commands %q, timeout %v", j.GetStatus(), j.GetMessage(), j.GetCommands(), j.GetTimeout().AsDuration())
	}
	// A cycle of includes is refused with its path.
	_, err = c.jobs.CreatePipeline(ctx, &jobv1.CreatePipelineRequest{
		Files: map[string]string{"a.yaml": "include: [b.yaml]\n", "b.yaml": "include: [a.yaml]\n"},
		Yaml:  "name: loop\ninclude: [a.yaml]\nstages: [{name: s, jobs: [{name: j, commands: [x]}]}]\n"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "include cycle: (pipeline) → a.yaml → b.yaml → a.yaml") {
		t.Errorf("include cycle: %v", err)
	}
	// An unknown output is refused naming the field and its line.
	_, err = c.jobs.CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Yaml: `name: bad-output
stages:
  - name: s
    jobs:
      - {name: a, commands: [x], outputs: [v]}
      - {name: b, depends_on: [a], commands: [x], env: {V: "${{ jobs.a.outputs.w }}"}}
`})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `stages[0].jobs[1].env["V"] (line 6)`) {
		t.Errorf("unknown output: %v", err)
	}
}
