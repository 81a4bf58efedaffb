package service

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/pipeline"
	"github.com/go-arcade/arcade/server/auth"
	"github.com/go-arcade/arcade/server/forge"
	"github.com/go-arcade/arcade/server/lifecycle"
	"github.com/go-arcade/arcade/server/secrets"
	"github.com/go-arcade/arcade/server/store"
)

// This file holds the service's part of sources: webhook trigger secrets
// sealed apart from the definition, the source's credential checked by
// name, and the credential of a job's checkout resolved when the job is
// handed out.

// specWithTriggerSecrets is a stored pipeline's definition with its webhook
// secrets opened into their triggers (in memory only).
func (s *Service) specWithTriggerSecrets(p *store.Pipeline) (*jobv1.PipelineDetail, error) {
	spec, err := lifecycle.DecodeSpec(p.Spec)
	if err != nil {
		return nil, err
	}
	if len(p.TriggerSecrets) == 0 {
		return spec, nil
	}
	if s.cfg.Secrets == nil {
		return nil, errors.New("the pipeline's webhook secrets cannot be opened: this server has no secret key")
	}
	sec, err := s.cfg.Secrets.Open(p.TriggerSecrets)
	if err != nil {
		return nil, fmt.Errorf("open the pipeline's webhook secrets: %w", err)
	}
	for i, t := range spec.GetTriggers() {
		if v, ok := sec[strconv.Itoa(i)]; ok && t.GetSecret() == "" {
			t.Secret = v
		}
	}
	return spec, nil
}

// TriggerSecrets returns the webhook secrets of a pipeline by trigger index.
func (s *Service) TriggerSecrets(p *store.Pipeline) (*jobv1.PipelineDetail, error) {
	return s.specWithTriggerSecrets(p)
}

// takeTriggerSecrets moves the webhook secrets out of a definition (which
// keeps has_secret) and returns them sealed; nil when there are none.
func (s *Service) takeTriggerSecrets(spec *jobv1.PipelineDetail) ([]byte, error) {
	sec := map[string]string{}
	for i, t := range spec.GetTriggers() {
		if t.GetSecret() != "" {
			sec[strconv.Itoa(i)] = t.GetSecret()
			t.Secret, t.HasSecret = "", true
		}
	}
	if len(sec) == 0 {
		return nil, nil
	}
	if s.cfg.Secrets == nil {
		return nil, grpcstatus.Error(codes.FailedPrecondition, "triggers: this server has no secret key to seal webhook secrets with")
	}
	sealed, err := s.cfg.Secrets.Seal(sec)
	if err != nil {
		return nil, grpcstatus.Errorf(codes.Internal, "seal webhook secrets: %v", err)
	}
	return sealed, nil
}

// checkSourceCredential refuses a source whose credential names a stored
// secret that exists neither globally, nor for the pipeline, nor for the
// source's repository, and a webhook trigger on a pipeline named after a
// forge (its /hooks/NAME is that forge's endpoint).
func (s *Service) checkSourceCredential(ctx context.Context, spec *jobv1.PipelineDetail) error {
	if _, taken := forge.Known(spec.GetName()); taken {
		for i, t := range spec.GetTriggers() {
			if t.GetType() == jobv1.TriggerType_TRIGGER_TYPE_WEBHOOK {
				return invalid(fmt.Sprintf("triggers[%d]", i), "a pipeline named %s cannot have a webhook trigger: /hooks/%s takes that forge's deliveries; rename the pipeline", spec.GetName(), spec.GetName())
			}
		}
	}
	src := spec.GetSource()
	if src.GetCredential() == "" {
		return nil
	}
	q := store.SecretQuery{Names: []string{src.GetCredential()}, Pipeline: spec.GetName()}
	if repo, err := secrets.NormalizeRepo(src.GetUrl()); err == nil {
		q.Source = repo
	}
	found, err := s.store.FindSecrets(ctx, q)
	if err != nil {
		return storeError(err, "secrets")
	}
	if found[src.GetCredential()] == nil {
		return invalid("source.credential", "no stored secret %q (global, of pipeline %s, or of source %s): set it first with arcade secret set", src.GetCredential(), spec.GetName(), q.Source)
	}
	return nil
}

