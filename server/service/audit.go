package service

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
)

// Auditor checks pipeline definitions with a security plugin's audit
// function. Audit's error is a failure of the plugin (a fail-closed plugin;
// a fail-open one answers SKIPPED instead).
type Auditor interface {
	Plugin() string
	Audit(ctx context.Context, req *pluginv1.StepRequest) (*pluginv1.StepResponse, error)
}

// UseAudit makes CreatePipeline and UpdatePipeline refuse a definition the
// auditor finds fault with. Call it before serving.
func (s *Service) UseAudit(a Auditor) { s.audit = a }

// auditPipeline hands a definition to the audit plugin, as YAML without its
// secrets, and refuses it with FailedPrecondition listing the findings
// when the plugin answers FAILURE.
func (s *Service) auditPipeline(ctx context.Context, spec *jobv1.PipelineDetail) error {
	if s.audit == nil {
		return nil
	}
	def, err := auditDefinition(spec)
	if err != nil {
		return grpcstatus.Errorf(codes.Internal, "audit: %v", err)
	}
	file := "pipeline " + spec.GetName()
	params, err := structpb.NewStruct(map[string]any{"definition": def, "pipeline": file})
	if err != nil {
		return grpcstatus.Errorf(codes.Internal, "audit: %v", err)
	}
	plugin := s.audit.Plugin()
	resp, err := s.audit.Audit(ctx, &pluginv1.StepRequest{
		Context: &pluginv1.StepContext{PipelineId: spec.GetId(), Step: "audit"}, Params: params})
	if err != nil {
		s.log.Warn("pipeline refused: the audit plugin failed", "pipeline", spec.GetName(), "plugin", plugin, "err", err)
		return grpcstatus.Errorf(codes.Unavailable, "audit: plugin %s failed, and it fails closed: %v", plugin, err)
	}
	switch resp.GetStatus() {
	case pluginv1.Status_STATUS_FAILURE:
	case pluginv1.Status_STATUS_SUCCESS:
		return nil
	case pluginv1.Status_STATUS_SKIPPED:
		s.log.Warn("pipeline not audited: the audit plugin failed, and it fails open", "pipeline", spec.GetName(), "plugin", plugin,
			"reason", messagesText(resp.GetMessages()))
		return nil
	default:
		s.log.Warn("pipeline refused: the audit plugin could not audit it", "pipeline", spec.GetName(), "plugin", plugin,
			"status", resp.GetStatus().String(), "reason", messagesText(resp.GetMessages()))
		return grpcstatus.Errorf(codes.Unavailable, "audit: plugin %s could not audit the pipeline (%s): %s", plugin,
			strings.TrimPrefix(resp.GetStatus().String(), "STATUS_"), messagesText(resp.GetMessages()))
	}
	var (
		lines      []string
		violations []*errdetails.PreconditionFailure_Violation
	)
	for _, f := range resp.GetFindings() {
		loc := f.GetFile()
		if f.GetLine() > 0 {
			loc = fmt.Sprintf("%s:%d", loc, f.GetLine())
		}
		lines = append(lines, fmt.Sprintf("%s at %s: %s", f.GetRule(), loc, f.GetMessage()))
		violations = append(violations, &errdetails.PreconditionFailure_Violation{Type: f.GetRule(), Subject: loc, Description: f.GetMessage()})
	}
	if len(lines) == 0 {
		lines = append(lines, resp.GetSummary())
	}
	s.log.Info("pipeline refused by the audit", "pipeline", spec.GetName(), "plugin", plugin, "findings", len(resp.GetFindings()))
	st := grpcstatus.Newf(codes.FailedPrecondition, "audit by %s refused the pipeline: %s", plugin, strings.Join(lines, "; "))
	if withDetails, err := st.WithDetails(&errdetails.PreconditionFailure{Violations: violations}); err == nil {
		st = withDetails
	}
	return st.Err()
}

// auditDefinition writes a definition as YAML, leaving out secrets (which
// are meant to be secret) and what the server fills in.
func auditDefinition(spec *jobv1.PipelineDetail) (string, error) {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(spec)
	if err != nil {
		return "", err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return "", err
	}
	for _, k := range []string{"id", "statistics", "created_at", "updated_at", "secret_names"} {
		delete(m, k)
	}
	dropSecrets(m)
	out, err := yaml.Marshal(m)
	if err != nil {
		return "", err
	}
	return string(out), nil
}

// dropSecrets removes every "secret" and "secrets" key, at any depth.
func dropSecrets(v any) {
	switch t := v.(type) {
	case map[string]any:
		delete(t, "secret")
		delete(t, "secrets")
		for _, x := range t {
			dropSecrets(x)
		}
	case []any:
		for _, x := range t {
			dropSecrets(x)
		}
	}
}

func messagesText(ms []*pluginv1.Message) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.GetText())
	}
	return strings.Join(out, "; ")
}
