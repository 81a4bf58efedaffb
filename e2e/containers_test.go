package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/internal/dockertest"
)

// testImage is built once per test binary on its engine: busybox with a
// file the host does not have, and /www for a small HTTP service.
const testImage = "arcade-e2e/busybox:1"

// nonRootImage runs as user app (uid 1000).
const nonRootImage = "arcade-e2e/busybox-app:1"

var imagesOnce sync.Once

// containerEngine returns the binary's engine with the test images built.
func containerEngine(t testing.TB) *dockertest.Engine {
	t.Helper()
	e := dockertest.Start(t)
	imagesOnce.Do(func() { buildTestImages(t, e) })
	return e
}

func buildTestImages(t testing.TB, e *dockertest.Engine) {
	files := map[string]string{"/etc/arcade-image": "inside the image\n", "/www/index.html": "hello from the service\n"}
	e.BuildBusybox(t, dockertest.Image{Ref: testImage, Files: files})
	e.BuildBusybox(t, dockertest.Image{Ref: nonRootImage, Files: files, Changes: []string{"USER app"}})
}

// engineFlags point an agent at engine e, re-checked often.
func engineFlags(e *dockertest.Engine) []string {
	return []string{"--container-runtime", "docker", "--docker-host", e.Host, "--container-check", "200ms"}
}

// logText is the log of an attempt, one line each.
func (c *cluster) logText(id string, attempt int32) string {
	var b strings.Builder
	for _, l := range c.logOf(id, attempt) {
		b.WriteString(l.GetContent())
		b.WriteByte('\n')
	}
	return b.String()
}

// jobObjects lists what the engine holds of a job.
func jobObjects(t *testing.T, e *dockertest.Engine, jobID string) []string {
	t.Helper()
	left, err := e.Leftovers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range left {
		if strings.Contains(l, jobID[:min(len(jobID), 36)]) {
			out = append(out, l)
		}
	}
	return out
}

