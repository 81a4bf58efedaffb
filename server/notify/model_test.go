package notify

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/pdk"
)

// A failed run's notification names the failed job, its step and the
// cause, and links the run's page under public_url; a failed job's links
// the job's page.
func TestFailureNamedAndLinked(t *testing.T) {
	s := &fakeSender{}
	n, err := New(Config{PublicURL: "https://ci.example.test/", Rules: []Rule{
		{Name: "runs", On: []string{"pipeline.failed"}, Plugin: "p", Template: "{{.Job}}|{{.Step}}|{{.Cause}}|{{.URL}}"},
		{Name: "jobs", On: []string{"job.failed"}, Plugin: "p", Template: "{{.Job}}|{{.Step}}|{{.Cause}}|{{.URL}}"},
		{Name: "default", On: []string{"pipeline.failed"}, Plugin: "p"},
	}}, s, nil, quiet())
	if err != nil {
		t.Fatal(err)
	}
	n.UseRuns(fakeRuns{"run-1": "web"})
	n.Handle(runFailed("web"))
	n.Handle(&jobv1.Event{Type: jobv1.EventType_EVENT_TYPE_JOB_FINISHED, ResourceType: "job", ResourceId: "j-3", Message: `step "lint \"all\"": plugin go-lint reported STATUS_FAILURE: 2 findings`,
		Attributes: map[string]string{"status": "failed", "name": "lint", "run_id": "run-1", "pipeline_id": "p"}})
	for len(n.queue) > 0 {
		n.deliver(context.Background(), <-n.queue)
	}
	var bodies []string
	for _, c := range s.calls {
		bodies = append(bodies, c.GetMetadata()["rule"]+": "+c.GetBody())
	}
	want := []string{
		"runs: test|unit|exit status 1|https://ci.example.test/runs/run-1",
		"default: pipeline.failed web run #7 job test step unit: failed: exit status 1 https://ci.example.test/runs/run-1",
		`jobs: lint|lint "all"|plugin go-lint reported STATUS_FAILURE: 2 findings|https://ci.example.test/jobs/j-3`,
	}
	if strings.Join(bodies, "\n") != strings.Join(want, "\n") {
		t.Errorf("bodies:\n%s\nwant:\n%s", strings.Join(bodies, "\n"), strings.Join(want, "\n"))
	}
	if ev := s.calls[0].GetEvent(); ev.GetUrl() != "https://ci.example.test/runs/run-1" || ev.GetLabels()["step"] != "unit" || ev.GetLabels()["cause"] != "exit status 1" || ev.GetLabels()["job"] != "test" {
		t.Errorf("the plugin's event: %v", ev)
	}

	// Without a public_url nothing links.
	s = &fakeSender{}
	n, _ = New(Config{Rules: []Rule{{Name: "runs", On: []string{"pipeline.failed"}, Plugin: "p", Template: "[{{.URL}}]"}}}, s, nil, quiet())
	n.Handle(runFailed("web"))
	n.deliver(context.Background(), <-n.queue)
	if got := s.calls[0].GetBody(); got != "[]" {
		t.Errorf("without public_url: %q", got)
	}
}

// The model is one: a template renders the same over what a rule sees
// and over what a plugin rebuilds from the request it gets (the event
// through protojson, as the plugin host hands it over).
func TestOneTemplateModel(t *testing.T) {
	d := Data{Type: "pipeline.failed", Rule: "r", Pipeline: "web", Run: "7", PipelineID: "p-1", RunID: "run-1",
		Job: "test", JobID: "j-9", Attempt: "2", Step: "unit", Cause: "exit status 1", Agent: "a1", Plugin: "webhook",
		Status: "failed", Message: "job test failed", URL: "https://ci.example.test/runs/run-1",
		Time: time.Date(2026, 12, 6, 14, 0, 0, 0, time.UTC), Attributes: map[string]string{"commit": "abc"}}
	d.Attributes = d.Labels()
	b, err := protojson.Marshal(notifyEvent(d))
	if err != nil {
		t.Fatal(err)
	}
	var ev pdk.NotifyEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	got := pdk.TemplateDataOf(&ev, nil)
	text := "{{.Type}} {{.Rule}} {{.Pipeline}} {{.Run}} {{.PipelineID}} {{.RunID}} {{.Job}} {{.JobID}} {{.Attempt}} {{.Step}} {{.Cause}} " +
		"{{.Agent}} {{.Plugin}} {{.Status}} {{.Message}} {{.URL}} {{.Time.Unix}} {{index .Attributes \"commit\"}} {{len .Attributes}}"
	tmpl, _, err := pdk.ParseTemplate("t", text)
	if err != nil {
		t.Fatal(err)
	}
	_, server, _ := pdk.RenderNotification(tmpl, d)
	_, plugin, _ := pdk.RenderNotification(tmpl, got)
	if server != plugin || !strings.Contains(server, "unit exit status 1") {
		t.Errorf("rule renders %q, plugin %q", server, plugin)
	}
}

// Template errors are refused when the configuration loads, naming the
// rule; the older plugin spelling {{.Event.status}} is rewritten with a
// warning.
func TestTemplatesCheckedAtLoad(t *testing.T) {
	for tmpl, want := range map[string]string{
		"{{.Pipeline":       "notify[1] (broken).template: template: broken:1: unclosed action",
		"{{.Pipline}}":      `notify[1] (broken).template: template: broken:1:2: executing "broken" at <.Pipline>: can't evaluate field Pipline`,
		"{{.Event.colour}}": "notify[1] (broken).template: {{.Event.colour}}: no such field",
		strings.Repeat("x", pdk.MaxTemplateBytes+1): "notify[1] (broken).template: template: 65537 bytes, more than the limit of 65536",
	} {
		c := Config{Rules: []Rule{{Name: "fine", On: []string{"job.failed"}, Plugin: "p"}, {Name: "broken", On: []string{"job.failed"}, Plugin: "p", Template: tmpl}}}
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("template %.20q: %v, want %q", tmpl, err, want)
		}
	}
	c := Config{Rules: []Rule{{Name: "old", On: []string{"job.failed"}, Plugin: "p", Template: "{{.Event.status}} {{.Event.job_id}} {{if .Event.url}}{{$.Event.URL}}{{end}}"}}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 4 || c.Warnings[0] != "notify[0] (old).template: {{.Event.status}} is an older spelling of {{.Status}}" {
		t.Errorf("warnings: %q", c.Warnings)
	}
	s := &fakeSender{}
	n, err := New(c, s, nil, quiet())
	if err != nil {
		t.Fatal(err)
	}
	n.Handle(&jobv1.Event{Type: jobv1.EventType_EVENT_TYPE_JOB_FINISHED, ResourceType: "job", ResourceId: "j-3", Timestamp: timestamppb.Now(),
		Attributes: map[string]string{"status": "failed", "name": "lint"}})
	n.deliver(context.Background(), <-n.queue)
	if got := s.calls[0].GetBody(); got != "failed j-3 " {
		t.Errorf("older spelling rendered %q", got)
	}
}
