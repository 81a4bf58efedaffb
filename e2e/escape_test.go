package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
)

// TestWorkspaceEscape replays the sandbox escape as reported, on a real
// agent, against a folder standing in for the agent host's /etc: a plugin
// step that links /workspace/esc to ../../…/etc and reads esc/shadow and
// writes esc/x; a command step `ln -s /etc etcl` followed by a plugin step
// reading etcl/shadow; and artifacts collected through `ln -s /etc linkdir`.
// Nothing of the stand-in is read, written or uploaded, and the job says why.
func TestWorkspaceEscape(t *testing.T) {
	steptool := filepath.Join(t.TempDir(), "steptool.wasm")
	buildPlugin(t, "./testdata/steptool", steptool)
	storeDir := t.TempDir()
	etc := filepath.Join(t.TempDir(), "etc")
	if err := os.MkdirAll(filepath.Join(etc, "ssl"), 0o755); err != nil {
		t.Fatal(err)
	}
	const secret = "root:$6$stand-in-for-the-host-shadow"
	for _, f := range []string{"shadow", "passwd", "ssl/key.pem"} {
		if err := os.WriteFile(filepath.Join(etc, f), []byte(secret), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(t.TempDir(), "plugins.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`plugins:
  - name: steptool
    path: %s
    kind: ci
  - name: fs-store
    path: %s
    kind: storage
    config: {verify_loads: "false"}
    grants:
      allowed_paths:
        - {host: %s, guest: /store, mode: rw}
`, steptool, fsStorePlugin(t), storeDir)), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, "sqlite://"+filepath.Join(t.TempDir(), "arcade.db"),
		"--plugins-config", cfg, "--plugin-dirs", filepath.Dir(steptool), "--artifact-store", "fs-store")
	c.startAgent("target", 1)
	// As in the report: enough ".." to climb to / from the workspace, then
	// down to the stand-in.
	climb := strings.Repeat("../", 24) + strings.TrimPrefix(etc, "/")

	run := func(name string, req *jobv1.CreateJobRequest, want agentv1.JobStatus) (*jobv1.JobDetail, string) {
		t.Helper()
		req.Name = name
		j := c.create(req)
		j = c.waitStatus(j.GetId(), agentv1.JobStatus_JOB_STATUS_SUCCESS, agentv1.JobStatus_JOB_STATUS_FAILED)
		text := logText(c.logOf(j.GetId(), 0))
		if j.GetStatus() != want {
			t.Fatalf("job %s is %s (%s), want %s; log:\n%s", name, j.GetStatus(), j.GetMessage(), want, text)
		}
		if strings.Contains(text, secret) || strings.Contains(j.GetMessage(), secret) {
			t.Errorf("job %s read the stand-in's shadow:\n%s", name, text)
		}
		return j, text
	}
	t.Run("a link the plugin makes", func(t *testing.T) {
		j, _ := run("plugin-link", &jobv1.CreateJobRequest{Steps: []*agentv1.Step{{Uses: "steptool",
			With: map[string]string{"action": "symlink", "target": climb, "link": "esc", "read": "esc/shadow", "write": "esc/x"}}}},
			agentv1.JobStatus_JOB_STATUS_FAILED)
		if want := "plugin steptool: path not granted: /workspace/esc leads outside the granted folders"; !strings.Contains(j.GetMessage(), want) {
			t.Errorf("message %q, want it to contain %q", j.GetMessage(), want)
		}
	})
	t.Run("a link an earlier command step made", func(t *testing.T) {
		j, _ := run("command-link-read", &jobv1.CreateJobRequest{Steps: []*agentv1.Step{
			{Commands: []string{"ln -s " + etc + " etcl"}},
			{Uses: "steptool", With: map[string]string{"read": "etcl/shadow"}}}},
			agentv1.JobStatus_JOB_STATUS_FAILED)
		if want := "path not granted: /workspace/etcl/shadow leads outside the granted folders"; !strings.Contains(j.GetMessage(), want) {
			t.Errorf("message %q, want it to contain %q", j.GetMessage(), want)
		}
		j, _ = run("command-link-write", &jobv1.CreateJobRequest{Steps: []*agentv1.Step{
			{Commands: []string{"ln -s " + etc + " etcl"}},
			{Uses: "steptool", With: map[string]string{"write": "etcl/x"}}}},
			agentv1.JobStatus_JOB_STATUS_FAILED)
		if want := "path not granted: /workspace/etcl/x leads outside the granted folders"; !strings.Contains(j.GetMessage(), want) {
			t.Errorf("message %q, want it to contain %q", j.GetMessage(), want)
		}
	})
	t.Run("artifacts through a linked folder", func(t *testing.T) {
		j, text := run("artifact-link", &jobv1.CreateJobRequest{
			Commands:  []string{"ln -s " + etc + " linkdir", "ln -s " + etc + "/passwd passwd", "echo built > out.txt"},
			Artifacts: &agentv1.ArtifactConfig{Paths: []string{"linkdir/*", "passwd", "out.txt"}}},
			agentv1.JobStatus_JOB_STATUS_SUCCESS)
		for _, want := range []string{
			"[system] artifact path linkdir skipped: it leads outside the workspace",
			"[system] artifact path passwd skipped: it leads outside the workspace",
			"[system] artifact out.txt uploaded",
		} {
			if !strings.Contains(text, want) {
				t.Errorf("log lacks %q:\n%s", want, text)
			}
		}
		var paths []string
		for _, a := range artifactsOf(t, c, j.GetId()) {
			paths = append(paths, a.GetPath())
		}
		if strings.Join(paths, ",") != "out.txt" {
			t.Errorf("artifacts %v, want out.txt alone", paths)
		}
	})
	entries, err := os.ReadDir(etc)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("the stand-in for /etc now holds %v", names)
	}
}