// TestContainerJob runs jobs in an image: the steps see the image's
// filesystem, share the workspace and the job's env, secrets are masked,
// exit codes reach the job; a service is reached by its name; a non-root
// image writes the workspace.
func TestContainerJob(t *testing.T) {
	e := containerEngine(t)
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db")
	c.startAgentWith("box", 4, engineFlags(e))
	a := c.agent("box")
	if a.GetLabels()["container-runtime"] != "docker" || !strings.HasPrefix(a.GetLabels()["container-runtime-version"], "20.") {
		t.Errorf("agent labels %v: want container-runtime=docker and the engine's version", a.GetLabels())
	}
	hostOnly := filepath.Join(t.TempDir(), "host-only")
	if err := os.WriteFile(hostOnly, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	const secret = "s3cret-V4lue"
	steps := c.create(&jobv1.CreateJobRequest{Name: "in image", Image: testImage,
		Env: map[string]string{"GREETING": "hi"}, Secrets: map[string]string{"TOKEN": secret},
		Steps: []*agentv1.Step{
			{Name: "fs", Commands: []string{"cat /etc/arcade-image", "test ! -e " + hostOnly, `echo "workspace=$ARCADE_WORKSPACE pwd=$(pwd)"`}},
			{Name: "write", Commands: []string{"export LOCAL=only-here", "echo built > out.txt", `echo "token=$TOKEN greeting=$GREETING"`}},
			{Name: "read", Commands: []string{"cat out.txt", `echo "local=${LOCAL:-unset}"`, "echo oops >&2; exit 3"}},
		}})
	service := c.create(&jobv1.CreateJobRequest{Name: "with service", Image: testImage,
		Container: &agentv1.ContainerOptions{Services: []*agentv1.ServiceContainer{{
			Name: "web", Image: testImage, Command: []string{"httpd", "-f", "-p", "8080", "-h", "/www"}, ReadyPort: 8080,
		}}},
		Commands: []string{"wget -qO- http://web:8080/index.html"}})
	serviceFails := c.create(&jobv1.CreateJobRequest{Name: "fails beside a service", Image: testImage,
		Container: &agentv1.ContainerOptions{Services: []*agentv1.ServiceContainer{{
			Name: "web", Image: testImage, Command: []string{"sh", "-c", "echo service says hi; exec httpd -f -p 8080 -h /www"}, ReadyPort: 8080,
		}}},
		Commands: []string{"exit 1"}})
	nonRoot := c.create(&jobv1.CreateJobRequest{Name: "non-root", Image: nonRootImage,
		Commands: []string{"id -u", "echo made > made.txt", "mkdir -p d && touch d/f && ls -n made.txt | awk '{print $3}'"}})

	j := c.waitStatus(steps.GetId(), success, failed)
	log := c.logText(steps.GetId(), 1)
	if j.GetStatus() != failed || j.GetExitCode() != 3 || !strings.Contains(j.GetMessage(), `step "read": exit status 3`) {
		t.Errorf("job: %v exit %d (%s); want FAILED, exit 3 in step read", j.GetStatus(), j.GetExitCode(), j.GetMessage())
	}
	for _, want := range []string{"inside the image", "workspace=/workspace pwd=/workspace", "token=*** greeting=hi", "built", "local=unset", "oops", "$ cat out.txt"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, secret) {
		t.Errorf("the secret is in the log:\n%s", log)
	}
	j = c.waitStatus(service.GetId(), success, failed)
	if log := c.logText(service.GetId(), 1); j.GetStatus() != success || !strings.Contains(log, "hello from the service") {
		t.Errorf("service job: %v (%s)\n%s", j.GetStatus(), j.GetMessage(), log)
	}
	j = c.waitStatus(serviceFails.GetId(), success, failed)
	if log := c.logText(serviceFails.GetId(), 1); j.GetStatus() != failed || !strings.Contains(log, "web | service says hi") {
		t.Errorf("a job failing beside a service: %v (%s), want its log to show the service's\n%s", j.GetStatus(), j.GetMessage(), log)
	}
	j = c.waitStatus(nonRoot.GetId(), success, failed)
	if log := c.logText(nonRoot.GetId(), 1); j.GetStatus() != success || !strings.Contains(log, "1000\n") || !strings.Contains(log, "\n1000\n") {
		t.Errorf("non-root job: %v (%s)\n%s", j.GetStatus(), j.GetMessage(), log)
	}
	for _, id := range []string{steps.GetId(), service.GetId(), serviceFails.GetId(), nonRoot.GetId()} {
		c.waitFor("the job's containers removed", func() bool { return len(jobObjects(t, e, id)) == 0 })
	}
}

// TestContainerCancelAndTimeout cancels container jobs whose step traps
// TERM and ignores it, and times one out: each ends as it should and its
// container is gone within the kill grace and a second of the cancel.
func TestContainerCancelAndTimeout(t *testing.T) {
	e := containerEngine(t)
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db")
	c.startAgentWith("box", 3, engineFlags(e))
	trapped := c.create(&jobv1.CreateJobRequest{Name: "trapped", Image: testImage,
		Commands: []string{`trap 'echo got TERM; exit 0' TERM`, "echo ready", "sleep 60 & wait"}})
	ignored := c.create(&jobv1.CreateJobRequest{Name: "ignored", Image: testImage,
		Commands: []string{`trap '' TERM`, "echo ready", "sleep 60"}})
	timed := c.create(&jobv1.CreateJobRequest{Name: "timed", Image: testImage, Timeout: durationpb.New(time.Second),
		Commands: []string{"sleep 60"}})
	const grace = 2 * time.Second // the agent's kill grace
	for _, job := range []*jobv1.JobDetail{trapped, ignored} {
		c.waitFor(job.GetName()+" ready", func() bool { return strings.Contains(c.logText(job.GetId(), 1), "ready") })
		start := time.Now()
		if _, err := c.jobs.CancelJob(context.Background(), &jobv1.CancelJobRequest{JobId: job.GetId(), Reason: "enough"}); err != nil {
			t.Fatal(err)
		}
		c.waitFor("the container of "+job.GetName()+" gone", func() bool { return len(jobObjects(t, e, job.GetId())) == 0 })
		// Timed by the agent's clock: from the cancel's arrival to the
		// container's removal.
		c.waitFor("the agent's note of the removal", func() bool {
			for _, rec := range c.agents["box"].grepLog("job containers removed") {
				if rec["job"] == job.GetId() {
					return true
				}
			}
			return false
		})
		received, removed := logTime(t, c.agents["box"], "cancelling job", job.GetId()), logTime(t, c.agents["box"], "job containers removed", job.GetId())
		if d := removed.Sub(received); d > grace+time.Second || d < 0 {
			t.Errorf("%s: the container was gone %v after the agent received the cancel, want at most the grace (%v) + 1s", job.GetName(), d, grace)
		}
		t.Logf("%s: container gone %v after the agent received the cancel (%v after CancelJob)", job.GetName(), removed.Sub(received), time.Since(start))
		j := c.waitStatus(job.GetId(), cancelled, failed, success)
		if j.GetStatus() != cancelled {
			t.Errorf("%s: %v (%s), want CANCELLED", job.GetName(), j.GetStatus(), j.GetMessage())
		}
	}
	if log := c.logText(trapped.GetId(), 1); !strings.Contains(log, "got TERM") {
		t.Errorf("the trapped step did not see TERM:\n%s", log)
	}
	j := c.waitStatus(timed.GetId(), timedOut, failed, success)
	if j.GetStatus() != timedOut {
		t.Errorf("timed: %v (%s), want TIMEOUT", j.GetStatus(), j.GetMessage())
	}
	c.waitFor("the timed-out job's container gone", func() bool { return len(jobObjects(t, e, timed.GetId())) == 0 })
}

// logTime is the time of the first record msg of p's log about job.
func logTime(t *testing.T, p *proc, msg, job string) time.Time {
	t.Helper()
	for _, rec := range p.grepLog(msg) {
		if rec["job"] == job {
			ts, err := time.Parse(time.RFC3339Nano, rec["time"].(string))
			if err != nil {
				t.Fatal(err)
			}
			return ts
		}
	}
	t.Fatalf("no %q about job %s in the log", msg, job)
	return time.Time{}
}

// TestContainerLimitsAndServiceFailure: an OOM-killed step fails its job
// with the limit named; a service that never gets ready fails the job
// after its timeout, with its log in the job's log; an image without
// /bin/sh fails with a clear reason.
func TestContainerLimitsAndServiceFailure(t *testing.T) {
	e := containerEngine(t)
	e.BuildBusybox(t, dockertest.Image{Ref: "arcade-e2e/no-shell:1", NoShell: true})
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db")
	c.startAgentWith("box", 3, engineFlags(e))
	oom := c.create(&jobv1.CreateJobRequest{Name: "oom", Image: testImage,
		Container: &agentv1.ContainerOptions{MemoryBytes: 16 << 20, Cpus: 0.5},
		Commands:  []string{`x=$(head -c 100000000 /dev/zero | tr '\0' a); echo survived`}})
	never := c.create(&jobv1.CreateJobRequest{Name: "never ready", Image: testImage,
		Container: &agentv1.ContainerOptions{Services: []*agentv1.ServiceContainer{{
			Name: "db", Image: testImage, Command: []string{"sh", "-c", "echo starting db; echo db is stuck >&2; sleep 60"},
			ReadyPort: 5432, ReadyTimeout: durationpb.New(time.Second),
		}}},
		Commands: []string{"echo never"}})
	noShell := c.create(&jobv1.CreateJobRequest{Name: "no shell", Image: "arcade-e2e/no-shell:1", Commands: []string{"true"}})

	j := c.waitStatus(oom.GetId(), success, failed)
	if j.GetStatus() != failed || j.GetMessage() != "out of memory (limit 16MiB)" {
		t.Errorf("oom: %v %q, want FAILED \"out of memory (limit 16MiB)\"\n%s", j.GetStatus(), j.GetMessage(), c.logText(oom.GetId(), 1))
	}
	j = c.waitStatus(never.GetId(), success, failed)
	log := c.logText(never.GetId(), 1)
	if j.GetStatus() != failed || !strings.Contains(j.GetMessage(), "service db not ready after 1s") {
		t.Errorf("never ready: %v %q", j.GetStatus(), j.GetMessage())
	}
	if !strings.Contains(log, "db | starting db") || !strings.Contains(log, "db | db is stuck") || strings.Contains(log, "$ echo never") {
		t.Errorf("never ready: log:\n%s", log)
	}
	j = c.waitStatus(noShell.GetId(), success, failed)
	if j.GetStatus() != failed || !strings.Contains(j.GetMessage(), "has no /bin/sh") {
		t.Errorf("no shell: %v %q", j.GetStatus(), j.GetMessage())
	}
	for _, id := range []string{oom.GetId(), never.GetId(), noShell.GetId()} {
		c.waitFor("the job's containers removed", func() bool { return len(jobObjects(t, e, id)) == 0 })
	}
}

// TestContainerPulls pulls from a private registry (htpasswd): with the
// credential from a secret, which never shows in the log or the database;
// with the policies if-not-present, always and never; and fails with the
// registry's reason without the credential or for a missing tag.
func TestContainerPulls(t *testing.T) {
	e := containerEngine(t)
	reg := dockertest.StartRegistry(t, dockertest.RegistryOptions{User: "ci", Password: "reg-Pa55word"})
	ref := reg.Addr + "/team/tool:1"
	e.BuildBusybox(t, dockertest.Image{Ref: ref, Files: map[string]string{"/etc/tool": "pulled tool\n"}})
	e.PushAndForget(t, ref, reg)
	t.Cleanup(func() { _, _ = e.Client.ImageRemove(context.Background(), ref, imageRemoveForce) })
	dir := t.TempDir()
	c := newCluster(t, "sqlite://"+dir+"/arcade.db")
	c.startAgentWith("box", 1, engineFlags(e))
	cred := map[string]string{"REGISTRY": "ci:reg-Pa55word"}
	run := func(name string, policy agentv1.PullPolicy, image string, secrets map[string]string) (*jobv1.JobDetail, string) {
		t.Helper()
		opts := &agentv1.ContainerOptions{PullPolicy: policy}
		if secrets != nil {
			opts.RegistryAuthSecret = "REGISTRY"
		}
		j := c.create(&jobv1.CreateJobRequest{Name: name, Image: image, Secrets: secrets, Container: opts,
			Commands: []string{"cat /etc/tool", `echo "registry env: ${REGISTRY:-unset}"`}})
		j = c.waitStatus(j.GetId(), success, failed)
		return j, c.logText(j.GetId(), 1)
	}

	j, log := run("never, absent", agentv1.PullPolicy_PULL_POLICY_NEVER, ref, cred)
	if j.GetStatus() != failed || !strings.Contains(j.GetMessage(), "pull policy is never") {
		t.Errorf("never: %v %q", j.GetStatus(), j.GetMessage())
	}
	j, log = run("no credential", agentv1.PullPolicy_PULL_POLICY_UNSPECIFIED, ref, nil)
	if j.GetStatus() != failed || !strings.Contains(j.GetMessage(), "no basic auth credentials") {
		t.Errorf("without the credential: %v %q, want the registry's refusal", j.GetStatus(), j.GetMessage())
	}
	j, log = run("missing tag", agentv1.PullPolicy_PULL_POLICY_UNSPECIFIED, reg.Addr+"/team/tool:404", cred)
	if j.GetStatus() != failed || !strings.Contains(j.GetMessage(), "manifest unknown") {
		t.Errorf("missing tag: %v %q, want the registry's reason", j.GetStatus(), j.GetMessage())
	}
	j, log = run("first pull", agentv1.PullPolicy_PULL_POLICY_IF_NOT_PRESENT, ref, cred)
	if j.GetStatus() != success || !strings.Contains(log, "pulling image "+ref) || !strings.Contains(log, "Pull complete") ||
		!strings.Contains(log, "pulled tool") || !strings.Contains(log, "registry env: unset") {
		t.Errorf("if-not-present, absent: %v %q\n%s", j.GetStatus(), j.GetMessage(), log)
	}
	if n := strings.Count(log, "Downloading"); n > 2 {
		t.Errorf("%d Downloading lines: progress floods the log\n%s", n, log)
	}
	j, log = run("present", agentv1.PullPolicy_PULL_POLICY_IF_NOT_PRESENT, ref, cred)
	if j.GetStatus() != success || strings.Contains(log, "pulling image") {
		t.Errorf("if-not-present, present: %v %q\n%s", j.GetStatus(), j.GetMessage(), log)
	}
	j, log = run("always", agentv1.PullPolicy_PULL_POLICY_ALWAYS, ref, cred)
	if j.GetStatus() != success || !strings.Contains(log, "pulling image "+ref) {
		t.Errorf("always: %v %q\n%s", j.GetStatus(), j.GetMessage(), log)
	}
	j, log = run("never, present", agentv1.PullPolicy_PULL_POLICY_NEVER, ref, cred)
	if j.GetStatus() != success || strings.Contains(log, "pulling image") {
		t.Errorf("never, present: %v %q\n%s", j.GetStatus(), j.GetMessage(), log)
	}
	// A stored secret (arcade secret set) as the credential.
	if out, err := c.cliIn("ci:reg-Pa55word", "secret", "set", "REGISTRY_AUTH"); err != nil {
		t.Fatalf("secret set: %v\n%s", err, out)
	}
	stored := c.create(&jobv1.CreateJobRequest{Name: "stored credential", Image: ref, SecretRefs: []string{"REGISTRY_AUTH"},
		Container: &agentv1.ContainerOptions{PullPolicy: agentv1.PullPolicy_PULL_POLICY_ALWAYS, RegistryAuthSecret: "REGISTRY_AUTH"},
		Commands:  []string{"cat /etc/tool"}})
	j = c.waitStatus(stored.GetId(), success, failed)
	if log = c.logText(stored.GetId(), 1); j.GetStatus() != success || !strings.Contains(log, "pulling image "+ref) {
		t.Errorf("stored credential: %v %q\n%s", j.GetStatus(), j.GetMessage(), log)
	}
	// The credential is in neither the logs nor the database.
	c.server.stop(syscall.SIGTERM)
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), "reg-Pa55word") {
			t.Errorf("the registry password is in %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range c.agents {
		if b, _ := os.ReadFile(p.logPath); strings.Contains(string(b), "reg-Pa55word") {
			t.Errorf("the registry password is in the log of agent %s", name)
		}
	}
}

