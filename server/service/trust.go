package service

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	secretv1 "github.com/go-arcade/arcade/api/secret/v1"
	"github.com/go-arcade/arcade/core/labels"
	"github.com/go-arcade/arcade/server/auth"
	"github.com/go-arcade/arcade/server/store"
)

// This file holds trust: which agents are trusted (TrustService), and
// whether a job created alone may run on them — only when an admin token
// created it. Pipeline jobs follow their run (lifecycle.RunOrigin). The
// dispatcher (dispatch.Matches, and store.ClaimBatch in SQL) never hands any
// other job to a trusted agent, whatever its selector says.

// Bounds of trust settings.
const (
	maxTrustedLabels = 64
	maxTrustBranches = 32
)

// jobTrust decides whether a job created alone may use trusted agents: only
// when an admin token created it.
func jobTrust(ctx context.Context) (bool, string) {
	id := auth.FromContext(ctx)
	if id.Kind == auth.APIClient && id.Scope >= auth.Admin {
		return true, fmt.Sprintf("created by admin token %s", id.Name)
	}
	who := "this caller"
	if id.Name != "" {
		who = fmt.Sprintf("%s token %s", id.Scope, id.Name)
	}
	return false, fmt.Sprintf("created by %s; jobs created alone run on trusted agents only when an admin token creates them", who)
}

// isAdmin reports whether the caller holds an admin token.
func isAdmin(ctx context.Context) bool {
	id := auth.FromContext(ctx)
	return id.Kind == auth.APIClient && id.Scope >= auth.Admin
}

// TrustServer implements secretv1.TrustServiceServer.
type TrustServer struct {
	secretv1.UnimplementedTrustServiceServer
	s *Service
}

// TrustServer returns the TrustService implementation.
func (s *Service) TrustServer() *TrustServer { return &TrustServer{s: s} }

func pipelineTrustProto(p *store.Pipeline) *secretv1.PipelineTrust {
	return &secretv1.PipelineTrust{PipelineId: p.ID, PipelineName: p.Name, Allowed: p.TrustedAgents, Branches: p.TrustedBranches}
}

func (s *Service) trustedAgents(ctx context.Context) ([]*agentv1.Agent, error) {
	agents, err := s.store.TrustedAgents(ctx)
	if err != nil {
		return nil, storeError(err, "agents")
	}
	counts, err := s.store.RunningCounts(ctx)
	if err != nil {
		return nil, storeError(err, "agents")
	}
	out := make([]*agentv1.Agent, 0, len(agents))
	for _, a := range agents {
		out = append(out, s.agentProto(ctx, a, counts[a.ID]))
	}
	return out, nil
}

// GetTrustPolicy implements TrustService.GetTrustPolicy.
func (ts *TrustServer) GetTrustPolicy(ctx context.Context, _ *secretv1.GetTrustPolicyRequest) (*secretv1.GetTrustPolicyResponse, error) {
	s := ts.s
	lbls, err := s.store.TrustedLabels(ctx)
	if err != nil {
		return nil, storeError(err, "trusted labels")
	}
	ps, err := s.store.TrustedPipelines(ctx)
	if err != nil {
		return nil, storeError(err, "pipelines")
	}
	agents, err := s.trustedAgents(ctx)
	if err != nil {
		return nil, err
	}
	resp := &secretv1.GetTrustPolicyResponse{TrustedAgents: agents}
	for _, l := range lbls {
		resp.TrustedLabels = append(resp.TrustedLabels, l.String())
	}
	for _, p := range ps {
		resp.Pipelines = append(resp.Pipelines, pipelineTrustProto(p))
	}
	return resp, nil
}

// trustChanged tells the dispatchers (here and, through the event, on the
// other replicas) that an agent's trust changed.
func (s *Service) trustChanged(a *store.Agent, why string) {
	s.dispatch.Forget(a.ID)
	s.publishAgent(a, jobv1.EventType_EVENT_TYPE_AGENT_LABELS_CHANGED, why)
	s.dispatch.Wake()
}

