package notify

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	"github.com/go-arcade/arcade/host"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func runFailed(pipeline string) *jobv1.Event {
	return &jobv1.Event{Type: jobv1.EventType_EVENT_TYPE_PIPELINE_RUN_STATUS, ResourceType: "pipeline_run", ResourceId: "run-1",
		Message: "job test failed", Timestamp: timestamppb.Now(),
		Attributes: map[string]string{"status": "failed", "pipeline": pipeline, "pipeline_id": "p-1", "number": "7"}}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		rule Rule
		want string // substring of the error; empty: valid
	}{
		{Rule{Name: "ok", On: []string{"pipeline.failed", "job.*"}, Plugin: "webhook", Template: "{{.Pipeline}}"}, ""},
		{Rule{Name: "x", On: []string{"pipeline.exploded"}, Plugin: "webhook"}, `notify[0] (x).on[0]: unknown event name "pipeline.exploded"`},
		{Rule{Name: "x", On: []string{"nope.*"}, Plugin: "webhook"}, `unknown event name "nope.*"`},
		{Rule{Name: "x", On: []string{"job.failed"}}, "notify[0] (x).plugin: must name a notify plugin"},
		{Rule{Name: "x", On: []string{"notification.*"}, Plugin: "webhook"}, "notifications about notifications are not sent"},
		{Rule{Name: "x", Plugin: "webhook"}, "notify[0] (x).on: must list event names"},
		{Rule{On: []string{"job.failed"}, Plugin: "webhook"}, "notify[0].name: must be set"},
		{Rule{Name: "x", On: []string{"job.failed"}, Plugin: "webhook", Template: "{{.Pipeline"}, "notify[0] (x).template:"},
		{Rule{Name: "x", On: []string{"job.failed"}, Plugin: "webhook", Template: "{{.Pipline}}"}, "can't evaluate field Pipline"},
	}
	for _, tt := range tests {
		c := Config{Rules: []Rule{tt.rule}}
		err := c.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%+v: %v", tt.rule, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%+v: error %v, want %q", tt.rule, err, tt.want)
		}
	}
	c := Config{Rules: []Rule{{Name: "a", On: []string{"job.failed"}, Plugin: "p"}, {Name: "a", On: []string{"job.failed"}, Plugin: "p"}}}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `another rule is named "a"`) {
		t.Errorf("duplicate names: %v", err)
	}
	// Older spellings are accepted, rewritten, and reported.
	c = Config{Rules: []Rule{{Name: "old", On: []string{"job_failed", "EVENT_TYPE_AGENT_OFFLINE", "pipeline.succeeded"}, Plugin: "p"}}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Rules[0].On, " "); got != "job.failed agent.offline pipeline.succeeded" {
		t.Errorf("rewritten names: %s", got)
	}
	if len(c.Warnings) != 2 || !strings.Contains(c.Warnings[0], `"job_failed" is an older spelling of "job.failed"`) {
		t.Errorf("warnings: %q", c.Warnings)
	}
	c = Config{}
	if err := c.Validate(); err != nil || c.Attempts != 3 || c.Timeout != 10*time.Second || c.Workers != 2 || c.QueueSize != 256 {
		t.Errorf("defaults: %+v %v", c, err)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		e    *jobv1.Event
		want string
	}{
		{runFailed("web"), "pipeline.failed"},
		{&jobv1.Event{Type: jobv1.EventType_EVENT_TYPE_PIPELINE_RUN_STATUS, Attributes: map[string]string{"status": "running", "started": "true"}}, "pipeline.started"},
		// A running run moving on (jobs of its next stage made) starts nothing.
		{&jobv1.Event{Type: jobv1.EventType_EVENT_TYPE_PIPELINE_RUN_STATUS, Attributes: map[string]string{"status": "running"}}, ""},
		{&jobv1.Event{Type: jobv1.EventType_EVENT_TYPE_PIPELINE_RUN_STATUS, Attributes: map[string]string{"status": "skipped"}}, ""},
		{&jobv1.Event{Type: jobv1.EventType_EVENT_TYPE_PIPELINE_RUN_STATUS, Attributes: map[string]string{"status": "success"}}, "pipeline.succeeded"},
		{&jobv1.Event{Type: jobv1.EventType_EVENT_TYPE_JOB_FINISHED, ResourceType: "job", Attributes: map[string]string{"status": "failed"}}, "job.failed"},
		{&jobv1.Event{Type: jobv1.EventType_EVENT_TYPE_JOB_FINISHED, ResourceType: "job", Attributes: map[string]string{"status": "pending"}}, ""},
		{&jobv1.Event{Type: jobv1.EventType_EVENT_TYPE_JOB_CANCELLED, ResourceType: "job", Attributes: map[string]string{"status": "cancelled"}}, "job.cancelled"},
		{&jobv1.Event{Type: jobv1.EventType_EVENT_TYPE_AGENT_OFFLINE, ResourceType: "agent", Attributes: map[string]string{"name": "a1"}}, "agent.offline"},
		{&jobv1.Event{Type: jobv1.EventType_EVENT_TYPE_AGENT_LABELS_CHANGED}, "agent.labels_changed"},
		{&jobv1.Event{Type: jobv1.EventType_EVENT_TYPE_NOTIFICATION_FAILED, ResourceType: "notification"}, ""},
		{&jobv1.Event{Type: jobv1.EventType_EVENT_TYPE_PLUGIN_FAILED, ResourceId: "webhook"}, "plugin.failed"},
	}
	for _, tt := range tests {
		d, ok := Classify(tt.e)
		if ok != (tt.want != "") || d.Type != tt.want {
			t.Errorf("Classify(%v) = %q, %v; want %q", tt.e, d.Type, ok, tt.want)
		}
	}
	d, _ := Classify(runFailed("web"))
	if d.Pipeline != "web" || d.Run != "7" || d.RunID != "run-1" || d.Status != "failed" || d.Message != "job test failed" {
		t.Errorf("pipeline data: %+v", d)
	}
	d, _ = Classify(&jobv1.Event{Type: jobv1.EventType_EVENT_TYPE_JOB_FINISHED, ResourceType: "job", ResourceId: "j-1",
		Attributes: map[string]string{"status": "failed", "name": "build", "agent": "a1", "run_id": "r", "pipeline_id": "p", "attempt": "2"}})
	if d.Job != "build" || d.JobID != "j-1" || d.Agent != "a1" || d.RunID != "r" || d.PipelineID != "p" || d.Attempt != "2" {
		t.Errorf("job data: %+v", d)
	}
}

