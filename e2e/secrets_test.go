package e2e

import (
	"bytes"
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
		`echo "token is $TOKEN"`, `printf 'err %s end\n' "$TOKEN" >&2`, `printf %s "$TOKEN" | sha256sum | grep -q ` + sha256Hex(value)},
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
	if strings.Contains(all, value) {
		t.Errorf("the secret is in the log:\n%s", all)
	}
	if !strings.Contains(all, "token is ***") || !strings.Contains(all, "err *** end") {
		t.Errorf("masked lines missing:\n%s", all)
	}
	// Not returned by the API, not in plain in the database files.
	if b, _ := os.ReadFile(dbPath); bytes.Contains(b, []byte(value)) {
		t.Error("the database file holds the secret in plain")
	}
	if b, _ := os.ReadFile(dbPath + "-wal"); bytes.Contains(b, []byte(value)) {
		t.Error("the database's write-ahead log holds the secret in plain")
	}
}
