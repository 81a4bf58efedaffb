package notify

import (
	"maps"
	"strings"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	"github.com/go-arcade/arcade/core/events"
	"github.com/go-arcade/arcade/core/jobstep"
	"github.com/go-arcade/arcade/pdk"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Data is what templates see: the one template model of rules and notify
// plugins (pdk.TemplateData, documented in docs/plugin-contracts.md).
type Data = pdk.TemplateData

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
	if d.Job != "" && (d.Status == "failed" || d.Status == "timeout") {
		d.Step, d.Cause = jobstep.ParseFailure(d.Message)
	}
	return d, true
}

// notifyEvent is the plugin contract's view of an event: the template
// model's fields, the named ones as labels (pdk.TemplateDataOf reads them
// back).
func notifyEvent(d Data) *pluginv1.NotifyEvent {
	return &pluginv1.NotifyEvent{
		Type: d.Type, JobId: d.JobID, PipelineId: d.PipelineID, PipelineRunId: d.RunID,
		Status: d.Status, Url: d.URL, Time: timestamppb.New(d.Time), Labels: d.Labels(),
	}
}