func TestRuleSelectsAndRenders(t *testing.T) {
	c := Config{Rules: []Rule{{Name: "failures", On: []string{"pipeline.failed", "job.*"}, Plugin: "webhook", Pipelines: []string{"web"},
		Template: "# {{.Pipeline}} is {{.Status}}\n\n{{.Pipeline}} run #{{.Run}} {{.Status}}: {{.Message}}"}}}
	n, err := New(c, nil, nil, quiet())
	if err != nil {
		t.Fatal(err)
	}
	r := n.rules[0]
	for _, tt := range []struct {
		typ, pipeline string
		inRun         bool
		want          bool
	}{
		{"pipeline.failed", "web", false, true}, {"job.timeout", "web", true, true}, {"pipeline.succeeded", "web", false, false},
		{"pipeline.failed", "api", false, false}, {"agent.offline", "", false, false},
		{"job.failed", "", true, true}, // named later from its run
		{"job.failed", "", false, false},
	} {
		if got := r.selects(tt.typ, tt.pipeline, tt.inRun); got != tt.want {
			t.Errorf("selects(%s, %s) = %v", tt.typ, tt.pipeline, got)
		}
	}
	d, _ := Classify(runFailed("web"))
	title, body, err := r.render(d)
	if err != nil || title != "web is failed" || body != "web run #7 failed: job test failed" {
		t.Errorf("render: %q %q %v", title, body, err)
	}
	n, _ = New(Config{Rules: []Rule{{Name: "d", On: []string{"pipeline.failed"}, Plugin: "p"}}}, nil, nil, quiet())
	if _, body, _ := n.rules[0].render(d); body != "pipeline.failed web run #7: failed: job test failed" {
		t.Errorf("default template: %q", body)
	}
}

// fakeSender fails the first failures calls, then succeeds.
type fakeSender struct {
	mu       sync.Mutex
	failures int
	err      error // the failures' error (default: a plain one)
	calls    []*pluginv1.SendRequest
	plugins  []string
}

func (f *fakeSender) Send(_ context.Context, plugin string, req *pluginv1.SendRequest) (*pluginv1.SendResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, req)
	f.plugins = append(f.plugins, plugin)
	if len(f.calls) <= f.failures {
		if f.err != nil {
			return nil, f.err
		}
		return nil, errors.New("receiver answered 503")
	}
	return &pluginv1.SendResponse{Status: pluginv1.Status_STATUS_SUCCESS}, nil
}

