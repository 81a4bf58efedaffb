// Package events names Arcade's system events once, for everyone: the CLI
// (arcade events --type), notification rules (on:), notify plugins (the
// event's type), the dashboard and the API (Event.name, StreamEvents'
// names).
//
// A name is lowercase, dotted, resource first: "job.failed",
// "pipeline.succeeded", "notification.delivered". Some names refine a wire
// event type by the status it carries (EVENT_TYPE_JOB_FINISHED with status
// failed is "job.failed"); a pattern names one event, a family ("job.*"),
// or a wire type's set ("job.finished": succeeded, failed, timeout or
// skipped). Older spellings — the wire enum (EVENT_TYPE_JOB_FINISHED), its
// short form (job_finished) and notify.delivered … — are accepted as
// aliases, and Parse says which canonical name they stand for so callers
// can warn.
package events

import (
	"fmt"
	"slices"
	"strings"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
)

// Name is an event's user-facing name.
type Name string

// The names of events.
const (
	JobCreated   Name = "job.created"
	JobStarted   Name = "job.started"
	JobSucceeded Name = "job.succeeded"
	JobFailed    Name = "job.failed"
	JobTimeout   Name = "job.timeout"
	JobSkipped   Name = "job.skipped"
	JobCancelled Name = "job.cancelled"

	PipelineCreated   Name = "pipeline.created"
	PipelineStarted   Name = "pipeline.started"
	PipelineSucceeded Name = "pipeline.succeeded"
	PipelineFailed    Name = "pipeline.failed"
	PipelineTimeout   Name = "pipeline.timeout"
	PipelineCancelled Name = "pipeline.cancelled"

	AgentOnline        Name = "agent.online"
	AgentOffline       Name = "agent.offline"
	AgentLabelsChanged Name = "agent.labels_changed"

	PluginLoaded   Name = "plugin.loaded"
	PluginUnloaded Name = "plugin.unloaded"
	PluginFailed   Name = "plugin.failed"

	NotificationDelivered Name = "notification.delivered"
	NotificationFailed    Name = "notification.failed"
	NotificationDropped   Name = "notification.dropped"
)

// Def describes one name.
type Def struct {
	Name Name
	// Type is the wire type of the events of this name.
	Type jobv1.EventType
	// Status, when set, is the status attribute that distinguishes this
	// name among the events of Type ("failed").
	Status string
	// Help says in a few words when the event happens.
	Help string
}

// defs is the catalog, in the order documentation lists it.
var defs = []Def{
	{JobCreated, jobv1.EventType_EVENT_TYPE_JOB_CREATED, "", "a job was created or queued again (retry)"},
	{JobStarted, jobv1.EventType_EVENT_TYPE_JOB_STARTED, "", "an agent started a job's attempt"},
	{JobSucceeded, jobv1.EventType_EVENT_TYPE_JOB_FINISHED, "success", "a job's attempt succeeded"},
	{JobFailed, jobv1.EventType_EVENT_TYPE_JOB_FINISHED, "failed", "a job's attempt failed"},
	{JobTimeout, jobv1.EventType_EVENT_TYPE_JOB_FINISHED, "timeout", "a job's attempt ran past its timeout"},
	{JobSkipped, jobv1.EventType_EVENT_TYPE_JOB_FINISHED, "skipped", "a pipeline job was skipped (its when: or a failed dependency)"},
	{JobCancelled, jobv1.EventType_EVENT_TYPE_JOB_CANCELLED, "", "a job was cancelled"},
	{PipelineCreated, jobv1.EventType_EVENT_TYPE_PIPELINE_RUN_STATUS, "pending", "a pipeline run was triggered"},
	{PipelineStarted, jobv1.EventType_EVENT_TYPE_PIPELINE_RUN_STATUS, "running", "the first job of a run started"},
	{PipelineSucceeded, jobv1.EventType_EVENT_TYPE_PIPELINE_RUN_STATUS, "success", "a run succeeded"},
	{PipelineFailed, jobv1.EventType_EVENT_TYPE_PIPELINE_RUN_STATUS, "failed", "a run failed"},
	{PipelineTimeout, jobv1.EventType_EVENT_TYPE_PIPELINE_RUN_STATUS, "timeout", "a run ended with a job timed out"},
	{PipelineCancelled, jobv1.EventType_EVENT_TYPE_PIPELINE_RUN_STATUS, "cancelled", "a run was stopped"},
	{AgentOnline, jobv1.EventType_EVENT_TYPE_AGENT_ONLINE, "", "an agent registered or came back"},
	{AgentOffline, jobv1.EventType_EVENT_TYPE_AGENT_OFFLINE, "", "an agent went silent, unregistered or was revoked"},
	{AgentLabelsChanged, jobv1.EventType_EVENT_TYPE_AGENT_LABELS_CHANGED, "", "an agent's labels changed"},
	{PluginLoaded, jobv1.EventType_EVENT_TYPE_PLUGIN_LOADED, "", "a plugin loaded or a new version replaced it"},
	{PluginUnloaded, jobv1.EventType_EVENT_TYPE_PLUGIN_UNLOADED, "", "a plugin was removed or disabled"},
	{PluginFailed, jobv1.EventType_EVENT_TYPE_PLUGIN_FAILED, "", "a plugin failed to load, or a fail-open call failed"},
	{NotificationDelivered, jobv1.EventType_EVENT_TYPE_NOTIFICATION_DELIVERED, "", "a notification reached its plugin"},
	{NotificationFailed, jobv1.EventType_EVENT_TYPE_NOTIFICATION_FAILED, "", "a notification attempt failed"},
	{NotificationDropped, jobv1.EventType_EVENT_TYPE_NOTIFICATION_DROPPED, "", "a notification was dropped (queue full)"},
}

