package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// TestNotifyConfig: notification rules, delivery settings and the audit
// plugin come from server.yaml, and a bad rule stops the server at start
// with an error naming it.
func TestNotifyConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "server.yaml")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cmd := &cobra.Command{}
	cmd.Flags().String("config", "", "")
	addServerFlags(cmd.Flags())
	good := write(`
notify:
  - name: failures
    on: [pipeline.failed, job.failed, agent.offline]
    plugin: webhook
    template: "{{.Pipeline}} run #{{.Run}} {{.Status}}: {{.Message}}"
    pipelines: [web]
notify_delivery: {attempts: 5, backoff: 200ms, timeout: 2s}
audit: {plugin: secret-scan}
`)
	cfg, err := serverConfig(cmd, good)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	r := cfg.Notify.Rules
	if len(r) != 1 || r[0].Name != "failures" || r[0].Plugin != "webhook" || len(r[0].On) != 3 || r[0].Pipelines[0] != "web" ||
		!strings.HasPrefix(r[0].Template, "{{.Pipeline}} run") {
		t.Errorf("rules: %+v", r)
	}
	if cfg.Notify.Attempts != 5 || cfg.Notify.Backoff != 200*time.Millisecond || cfg.Notify.Timeout != 2*time.Second || cfg.AuditPlugin != "secret-scan" {
		t.Errorf("delivery: %+v, audit %q", cfg.Notify, cfg.AuditPlugin)
	}

	for body, want := range map[string]string{
		"notify: [{name: x, on: [pipeline.exploded], plugin: webhook}]":        `notify[0] (x).on[0]: unknown event name "pipeline.exploded"`,
		"notify: [{name: x, on: [job.failed]}]":                                "notify[0] (x).plugin: must name a notify plugin",
		`notify: [{name: x, on: [job.failed], plugin: w, template: "{{.Run"}]`: "notify[0] (x).template:",
		// A field the template model lacks, found at start, not at the
		// first failure.
		`notify: [{name: ok, on: [job.failed], plugin: w}, {name: typo, on: [job.failed], plugin: w, template: "{{.Pipline}}"}]`: "notify[1] (typo).template: template: typo:1:2: executing \"typo\" at <.Pipline>: can't evaluate field Pipline",
		`notify: [{name: old, on: [job.failed], plugin: w, template: "{{.Event.colour}}"}]`:                                      "notify[0] (old).template: {{.Event.colour}}: no such field",
	} {
		cfg, err := serverConfig(cmd, write(body))
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", body, err, want)
		}
	}
}