// recorder keeps published events.
type recorder struct {
	mu     sync.Mutex
	events []*jobv1.Event
}

func (r *recorder) publish(e *jobv1.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) outcomes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, e.GetAttributes()["event"]+"#"+e.GetAttributes()["attempt"])
	}
	return out
}

func newTestNotifier(t *testing.T, attempts int, s Sender, rec *recorder) (*Notifier, *[]time.Duration) {
	t.Helper()
	n, err := New(Config{Attempts: attempts, Backoff: time.Second, MaxBackoff: 3 * time.Second,
		Rules: []Rule{{Name: "failures", On: []string{"pipeline.failed"}, Plugin: "webhook", Template: "{{.Pipeline}} #{{.Run}} {{.Status}}"}}},
		s, rec.publish, quiet())
	if err != nil {
		t.Fatal(err)
	}
	var waits []time.Duration
	n.sleep = func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	n.jitter = func() float64 { return 1 } // the longest wait
	return n, &waits
}

func TestDeliverRetriesWithBackoff(t *testing.T) {
	s := &fakeSender{failures: 3}
	rec := &recorder{}
	n, waits := newTestNotifier(t, 5, s, rec)
	n.Handle(runFailed("web"))
	n.deliver(context.Background(), <-n.queue)

	if len(s.calls) != 4 {
		t.Fatalf("%d calls, want 4", len(s.calls))
	}
	if got := s.calls[3]; got.GetBody() != "web #7 failed" || got.GetEvent().GetType() != "pipeline.failed" ||
		got.GetEvent().GetPipelineRunId() != "run-1" || got.GetEvent().GetStatus() != "failed" || s.plugins[3] != "webhook" {
		t.Errorf("request: %v", got)
	}
	// 1s, 2s, then capped at 3s (jitter 1 keeps the whole wait).
	if want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}; !slices.Equal(*waits, want) {
		t.Errorf("waits %v, want %v", *waits, want)
	}
	if got, want := strings.Join(rec.outcomes(), " "), "notification.failed#1 notification.failed#2 notification.failed#3 notification.delivered#4"; got != want {
		t.Errorf("events %q, want %q", got, want)
	}
	if e := rec.events[0]; e.GetResourceType() != Resource || e.GetResourceId() != "failures" ||
		e.GetAttributes()["error"] != "receiver answered 503" || e.GetAttributes()["about"] != "pipeline_run/run-1" {
		t.Errorf("failed attempt event: %v", e)
	}
}

func TestDeliverGivesUp(t *testing.T) {
	s := &fakeSender{failures: 10}
	rec := &recorder{}
	n, waits := newTestNotifier(t, 3, s, rec)
	n.Handle(runFailed("web"))
	n.deliver(context.Background(), <-n.queue)
	if len(s.calls) != 3 || len(*waits) != 2 {
		t.Errorf("%d calls, %d waits; want 3 and 2", len(s.calls), len(*waits))
	}
	if got, want := strings.Join(rec.outcomes(), " "), "notification.failed#1 notification.failed#2 notification.failed#3"; got != want {
		t.Errorf("events %q, want %q", got, want)
	}
}

func TestBackoffJitter(t *testing.T) {
	n, _ := newTestNotifier(t, 3, &fakeSender{}, &recorder{})
	n.jitter = func() float64 { return 0 }
	if got := n.backoff(1); got != 500*time.Millisecond {
		t.Errorf("backoff(1) with no jitter = %s, want half of 1s", got)
	}
	if got := n.backoff(10); got != 1500*time.Millisecond {
		t.Errorf("backoff(10) with no jitter = %s, want half of the 3s cap", got)
	}
}

// A non-success answer (a fail-open plugin answers SKIPPED) is a failed
// attempt.
type skippingSender struct{}

func (skippingSender) Send(context.Context, string, *pluginv1.SendRequest) (*pluginv1.SendResponse, error) {
	return &pluginv1.SendResponse{Status: pluginv1.Status_STATUS_SKIPPED, Messages: []*pluginv1.Message{{Text: "connection refused"}}}, nil
}

