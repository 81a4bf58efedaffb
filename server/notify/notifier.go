package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	"github.com/go-arcade/arcade/core/events"
	"github.com/go-arcade/arcade/core/jobstep"
)

// Sender sends one message through a notify plugin.
type Sender interface {
	Send(ctx context.Context, plugin string, req *pluginv1.SendRequest) (*pluginv1.SendResponse, error)
}

// readier is a Sender that can wait until a plugin is ready to send (it
// compiles); the wait is no attempt.
type readier interface {
	Ready(ctx context.Context, plugin string) error
}

// Runs finds the pipeline name and number of a run, which job events do
// not carry, and the job that failed a run.
type Runs interface {
	RunOf(ctx context.Context, runID string) (pipeline string, number int64, err error)
	// FailedJob names the first job of the run that failed or timed out,
	// with its message; ok is false when none did.
	FailedJob(ctx context.Context, runID string) (job FailedJob, ok bool, err error)
}

// FailedJob is the job that failed a run.
type FailedJob struct {
	ID, Name, Attempt, Message string
}

// Resource is the resource type of the events a Notifier publishes; their
// resource id is the rule's name.
const Resource = "notification"

// Outcome event names, in the "event" attribute and the message of the
// events a Notifier publishes.
const (
	Delivered = string(events.NotificationDelivered)
	Failed    = string(events.NotificationFailed)
	Dropped   = string(events.NotificationDropped)
)

// Notifier matches events against rules and delivers the notifications in
// the background.
type Notifier struct {
	cfg     Config
	rules   []*rule
	send    Sender
	publish func(*jobv1.Event)
	log     *slog.Logger
	queue   chan delivery
	runs    Runs

	// sleep waits d or until ctx ends; jitter returns a number in [0, 1).
	// Tests replace them.
	sleep  func(ctx context.Context, d time.Duration) error
	jitter func() float64
	wg     sync.WaitGroup
}

// delivery is one notification on its way.
type delivery struct {
	rule  *rule
	data  Data
	about string // "pipeline_run/ID" for logs and events
}

// New validates cfg and returns a notifier that sends through s and
// publishes the outcome of every attempt with publish (which must not
// block). Call Run to start delivering.
func New(cfg Config, s Sender, publish func(*jobv1.Event), logger *slog.Logger) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Notifier{cfg: cfg, send: s, publish: publish, log: logger,
		queue: make(chan delivery, cfg.QueueSize), sleep: sleepCtx, jitter: rand.Float64}
	for _, r := range cfg.Rules {
		t, _, err := parseTemplate(r)
		if err != nil {
			return nil, fmt.Errorf("notify rule %s: %w", r.Name, err)
		}
		n.rules = append(n.rules, &rule{Rule: r, tmpl: t})
	}
	return n, nil
}

// UseRuns lets the notifier name the pipeline and run of job events.
// Call it before Run.
func (n *Notifier) UseRuns(r Runs) { n.runs = r }

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Handle queues the notifications an event calls for. It never blocks: a
// notification that finds the queue full is dropped, logged and reported
// as an event. Give it only the events that originated on this server
// replica, so that each notification goes out once.
func (n *Notifier) Handle(e *jobv1.Event) {
	if n == nil || len(n.rules) == 0 || e.GetResourceType() == Resource || failedSend(e) {
		return
	}
	d, ok := Classify(e)
	if !ok {
		return
	}
	for _, r := range n.rules {
		if !r.selects(d.Type, d.Pipeline, d.RunID != "") {
			continue
		}
		dd := d
		dd.Rule = r.Name
		job := delivery{rule: r, data: dd, about: e.GetResourceType() + "/" + e.GetResourceId()}
		select {
		case n.queue <- job:
		default:
			err := fmt.Errorf("the notification queue is full (%d waiting)", cap(n.queue))
			n.log.Error("notification dropped", "rule", r.Name, "plugin", r.Plugin, "event", d.Type, "about", job.about, "err", err)
			n.report(job, Dropped, 0, err)
		}
	}
}

// failedSend reports whether e is a failed call of a notify plugin, which
// notifications themselves cause: notifying it would feed a loop while the
// receiver is down. Attempts are reported by the notifier's own events.
func failedSend(e *jobv1.Event) bool {
	return e.GetType() == jobv1.EventType_EVENT_TYPE_PLUGIN_FAILED && e.GetAttributes()["kind"] == "notify" &&
		strings.HasPrefix(e.GetMessage(), "call_failed")
}

