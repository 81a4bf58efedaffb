package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServerCheck: `arcade server check` passes the shipped configuration and
// refuses, naming the key or the rule, what would stop a server at start.
func TestServerCheck(t *testing.T) {
	check := func(args ...string) (string, error) {
		cmd := newServerCheckCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(args)
		err := cmd.Execute()
		return out.String(), err
	}
	out, err := check("--config", "../../conf.d/server.yaml")
	if err != nil || !strings.Contains(out, "ok, 1 notification rules") {
		t.Fatalf("the shipped server.yaml: %v\n%s", err, out)
	}
	dir := t.TempDir()
	for _, c := range []struct{ yaml, want string }{
		{"notfy: []\n", "notfy: unknown key; did you mean notify?"},
		{"notify:\n  - {name: typo, on: [pipeline.failed], plugin: log-notify, template: '{{.Pipline}}'}\n", "notify[0] (typo).template"},
		{"db: mysql://x\n", "db: want sqlite://PATH or postgres://"},
	} {
		file := filepath.Join(dir, "server.yaml")
		if err := os.WriteFile(file, []byte(c.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := check("--config", file); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.yaml, err, c.want)
		}
	}
}
