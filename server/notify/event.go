package notify

import (
	"maps"
	"strings"
	"time"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	"github.com/go-arcade/arcade/core/events"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Data is what templates see.
type Data struct {
	// Type is the event type, e.g. "pipeline.failed".
	Type string
	// Rule is the rule's name.
	Rule string
	// Pipeline is the pipeline's name, Run the run's number (pipeline
	// events); PipelineID and RunID are set for job events of a run too.
	Pipeline, Run, PipelineID, RunID string
	// Job is the job's name and JobID its id (job events); Attempt counts
	// its runs.
	Job, JobID, Attempt string
	// Agent is the agent's name (agent events, and the agent of a job).
	Agent string
	// Plugin is the plugin's name (plugin events).
	Plugin string
	// Status is the job's or run's status ("failed"); for agents and
	// plugins what happened ("offline").
	Status string
	// Message is the event's message, e.g. why a job failed.
	Message string
	// URL links to what the event is about, when the server knows one.
	URL  string
	Time time.Time
	// Attributes are all the event's attributes.
	Attributes map[string]string
}

// Classify names a bus event in rules' terms (core/events) and gathers its
// template data; ok is false for events no rule can select (a job's
// status that is no outcome, the notifier's own outcomes).
func Classify(e *jobv1.Event) (d Data, ok bool) {
	a := e.GetAttributes()
	d = Data{Message: e.GetMessage(), Time: e.GetTimestamp().AsTime(), Attributes: maps.Clone(a), Status: a["status"]}
	if d.Attributes == nil {
		d.Attributes = map[string]string{}
	}
	name := events.Of(e)
	if strings.HasPrefix(string(name), "notification.") {
		name = ""
	}
	d.Type = string(name)
	switch e.GetType() {
	case jobv1.EventType_EVENT_TYPE_PIPELINE_RUN_STATUS:
		if a["status"] == "running" && a["started"] != "true" {
			d.Type = "" // a running run moving on; "started" is its first move
		}
		d.Pipeline, d.Run, d.PipelineID, d.RunID = a["pipeline"], a["number"], a["pipeline_id"], e.GetResourceId()
	case jobv1.EventType_EVENT_TYPE_AGENT_ONLINE:
		d.Status, d.Agent = "online", a["name"]
	case jobv1.EventType_EVENT_TYPE_AGENT_OFFLINE:
		d.Status, d.Agent = "offline", a["name"]
	case jobv1.EventType_EVENT_TYPE_AGENT_LABELS_CHANGED:
		d.Status, d.Agent = "labels changed", a["name"]
	case jobv1.EventType_EVENT_TYPE_PLUGIN_LOADED:
		d.Status, d.Plugin = "loaded", e.GetResourceId()
	case jobv1.EventType_EVENT_TYPE_PLUGIN_UNLOADED:
		d.Status, d.Plugin = "unloaded", e.GetResourceId()
	case jobv1.EventType_EVENT_TYPE_PLUGIN_FAILED:
		d.Status, d.Plugin = "failed", e.GetResourceId()
	}
	if d.Type == "" {
		return Data{}, false
	}
	if e.GetResourceType() == "job" {
		d.Job, d.JobID, d.Attempt, d.Agent = a["name"], e.GetResourceId(), a["attempt"], a["agent"]
		d.PipelineID, d.RunID, d.Pipeline = a["pipeline_id"], a["run_id"], a["pipeline"]
	}
	d.URL = a["url"]
	return d, true
}

// notifyEvent is the plugin contract's view of an event.
func notifyEvent(d Data) *pluginv1.NotifyEvent {
	labels := maps.Clone(d.Attributes)
	for k, v := range map[string]string{"pipeline": d.Pipeline, "run": d.Run, "job": d.Job, "agent": d.Agent, "plugin": d.Plugin, "rule": d.Rule, "message": d.Message} {
		if v != "" {
			labels[k] = v
		}
	}
	return &pluginv1.NotifyEvent{
		Type: d.Type, JobId: d.JobID, PipelineId: d.PipelineID, PipelineRunId: d.RunID,
		Status: d.Status, Url: d.URL, Time: timestamppb.New(d.Time), Labels: labels,
	}
}