// TestContainerEngineLost stops the engine under a running job: the
// attempt ends with the typed, retryable "engine lost" outcome, the agent
// drops its container-runtime label and keeps running shell jobs; when the
// engine is back the label returns and the retry runs.
func TestContainerEngineLost(t *testing.T) {
	e := dockertest.StartPrivate(t)
	e.BuildBusybox(t, dockertest.Image{Ref: testImage, Files: map[string]string{"/etc/arcade-image": "inside\n"}})
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db")
	c.startAgentWith("box", 2, engineFlags(e))
	j := c.create(&jobv1.CreateJobRequest{Name: "long", Image: testImage, Retries: 1,
		Commands: []string{"echo started", `if [ "$ARCADE_JOB_ATTEMPT" = 1 ]; then sleep 60; fi`, "cat /etc/arcade-image"}})
	c.waitFor("the job started", func() bool { return strings.Contains(c.logText(j.GetId(), 1), "started") })
	e.Halt(t)
	c.waitFor("attempt 1 to end", func() bool { return c.get(j.GetId()).GetAttempt() == 2 })
	got := c.get(j.GetId())
	if !strings.Contains(got.GetMessage(), "engine lost") {
		t.Errorf("after the engine went: %v %q, want attempt 1 ended by the engine lost", got.GetStatus(), got.GetMessage())
	}
	c.waitFor("the label dropped", func() bool { return c.agent("box").GetLabels()["container-runtime"] == "" })
	shell := c.create(&jobv1.CreateJobRequest{Name: "shell", Commands: []string{"echo on the host"}})
	if s := c.waitStatus(shell.GetId(), success, failed); s.GetStatus() != success {
		t.Errorf("shell job while the engine is away: %v %q", s.GetStatus(), s.GetMessage())
	}
	if s := c.get(j.GetId()); s.GetStatus() != pending {
		t.Errorf("the retry is %v while no agent has an engine, want PENDING", s.GetStatus())
	}
	e.Resume(t)
	c.waitFor("the label back", func() bool { return c.agent("box").GetLabels()["container-runtime"] == "docker" })
	got = c.waitStatus(j.GetId(), success, failed)
	if got.GetStatus() != success || got.GetAttempt() != 2 {
		t.Errorf("retry: %v attempt %d %q", got.GetStatus(), got.GetAttempt(), got.GetMessage())
	}
	c.waitFor("no leftovers", func() bool {
		left, err := e.Leftovers(context.Background())
		return err == nil && len(left) == 0
	})
}

