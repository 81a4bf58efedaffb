package service

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
)

// fakeAuditor answers with resp or err and keeps the definitions it saw.
type fakeAuditor struct {
	resp *pluginv1.StepResponse
	err  error
	seen []string
}

func (f *fakeAuditor) Plugin() string { return "policy" }

func (f *fakeAuditor) Audit(_ context.Context, req *pluginv1.StepRequest) (*pluginv1.StepResponse, error) {
	f.seen = append(f.seen, req.GetParams().GetFields()["definition"].GetStringValue())
	return f.resp, f.err
}

const auditedYAML = `name: audited
env: {REGION: eu}
triggers: [{type: webhook, secret: hook-secret-value}]
stages: [{name: s, jobs: [{name: a, commands: [echo a]}]}]`

func TestAuditGate(t *testing.T) {
	ctx := context.Background()
	finding := &pluginv1.StepResponse{Status: pluginv1.Status_STATUS_FAILURE, Findings: []*pluginv1.Finding{
		{Rule: "aws-access-key-id", File: "pipeline audited", Line: 3, Message: "AWS access key id (AKIA****)"}}}
	for _, tc := range []struct {
		name   string
		audit  *fakeAuditor
		code   codes.Code
		reason string
	}{
		{"success", &fakeAuditor{resp: &pluginv1.StepResponse{Status: pluginv1.Status_STATUS_SUCCESS}}, codes.OK, ""},
		{"findings", &fakeAuditor{resp: finding}, codes.FailedPrecondition,
			"audit by policy refused the pipeline: aws-access-key-id at pipeline audited:3: AWS access key id (AKIA****)"},
		{"fail closed", &fakeAuditor{err: errors.New("plugin crashed")}, codes.Unavailable, "plugin crashed"},
		{"fail open", &fakeAuditor{resp: &pluginv1.StepResponse{Status: pluginv1.Status_STATUS_SKIPPED}}, codes.OK, ""},
		{"error status", &fakeAuditor{resp: &pluginv1.StepResponse{Status: pluginv1.Status_STATUS_ERROR,
			Messages: []*pluginv1.Message{{Text: "no policy"}}}}, codes.Unavailable, "could not audit the pipeline (ERROR): no policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestService(t)
			s.UseAudit(tc.audit)
			_, err := s.JobServer().CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Yaml: auditedYAML})
			if grpcstatus.Code(err) != tc.code || (tc.reason != "" && !strings.Contains(err.Error(), tc.reason)) {
				t.Fatalf("CreatePipeline: %v, want %v with %q", err, tc.code, tc.reason)
			}
			_, gerr := s.JobServer().GetPipeline(ctx, &jobv1.GetPipelineRequest{PipelineId: "audited"})
			if stored := gerr == nil; stored != (tc.code == codes.OK) {
				t.Errorf("stored: %v (%v)", stored, gerr)
			}
			if len(tc.audit.seen) != 1 || !strings.Contains(tc.audit.seen[0], "REGION: eu") || strings.Contains(tc.audit.seen[0], "hook-secret-value") {
				t.Errorf("the plugin saw %q: want the definition, without its secrets", tc.audit.seen)
			}
		})
	}

	// An update is audited as it will be stored; a refused one changes
	// nothing.
	s := newTestService(t)
	if _, err := s.JobServer().CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Yaml: auditedYAML}); err != nil {
		t.Fatal(err)
	}
	a := &fakeAuditor{resp: finding}
	s.UseAudit(a)
	_, err := s.JobServer().UpdatePipeline(ctx, &jobv1.UpdatePipelineRequest{
		Pipeline: &jobv1.PipelineDetail{Id: "audited", Env: map[string]string{"KEY": "AKIA…"}}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"env"}}})
	if grpcstatus.Code(err) != codes.FailedPrecondition {
		t.Fatalf("UpdatePipeline: %v", err)
	}
	if len(a.seen) != 1 || !strings.Contains(a.seen[0], "KEY: AKIA") || !strings.Contains(a.seen[0], "name: a") {
		t.Errorf("the plugin saw %q: want the merged definition", a.seen)
	}
	got, err := s.JobServer().GetPipeline(ctx, &jobv1.GetPipelineRequest{PipelineId: "audited"})
	if err != nil || got.GetPipeline().GetEnv()["REGION"] != "eu" || got.GetPipeline().GetEnv()["KEY"] != "" {
		t.Errorf("after a refused update: %v %v", got.GetPipeline().GetEnv(), err)
	}
	a.resp = &pluginv1.StepResponse{Status: pluginv1.Status_STATUS_SUCCESS}
	if _, err := s.JobServer().UpdatePipeline(ctx, &jobv1.UpdatePipelineRequest{
		Pipeline: &jobv1.PipelineDetail{Id: "audited", Env: map[string]string{"KEY": "fine"}}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"env"}}}); err != nil {
		t.Fatalf("accepted update: %v", err)
	}
}