// SetAgentTrust implements TrustService.SetAgentTrust.
func (ts *TrustServer) SetAgentTrust(ctx context.Context, req *secretv1.SetAgentTrustRequest) (*secretv1.SetAgentTrustResponse, error) {
	s := ts.s
	if err := requireID("agent_id", req.GetAgentId()); err != nil {
		return nil, err
	}
	a, err := s.store.SetAgentTrust(ctx, req.GetAgentId(), req.GetTrusted())
	if err != nil {
		return nil, storeError(err, "agent "+req.GetAgentId())
	}
	why := "marked untrusted by " + actor(ctx)
	if req.GetTrusted() {
		why = "marked trusted by " + actor(ctx)
	}
	s.log.Warn("agent trust changed", "agent", a.Name, "marked", a.TrustMarked, "trusted", a.Trusted, "by", actor(ctx))
	s.trustChanged(a, why)
	return &secretv1.SetAgentTrustResponse{Agent: s.agentProto(ctx, a, -1)}, nil
}

// SetTrustedLabels implements TrustService.SetTrustedLabels.
func (ts *TrustServer) SetTrustedLabels(ctx context.Context, req *secretv1.SetTrustedLabelsRequest) (*secretv1.SetTrustedLabelsResponse, error) {
	s := ts.s
	if len(req.GetLabels()) > maxTrustedLabels {
		return nil, invalid("labels", "at most %d trusted labels", maxTrustedLabels)
	}
	var set []store.TrustedLabel
	for i, l := range req.GetLabels() {
		field := fmt.Sprintf("labels[%d]", i)
		k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
		if !ok || k == "" {
			return nil, invalid(field, "%q: want key=value", l)
		}
		if err := labels.ValidateLabels(map[string]string{k: v}); err != nil {
			return nil, selectorError(field, err)
		}
		tl := store.TrustedLabel{Key: k, Value: v}
		if slices.Contains(set, tl) {
			return nil, invalid(field, "%s is given twice", l)
		}
		set = append(set, tl)
	}
	changed, err := s.store.SetTrustedLabels(ctx, set)
	if err != nil {
		return nil, storeError(err, "trusted labels")
	}
	for _, a := range changed {
		why := "no longer carries a trusted label"
		if a.Trusted {
			why = "carries a trusted label"
		}
		s.trustChanged(a, why)
	}
	s.log.Warn("trusted labels set", "labels", req.GetLabels(), "agents_changed", len(changed), "by", actor(ctx))
	agents, err := s.trustedAgents(ctx)
	if err != nil {
		return nil, err
	}
	resp := &secretv1.SetTrustedLabelsResponse{TrustedAgents: agents}
	for _, l := range set {
		resp.TrustedLabels = append(resp.TrustedLabels, l.String())
	}
	return resp, nil
}

// SetPipelineTrust implements TrustService.SetPipelineTrust. Runs started
// from now on follow it; runs under way keep what they started with.
func (ts *TrustServer) SetPipelineTrust(ctx context.Context, req *secretv1.SetPipelineTrustRequest) (*secretv1.SetPipelineTrustResponse, error) {
	s := ts.s
	if err := requireID("pipeline_id", req.GetPipelineId()); err != nil {
		return nil, err
	}
	if len(req.GetBranches()) > maxTrustBranches {
		return nil, invalid("branches", "at most %d", maxTrustBranches)
	}
	for i, b := range req.GetBranches() {
		field := fmt.Sprintf("branches[%d]", i)
		if b == "" || len(b) > 256 {
			return nil, invalid(field, "want a branch name or glob of 1 to 256 bytes")
		}
		if _, err := path.Match(b, ""); err != nil {
			return nil, invalid(field, "%q: %v", b, err)
		}
	}
	if !req.GetAllowed() && len(req.GetBranches()) > 0 {
		return nil, invalid("branches", "only with allowed")
	}
	p, err := s.store.SetPipelineTrust(ctx, req.GetPipelineId(), req.GetAllowed(), req.GetBranches())
	if err != nil {
		return nil, storeError(err, "pipeline "+req.GetPipelineId())
	}
	s.log.Warn("pipeline trust changed", "pipeline", p.Name, "allowed", p.TrustedAgents, "branches", p.TrustedBranches, "by", actor(ctx))
	return &secretv1.SetPipelineTrustResponse{Pipeline: pipelineTrustProto(p)}, nil
}
