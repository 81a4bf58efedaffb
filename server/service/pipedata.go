package service

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/jobstate"
	"github.com/go-arcade/arcade/server/auth"
	"github.com/go-arcade/arcade/server/store"
)

// This file is the service face of what pipelines carry between jobs:
// inputs (upstream artifacts), outputs, caches handed to agents, and
// approvals.

// masked is how a secret output is shown.
const masked = "***"

// dataDetail adds a job's pipeline data to its view.
func dataDetail(j *store.Job, d *jobv1.JobDetail) {
	if len(j.Outputs) > 0 {
		d.Outputs = maps.Clone(j.Outputs)
		for _, k := range j.SecretOutputs {
			if _, ok := d.Outputs[k]; ok {
				d.Outputs[k] = masked
			}
		}
	}
	if len(j.Matrix) > 0 {
		mi := &jobv1.MatrixInstance{}
		if protojson.Unmarshal(j.Matrix, mi) == nil {
			d.Matrix = mi
		}
	}
	d.ConcurrencyGroup = j.ConcurrencyGroup
	if j.Type == store.HoldApproval {
		d.Type = jobv1.JobType_JOB_TYPE_APPROVAL
		d.Approval = &jobv1.Approval{Decision: j.ApprovalDecision, By: j.ApprovalBy, At: ts(j.ApprovalAt),
			Comment: j.ApprovalComment, ExpiresAt: ts(j.ApprovalExpiresAt)}
	}
	if status(j) == jobstate.Pending {
		switch j.Hold {
		case store.HoldApproval:
			d.Held = "waiting for approval (arcade pipeline approve " + j.RunID + " " + quoteArg(j.Name) + ")"
		case store.HoldConcurrency:
			d.Held = "waiting for concurrency group " + j.ConcurrencyGroup
		}
	}
	for _, k := range j.SecretEnv {
		if _, ok := d.Env[k]; ok {
			d.Env = maps.Clone(d.Env)
			d.Env[k] = masked
		}
	}
}

