package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
)

// TestExampleCIPipeline runs examples/pipelines/ci.arcade.yaml, the
// pipeline `make run` runs, on a real server and agent with the first-party
// plugins built from source: sample sources are prepared, linted by go-lint,
// tested by commands, scanned by secret-scan, packaged as an artifact, and
// the run's outcome is posted to a webhook receiver on 127.0.0.1. Run again
// with a planted key, it fails at the scan, uploads nothing and notifies
// the failure.
func TestExampleCIPipeline(t *testing.T) {
	dir := t.TempDir()
	wasm := map[string]string{}
	var builds []func()
	for _, name := range []string{"go-lint", "secret-scan", "fs-store", "webhook"} {
		wasm[name] = filepath.Join(dir, name+".wasm")
		builds = append(builds, func() { buildPlugin(t, "../plugins/"+name, wasm[name]) })
	}
	parallelDone(builds...)
	hook := newReceiver(t, 0, false)
	dataDir := filepath.Join(dir, "data")
	plugins := fmt.Sprintf(`plugins:
  - {name: go-lint, path: %s, kind: ci, grants: {timeout: 2m, memory_limit_mib: 128}}
  - {name: secret-scan, path: %s, kind: security, grants: {timeout: 2m, memory_limit_mib: 128}}
  - name: fs-store
    path: %s
    kind: storage
    config: {verify_loads: "false"}
    grants:
      allowed_paths: [{host: %s, guest: /store, mode: rw}]
      timeout: 2m
      memory_limit_mib: 256
  - name: webhook
    path: %s
    kind: notify
    failure_policy: fail_open
    config: {url: "%s/hook", format: generic}
    grants: {allowed_hosts: [127.0.0.1], timeout: 10s, memory_limit_mib: 32}
`, wasm["go-lint"], wasm["secret-scan"], wasm["fs-store"], filepath.Join(dataDir, "artifacts"), wasm["webhook"], hook.URL)
	pluginsPath := filepath.Join(dir, "plugins.yaml")
	serverPath := filepath.Join(dir, "server.yaml")
	server := `artifact_store: fs-store
notify:
  - name: runs
    on: [pipeline.succeeded, pipeline.failed]
    plugin: webhook
    template: "{{.Pipeline}} run #{{.Run}} {{.Status}}"
`
	for path, text := range map[string]string{pluginsPath: plugins, serverPath: server} {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := newCluster(t, "sqlite://"+filepath.Join(dir, "arcade.db"), "--config", serverPath, "--plugins-config", pluginsPath, "--data-dir", dataDir)
	c.startAgent("builder", 1)
	spec, err := os.ReadFile(filepath.Join("..", "examples", "pipelines", "ci.arcade.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.jobs.CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Yaml: string(spec)}); err != nil {
		t.Fatalf("create the example pipeline: %v", err)
	}

	// run triggers the pipeline and returns its one job once the run ended.
	run := func(params map[string]string) (*jobv1.PipelineRun, *jobv1.JobDetail, string) {
		t.Helper()
		resp, err := c.jobs.TriggerPipeline(ctx, &jobv1.TriggerPipelineRequest{PipelineId: "ci", Params: params})
		if err != nil {
			t.Fatal(err)
		}
		var r *jobv1.PipelineRun
		deadline := time.Now().Add(3 * time.Minute)
		for {
			got, err := c.jobs.GetPipelineRun(ctx, &jobv1.GetPipelineRunRequest{RunId: resp.GetRun().GetId()})
			if err != nil {
				t.Fatal(err)
			}
			if r = got.GetRun(); r.GetFinishedAt() != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("run did not end: %v", r)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if len(r.GetJobs()) != 1 {
			t.Fatalf("run has %d jobs, want 1", len(r.GetJobs()))
		}
		j := r.GetJobs()[0]
		return r, j, logText(c.logOf(j.GetId(), 0))
	}
	stepOutcome := func(log, step, outcome string) {
		t.Helper()
		re := regexp.MustCompile(`step \d/5 "` + step + `" ` + outcome)
		if !re.MatchString(log) {
			t.Errorf("step %s did not end %s:\n%s", step, outcome, log)
		}
	}

	// A clean run: every step succeeds, the artifact is kept, the success
	// is notified.
	r, j, log := run(nil)
	if r.GetStatus() != success || j.GetStatus() != success {
		t.Fatalf("run %v, job %v (%s):\n%s", r.GetStatus(), j.GetStatus(), j.GetMessage(), log)
	}
	for _, step := range []string{"prepare", "lint", "test", "scan", "package"} {
		stepOutcome(log, step, "succeeded")
	}
	for _, want := range []string{"plugin go-lint", "plugin secret-scan", "PASS greeting prefix"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	arts, err := c.jobs.ListJobArtifacts(ctx, &jobv1.ListJobArtifactsRequest{JobId: j.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if len(arts.GetArtifacts()) != 1 || arts.GetArtifacts()[0].GetPath() != "dist/greeter.txt" || !arts.GetArtifacts()[0].GetStored() {
		t.Fatalf("artifacts: %v", arts.GetArtifacts())
	}
	art := arts.GetArtifacts()[0]
	// The sha256 the job itself printed, the one listed and the one of the
	// bytes downloaded are one.
	printed := regexp.MustCompile(`([0-9a-f]{64})  dist/greeter.txt`).FindStringSubmatch(log)
	if printed == nil || printed[1] != art.GetSha256() {
		t.Errorf("listed sha256 %s, the job printed %v", art.GetSha256(), printed)
	}
	body, _, err := download(c, j.GetId(), art.GetPath())
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	if sum := sha256.Sum256(body); hex.EncodeToString(sum[:]) != art.GetSha256() || int64(len(body)) != art.GetSizeBytes() {
		t.Errorf("downloaded %d bytes with sha256 %x; listed %d bytes, %s", len(body), sum, art.GetSizeBytes(), art.GetSha256())
	}
	if !strings.HasPrefix(string(body), "greeter build 1\npackage greet") {
		t.Errorf("artifact content:\n%s", body)
	}
	waitBody := func(n int) map[string]any {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			if bodies, _ := hook.received(); len(bodies) >= n {
				return bodies[n-1]
			}
			if time.Now().After(deadline) {
				t.Fatalf("the webhook got no notification %d", n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	note := waitBody(1)
	if body, _ := note["body"].(string); !strings.HasPrefix(body, "ci run #1 ") || eventType(note) != "pipeline.succeeded" {
		t.Errorf("success notification: %v", note)
	}

	// A planted key: the scan fails the run, nothing is uploaded, the
	// failure is notified.
	r, j, log = run(map[string]string{"PLANT_SECRET": "1"})
	if r.GetStatus() != failed || j.GetStatus() != failed {
		t.Fatalf("planted run %v, job %v, want FAILED:\n%s", r.GetStatus(), j.GetStatus(), log)
	}
	for _, step := range []string{"prepare", "lint", "test"} {
		stepOutcome(log, step, "succeeded")
	}
	stepOutcome(log, "scan", "failed")
	if !strings.Contains(j.GetMessage(), `step "scan"`) || !strings.Contains(j.GetMessage(), "secret") {
		t.Errorf("job message %q does not name the scan step and what it found", j.GetMessage())
	}
	if !strings.Contains(log, "aws-access-key-id") || !strings.Contains(log, "src/config.go:3") {
		t.Errorf("the log does not show the finding with its place:\n%s", log)
	}
	if !strings.Contains(log, "1 later step(s) not run") || strings.Contains(log, `"package" started`) {
		t.Errorf("the package step ran after the failed scan:\n%s", log)
	}
	if arts, err := c.jobs.ListJobArtifacts(ctx, &jobv1.ListJobArtifactsRequest{JobId: j.GetId()}); err != nil || len(arts.GetArtifacts()) != 0 {
		t.Errorf("a failed run kept artifacts: %v %v", arts.GetArtifacts(), err)
	}
	note = waitBody(2)
	if body, _ := note["body"].(string); !strings.HasPrefix(body, "ci run #2 ") || eventType(note) != "pipeline.failed" {
		t.Errorf("failure notification: %v", note)
	}
}

// eventType is the event type in a generic webhook notification.
func eventType(note map[string]any) string {
	ev, _ := note["event"].(map[string]any)
	typ, _ := ev["type"].(string)
	return typ
}