// TestAgentRestartRemovesContainerLeftovers kills an agent in the middle of
// a container job; started again, it removes what it left in the engine.
func TestAgentRestartRemovesContainerLeftovers(t *testing.T) {
	e := containerEngine(t)
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db")
	work := t.TempDir()
	flags := append(engineFlags(e), "--work-dir", work)
	a := c.startAgentWith("box", 1, flags)
	j := c.create(&jobv1.CreateJobRequest{Name: "orphaned", Image: testImage,
		Container: &agentv1.ContainerOptions{Services: []*agentv1.ServiceContainer{{Name: "side", Image: testImage, Command: []string{"sleep", "60"}}}},
		Commands:  []string{"echo started", "sleep 60"}})
	c.waitFor("the job started", func() bool { return strings.Contains(c.logText(j.GetId(), 1), "started") })
	a.stop(syscall.SIGKILL)
	// A CI run saw the engine's list miss the job's container right after
	// the kill (it was listed again later), so the three are waited for.
	var left []string
	deadline := time.Now().Add(10 * time.Second)
	for left = jobObjects(t, e, j.GetId()); len(left) != 3 && time.Now().Before(deadline); left = jobObjects(t, e, j.GetId()) {
		time.Sleep(50 * time.Millisecond)
	}
	if len(left) != 3 {
		t.Fatalf("after the kill the engine holds %v, want the job's container, its service and its network", left)
	}
	c.startAgentWith("box", 1, flags)
	c.waitFor("the leftovers removed", func() bool { return len(jobObjects(t, e, j.GetId())) == 0 })
}

