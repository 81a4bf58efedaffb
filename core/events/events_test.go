package events

import (
	"errors"
	"slices"
	"strings"
	"testing"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
)

func ev(t jobv1.EventType, status string) *jobv1.Event {
	e := &jobv1.Event{Type: t}
	if status != "" {
		e.Attributes = map[string]string{"status": status}
	}
	return e
}

func TestOf(t *testing.T) {
	for _, tc := range []struct {
		e    *jobv1.Event
		want Name
	}{
		{ev(jobv1.EventType_EVENT_TYPE_JOB_FINISHED, "failed"), JobFailed},
		{ev(jobv1.EventType_EVENT_TYPE_JOB_FINISHED, "success"), JobSucceeded},
		{ev(jobv1.EventType_EVENT_TYPE_JOB_CANCELLED, "cancelled"), JobCancelled},
		{ev(jobv1.EventType_EVENT_TYPE_JOB_CREATED, "pending"), JobCreated},
		{ev(jobv1.EventType_EVENT_TYPE_PIPELINE_RUN_STATUS, "running"), PipelineStarted},
		{ev(jobv1.EventType_EVENT_TYPE_PIPELINE_RUN_STATUS, "pending"), PipelineCreated},
		{ev(jobv1.EventType_EVENT_TYPE_NOTIFICATION_DROPPED, ""), NotificationDropped},
		{ev(jobv1.EventType_EVENT_TYPE_JOB_FINISHED, "weird"), ""},
		{ev(jobv1.EventType_EVENT_TYPE_UNSPECIFIED, ""), ""},
	} {
		if got := Of(tc.e); got != tc.want {
			t.Errorf("Of(%v) = %q, want %q", tc.e, got, tc.want)
		}
	}
}

// Every wire type has a name, so no event goes unnamed.
func TestEveryWireTypeIsNamed(t *testing.T) {
	for v, s := range jobv1.EventType_name {
		if v == 0 {
			continue
		}
		if wireName(jobv1.EventType(v)) == "" {
			t.Errorf("%s has no name", s)
		}
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in    string
		want  string
		alias bool
		names []Name
	}{
		{"job.failed", "job.failed", false, []Name{JobFailed}},
		{"job.*", "job.*", false, []Name{JobCreated, JobStarted, JobSucceeded, JobFailed, JobTimeout, JobSkipped, JobCancelled}},
		{"job.finished", "job.finished", false, []Name{JobSucceeded, JobFailed, JobTimeout, JobSkipped}},
		{"job_finished", "job.finished", true, nil},
		{"EVENT_TYPE_JOB_FINISHED", "job.finished", true, nil},
		{"event_type_job_started", "job.started", true, nil},
		{"job_failed", "job.failed", true, nil},
		{"JOB.FAILED", "job.failed", true, nil},
		{"agent_labels_changed", "agent.labels_changed", true, nil},
		{"pipeline_run_status", "pipeline.status", true, nil},
		{"EVENT_TYPE_PIPELINE_RUN_STATUS", "pipeline.status", true, nil},
		{"notify.delivered", "notification.delivered", true, nil},
		{"notification_failed", "notification.failed", true, nil},
		{"  plugin.loaded ", "plugin.loaded", false, nil},
		{"*", "*", false, nil},
	} {
		p, alias, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if p.String() != tc.want || alias != tc.alias {
			t.Errorf("Parse(%q) = %q alias %v, want %q alias %v", tc.in, p, alias, tc.want, tc.alias)
		}
		if tc.names != nil && !slices.Equal(p.Names(), tc.names) {
			t.Errorf("Parse(%q).Names() = %v, want %v", tc.in, p.Names(), tc.names)
		}
	}
	for _, bad := range []string{"", "job", "job.exploded", "jobs.*", "EVENT_TYPE_UNSPECIFIED", "unspecified", "x.*", strings.Repeat("a", 100)} {
		_, _, err := Parse(bad)
		var ue *UnknownError
		if !errors.As(err, &ue) {
			t.Errorf("Parse(%q) = %v, want an UnknownError", bad, err)
		} else if !strings.Contains(err.Error(), "job.failed") {
			t.Errorf("the error does not list the names: %v", err)
		}
	}
}

func TestPatternMatchAndTypes(t *testing.T) {
	p, _, _ := Parse("job.finished")
	if !p.Match(ev(jobv1.EventType_EVENT_TYPE_JOB_FINISHED, "timeout")) || p.Match(ev(jobv1.EventType_EVENT_TYPE_JOB_CANCELLED, "cancelled")) {
		t.Error("job.finished: wrong match")
	}
	if got := p.Types(); !slices.Equal(got, []jobv1.EventType{jobv1.EventType_EVENT_TYPE_JOB_FINISHED}) {
		t.Errorf("job.finished types = %v", got)
	}
	f, _, _ := Parse("pipeline.*")
	if !f.Match(ev(jobv1.EventType_EVENT_TYPE_PIPELINE_RUN_STATUS, "failed")) || f.Match(ev(jobv1.EventType_EVENT_TYPE_JOB_FINISHED, "failed")) {
		t.Error("pipeline.*: wrong match")
	}
	all, _, _ := Parse("*")
	if all.Match(ev(jobv1.EventType_EVENT_TYPE_UNSPECIFIED, "")) || !all.Match(ev(jobv1.EventType_EVENT_TYPE_AGENT_ONLINE, "")) {
		t.Error("*: wrong match")
	}
}

// FuzzParse: Parse never panics, and what it accepts is spelled
// canonically: parsing that spelling again gives the same pattern, with
// no alias.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"job.failed", "job_finished", "EVENT_TYPE_JOB_FINISHED", "job.*", "*", "notify.failed", "pipeline_run_status", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, _, err := Parse(s)
		if err != nil {
			return
		}
		again, alias, err := Parse(p.String())
		if err != nil || alias || again != p {
			t.Fatalf("Parse(%q) = %q, which parses to %q alias %v err %v", s, p, again, alias, err)
		}
		if len(p.Names()) == 0 {
			t.Fatalf("Parse(%q) = %q selects nothing", s, p)
		}
	})
}
