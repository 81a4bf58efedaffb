package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	"github.com/go-arcade/arcade/client"
	"github.com/go-arcade/arcade/host"
)

// buildPlugin compiles a plugin package to out.
// logText joins a job log, one line per line, with the stream for system
// lines ("[system] …").
func logText(lines []*agentv1.LogChunk) string {
	var b strings.Builder
	for _, l := range lines {
		if l.GetStream() == agentv1.LogStream_LOG_STREAM_SYSTEM {
			b.WriteString("[system] ")
		}
		b.WriteString(l.GetContent())
		b.WriteByte('\n')
	}
	return b.String()
}

// TestPluginSteps runs jobs that mix commands and wasm plugin steps on
// agents: the workspace carries between them, plugin output lands in the
// job log (secrets masked), a plugin swapped on the server is what the next
// job runs, a plugin over its time or memory fails its job alone, jobs go
// only to agents that offer their plugins, and an agent that requires
// signatures refuses an unsigned or badly signed module.
func TestPluginSteps(t *testing.T) {
	build := t.TempDir()
	v1, v2 := filepath.Join(build, "steptool-1.wasm"), filepath.Join(build, "steptool-2.wasm")
	lint := filepath.Join(build, "go-lint.wasm")
	parallelDone(
		func() { buildPlugin(t, "./testdata/steptool", v1) },
		func() { buildPlugin(t, "./testdata/steptool", v2, "-X main.version=2.0.0") },
		func() { buildPlugin(t, "../plugins/go-lint", lint) },
	)
	if t.Failed() {
		return
	}
	eachDB(t, func(t *testing.T, dsn string) { pluginSteps(t, dsn, v1, v2, lint) })
}