// TestImageJobsAndAgentsWithoutEngine: a job with an image never goes to
// an agent without an engine; bad image references and options are
// refused at CreateJob and CreatePipeline, naming the field.
func TestImageJobsAndAgentsWithoutEngine(t *testing.T) {
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db")
	c.startAgent("plain", 1)
	img := c.create(&jobv1.CreateJobRequest{Name: "needs engine", Image: "busybox:1", Commands: []string{"true"}})
	shell := c.create(&jobv1.CreateJobRequest{Name: "shell", Commands: []string{"true"}})
	c.waitStatus(shell.GetId(), success)
	if j := c.get(img.GetId()); j.GetStatus() != pending || j.GetAgentId() != "" {
		t.Errorf("image job on an agent without an engine: %v on %q", j.GetStatus(), j.GetAgentName())
	}
	for _, tc := range []struct {
		req   *jobv1.CreateJobRequest
		field string
	}{
		{&jobv1.CreateJobRequest{Image: "Not An Image", Commands: []string{"true"}}, "image:"},
		{&jobv1.CreateJobRequest{Image: "busybox", Commands: []string{"true"}, Container: &agentv1.ContainerOptions{MemoryBytes: 10}}, "container.memory_bytes:"},
		{&jobv1.CreateJobRequest{Image: "busybox", Commands: []string{"true"}, Container: &agentv1.ContainerOptions{RegistryAuthSecret: "NOPE"}}, "container.registry_auth_secret:"},
		{&jobv1.CreateJobRequest{Commands: []string{"true"}, Container: &agentv1.ContainerOptions{Cpus: 1}}, "container:"},
	} {
		_, err := c.jobs.CreateJob(context.Background(), tc.req)
		if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), tc.field) {
			t.Errorf("CreateJob(%v): %v, want InvalidArgument naming %s", tc.req, err, tc.field)
		}
	}
	yaml := `name: bad-service
stages:
  - name: build
    jobs:
      - name: test
        image: busybox:1
        services:
          - name: db
            image: "postgres::16"
        commands: [true]
`
	_, err := c.jobs.CreatePipeline(context.Background(), &jobv1.CreatePipelineRequest{Yaml: yaml})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "stages[0].jobs[0].container.services[0].image") {
		t.Errorf("CreatePipeline with a bad service image: %v", err)
	}
}

