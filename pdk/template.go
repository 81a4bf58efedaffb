package pdk

import (
	"fmt"
	"maps"
	"strings"
	"text/template"
	"text/template/parse"
	"time"
)

// TemplateData is the one model of notification templates. The server
// renders a notification rule's template (server.yaml notify:) over it,
// and a notify plugin renders its own templates (send_template) over the
// same fields, built from the request's event by TemplateDataOf: the same
// template text says the same thing in both places.
type TemplateData struct {
	// Type is the event name, e.g. "pipeline.failed".
	Type string
	// Rule is the notification rule's name.
	Rule string
	// Pipeline is the pipeline's name and Run the run's number;
	// PipelineID and RunID are their ids (run events, and job events of a
	// run).
	Pipeline, Run, PipelineID, RunID string
	// Job is the job's name, JobID its id and Attempt its attempt (job
	// events; for a failed or timed-out run, its first failed job).
	Job, JobID, Attempt string
	// Step is the step that failed and Cause why (a failed job, or a
	// failed run's failed job); Cause is set without Step when the job
	// failed outside its steps.
	Step, Cause string
	// Agent is the agent's name (agent events, and the agent of a job).
	Agent string
	// Plugin is the plugin's name (plugin events).
	Plugin string
	// Status is the job's or run's status ("failed"); for agents and
	// plugins what happened ("offline").
	Status string
	// Message is the event's message.
	Message string
	// URL is the dashboard page of what the event is about (under the
	// server's public_url; empty without one).
	URL string
	// Time is when it happened.
	Time time.Time
	// Attributes are the event's attributes, with the fields above that
	// are known under their label names (pipeline, run, job, step,
	// cause, agent, plugin, rule, message, attempt).
	Attributes map[string]string
	// Data is a send_template request's data (empty in server rules).
	Data Params
}

// templateLabels are the fields of TemplateData carried as labels of a
// NotifyEvent (the others have fields of their own).
var templateLabels = []struct {
	key   string
	field func(*TemplateData) *string
}{
	{"pipeline", func(d *TemplateData) *string { return &d.Pipeline }},
	{"run", func(d *TemplateData) *string { return &d.Run }},
	{"job", func(d *TemplateData) *string { return &d.Job }},
	{"attempt", func(d *TemplateData) *string { return &d.Attempt }},
	{"step", func(d *TemplateData) *string { return &d.Step }},
	{"cause", func(d *TemplateData) *string { return &d.Cause }},
	{"agent", func(d *TemplateData) *string { return &d.Agent }},
	{"plugin", func(d *TemplateData) *string { return &d.Plugin }},
	{"rule", func(d *TemplateData) *string { return &d.Rule }},
	{"message", func(d *TemplateData) *string { return &d.Message }},
}

// Labels are d's attributes with its known fields under their label
// names: the labels of the NotifyEvent the server sends.
func (d TemplateData) Labels() map[string]string {
	labels := maps.Clone(d.Attributes)
	if labels == nil {
		labels = map[string]string{}
	}
	for _, l := range templateLabels {
		if v := *l.field(&d); v != "" {
			labels[l.key] = v
		}
	}
	return labels
}

// TemplateDataOf is the template model of a notify request's event (and a
// send_template request's data): what the server's rule saw.
func TemplateDataOf(e *NotifyEvent, data Params) TemplateData {
	if e == nil {
		e = &NotifyEvent{}
	}
	d := TemplateData{Type: e.Type, JobID: e.JobID, PipelineID: e.PipelineID, RunID: e.PipelineRunID,
		Status: e.Status, URL: e.URL, Attributes: maps.Clone(e.Labels), Data: data}
	if d.Attributes == nil {
		d.Attributes = map[string]string{}
	}
	if e.Time != nil {
		d.Time = e.Time.Time
	}
	for _, l := range templateLabels {
		*l.field(&d) = d.Attributes[l.key]
	}
	return d
}

// legacyEventFields map the older plugin spelling {{.Event.X}} (the
// NotifyEvent's JSON or Go field names, or snake_case) to the model's
// fields; keys are lower case without underscores.
var legacyEventFields = map[string]string{
	"type": "Type", "jobid": "JobID", "pipelineid": "PipelineID", "pipelinerunid": "RunID",
	"status": "Status", "url": "URL", "time": "Time", "labels": "Attributes",
}