func pluginSteps(t *testing.T, dsn, v1, v2, lint string) {
	dir := t.TempDir()
	pluginDir := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, lint, filepath.Join(pluginDir, "go-lint.wasm"))
	copyFile(t, v1, filepath.Join(pluginDir, "steptool.wasm"))
	copyFile(t, v1, filepath.Join(pluginDir, "badsig.wasm"))
	copyFile(t, v1, filepath.Join(pluginDir, "unsigned.wasm"))
	copyFile(t, v1, filepath.Join(pluginDir, "slowtool.wasm"))
	copyFile(t, v1, filepath.Join(pluginDir, "doomed.wasm"))

	// go-lint is signed by the key the strict agent trusts, badsig by another.
	pub, priv, _ := host.GenerateKey()
	_, otherPriv, _ := host.GenerateKey()
	sign := func(name string, key []byte) {
		data, err := os.ReadFile(filepath.Join(pluginDir, name+".wasm"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pluginDir, name+".wasm.sig"), host.EncodeSignature(host.SignModule(key, data)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sign("go-lint", priv)
	sign("badsig", otherPriv)

	cfgTemplate := `plugins:
  - name: steptool
    path: %[1]s/steptool.wasm
    kind: ci
    grants: {timeout: 3s, memory_limit_mib: 32}
  - name: go-lint
    path: %[1]s/go-lint.wasm
    kind: ci
  - name: badsig
    path: %[1]s/badsig.wasm
    kind: ci
  - name: unsigned
    path: %[1]s/unsigned.wasm
    kind: ci
  - name: slowtool
    path: %[1]s/slowtool.wasm
    kind: ci
    grants: {timeout: 10m}
`
	doomed := `  - name: doomed
    path: %[1]s/doomed.wasm
    kind: ci
`
	cfgPath := filepath.Join(dir, "plugins.yaml")
	writeCfg := func(withDoomed bool) {
		cfg := cfgTemplate
		if withDoomed {
			cfg += doomed
		}
		if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(cfg, pluginDir)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg(true)
	c := newCluster(t, dsn, "--plugins-config", cfgPath, "--plugin-dirs", pluginDir)
	plugins := pluginv1.NewPluginServiceClient(c.conn)
	ctx := context.Background()
	main := c.startAgent("main", 1, "role=main")
	if a := c.agent("main"); !slices.Equal(a.GetPlugins(), []string{"*"}) || a.GetLabels()["arcade.dev/wasm"] != "true" {
		t.Errorf("agent main: plugins %v, labels %v", a.GetPlugins(), a.GetLabels())
	}

	run := func(req *jobv1.CreateJobRequest, want agentv1.JobStatus) (*jobv1.JobDetail, string) {
		t.Helper()
		j := c.create(req)
		j = c.waitStatus(j.GetId(), want, agentv1.JobStatus_JOB_STATUS_SUCCESS, agentv1.JobStatus_JOB_STATUS_FAILED, agentv1.JobStatus_JOB_STATUS_TIMEOUT)
		text := logText(c.logOf(j.GetId(), 0))
		if j.GetStatus() != want {
			t.Fatalf("job %s is %s (%s), want %s; log:\n%s", j.GetName(), j.GetStatus(), j.GetMessage(), want, text)
		}
		return j, text
	}
	mustContain := func(what, text string, wants ...string) {
		t.Helper()
		for _, w := range wants {
			if !strings.Contains(text, w) {
				t.Errorf("%s lacks %q:\n%s", what, w, text)
			}
		}
	}

	cli := func(t *testing.T, args ...string) string { return c.mustCLI(t, args...) }

	t.Run("mixed steps share the workspace", func(t *testing.T) {
		j, text := run(&jobv1.CreateJobRequest{Name: "mixed", Selector: "role=main",
			Secrets: map[string]string{"DEPLOY_TOKEN": "tok-8c1f0e55"},
			Steps: []*agentv1.Step{
				{Name: "prepare", Commands: []string{
					`mkdir -p src && printf 'package main\n\nfunc main() {}\n' > src/main.go`,
					`echo seeded-by-a-command > seed.txt`}},
				{Uses: "go-lint", Function: "lint", With: map[string]string{"dir": "/workspace/src"}},
				{Name: "tool", Uses: "steptool@1.0.0", With: map[string]string{"read": "seed.txt", "write": "out.txt"}},
				{Name: "check", Commands: []string{"cat out.txt"}},
				{Name: "secret", Uses: "steptool", With: map[string]string{"action": "env", "var": "DEPLOY_TOKEN"}},
			}}, agentv1.JobStatus_JOB_STATUS_SUCCESS)
		mustContain("log", text,
			`[system] step 1/5 "prepare" started (commands)`,
			`[system] step 2/5 "go-lint" started (uses go-lint)`,
			"result: SUCCESS: 1 Go files checked, all formatted",
			`[system] step 2/5 "go-lint" succeeded`,
			"steptool 1.0.0 in step tool of job mixed",
			"read seed.txt: seeded-by-a-command",
			"wrote out.txt",
			"written by steptool 1.0.0",
			"env DEPLOY_TOKEN=***",
			`[system] step 5/5 "secret" succeeded`)
		if strings.Contains(text, "tok-8c1f0e55") {
			t.Errorf("a secret leaked into the log:\n%s", text)
		}
		if len(j.GetSteps()) != 5 || j.GetSteps()[2].GetWith()["write"] != "out.txt" {
			t.Errorf("job steps: %v", j.GetSteps())
		}
	})

	t.Run("job files and the CLI speak steps", func(t *testing.T) {
		jobFile := filepath.Join(dir, "steps.yaml")
		raw, err := os.ReadFile("../examples/jobs/steps.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(jobFile, append(raw, []byte("selector: role=main\n")...), 0o644); err != nil {
			t.Fatal(err)
		}
		out := cli(t, "job", "create", "-f", jobFile, "--follow")
		mustContain("arcade job create -f --follow", out, "result: SUCCESS: 1 Go files checked, all formatted", "main.go", "SUCCESS")
		id := regexp.MustCompile(`job (\S+) \(lint-sources\) created`).FindStringSubmatch(out)
		if id == nil {
			t.Fatalf("no job id in:\n%s", out)
		}
		mustContain("arcade job get", cli(t, "job", "get", id[1]),
			"Step 1:", "prepare: run mkdir -p src", "Step 2:", "lint: uses go-lint, function lint, with dir=/workspace/src", "Step 3:")
		out = cli(t, "job", "create", "--selector", "role=main", "--cmd", "echo hi > hi.txt", "--uses", "steptool", "--with", "read=hi.txt", "--follow")
		mustContain("arcade job create --uses", out, "read hi.txt: hi")
	})

	t.Run("a failing plugin fails its job and stops the steps", func(t *testing.T) {
		j, text := run(&jobv1.CreateJobRequest{Name: "findings", Selector: "role=main", Steps: []*agentv1.Step{
			{Uses: "steptool", With: map[string]string{"action": "fail"}},
			{Name: "after", Commands: []string{"echo never-printed"}},
		}}, agentv1.JobStatus_JOB_STATUS_FAILED)
		if want := `step "steptool": plugin steptool reported failure: 1 problem`; j.GetMessage() != want {
			t.Errorf("message %q, want %q", j.GetMessage(), want)
		}
		mustContain("log", text, "finding main.go:3: [demo] planted problem (high)", "1 later step(s) not run")
		if strings.Contains(text, "never-printed") {
			t.Errorf("a step after the failure ran:\n%s", text)
		}
	})

	t.Run("timeout and memory limit fail the job alone", func(t *testing.T) {
		j, text := run(&jobv1.CreateJobRequest{Name: "loops", Selector: "role=main", Steps: []*agentv1.Step{
			{Uses: "steptool", With: map[string]string{"action": "loop"}}}}, agentv1.JobStatus_JOB_STATUS_FAILED)
		if !strings.Contains(j.GetMessage(), "plugin steptool timed out after 3s") {
			t.Errorf("message %q", j.GetMessage())
		}
		mustContain("log", text, "plugin steptool timed out after 3s")

		j, text = run(&jobv1.CreateJobRequest{Name: "hogs", Selector: "role=main", Steps: []*agentv1.Step{
			{Uses: "steptool", With: map[string]string{"action": "hog"}}}}, agentv1.JobStatus_JOB_STATUS_FAILED)
		if !strings.Contains(j.GetMessage(), "plugin steptool ran out of memory (limit 32 MiB)") {
			t.Errorf("message %q", j.GetMessage())
		}
		mustContain("log", text, "ran out of memory (limit 32 MiB)")

		_, text = run(&jobv1.CreateJobRequest{Name: "after", Selector: "role=main", Steps: []*agentv1.Step{
			{Uses: "steptool"}, {Commands: []string{"echo still-healthy"}}}}, agentv1.JobStatus_JOB_STATUS_SUCCESS)
		mustContain("log", text, "still-healthy")
	})

	t.Run("the job's timeout and cancellation stop a running plugin", func(t *testing.T) {
		j, text := run(&jobv1.CreateJobRequest{Name: "job-timeout", Selector: "role=main", Timeout: durationpb.New(2 * time.Second),
			Steps: []*agentv1.Step{{Uses: "slowtool", With: map[string]string{"action": "loop"}}}}, agentv1.JobStatus_JOB_STATUS_TIMEOUT)
		if j.GetMessage() != "timed out after 2s" {
			t.Errorf("message %q", j.GetMessage())
		}
		mustContain("log", text, `step 1/1 "slowtool" timed out`)

		j = c.create(&jobv1.CreateJobRequest{Name: "job-cancel", Selector: "role=main",
			Steps: []*agentv1.Step{{Uses: "slowtool", With: map[string]string{"action": "loop"}}}})
		c.waitFor("the plugin to run", func() bool {
			return strings.Contains(logText(c.logOf(j.GetId(), 0)), "plugin slowtool 1.0.0")
		})
		if _, err := c.jobs.CancelJob(ctx, &jobv1.CancelJobRequest{JobId: j.GetId(), Reason: "enough"}); err != nil {
			t.Fatal(err)
		}
		j = c.waitStatus(j.GetId(), agentv1.JobStatus_JOB_STATUS_CANCELLED)
		if j.GetMessage() != "enough" {
			t.Errorf("message %q", j.GetMessage())
		}
	})

	t.Run("a plugin gone by hand-out time fails its job", func(t *testing.T) {
		j := c.create(&jobv1.CreateJobRequest{Name: "doomed", Selector: "role=late", Steps: []*agentv1.Step{{Uses: "doomed"}}})
		if err := os.Remove(filepath.Join(pluginDir, "doomed.wasm")); err != nil {
			t.Fatal(err)
		}
		writeCfg(false)
		c.waitFor("doomed to be unloaded", func() bool {
			_, err := plugins.GetPlugin(ctx, &pluginv1.GetPluginRequest{Name: "doomed"})
			return status.Code(err) == codes.NotFound
		})
		c.startAgent("late", 1, "role=late")
		j = c.waitStatus(j.GetId(), agentv1.JobStatus_JOB_STATUS_FAILED)
		if !strings.Contains(j.GetMessage(), `plugin "doomed" is not loaded on this server`) {
			t.Errorf("message %q", j.GetMessage())
		}
	})

	t.Run("a plugin swapped on the server is used by the next job", func(t *testing.T) {
		before, err := plugins.GetPlugin(ctx, &pluginv1.GetPluginRequest{Name: "steptool"})
		if err != nil {
			t.Fatal(err)
		}
		oldSHA := before.GetPlugin().GetSha256()
		tmp := filepath.Join(pluginDir, ".steptool.new")
		copyFile(t, v2, tmp)
		if err := os.Rename(tmp, filepath.Join(pluginDir, "steptool.wasm")); err != nil {
			t.Fatal(err)
		}
		c.waitFor("steptool 2.0.0 on the server", func() bool {
			r, err := plugins.GetPlugin(ctx, &pluginv1.GetPluginRequest{Name: "steptool"})
			return err == nil && r.GetPlugin().GetMetadata().GetVersion() == "2.0.0"
		})
		_, text := run(&jobv1.CreateJobRequest{Name: "swapped", Selector: "role=main", Steps: []*agentv1.Step{
			{Uses: "steptool", With: map[string]string{"write": "v.txt"}}, {Commands: []string{"cat v.txt"}}}},
			agentv1.JobStatus_JOB_STATUS_SUCCESS)
		mustContain("log", text, "plugin steptool 2.0.0", "result: SUCCESS: steptool 2.0.0", "written by steptool 2.0.0")
		// An agent whose job named 1.0.0 just before the swap still gets
		// that version; a version never handed out is not served.
		if got := fetchModule(t, c, "steptool", oldSHA); got != oldSHA {
			t.Errorf("the module handed out before the swap: got sha256 %s, want %s", got, oldSHA)
		}
		if got := fetchModule(t, c, "steptool", strings.Repeat("0", 64)); got != "NotFound" {
			t.Errorf("an unknown version: %s, want NotFound", got)
		}
		select {
		case <-main.done:
			t.Fatal("the agent stopped")
		case <-c.server.done:
			t.Fatal("the server stopped")
		default:
		}
		if n := len(main.grepLog("plugin module fetched")); n < 3 {
			t.Errorf("agent fetched %d modules, want go-lint and two versions of steptool", n)
		}
		// A step pinned to the old version is refused now.
		_, err = c.jobs.CreateJob(ctx, &jobv1.CreateJobRequest{Steps: []*agentv1.Step{{Commands: []string{"true"}}, {Uses: "steptool@1.0.0"}}})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "steps[1].uses") || !strings.Contains(err.Error(), "2.0.0") {
			t.Errorf("pinned old version: %v", err)
		}
	})

	t.Run("unknown plugins are refused", func(t *testing.T) {
		_, err := c.jobs.CreateJob(ctx, &jobv1.CreateJobRequest{Steps: []*agentv1.Step{{Commands: []string{"true"}}, {Uses: "nope"}}})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "steps[1].uses") {
			t.Errorf("CreateJob with an unknown plugin: %v", err)
		}
		_, err = c.jobs.CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Yaml: `
name: unknown-plugin
stages:
  - name: s
    jobs:
      - name: j
        uses: nope
`})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "stages[0].jobs[0].uses") {
			t.Errorf("CreatePipeline with an unknown plugin: %v", err)
		}
	})

	t.Run("a pipeline job with uses runs its plugin", func(t *testing.T) {
		resp, err := c.jobs.CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Yaml: `
name: with-plugins
stages:
  - name: build
    jobs:
      - name: prepare-and-tool
        selector: role=main
        steps:
          - run: echo from-the-pipeline > p.txt
          - uses: steptool
            with: {read: p.txt}
  - name: check
    jobs:
      - name: tool
        selector: role=main
        uses: steptool
`})
		if err != nil {
			t.Fatal(err)
		}
		tr, err := c.jobs.TriggerPipeline(ctx, &jobv1.TriggerPipelineRequest{PipelineId: resp.GetPipeline().GetId()})
		if err != nil {
			t.Fatal(err)
		}
		var jobs []*jobv1.JobDetail
		c.waitFor("the run's jobs to end", func() bool {
			l, err := c.jobs.ListJobs(ctx, &jobv1.ListJobsRequest{RunId: tr.GetRun().GetId()})
			if err != nil {
				t.Fatal(err)
			}
			jobs = l.GetJobs()
			done := 0
			for _, j := range jobs {
				if j.GetStatus() == agentv1.JobStatus_JOB_STATUS_SUCCESS || j.GetStatus() == agentv1.JobStatus_JOB_STATUS_FAILED {
					done++
				}
			}
			return done == 2
		})
		for _, j := range jobs {
			if j.GetStatus() != agentv1.JobStatus_JOB_STATUS_SUCCESS {
				t.Errorf("pipeline job %s is %s: %s\n%s", j.GetName(), j.GetStatus(), j.GetMessage(), logText(c.logOf(j.GetId(), 0)))
			}
			if j.GetName() == "prepare-and-tool" {
				mustContain("log", logText(c.logOf(j.GetId(), 0)), "read p.txt: from-the-pipeline")
			}
		}
	})

	t.Run("jobs go to agents that offer their plugins", func(t *testing.T) {
		c.startAgentWith("lint-only", 1, []string{"--plugins", "go-lint"}, "role=route")
		if a := c.agent("lint-only"); !slices.Equal(a.GetPlugins(), []string{"go-lint"}) {
			t.Errorf("agent lint-only offers %v", a.GetPlugins())
		}
		c.startAgentWith("no-wasm", 1, []string{"--plugins", "-"}, "role=route")
		if a := c.agent("no-wasm"); a.GetLabels()["arcade.dev/wasm"] != "" {
			t.Errorf("agent no-wasm has labels %v", a.GetLabels())
		}
		j := c.create(&jobv1.CreateJobRequest{Name: "routed", Selector: "role=route", Steps: []*agentv1.Step{{Uses: "steptool"}}})
		// A commands job on the same agents runs (they are idle and listening) ...
		plain := c.create(&jobv1.CreateJobRequest{Name: "plain", Selector: "role=route", Commands: []string{"true"}})
		c.waitStatus(plain.GetId(), agentv1.JobStatus_JOB_STATUS_SUCCESS)
		// ... while the plugin job waits for an agent that offers steptool.
		if got := c.get(j.GetId()); got.GetStatus() != agentv1.JobStatus_JOB_STATUS_PENDING {
			t.Fatalf("job needing steptool is %s on %s, want PENDING", got.GetStatus(), got.GetAgentName())
		}
		c.startAgentWith("tools", 1, []string{"--plugins", "steptool,go-lint"}, "role=route")
		mustContain("arcade agent list", cli(t, "agent", "list"), "steptool,go-lint")
		done := c.waitStatus(j.GetId(), agentv1.JobStatus_JOB_STATUS_SUCCESS, agentv1.JobStatus_JOB_STATUS_FAILED)
		if done.GetStatus() != agentv1.JobStatus_JOB_STATUS_SUCCESS || done.GetAgentName() != "tools" {
			t.Errorf("job ran on %s: %s %s", done.GetAgentName(), done.GetStatus(), done.GetMessage())
		}
	})

	t.Run("an agent that requires signatures refuses bad modules", func(t *testing.T) {
		c.startAgentWith("strict", 1, []string{"--require-signatures", "--trusted-keys", host.EncodePublicKey(pub)}, "role=strict")
		_, text := run(&jobv1.CreateJobRequest{Name: "signed", Selector: "role=strict", Steps: []*agentv1.Step{
			{Commands: []string{`mkdir src && printf 'package main\n' > src/a.go`}}, {Uses: "go-lint", Function: "lint"}}},
			agentv1.JobStatus_JOB_STATUS_SUCCESS)
		mustContain("log", text, `step 2/2 "go-lint" succeeded`)

		j, text := run(&jobv1.CreateJobRequest{Name: "unsigned", Selector: "role=strict", Steps: []*agentv1.Step{{Uses: "unsigned"}}},
			agentv1.JobStatus_JOB_STATUS_FAILED)
		if !strings.Contains(j.GetMessage(), "unsigned, and this agent requires signatures") {
			t.Errorf("unsigned module: message %q", j.GetMessage())
		}
		mustContain("log", text, "module refused")

		j, _ = run(&jobv1.CreateJobRequest{Name: "badsig", Selector: "role=strict", Steps: []*agentv1.Step{{Uses: "badsig"}}},
			agentv1.JobStatus_JOB_STATUS_FAILED)
		if !strings.Contains(j.GetMessage(), "bad signature") {
			t.Errorf("module signed by another key: message %q", j.GetMessage())
		}
		strictDir := ""
		for _, a := range c.agents["strict"].cmd.Args {
			if strings.HasPrefix(a, os.TempDir()) {
				strictDir = a
			}
		}
		if strictDir != "" {
			cached, _ := filepath.Glob(filepath.Join(strictDir, "plugins", "*.wasm"))
			if len(cached) != 1 {
				t.Errorf("the strict agent cached %v, want go-lint alone", cached)
			}
		}
	})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fetchModule downloads a plugin module as an agent does and returns the
// sha256 of the bytes received, or the error code.
func fetchModule(t *testing.T, c *cluster, name, sha string) string {
	t.Helper()
	ctx := context.Background()
	reg, err := client.Dial(c.addr, client.Static(agentToken))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	r, err := agentv1.NewAgentServiceClient(reg).Register(ctx, &agentv1.RegisterRequest{Name: "fetcher-" + sha[:8], Plugins: []string{"-"}})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := client.Dial(c.addr, client.Static(r.GetAgentToken()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := agentv1.NewAgentServiceClient(conn).DownloadPlugin(ctx, &agentv1.DownloadPluginRequest{Name: name, Sha256: sha})
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return hex.EncodeToString(h.Sum(nil))
		}
		if err != nil {
			return status.Code(err).String()
		}
		h.Write(resp.GetData())
	}
}