var imageRemoveForce = client.ImageRemoveOptions{Force: true}

// TestExampleContainersPipeline runs examples/pipelines/containers.arcade.yaml
// as its comment shows, with the locally built image as the parameters.
func TestExampleContainersPipeline(t *testing.T) {
	e := containerEngine(t)
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db")
	c.startAgentWith("box", 1, engineFlags(e))
	c.mustCLI(t, "pipeline", "create", "-f", filepath.Join("..", "examples", "pipelines", "containers.arcade.yaml"))
	if out, err := c.cli("pipeline", "trigger", "containers", "--param", "IMAGE="); err == nil || !strings.Contains(out, "expands to nothing") {
		t.Errorf("a run with an empty IMAGE: %v\n%s", err, out)
	}
	out := c.mustCLI(t, "pipeline", "trigger", "containers", "--param", "IMAGE="+testImage, "--param", "SERVICE_IMAGE="+testImage, "--wait")
	if !strings.Contains(out, "containers run #1  SUCCESS") {
		t.Errorf("the run did not succeed:\n%s", out)
	}
	resp, err := c.jobs.ListJobs(context.Background(), &jobv1.ListJobsRequest{})
	if err != nil || len(resp.GetJobs()) != 1 {
		t.Fatalf("jobs: %v %v", resp, err)
	}
	j := resp.GetJobs()[0]
	log := c.logText(j.GetId(), 1)
	if j.GetStatus() != success || j.GetImage() != testImage || !strings.Contains(log, "hello from a container build") ||
		!strings.Contains(log, "the service answered") || strings.Contains(log, "pulling image") {
		t.Errorf("job %v image %q:\n%s", j.GetStatus(), j.GetImage(), log)
	}
}