// MaxTemplateBytes bounds a notification template's text.
const MaxTemplateBytes = 64 << 10

// ParseTemplate parses a notification template over TemplateData (Go
// text/template; a missing map key renders empty). The older plugin
// spelling {{.Event.status}} ({{.Event.Status}}, {{.Event.job_id}}…) is
// rewritten to the model's field ({{.Status}}, {{.JobID}}) and reported in
// warnings. A field the model does not have is an error now, not at the
// first notification.
func ParseTemplate(name, text string) (*template.Template, []string, error) {
	if len(text) > MaxTemplateBytes {
		return nil, nil, fmt.Errorf("template: %d bytes, more than the limit of %d", len(text), MaxTemplateBytes)
	}
	t, err := template.New(name).Option("missingkey=zero").Parse(text)
	if err != nil {
		return nil, nil, err
	}
	var warnings []string
	var bad error
	seen := map[string]bool{}
	rewrite := func(ident []string) []string {
		if len(ident) < 2 || ident[0] != "Event" {
			return ident
		}
		field, ok := legacyEventFields[strings.ReplaceAll(strings.ToLower(ident[1]), "_", "")]
		if !ok {
			if bad == nil {
				bad = fmt.Errorf("{{.Event.%s}}: no such field (the template model's fields are {{.Type}}, {{.Pipeline}}, {{.Job}}, {{.Status}}, {{.URL}}…)", ident[1])
			}
			return ident
		}
		old := ".Event." + ident[1]
		if !seen[old] {
			seen[old] = true
			warnings = append(warnings, fmt.Sprintf("{{%s}} is an older spelling of {{.%s}}", old, field))
		}
		return append([]string{field}, ident[2:]...)
	}
	for _, tt := range t.Templates() {
		if tt.Tree != nil {
			walkTemplate(tt.Tree.Root, rewrite)
		}
	}
	if bad != nil {
		return nil, warnings, bad
	}
	// Execute once over sample data so that a field that does not exist
	// ({{.Pipline}}) is found now rather than at the first notification.
	if err := t.Execute(discard{}, TemplateData{Type: "pipeline.failed", Attributes: map[string]string{}, Data: Params{}}); err != nil {
		return nil, warnings, err
	}
	return t, warnings, nil
}

// walkTemplate applies rewrite to the field chains of every node under n.
func walkTemplate(n parse.Node, rewrite func([]string) []string) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n != nil {
			for _, c := range n.Nodes {
				walkTemplate(c, rewrite)
			}
		}
	case *parse.ActionNode:
		walkTemplate(n.Pipe, rewrite)
	case *parse.IfNode:
		walkBranch(&n.BranchNode, rewrite)
	case *parse.RangeNode:
		walkBranch(&n.BranchNode, rewrite)
	case *parse.WithNode:
		walkBranch(&n.BranchNode, rewrite)
	case *parse.TemplateNode:
		walkTemplate(n.Pipe, rewrite)
	case *parse.PipeNode:
		if n != nil {
			for _, c := range n.Cmds {
				walkTemplate(c, rewrite)
			}
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			walkTemplate(a, rewrite)
		}
	case *parse.FieldNode:
		n.Ident = rewrite(n.Ident)
	case *parse.VariableNode:
		if len(n.Ident) > 1 && n.Ident[0] == "$" {
			n.Ident = append([]string{"$"}, rewrite(n.Ident[1:])...)
		}
	case *parse.ChainNode:
		walkTemplate(n.Node, rewrite)
	}
}

func walkBranch(b *parse.BranchNode, rewrite func([]string) []string) {
	walkTemplate(b.Pipe, rewrite)
	walkTemplate(b.List, rewrite)
	walkTemplate(b.ElseList, rewrite)
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// RenderNotification renders a parsed notification template over d: a
// first line "# TITLE" is the title, the rest the body.
func RenderNotification(t *template.Template, d TemplateData) (title, body string, err error) {
	var b strings.Builder
	if err := t.Execute(&b, d); err != nil {
		return "", "", fmt.Errorf("template %s: %w", t.Name(), err)
	}
	body = b.String()
	if first, rest, ok := strings.Cut(body, "\n"); ok && strings.HasPrefix(first, "# ") {
		return strings.TrimPrefix(first, "# "), strings.TrimLeft(rest, "\n"), nil
	}
	return "", body, nil
}