// addCheckout gives a job's checkout its credential, resolved now in the
// scopes of the job's pipeline and run (a secret rotated since is the new
// value; a deleted one fails the job with the reason).
func (s *Service) addCheckout(ctx context.Context, j *store.Job, job *agentv1.Job) error {
	if len(j.Checkout) == 0 {
		return nil
	}
	co := new(agentv1.Checkout)
	if err := protojson.Unmarshal(j.Checkout, co); err != nil {
		return fmt.Errorf("the job's checkout cannot be read: %w", err)
	}
	if name := co.GetCredentialSecret(); name != "" {
		vals, err := s.secrets.Resolve(ctx, secrets.Scope{Pipeline: j.PipelineID, RunID: j.RunID}, name)
		if err != nil {
			return fmt.Errorf("source credential: %w", err)
		}
		co.Credential = vals[name]
	}
	job.Checkout = co
	return nil
}

// RunURL is the dashboard page of a run ("" without a public_url).
func (s *Service) RunURL(runID string) string {
	if s.cfg.PublicURL == "" {
		return ""
	}
	return strings.TrimSuffix(s.cfg.PublicURL, "/") + "/runs/" + url.PathEscape(runID)
}

// ApproveRunDefinition implements JobService.ApproveRunDefinition: a run of
// a pull request from a fork ran its base branch's definition; a write-scope
// caller approves the pull request's own, and a new run of the same commit
// follows it, still of untrusted origin.
func (js *JobServer) ApproveRunDefinition(ctx context.Context, req *jobv1.ApproveRunDefinitionRequest) (*jobv1.ApproveRunDefinitionResponse, error) {
	s := js.s
	if err := requireID("run_id", req.GetRunId()); err != nil {
		return nil, err
	}
	if len(req.GetComment()) > MaxApprovalComment {
		return nil, invalid("comment", "at most %d bytes", MaxApprovalComment)
	}
	r, err := s.store.GetRun(ctx, req.GetRunId())
	if err != nil {
		return nil, storeError(err, "run "+req.GetRunId())
	}
	if !r.UntrustedOrigin || r.PullRequest == 0 || r.Commit == "" {
		return nil, grpcstatus.Errorf(codes.FailedPrecondition, "run_id: run %s is not of a pull request from a fork (only those run another definition than their own)", r.ID)
	}
	p, err := s.store.GetPipeline(ctx, r.PipelineID)
	if err != nil {
		return nil, storeError(err, "pipeline "+r.PipelineName)
	}
	spec, err := lifecycle.DecodeSpec(p.Spec)
	if err != nil {
		return nil, storeError(err, "pipeline "+p.Name)
	}
	if !pipeline.FromRepository(spec) && len(spec.GetInclude()) == 0 {
		return nil, grpcstatus.Errorf(codes.FailedPrecondition, "run_id: pipeline %s reads neither its definition nor included files from its repository: a pull request has none of its own to approve", p.Name)
	}
	by := auth.FromContext(ctx).Name
	if by == "" {
		by = actor(ctx)
	}
	o := lifecycle.RunOrigin{Event: r.Event, Ref: r.Ref, Commit: r.Commit, Author: r.Author, Branch: r.Branch,
		PullRequest: r.PullRequest, PullRequestTitle: r.PullRequestTitle, Untrusted: true,
		Why:                  fmt.Sprintf("pull request #%d from a fork, its own definition approved by %s", r.PullRequest, by),
		DefinitionApprovedBy: by}
	cause := fmt.Sprintf("pull request #%d's own definition, approved by %s", r.PullRequest, by)
	if c := strings.TrimSpace(req.GetComment()); c != "" {
		cause += ": " + c
	}
	nr, err := s.life.StartRunFrom(ctx, p, jobv1.TriggerType_TRIGGER_TYPE_WEBHOOK, cause, nil, o)
	if err != nil {
		return nil, storeError(err, "run")
	}
	s.log.Info("a fork's own definition approved", "pipeline", p.Name, "run", r.ID, "new_run", nr.ID, "by", by)
	run, err := s.runProto(ctx, nr)
	if err != nil {
		return nil, storeError(err, "run")
	}
	return &jobv1.ApproveRunDefinitionResponse{Run: run}, nil
}