// TestContainerCLI creates container jobs from the command line, as the
// README and examples/jobs/container.yaml show.
func TestContainerCLI(t *testing.T) {
	e := containerEngine(t)
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db")
	c.startAgentWith("box", 1, engineFlags(e))
	out := c.mustCLI(t, "job", "create", "-f", filepath.Join("..", "examples", "jobs", "container.yaml"), "--image", testImage, "--follow")
	if !strings.Contains(out, "built as user 0 in /workspace") || !strings.Contains(out, "SUCCESS") {
		t.Errorf("job create -f examples/jobs/container.yaml:\n%s", out)
	}
	out = c.mustCLI(t, "job", "create", "--image", testImage, "--pull", "never", "--memory", "64m", "--cpus", "1",
		"--network", "none", "--cmd", "cat /etc/arcade-image", "--follow")
	if !strings.Contains(out, "inside the image") || !strings.Contains(out, "SUCCESS") {
		t.Errorf("job create --image:\n%s", out)
	}
	id := regexp.MustCompile(`job (\S+) \(.*\) created`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("no job id in:\n%s", out)
	}
	out = c.mustCLI(t, "job", "get", id[1])
	if !strings.Contains(out, "Image:") || !strings.Contains(out, "pull never, cpus 1, memory 64MiB, network none") {
		t.Errorf("job get:\n%s", out)
	}
	if out, err := c.cli("job", "create", "--image", "Bad Image", "--cmd", "true"); err == nil || !strings.Contains(out, "image: not a valid image reference") {
		t.Errorf("job create with a bad image: %v\n%s", err, out)
	}
}
