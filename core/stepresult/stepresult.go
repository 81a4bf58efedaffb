// Package stepresult is the step contract of plugins seen from the side that
// runs them: the request a plugin step's function gets, and how its
// StepResponse becomes lines of the job's log and the step's outcome. The
// agent and `arcade plugin run` both use it, so a plugin run locally shows
// what a job would.
package stepresult

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
)

// Request is the input of a step's plugin function: a DeployRequest for cd
// plugins (environment and version taken from with:), an ExecuteRequest for
// custom plugins or the execute function (action from with:), a StepRequest
// otherwise. Every with: value is a string param.
func Request(kind, function string, sc *pluginv1.StepContext, with map[string]string) proto.Message {
	params := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(with))}
	for k, v := range with {
		params.Fields[k] = structpb.NewStringValue(v)
	}
	switch {
	case kind == "cd":
		return &pluginv1.DeployRequest{Context: sc, Params: params, Environment: with["environment"], Version: with["version"]}
	case kind == "custom" || function == "execute":
		return &pluginv1.ExecuteRequest{Context: sc, Params: params, Action: with["action"]}
	}
	return &pluginv1.StepRequest{Context: sc, Params: params}
}

// Line is one line of the job's log written for a step's response, with the
// severity that sets its level (unspecified: info).
type Line struct {
	Severity pluginv1.Severity
	Text     string
}

// Lines renders a response as the job's log shows it, in this order:
//
//	result: STATUS[: summary]
//	SEVERITY: message text          (one per message)
//	finding FILE[:LINE[:COL]]: [RULE] message (severity)   (one per finding)
//	file: PATH                      (one per file)
//	output KEY=VALUE                (one per output, by key)
func Lines(resp *pluginv1.StepResponse) []Line {
	var out []Line
	add := func(sev pluginv1.Severity, format string, args ...any) {
		out = append(out, Line{Severity: sev, Text: fmt.Sprintf(format, args...)})
	}
	status := strings.TrimPrefix(resp.GetStatus().String(), "STATUS_")
	if resp.GetSummary() != "" {
		add(0, "result: %s: %s", status, resp.GetSummary())
	} else {
		add(0, "result: %s", status)
	}
	for _, m := range resp.GetMessages() {
		add(m.GetSeverity(), "%s: %s", SeverityName(m.GetSeverity()), m.GetText())
	}
	for _, f := range resp.GetFindings() {
		where := f.GetFile()
		if f.GetLine() > 0 {
			where += fmt.Sprintf(":%d", f.GetLine())
			if f.GetColumn() > 0 {
				where += fmt.Sprintf(":%d", f.GetColumn())
			}
		}
		if where == "" {
			where = "-"
		}
		add(f.GetSeverity(), "finding %s: [%s] %s (%s)", where, f.GetRule(), f.GetMessage(), SeverityName(f.GetSeverity()))
	}
	for _, f := range resp.GetFiles() {
		add(0, "file: %s", f.GetPath())
	}
	keys := make([]string, 0, len(resp.GetOutputs()))
	for k := range resp.GetOutputs() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		add(0, "output %s=%s", k, resp.GetOutputs()[k])
	}
	return out
}

// Passed says whether the step succeeds: STATUS_SUCCESS and STATUS_SKIPPED
// do; anything else (failure, error, no status) fails it.
func Passed(resp *pluginv1.StepResponse) bool {
	switch resp.GetStatus() {
	case pluginv1.Status_STATUS_SUCCESS, pluginv1.Status_STATUS_SKIPPED:
		return true
	}
	return false
}

// Failure says in one line why a plugin failed its step: its status and the
// summary, else the first message, else the count of findings and the first.
func Failure(plugin string, resp *pluginv1.StepResponse) string {
	status := strings.ToLower(strings.TrimPrefix(resp.GetStatus().String(), "STATUS_"))
	if resp.GetStatus() == pluginv1.Status_STATUS_UNSPECIFIED {
		status = "no status"
	}
	msg := fmt.Sprintf("plugin %s reported %s", plugin, status)
	switch {
	case resp.GetSummary() != "":
		msg += ": " + resp.GetSummary()
	case len(resp.GetMessages()) > 0:
		msg += ": " + resp.GetMessages()[0].GetText()
	case len(resp.GetFindings()) > 0:
		f := resp.GetFindings()[0]
		msg += fmt.Sprintf(": %d finding(s), first %s: %s", len(resp.GetFindings()), f.GetFile(), f.GetMessage())
	}
	return msg
}

// SeverityName is a severity in lower case; unspecified is "info".
func SeverityName(s pluginv1.Severity) string {
	if s == pluginv1.Severity_SEVERITY_UNSPECIFIED {
		return "info"
	}
	return strings.ToLower(strings.TrimPrefix(s.String(), "SEVERITY_"))
}
