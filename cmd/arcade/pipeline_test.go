package main

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
)

// A run's header says what started it in one phrase, not "manual by api by
// api_token".
func TestRunHeaderSaysWhatStartedIt(t *testing.T) {
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		trigger jobv1.TriggerType
		by      string
		want    string
	}{
		{jobv1.TriggerType_TRIGGER_TYPE_MANUAL, "api by api_token", "id r1, manual trigger: api by api_token\n"},
		{jobv1.TriggerType_TRIGGER_TYPE_CRON, `cron "0 * * * *" at 2026-12-06T10:00:00Z`, "id r1, cron \"0 * * * *\" at 2026-12-06T10:00:00Z\n"},
		{jobv1.TriggerType_TRIGGER_TYPE_PIPELINE, "pipeline build run #3 succeeded", "id r1, pipeline build run #3 succeeded\n"},
		{jobv1.TriggerType_TRIGGER_TYPE_MANUAL, "", "id r1, manual trigger\n"},
	} {
		var b strings.Builder
		r := &jobv1.PipelineRun{Id: "r1", PipelineName: "ci", Number: 1, Trigger: c.trigger, TriggeredBy: c.by,
			Status: agentv1.JobStatus_JOB_STATUS_SUCCESS, CreatedAt: timestamppb.New(at), StartedAt: timestamppb.New(at), FinishedAt: timestamppb.New(at.Add(time.Second))}
		if err := showRun(&b, "table", r); err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitAfter(b.String(), "\n")
		if len(lines) < 2 || lines[1] != c.want {
			t.Errorf("trigger %v by %q: header\n%s\nwant second line %q", c.trigger, c.by, b.String(), c.want)
		}
	}
}

// arcade events says an event's name once: a notification's message and
// "event" attribute repeat it.
func TestEventLineSaysTheNameOnce(t *testing.T) {
	for _, c := range []struct {
		e    *jobv1.Event
		want string
	}{
		{&jobv1.Event{ResourceType: "notification", ResourceId: "runs", Message: "notification.delivered",
			Attributes: map[string]string{"event": "notification.delivered", "type": "pipeline.succeeded", "attempt": "1"}},
			"notification.delivered notification/runs  attempt=1 type=pipeline.succeeded"},
		{&jobv1.Event{ResourceType: "notification", ResourceId: "runs", Message: "notification.failed: 503 from the receiver",
			Attributes: map[string]string{"event": "notification.failed"}},
			"notification.failed    notification/runs  503 from the receiver"},
		{&jobv1.Event{ResourceType: "agent", ResourceId: "a1", Message: "registered", Attributes: map[string]string{"name": "vm"}},
			"agent.online           agent/a1  registered  name=vm"},
		{&jobv1.Event{ResourceType: "pipeline_run", ResourceId: "r1"}, "pipeline.succeeded     pipeline_run/r1"},
	} {
		name := map[string]string{"notification": c.e.GetMessage(), "agent": "agent.online", "pipeline_run": "pipeline.succeeded"}[c.e.GetResourceType()]
		if c.e.GetResourceType() == "notification" {
			name = c.e.GetAttributes()["event"]
		}
		if got := eventLine(name, c.e); got != c.want {
			t.Errorf("eventLine:\n got %q\nwant %q", got, c.want)
		}
	}
}

// A pipeline with no finished run has no success rate nor average yet
// ("-", not "0s"); one with a run still running neither.
func TestPipelineStatisticsBeforeAnyRunEnds(t *testing.T) {
	for _, c := range []struct {
		st   *jobv1.PipelineStatistics
		want string
	}{
		{&jobv1.PipelineStatistics{}, "runs: 0, success rate -, average -\n"},
		{&jobv1.PipelineStatistics{TotalRuns: 1}, "runs: 1, success rate -, average -\n"},
		{&jobv1.PipelineStatistics{TotalRuns: 2, SuccessRate: 0.5, AverageDuration: durationpb.New(1500 * time.Millisecond)}, "runs: 2, success rate 50%, average 1.5s\n"},
	} {
		var b strings.Builder
		if err := showPipeline(&b, "table", &jobv1.PipelineDetail{Name: "p", Id: "p1", Statistics: c.st}); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(b.String(), c.want) {
			t.Errorf("statistics %v:\n%s\nwant it to end with %q", c.st, b.String(), c.want)
		}
	}
}
