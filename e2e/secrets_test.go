package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
)

// TestJobSecrets: a secret reaches the job as env, never appears in its
// log (stdout, stderr, or a line it shares with other text), is never
// returned by the API, and is not in the database files in plain.
func TestJobSecrets(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "arcade.db")
	c := newCluster(t, "sqlite://"+dbPath)
	c.startAgent("keeper", 1)
	const value = "s3cr3t-V4LUE-42"
	j := c.create(&jobv1.CreateJobRequest{Name: "uses a secret", Commands: []string{
		`echo "token is $TOKEN"`, `printf 'err %s end\n' "$TOKEN" >&2`, `printf %s "$TOKEN" | sha256sum | grep -q ` + sha256Hex(value),
		// A line longer than the 64 KiB line limit, split by the agent with
		// the secret across the cut.
		`printf '%065530d%s long\n' 0 "$TOKEN"`,
		// Encoded forms: base64 at two alignments, hex.
		`printf %s "$TOKEN" | base64`, `printf 'x%s' "$TOKEN" | base64`, `printf %s "$TOKEN" | od -An -tx1 | tr -d ' \n'; echo`},
		Env: map[string]string{"TOKEN": "overridden by the secret"}, Secrets: map[string]string{"TOKEN": value}})
	done := c.waitStatus(j.GetId(), success, failed)
	if done.GetStatus() != success {
		t.Fatalf("job: %v (%s): the secret did not reach it as env", done.GetStatus(), done.GetMessage())
	}
	if names := done.GetSecretNames(); len(names) != 1 || names[0] != "TOKEN" {
		t.Errorf("secret_names = %v", names)
	}
	var log []string
	for _, l := range c.logOf(j.GetId(), 0) {
		log = append(log, l.GetContent())
	}
	all := strings.Join(log, "\n")
	for _, form := range []string{value, base64.StdEncoding.EncodeToString([]byte(value))[:16],
		base64.StdEncoding.EncodeToString([]byte("x" + value))[4:20], hex.EncodeToString([]byte(value))} {
		if strings.Contains(all, form) {
			t.Errorf("the secret is in the log as %q:\n%.2000s", form, all)
		}
	}
	if !strings.Contains(all, "token is ***") || !strings.Contains(all, "err *** end") {
		t.Errorf("masked lines missing:\n%s", all)
	}
	if joined := strings.Join(log, ""); !strings.Contains(joined, strings.Repeat("0", 65530)+"*** long") {
		t.Errorf("the long line was not kept whole with its secret masked")
	}
	// Not returned by the API, not in plain in the database files.
	if b, _ := os.ReadFile(dbPath); bytes.Contains(b, []byte(value)) {
		t.Error("the database file holds the secret in plain")
	}
	if b, _ := os.ReadFile(dbPath + "-wal"); bytes.Contains(b, []byte(value)) {
		t.Error("the database's write-ahead log holds the secret in plain")
	}
}

// TestPipelineSecrets sets a secret beside a pipeline file through the CLI:
// every job of a run gets it as env with its log masked, the pipeline shows
// only the name, an update from the file keeps it, and neither database file
// holds it in plain.
func TestPipelineSecrets(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "arcade.db")
	c := newCluster(t, "sqlite://"+dbPath)
	c.startAgent("keeper", 2)
	const value = "pipeline-S3CR3T-77"
	file := filepath.Join(t.TempDir(), "secret.arcade.yaml")
	spec := `name: with-secret
stages:
  - name: build
    jobs:
      - name: one
        commands: ['echo "deploy key $DEPLOY_KEY"']
  - name: ship
    jobs:
      - name: two
        commands: ['printf %s "$DEPLOY_KEY" | sha256sum | grep -q ` + sha256Hex(value) + `', 'echo "again $DEPLOY_KEY" >&2']
`
	if err := os.WriteFile(file, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) string { return c.mustCLI(t, args...) }
	out := cli("pipeline", "create", "-f", file, "--secret", "DEPLOY_KEY="+value)
	if !strings.Contains(out, "secrets: DEPLOY_KEY") || strings.Contains(out, value) {
		t.Errorf("pipeline create shows:\n%s", out)
	}
	// An update from the file alone keeps the secret.
	if out := cli("pipeline", "update", "-f", file); !strings.Contains(out, "secrets: DEPLOY_KEY") {
		t.Errorf("pipeline update dropped the secret:\n%s", out)
	}
	cli("pipeline", "trigger", "with-secret", "--wait")

	jobs, err := c.jobs.ListJobs(context.Background(), &jobv1.ListJobsRequest{PageSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs.GetJobs()) != 2 {
		t.Fatalf("%d jobs", len(jobs.GetJobs()))
	}
	var all []string
	for _, j := range jobs.GetJobs() {
		if j.GetStatus() != success {
			t.Errorf("job %s: %v (%s)", j.GetName(), j.GetStatus(), j.GetMessage())
		}
		if names := j.GetSecretNames(); len(names) != 1 || names[0] != "DEPLOY_KEY" {
			t.Errorf("job %s secret_names = %v", j.GetName(), names)
		}
		for _, l := range c.logOf(j.GetId(), 0) {
			all = append(all, l.GetContent())
		}
	}
	log := strings.Join(all, "\n")
	if strings.Contains(log, value) || !strings.Contains(log, "deploy key ***") || !strings.Contains(log, "again ***") {
		t.Errorf("log not masked as expected:\n%s", log)
	}
	for _, f := range []string{dbPath, dbPath + "-wal"} {
		if b, _ := os.ReadFile(f); bytes.Contains(b, []byte(value)) {
			t.Errorf("%s holds the secret in plain", filepath.Base(f))
		}
	}
}