// Run delivers queued notifications with the configured workers until ctx
// ends. Then it drains: what is already queued (or being retried) is still
// delivered, for up to DrainTimeout, so that a server that stops right after
// an event (arcade up --run) still sends its notification. It returns when
// the workers have stopped; whatever the drain could not send is logged and
// reported as dropped.
func (n *Notifier) Run(ctx context.Context) {
	// Deliveries run under their own context: ctx only says when to start
	// draining; drain ends them when the drain time is up.
	work, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	draining := make(chan struct{})
	for range n.cfg.Workers {
		n.wg.Go(func() {
			for {
				select {
				case d := <-n.queue:
					n.deliver(work, d)
					continue
				default:
				}
				select {
				case <-draining:
					return // the queue is empty
				case d := <-n.queue:
					n.deliver(work, d)
				}
			}
		})
	}
	<-ctx.Done()
	waiting := len(n.queue)
	if waiting > 0 {
		n.log.Info("delivering the queued notifications before stopping", "queued", waiting, "within", n.cfg.DrainTimeout)
	}
	close(draining)
	stopped := make(chan struct{})
	go func() { n.wg.Wait(); close(stopped) }()
	select {
	case <-stopped:
		return
	case <-time.After(n.cfg.DrainTimeout):
	}
	stop() // attempts in flight end as canceled
	<-stopped
	for {
		select {
		case d := <-n.queue:
			n.abandon(d)
		default:
			return
		}
	}
}

// abandon reports a notification the stopping server could not send.
func (n *Notifier) abandon(d delivery) {
	err := fmt.Errorf("the server stopped before it could be sent (drain_timeout %s)", n.cfg.DrainTimeout)
	n.log.Error("notification dropped", "rule", d.rule.Name, "plugin", d.rule.Plugin, "event", d.data.Type, "about", d.about, "err", err)
	n.report(d, Dropped, 0, err)
}

// deliver sends one notification, retrying with backoff.
func (n *Notifier) deliver(ctx context.Context, d delivery) {
	if d.data.Pipeline == "" && d.data.RunID != "" && n.runs != nil {
		lctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
		name, number, err := n.runs.RunOf(lctx, d.data.RunID)
		cancel()
		if err != nil {
			n.log.Warn("notification: cannot name the run of the event", "rule", d.rule.Name, "run", d.data.RunID, "err", err)
		} else {
			d.data.Pipeline, d.data.Run = name, strconv.FormatInt(number, 10)
		}
	}
	if !d.rule.forPipeline(d.data.Pipeline) {
		return
	}
	if d.data.Job == "" && d.data.RunID != "" && n.runs != nil && (d.data.Type == string(events.PipelineFailed) || d.data.Type == string(events.PipelineTimeout)) {
		lctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
		j, ok, err := n.runs.FailedJob(lctx, d.data.RunID)
		cancel()
		switch {
		case err != nil:
			n.log.Warn("notification: cannot name the failed job of the run", "rule", d.rule.Name, "run", d.data.RunID, "err", err)
		case ok:
			d.data.Job, d.data.JobID, d.data.Attempt = j.Name, j.ID, j.Attempt
			d.data.Step, d.data.Cause = jobstep.ParseFailure(j.Message)
		}
	}
	d.data.URL = link(n.cfg.PublicURL, d.data)
	d.data.Attributes = d.data.Labels() // as the plugin's model sees them
	title, body, err := d.rule.render(d.data)
	if err != nil {
		n.log.Error("notification not rendered", "rule", d.rule.Name, "about", d.about, "err", err)
		n.report(d, Failed, 0, err)
		return
	}
	req := &pluginv1.SendRequest{Channel: d.rule.Channel, Title: title, Body: body, Severity: severity(d.data.Type),
		Event: notifyEvent(d.data), Metadata: map[string]string{"rule": d.rule.Name}}
	if r, ok := n.send.(readier); ok {
		_ = r.Ready(ctx, d.rule.Plugin) // not ready in time: the attempts say why
	}
	for attempt := 1; ; attempt++ {
		err := n.attempt(ctx, d.rule.Plugin, req)
		attrs := []any{"rule", d.rule.Name, "plugin", d.rule.Plugin, "event", d.data.Type, "about", d.about, "attempt", attempt, "attempts", n.cfg.Attempts}
		if err == nil {
			n.log.Info("notification delivered", attrs...)
			n.report(d, Delivered, attempt, nil)
			return
		}
		if ctx.Err() != nil {
			n.abandon(d)
			return
		}
		if isPermanent(err) {
			n.log.Error("notification failed permanently; not retried", append(attrs, "err", err)...)
			n.report(d, Failed, attempt, err, "permanent", "true")
			return
		}
		if attempt >= n.cfg.Attempts {
			n.log.Error("notification failed; no attempts left", append(attrs, "err", err)...)
			n.report(d, Failed, attempt, err)
			return
		}
		wait := n.backoff(attempt)
		n.log.Warn("notification attempt failed; retrying", append(attrs, "err", err, "retry_in", wait)...)
		n.report(d, Failed, attempt, err, "retry_in", wait.String())
		if n.sleep(ctx, wait) != nil {
			n.abandon(d)
			return
		}
	}
}

