package stepresult_test

import (
	"reflect"
	"testing"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	"github.com/go-arcade/arcade/core/stepresult"
)

func TestLinesAndFailure(t *testing.T) {
	resp := &pluginv1.StepResponse{
		Status:   pluginv1.Status_STATUS_FAILURE,
		Summary:  "2 files need gofmt",
		Messages: []*pluginv1.Message{{Severity: pluginv1.Severity_SEVERITY_HIGH, Text: "bad"}, {Text: "note"}},
		Findings: []*pluginv1.Finding{{File: "a.go", Line: 3, Column: 7, Rule: "gofmt", Message: "not formatted", Severity: pluginv1.Severity_SEVERITY_MEDIUM}, {Rule: "r"}},
		Files:    []*pluginv1.File{{Path: "report.xml"}},
		Outputs:  map[string]string{"b": "2", "a": "1"},
	}
	var got []string
	for _, l := range stepresult.Lines(resp) {
		got = append(got, l.Text)
	}
	want := []string{
		"result: FAILURE: 2 files need gofmt",
		"high: bad", "info: note",
		"finding a.go:3:7: [gofmt] not formatted (medium)",
		"finding -: [r]  (info)",
		"file: report.xml",
		"output a=1", "output b=2",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("lines:\n got %q\nwant %q", got, want)
	}
	if stepresult.Passed(resp) {
		t.Fatal("a failure passed")
	}
	if m := stepresult.Failure("go-lint", resp); m != "plugin go-lint reported failure: 2 files need gofmt" {
		t.Fatalf("failure: %q", m)
	}
	if m := stepresult.Failure("x", &pluginv1.StepResponse{}); m != "plugin x reported no status" {
		t.Fatalf("no status: %q", m)
	}
	for _, s := range []pluginv1.Status{pluginv1.Status_STATUS_SUCCESS, pluginv1.Status_STATUS_SKIPPED} {
		if !stepresult.Passed(&pluginv1.StepResponse{Status: s}) {
			t.Fatalf("%v did not pass", s)
		}
	}
}

func TestRequestByKind(t *testing.T) {
	sc := &pluginv1.StepContext{Workspace: "/workspace"}
	with := map[string]string{"environment": "prod", "version": "1.2", "action": "greet"}
	if r, ok := stepresult.Request("cd", "deploy", sc, with).(*pluginv1.DeployRequest); !ok || r.GetEnvironment() != "prod" || r.GetVersion() != "1.2" {
		t.Fatalf("cd: %v", r)
	}
	if r, ok := stepresult.Request("custom", "execute", sc, with).(*pluginv1.ExecuteRequest); !ok || r.GetAction() != "greet" {
		t.Fatalf("custom: %v", r)
	}
	r, ok := stepresult.Request("ci", "lint", sc, with).(*pluginv1.StepRequest)
	if !ok || r.GetParams().GetFields()["version"].GetStringValue() != "1.2" || r.GetContext().GetWorkspace() != "/workspace" {
		t.Fatalf("ci: %v", r)
	}
}