// Defs returns the catalog of names, in documentation order.
func Defs() []Def { return slices.Clone(defs) }

// groups are the names that stand for every name of a wire type whose
// events are told apart by status.
var groups = map[Name]jobv1.EventType{
	"job.finished":    jobv1.EventType_EVENT_TYPE_JOB_FINISHED,
	"pipeline.status": jobv1.EventType_EVENT_TYPE_PIPELINE_RUN_STATUS,
}

// legacy are old spellings that are not derived from the wire enum.
var legacy = map[string]Name{
	"notify.delivered": NotificationDelivered,
	"notify.failed":    NotificationFailed,
	"notify.dropped":   NotificationDropped,
}

// Of returns the name of an event: the most specific one (a finished job
// is "job.failed", not "job.finished"). An event of an unknown type or
// status has the empty name.
func Of(e *jobv1.Event) Name {
	status := e.GetAttributes()["status"]
	for _, d := range defs {
		if d.Type == e.GetType() && (d.Status == "" || d.Status == status) {
			return d.Name
		}
	}
	return ""
}

// Pattern selects events by name: one name, a group ("job.finished") or a
// family ("job.*"; "*" is every event).
type Pattern struct {
	text string
}

// String returns the pattern in its canonical spelling.
func (p Pattern) String() string { return p.text }

// MatchName reports whether an event of name n is selected.
func (p Pattern) MatchName(n Name) bool {
	switch {
	case p.text == "*":
		return n != ""
	case strings.HasSuffix(p.text, ".*"):
		return strings.HasPrefix(string(n), strings.TrimSuffix(p.text, "*"))
	}
	if typ, ok := groups[Name(p.text)]; ok {
		return slices.ContainsFunc(defs, func(d Def) bool { return d.Name == n && d.Type == typ })
	}
	return string(n) == p.text
}

// Match reports whether e is selected.
func (p Pattern) Match(e *jobv1.Event) bool { return p.MatchName(Of(e)) }

// Names returns the names the pattern selects, in catalog order.
func (p Pattern) Names() []Name {
	var out []Name
	for _, d := range defs {
		if p.MatchName(d.Name) {
			out = append(out, d.Name)
		}
	}
	return out
}

// UnknownError is returned by Parse for text that names no event.
type UnknownError struct {
	Text string
}

func (e *UnknownError) Error() string {
	return fmt.Sprintf("unknown event name %q (want one of %s, a family such as job.*, or job.finished, pipeline.status)",
		e.Text, strings.Join(canonical(), ", "))
}

func canonical() []string {
	out := make([]string, len(defs))
	for i, d := range defs {
		out[i] = string(d.Name)
	}
	return out
}

// maxPatternLen bounds what Parse reads.
const maxPatternLen = 64

// Parse reads a name or pattern in any accepted spelling. alias is true
// when text is an older spelling of the returned pattern: callers warn
// ("job_finished is an old spelling of job.finished").
func Parse(text string) (p Pattern, alias bool, err error) {
	t := strings.TrimSpace(text)
	if t == "" || len(t) > maxPatternLen {
		return Pattern{}, false, &UnknownError{Text: text}
	}
	if known(t) {
		return Pattern{text: t}, false, nil
	}
	lower := strings.ToLower(t)
	if known(lower) {
		return Pattern{text: lower}, lower != t, nil
	}
	if n, ok := legacy[lower]; ok {
		return Pattern{text: string(n)}, true, nil
	}
	// The wire enum, with or without its prefix: EVENT_TYPE_JOB_FINISHED,
	// job_finished, job_finished; "_" between words, the first one being
	// the resource.
	short := strings.TrimPrefix(lower, "event_type_")
	if typ, ok := jobv1.EventType_value["EVENT_TYPE_"+strings.ToUpper(short)]; ok && typ != 0 {
		return Pattern{text: string(wireName(jobv1.EventType(typ)))}, true, nil
	}
	// job_failed, notification_delivered: the underscore spelling of a
	// refined name.
	if res, rest, ok := strings.Cut(short, "_"); ok && known(res+"."+rest) {
		return Pattern{text: res + "." + rest}, true, nil
	}
	return Pattern{}, false, &UnknownError{Text: text}
}

// known reports whether t is a canonical name, group or family.
func known(t string) bool {
	if t == "*" {
		return true
	}
	if fam, ok := strings.CutSuffix(t, ".*"); ok {
		return slices.ContainsFunc(defs, func(d Def) bool { return strings.HasPrefix(string(d.Name), fam+".") })
	}
	if _, ok := groups[Name(t)]; ok {
		return true
	}
	return slices.ContainsFunc(defs, func(d Def) bool { return string(d.Name) == t })
}

// wireName is the canonical pattern of a wire type: its one name, or its
// group when statuses tell its events apart.
func wireName(t jobv1.EventType) Name {
	for g, typ := range groups {
		if typ == t {
			return g
		}
	}
	for _, d := range defs {
		if d.Type == t {
			return d.Name
		}
	}
	return ""
}

// Types returns the wire types of the events a pattern may select (to
// narrow a subscription before Match decides).
func (p Pattern) Types() []jobv1.EventType {
	var out []jobv1.EventType
	for _, n := range p.Names() {
		for _, d := range defs {
			if d.Name == n && !slices.Contains(out, d.Type) {
				out = append(out, d.Type)
			}
		}
	}
	return out
}