// attempt calls the plugin once within the attempt timeout. A response
// that is not a success is a failed attempt too (a fail-open plugin
// answers SKIPPED instead of an error).
func (n *Notifier) attempt(ctx context.Context, plugin string, req *pluginv1.SendRequest) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	resp, err := n.send.Send(ctx, plugin, req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("timed out after %s: %w", n.cfg.Timeout, err)
		}
		return err
	}
	if st := resp.GetStatus(); st != pluginv1.Status_STATUS_SUCCESS {
		var texts []string
		for _, m := range resp.GetMessages() {
			texts = append(texts, m.GetText())
		}
		if ctx.Err() != nil {
			texts = append(texts, fmt.Sprintf("timed out after %s", n.cfg.Timeout))
		}
		return fmt.Errorf("plugin %s answered %s: %s", plugin, strings.TrimPrefix(st.String(), "STATUS_"), strings.Join(texts, "; "))
	}
	return nil
}

// permanent is an error that says whether retrying can help; the plugin
// host's errors are (a plugin marks its own with pdk.Permanent).
type permanent interface{ Permanent() bool }

func isPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p) && p.Permanent()
}

// backoff is the wait after failed attempt number attempt: Backoff doubled
// per earlier failure, capped at MaxBackoff, of which a random half is
// taken off so that notifiers do not retry in step.
func (n *Notifier) backoff(attempt int) time.Duration {
	d := n.cfg.Backoff
	for i := 1; i < attempt && d < n.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, n.cfg.MaxBackoff)
	return d/2 + time.Duration(n.jitter()*float64(d/2))
}

// outcomeTypes are the event types of the outcomes.
var outcomeTypes = map[string]jobv1.EventType{
	Delivered: jobv1.EventType_EVENT_TYPE_NOTIFICATION_DELIVERED,
	Failed:    jobv1.EventType_EVENT_TYPE_NOTIFICATION_FAILED,
	Dropped:   jobv1.EventType_EVENT_TYPE_NOTIFICATION_DROPPED,
}

// report publishes the outcome of an attempt as an event.
func (n *Notifier) report(d delivery, what string, attempt int, err error, extra ...string) {
	attrs := map[string]string{"event": what, "rule": d.rule.Name, "plugin": d.rule.Plugin, "about": d.about,
		"type": d.data.Type, "attempt": strconv.Itoa(attempt), "attempts": strconv.Itoa(n.cfg.Attempts)}
	msg := what
	if err != nil {
		attrs["error"] = err.Error()
		msg += ": " + err.Error()
	}
	for i := 0; i+1 < len(extra); i += 2 {
		attrs[extra[i]] = extra[i+1]
	}
	if n.publish != nil {
		n.publish(&jobv1.Event{Type: outcomeTypes[what], ResourceType: Resource, ResourceId: d.rule.Name, Message: msg, Attributes: attrs})
	}
}

func severity(typ string) pluginv1.Severity {
	switch {
	case strings.HasSuffix(typ, ".failed"), strings.HasSuffix(typ, ".timeout"), typ == "agent.offline":
		return pluginv1.Severity_SEVERITY_HIGH
	case strings.HasSuffix(typ, ".cancelled"):
		return pluginv1.Severity_SEVERITY_MEDIUM
	}
	return pluginv1.Severity_SEVERITY_INFO
}

// link is the dashboard page of what d is about under publicURL (the
// dashboard's own routes): a job, a run, the agents or the plugins. Empty without a public_url.
func link(publicURL string, d Data) string {
	if publicURL == "" {
		return ""
	}
	base := strings.TrimSuffix(publicURL, "/")
	switch {
	case strings.HasPrefix(d.Type, "job.") && d.JobID != "":
		return base + "/jobs/" + url.PathEscape(d.JobID)
	case d.RunID != "":
		return base + "/runs/" + url.PathEscape(d.RunID)
	case d.Agent != "":
		return base + "/agents"
	case d.Plugin != "":
		return base + "/plugins"
	}
	return base + "/"
}