func TestSkippedIsFailure(t *testing.T) {
	rec := &recorder{}
	n, _ := newTestNotifier(t, 1, skippingSender{}, rec)
	n.Handle(runFailed("web"))
	n.deliver(context.Background(), <-n.queue)
	if len(rec.events) != 1 || rec.events[0].GetAttributes()["error"] != "plugin webhook answered SKIPPED: connection refused" {
		t.Errorf("events: %v", rec.events)
	}
}

// A notify plugin's failed call (a fail-open plugin raises one per failed
// attempt) is not notified, or a failing receiver would feed a loop; its
// failed load is.
func TestFailedSendsAreNotNotified(t *testing.T) {
	n, err := New(Config{Rules: []Rule{{Name: "plugins", On: []string{"plugin.failed"}, Plugin: "p"}}}, &fakeSender{}, nil, quiet())
	if err != nil {
		t.Fatal(err)
	}
	n.Handle(&jobv1.Event{Type: jobv1.EventType_EVENT_TYPE_PLUGIN_FAILED, ResourceType: "plugin", ResourceId: "webhook",
		Message: "call_failed: webhook: 127.0.0.1 answered 503", Attributes: map[string]string{"kind": "notify"}})
	if len(n.queue) != 0 {
		t.Fatal("a failed send was queued")
	}
	n.Handle(&jobv1.Event{Type: jobv1.EventType_EVENT_TYPE_PLUGIN_FAILED, ResourceType: "plugin", ResourceId: "webhook",
		Message: "failed: bad module", Attributes: map[string]string{"kind": "notify"}})
	if len(n.queue) != 1 {
		t.Fatal("a failed load was not queued")
	}
}

type fakeRuns map[string]string

func (f fakeRuns) RunOf(_ context.Context, id string) (string, int64, error) {
	if name, ok := f[id]; ok {
		return name, 4, nil
	}
	return "", 0, errors.New("no such run")
}

// FailedJob: every run of fakeRuns failed in job test, step unit.
func (f fakeRuns) FailedJob(_ context.Context, id string) (FailedJob, bool, error) {
	if _, ok := f[id]; !ok {
		return FailedJob{}, false, errors.New("no such run")
	}
	return FailedJob{ID: "j-9", Name: "test", Attempt: "2", Message: `step "unit": exit status 1`}, true, nil
}

// A job event names its pipeline by id only: the notifier finds the name
// and number, and the rule's pipelines filter applies to them.
func TestJobEventsNamedFromTheirRun(t *testing.T) {
	s := &fakeSender{}
	n, err := New(Config{Rules: []Rule{{Name: "jobs", On: []string{"job.failed"}, Plugin: "p", Pipelines: []string{"web"},
		Template: "{{.Pipeline}} run #{{.Run}} job {{.Job}} {{.Status}}"}}}, s, nil, quiet())
	if err != nil {
		t.Fatal(err)
	}
	n.UseRuns(fakeRuns{"run-web": "web", "run-api": "api"})
	for _, run := range []string{"run-api", "run-web"} {
		n.Handle(&jobv1.Event{Type: jobv1.EventType_EVENT_TYPE_JOB_FINISHED, ResourceType: "job", ResourceId: "j",
			Attributes: map[string]string{"status": "failed", "name": "test", "run_id": run, "pipeline_id": "p"}})
	}
	n.Handle(&jobv1.Event{Type: jobv1.EventType_EVENT_TYPE_JOB_FINISHED, ResourceType: "job", ResourceId: "j",
		Attributes: map[string]string{"status": "failed", "name": "lone"}}) // in no run: filtered out at once
	if len(n.queue) != 2 {
		t.Fatalf("%d queued, want 2", len(n.queue))
	}
	n.deliver(context.Background(), <-n.queue)
	n.deliver(context.Background(), <-n.queue)
	if len(s.calls) != 1 || s.calls[0].GetBody() != "web run #4 job test failed" {
		t.Errorf("calls: %v", s.calls)
	}
}

func TestFullQueueDropsWithoutBlocking(t *testing.T) {
	rec := &recorder{}
	n, err := New(Config{QueueSize: 1, Rules: []Rule{{Name: "r", On: []string{"pipeline.failed"}, Plugin: "p"}}}, &fakeSender{}, rec.publish, quiet())
	if err != nil {
		t.Fatal(err)
	}
	n.Handle(runFailed("web"))
	n.Handle(runFailed("web")) // no worker runs: the queue is full
	if got := rec.outcomes(); len(got) != 1 || got[0] != "notification.dropped#0" {
		t.Errorf("events %v, want one drop", got)
	}
	if len(n.queue) != 1 {
		t.Errorf("queue holds %d", len(n.queue))
	}
}

