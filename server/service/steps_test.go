package service

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
)

func TestJobStepsStoredAndValidated(t *testing.T) {
	s := newTestService(t)
	ctx := context.Background()
	js := s.JobServer()
	resp, err := js.CreateJob(ctx, &jobv1.CreateJobRequest{Steps: []*agentv1.Step{
		{Name: "build", Commands: []string{"make"}}, {Commands: []string{"make test"}}}})
	if err != nil {
		t.Fatal(err)
	}
	j := resp.GetJob()
	if j.GetName() != "build" || len(j.GetSteps()) != 2 || j.GetSteps()[1].GetCommands()[0] != "make test" || len(j.GetCommands()) != 0 {
		t.Errorf("created job: %v", j)
	}
	got, err := js.GetJob(ctx, &jobv1.GetJobRequest{JobId: j.GetId()})
	if err != nil || len(got.GetJob().GetSteps()) != 2 {
		t.Fatalf("GetJob: %v %v", got, err)
	}

	// Commands replace steps and back.
	up, err := js.UpdateJob(ctx, &jobv1.UpdateJobRequest{JobId: j.GetId(), Job: &jobv1.CreateJobRequest{Commands: []string{"true"}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"commands"}}})
	if err != nil || len(up.GetJob().GetSteps()) != 0 || len(up.GetJob().GetCommands()) != 1 {
		t.Fatalf("update to commands: %v %v", up, err)
	}
	up, err = js.UpdateJob(ctx, &jobv1.UpdateJobRequest{JobId: j.GetId(), Job: &jobv1.CreateJobRequest{Steps: []*agentv1.Step{{Commands: []string{"x"}}}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"steps"}}})
	if err != nil || len(up.GetJob().GetSteps()) != 1 || len(up.GetJob().GetCommands()) != 0 {
		t.Fatalf("update to steps: %v %v", up, err)
	}

	bad := []struct {
		req   *jobv1.CreateJobRequest
		field string
	}{
		{&jobv1.CreateJobRequest{Commands: []string{"x"}, Steps: []*agentv1.Step{{Commands: []string{"y"}}}}, "steps:"},
		{&jobv1.CreateJobRequest{Steps: []*agentv1.Step{{Commands: []string{"y"}}, {Commands: []string{"y"}, With: map[string]string{"a": "b"}}}}, "steps[1].with"},
		{&jobv1.CreateJobRequest{Steps: []*agentv1.Step{{Name: "empty"}}}, "steps[0].commands"},
		{&jobv1.CreateJobRequest{Steps: []*agentv1.Step{{Uses: "a b"}}}, "steps[0].uses"},
		// A server serving no plugins refuses every plugin step.
		{&jobv1.CreateJobRequest{Steps: []*agentv1.Step{{Commands: []string{"y"}}, {Uses: "go-lint"}}}, "steps[1].uses"},
	}
	for _, b := range bad {
		_, err := js.CreateJob(ctx, b.req)
		if grpcstatus.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), b.field) {
			t.Errorf("CreateJob(%v): %v, want InvalidArgument on %s", b.req, err, b.field)
		}
	}
	_, err = js.CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Yaml: `name: p
stages: [{name: s, jobs: [{name: j, steps: [{run: x}, {uses: go-lint}]}]}]`})
	if grpcstatus.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "stages[0].jobs[0].steps[1].uses") {
		t.Errorf("CreatePipeline with an unknown plugin: %v", err)
	}
}

func TestAgentPluginCapabilities(t *testing.T) {
	for _, ok := range [][]string{nil, {"*"}, {"-"}, {"go-lint", "secret-scan"}} {
		if _, err := agentPlugins(ok); err != nil {
			t.Errorf("agentPlugins(%v): %v", ok, err)
		}
	}
	if got, _ := agentPlugins(nil); len(got) != 1 || got[0] != "*" {
		t.Errorf("no plugins announced means any, got %v", got)
	}
	for _, bad := range [][]string{{"*", "go-lint"}, {"go-lint", "-"}, {"a b"}, {"go-lint@1.0"}} {
		if _, err := agentPlugins(bad); grpcstatus.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "plugins[") {
			t.Errorf("agentPlugins(%v): %v", bad, err)
		}
	}
}