// quoteArg quotes a job name for a shell when it needs it.
func quoteArg(s string) string {
	if strings.ContainsAny(s, " ()'\"$\\") {
		return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	return s
}

// storedCache reads a job's stored cache config; nil without.
func storedCache(b []byte) *agentv1.CacheConfig {
	if len(b) == 0 {
		return nil
	}
	c := &agentv1.CacheConfig{}
	if protojson.Unmarshal(b, c) != nil {
		return nil
	}
	return c
}

// addPipelineData gives a job handed out what its phases need besides its
// steps: its cache (read-only for a run of untrusted origin), the values
// its expressions read, its inputs (the stored artifacts of the upstream
// jobs it names, at their latest attempts), its declared outputs, and the
// env filled from secret outputs moved among its secrets (masked).
func (s *Service) addPipelineData(ctx context.Context, j *store.Job, job *agentv1.Job) error {
	job.Cache = storedCache(j.Cache)
	job.Context = maps.Clone(j.ExprContext)
	job.Outputs = slices.Clone(j.OutputNames)
	for _, k := range j.SecretEnv {
		if v, ok := job.Env[k]; ok {
			if job.Secrets == nil {
				job.Secrets = map[string]string{}
			}
			job.Secrets[k] = v
			job.Env = maps.Clone(job.Env)
			delete(job.Env, k)
		}
	}
	if j.RunID == "" || job.Cache == nil && len(j.NeedsArtifacts) == 0 {
		return nil
	}
	r, err := s.store.GetRun(ctx, j.RunID)
	if err != nil {
		return fmt.Errorf("the job's run: %w", err)
	}
	job.CacheReadOnly = r.UntrustedOrigin
	for _, name := range j.NeedsArtifacts {
		up, err := s.store.RunJobByName(ctx, j.RunID, name)
		if err != nil {
			return fmt.Errorf("needs_artifacts: job %s: %w", name, err)
		}
		arts, err := s.store.JobArtifacts(ctx, up.ID)
		if err != nil {
			return fmt.Errorf("needs_artifacts: artifacts of %s: %w", name, err)
		}
		for _, a := range arts {
			if a.Attempt != up.Attempt || !a.Stored {
				continue
			}
			job.Inputs = append(job.Inputs, &agentv1.JobInput{JobId: up.ID, JobName: up.Name, Attempt: a.Attempt,
				Path: a.Path, SizeBytes: a.SizeBytes, Sha256: a.SHA256})
		}
	}
	return nil
}

// runningJob checks that the calling agent runs attempt of job id now.
func (s *Service) runningJob(ctx context.Context, id string, attempt int32) (*store.Job, error) {
	if err := requireID("job_id", id); err != nil {
		return nil, err
	}
	j, err := s.store.GetJob(ctx, id)
	if err != nil {
		return nil, storeError(err, "job "+id)
	}
	caller := auth.FromContext(ctx)
	if caller.Kind != auth.AgentCaller || j.AgentID != caller.AgentID {
		return nil, grpcstatus.Errorf(codes.PermissionDenied, "job %s attempt %d is not run by this agent", j.ID, attempt)
	}
	if j.Attempt != attempt || status(j) != jobstate.Running {
		return nil, grpcstatus.Errorf(codes.FailedPrecondition, "job %s attempt %d is not running (the job is at attempt %d, %s)", j.ID, attempt, j.Attempt, j.Status)
	}
	return j, nil
}

// DownloadInput implements AgentService.DownloadInput: an artifact of an
// upstream job the job names in needs_artifacts, streamed as stored (the
// agent checks its sha256).
func (a *AgentServer) DownloadInput(req *agentv1.DownloadInputRequest, stream grpc.ServerStreamingServer[agentv1.DownloadInputResponse]) error {
	s, ctx := a.s, stream.Context()
	j, err := s.runningJob(ctx, req.GetJobId(), req.GetAttempt())
	if err != nil {
		return err
	}
	if err := validArtifactPath("path", req.GetPath()); err != nil {
		return err
	}
	up, err := s.store.GetJob(ctx, req.GetInputJobId())
	if err != nil {
		return storeError(err, "input job "+req.GetInputJobId())
	}
	if up.RunID != j.RunID || j.RunID == "" || !slices.Contains(j.NeedsArtifacts, up.Name) {
		return grpcstatus.Errorf(codes.PermissionDenied, "input_job_id: job %s does not receive the artifacts of %s", j.Name, up.Name)
	}
	art, err := s.store.GetArtifact(ctx, up.ID, up.Attempt, req.GetPath())
	if errors.Is(err, store.ErrNotFound) || err == nil && !art.Stored {
		return grpcstatus.Errorf(codes.NotFound, "path: job %s has no stored artifact %q", up.Name, req.GetPath())
	}
	if err != nil {
		return storeError(err, "artifact "+req.GetPath())
	}
	objs, err := s.keeping()
	if err != nil {
		return err
	}
	if err := stream.Send(&agentv1.DownloadInputResponse{Artifact: artifact(*art)}); err != nil {
		return err
	}
	// The agent checks the sha256 of what it receives: the bytes go as the
	// store holds them.
	err = objs.Read(ctx, art.StorageKey, art.Parts, art.SizeBytes, "", func(data []byte) error {
		return inChunks(data, func(piece []byte) error { return stream.Send(&agentv1.DownloadInputResponse{Data: piece}) })
	})
	if err != nil {
		if _, ok := grpcstatus.FromError(err); ok {
			return err
		}
		return storageError(err, "read artifact "+art.Path)
	}
	return nil
}

// ApproveJob implements JobService.ApproveJob.
func (js *JobServer) ApproveJob(ctx context.Context, req *jobv1.ApproveJobRequest) (*jobv1.ApproveJobResponse, error) {
	j, err := js.s.decide(ctx, req.GetRunId(), req.GetJob(), req.GetComment(), true)
	if err != nil {
		return nil, err
	}
	return &jobv1.ApproveJobResponse{Job: j}, nil
}

// RejectJob implements JobService.RejectJob.
func (js *JobServer) RejectJob(ctx context.Context, req *jobv1.RejectJobRequest) (*jobv1.RejectJobResponse, error) {
	j, err := js.s.decide(ctx, req.GetRunId(), req.GetJob(), req.GetComment(), false)
	if err != nil {
		return nil, err
	}
	return &jobv1.RejectJobResponse{Job: j}, nil
}

// MaxApprovalComment bounds the comment of a decision.
const MaxApprovalComment = 1024

func (s *Service) decide(ctx context.Context, runID, name, comment string, approve bool) (*jobv1.JobDetail, error) {
	if err := requireID("run_id", runID); err != nil {
		return nil, err
	}
	if strings.TrimSpace(name) == "" {
		return nil, invalid("job", "must name the approval job")
	}
	if len(comment) > MaxApprovalComment {
		return nil, invalid("comment", "at most %d bytes", MaxApprovalComment)
	}
	by := auth.FromContext(ctx).Name
	if by == "" {
		by = actor(ctx)
	}
	var j *store.Job
	var err error
	if approve {
		j, err = s.life.ApproveJob(ctx, runID, name, by, comment)
	} else {
		j, err = s.life.RejectJob(ctx, runID, name, by, comment)
	}
	if err != nil {
		return nil, storeError(err, "approval "+name)
	}
	return jobDetail(j), nil
}