func TestRunDeliversAndStops(t *testing.T) {
	s := &fakeSender{}
	rec := &recorder{}
	n, _ := newTestNotifier(t, 3, s, rec)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	n.Handle(runFailed("web"))
	n.Handle(&jobv1.Event{Type: jobv1.EventType_EVENT_TYPE_AGENT_ONLINE}) // no rule
	for deadline := time.Now().Add(10 * time.Second); len(rec.outcomes()) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("nothing delivered")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if got := rec.outcomes(); len(got) != 1 || got[0] != "notification.delivered#1" {
		t.Errorf("events %v", got)
	}
}

// TestPermanentErrorsAreNotRetried: an error the plugin marked permanent, or
// a refusal no retry changes, ends the delivery at the first attempt, and
// its event says so; a timeout is retried.
func TestPermanentErrorsAreNotRetried(t *testing.T) {
	for _, c := range []struct {
		err   error
		calls int
	}{
		{&host.Error{Plugin: "webhook", Function: "send", Reason: host.ErrPluginFailed, Detail: "127.0.0.1 answered 400", Marked: true}, 1},
		{&host.Error{Plugin: "webhook", Function: "send", Reason: host.ErrHostNotGranted, Detail: "hooks.example.com"}, 1},
		{&host.Error{Plugin: "webhook", Function: "send", Reason: host.ErrPluginFailed, Detail: "127.0.0.1 answered 503"}, 3},
		{&host.Error{Plugin: "webhook", Function: "send", Reason: host.ErrTimeout, Timeout: time.Second}, 3},
	} {
		s := &fakeSender{failures: 10, err: c.err}
		rec := &recorder{}
		n, waits := newTestNotifier(t, 3, s, rec)
		n.Handle(runFailed("web"))
		n.deliver(context.Background(), <-n.queue)
		if len(s.calls) != c.calls || len(*waits) != c.calls-1 {
			t.Errorf("%v: %d calls, %d waits; want %d", c.err, len(s.calls), len(*waits), c.calls)
		}
		last := rec.events[len(rec.events)-1]
		if perm := last.GetAttributes()["permanent"] == "true"; perm != (c.calls == 1) || last.GetAttributes()["error"] != c.err.Error() {
			t.Errorf("%v: last event %v", c.err, last.GetAttributes())
		}
	}
}

// A stopping notifier still delivers what is queued: `arcade up --run`
// stops its server right after the run's last event.
func TestStopDrainsTheQueue(t *testing.T) {
	s := &fakeSender{}
	rec := &recorder{}
	n, _ := newTestNotifier(t, 3, s, rec)
	for range 3 {
		n.Handle(runFailed("web"))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // stopping before any worker took anything
	n.Run(ctx)
	if got := rec.outcomes(); len(got) != 3 || got[0] != "notification.delivered#1" || got[2] != "notification.delivered#1" {
		t.Errorf("events %v, want three deliveries", got)
	}
	if len(n.queue) != 0 {
		t.Errorf("%d left in the queue", len(n.queue))
	}
}

// hangingSender never answers until its call is canceled.
type hangingSender struct{ calls chan struct{} }

func (h hangingSender) Send(ctx context.Context, _ string, _ *pluginv1.SendRequest) (*pluginv1.SendResponse, error) {
	h.calls <- struct{}{}
	<-ctx.Done()
	return nil, ctx.Err()
}

// The drain is bounded: a receiver that hangs costs DrainTimeout, and what
// could not be sent is reported as dropped.
func TestDrainIsBounded(t *testing.T) {
	rec := &recorder{}
	h := hangingSender{calls: make(chan struct{}, 10)}
	n, err := New(Config{Workers: 1, DrainTimeout: 50 * time.Millisecond, Timeout: time.Hour,
		Rules: []Rule{{Name: "r", On: []string{"pipeline.failed"}, Plugin: "p"}}}, h, rec.publish, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	n.Handle(runFailed("web"))
	n.Handle(runFailed("web"))
	<-h.calls // the first is in flight, the second waits
	cancel()
	<-done
	if got := rec.outcomes(); len(got) != 2 || got[0] != "notification.dropped#0" || got[1] != "notification.dropped#0" {
		t.Errorf("events %v, want two drops", got)
	}
}
