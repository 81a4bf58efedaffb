package service

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/jobimage"
	"github.com/go-arcade/arcade/core/jobstate"
	"github.com/go-arcade/arcade/core/jobstep"
	"github.com/go-arcade/arcade/core/labels"
	"github.com/go-arcade/arcade/server/lifecycle"
	"github.com/go-arcade/arcade/server/store"
)

// JobServer implements jobv1.JobServiceServer.
type JobServer struct {
	jobv1.UnimplementedJobServiceServer
	s *Service
}

// maxRetries bounds automatic retries of one job.
const maxRetries = 100

// jobFromRequest validates a job definition and fills the stored fields;
// hasSecret tells whether the job has a secret of a name.
func jobFromRequest(req *jobv1.CreateJobRequest, j *store.Job, hasSecret func(string) bool) error {
	switch {
	case len(req.GetCommands()) > 0 && len(req.GetSteps()) > 0:
		return invalid("steps", "set commands or steps, not both: steps may mix commands and plugin calls")
	case len(req.GetCommands()) == 0 && len(req.GetSteps()) == 0:
		return invalid("commands", "must not be empty: a job runs at least one command (or steps)")
	}
	if err := jobstep.Validate("steps", req.GetSteps()); err != nil {
		var se *jobstep.Error
		if errors.As(err, &se) {
			return invalid(se.Field, "%s", se.Reason)
		}
		return invalid("steps", "%v", err)
	}
	steps, err := lifecycle.EncodeSteps(req.GetSteps())
	if err != nil {
		return invalid("steps", "%v", err)
	}
	for i, c := range req.GetCommands() {
		if strings.TrimSpace(c) == "" {
			return invalid(fmt.Sprintf("commands[%d]", i), "must not be empty")
		}
	}
	if err := validateEnv(req.GetEnv()); err != nil {
		return err
	}
	timeout := req.GetTimeout()
	if timeout != nil {
		if err := timeout.CheckValid(); err != nil {
			return invalid("timeout", "%v", err)
		}
		if timeout.AsDuration() < 0 {
			return invalid("timeout", "must not be negative, got %s", timeout.AsDuration())
		}
	}
	if r := req.GetRetries(); r < 0 || r > maxRetries {
		return invalid("retries", "must be between 0 and %d, got %d", maxRetries, r)
	}
	sel, err := labels.FromProto(req.GetLabelSelector())
	if err != nil {
		return selectorError("label_selector", err)
	}
	if text := req.GetSelector(); text != "" {
		parsed, err := labels.Parse(text)
		if err != nil {
			return selectorError("selector", err)
		}
		sel = labels.And(sel, parsed)
	}
	if err := labels.ValidateLabels(req.GetLabels()); err != nil {
		return selectorError("labels", err)
	}
	image := strings.TrimSpace(req.GetImage())
	if err := jobimage.Check("", image, req.GetContainer(), hasSecret); err != nil {
		return imageError(err)
	}
	var container []byte
	if o := req.GetContainer(); o != nil {
		container, _ = protojson.Marshal(o)
	}
	var artifacts []byte
	if a := req.GetArtifacts(); a != nil {
		if err := validateArtifactPaths(a.GetPaths()); err != nil {
			return err
		}
		if a.GetExpireIn().AsDuration() < 0 {
			return invalid("artifacts.expire_in", "must not be negative")
		}
		artifacts, _ = protojson.Marshal(a)
	}
	name := strings.TrimSpace(req.GetName())
	switch {
	case name != "":
	case len(req.GetCommands()) > 0:
		name = defaultName(req.GetCommands()[0])
	case len(req.GetSteps()[0].GetCommands()) > 0 && req.GetSteps()[0].GetName() == "":
		name = defaultName(req.GetSteps()[0].GetCommands()[0])
	default:
		name = jobstep.Name(req.GetSteps()[0], 0)
	}
	j.Name = name
	j.Commands = req.GetCommands()
	j.Env = nonNil(req.GetEnv())
	j.TimeoutMS = timeout.AsDuration().Milliseconds()
	j.Image = image
	j.Container = container
	j.Artifacts = artifacts
	j.Retries = req.GetRetries()
	j.Selector = sel.String()
	j.Labels = nonNil(req.GetLabels())
	j.Steps = steps
	j.Plugins = jobstep.Plugins(req.GetSteps())
	return nil
}

func defaultName(cmd string) string {
	cmd = strings.TrimSpace(strings.SplitN(cmd, "\n", 2)[0])
	if len(cmd) > 40 {
		cmd = cmd[:40] + "…"
	}
	return cmd
}

// CreateJob implements JobService.CreateJob.
func (js *JobServer) CreateJob(ctx context.Context, req *jobv1.CreateJobRequest) (*jobv1.CreateJobResponse, error) {
	s := js.s
	j := new(store.Job)
	hasSecret := func(name string) bool {
		_, inline := req.GetSecrets()[name]
		return inline || slices.Contains(req.GetSecretRefs(), name)
	}
	if err := jobFromRequest(req, j, hasSecret); err != nil {
		return nil, err
	}
	if err := s.checkStepPlugins("steps", req.GetSteps()); err != nil {
		return nil, err
	}
	if err := s.sealSecrets(req.GetSecrets(), j); err != nil {
		return nil, err
	}
	if err := s.checkSecretRefs(ctx, req.GetSecretRefs(), "", false, func(i int) string { return fmt.Sprintf("secret_refs[%d]", i) }); err != nil {
		return nil, err
	}
	j.SecretRefs = slices.Compact(slices.Sorted(slices.Values(req.GetSecretRefs())))
	j.TrustedAgents, j.TrustReason = jobTrust(ctx)
	if err := s.life.CreateJob(ctx, j); err != nil {
		return nil, storeError(err, "job")
	}
	return &jobv1.CreateJobResponse{Job: jobDetail(j)}, nil
}

func (js *JobServer) get(ctx context.Context, id string) (*store.Job, error) {
	if err := requireID("job_id", id); err != nil {
		return nil, err
	}
	j, err := js.s.store.GetJob(ctx, id)
	if err != nil {
		return nil, storeError(err, "job "+id)
	}
	return j, nil
}

// GetJob implements JobService.GetJob.
func (js *JobServer) GetJob(ctx context.Context, req *jobv1.GetJobRequest) (*jobv1.GetJobResponse, error) {
	j, err := js.get(ctx, req.GetJobId())
	if err != nil {
		return nil, err
	}
	return &jobv1.GetJobResponse{Job: jobDetail(j)}, nil
}

// ListJobs implements JobService.ListJobs.
func (js *JobServer) ListJobs(ctx context.Context, req *jobv1.ListJobsRequest) (*jobv1.ListJobsResponse, error) {
	p, err := page(req.GetPageSize(), req.GetPageToken(), req.GetOrderBy(), store.JobColumns, store.Order{Column: "created_at", Desc: true})
	if err != nil {
		return nil, err
	}
	f := store.JobFilter{AgentID: req.GetAgentId(), RunID: req.GetRunId()}
	for i, st := range req.GetStatuses() {
		if !jobstate.Valid(st) {
			return nil, invalid(fmt.Sprintf("statuses[%d]", i), "unknown job status %d", st)
		}
		f.Statuses = append(f.Statuses, jobstate.Name(st))
	}
	if text := req.GetLabelSelector(); text != "" {
		sel, err := labels.Parse(text)
		if err != nil {
			return nil, selectorError("label_selector", err)
		}
		f.Match = func(j *store.Job) bool { return sel.Matches(j.Labels) }
	}
	jobs, total, err := js.s.store.ListJobs(ctx, f, p)
	if err != nil {
		return nil, storeError(err, "jobs")
	}
	resp := &jobv1.ListJobsResponse{TotalSize: int32(total)}
	page := newPageBytes()
	for _, j := range jobs {
		d := jobDetail(j)
		if !page.take(d) {
			break
		}
		resp.Jobs = append(resp.Jobs, d)
	}
	resp.NextPageToken = nextToken(p, len(resp.Jobs), total)
	return resp, nil
}

// updatable are the CreateJobRequest fields UpdateJob may change.
var updatable = []string{"name", "commands", "steps", "env", "timeout", "image", "container", "artifacts", "retries", "label_selector", "labels", "selector"}

// UpdateJob implements JobService.UpdateJob: only a pending job changes.
func (js *JobServer) UpdateJob(ctx context.Context, req *jobv1.UpdateJobRequest) (*jobv1.UpdateJobResponse, error) {
	s := js.s
	if err := requireID("job_id", req.GetJobId()); err != nil {
		return nil, err
	}
	if req.GetJob() == nil {
		return nil, invalid("job", "must be set")
	}
	paths := req.GetUpdateMask().GetPaths()
	for i, p := range paths {
		if !slices.Contains(updatable, p) {
			return nil, invalid(fmt.Sprintf("update_mask.paths[%d]", i), "cannot update %q; updatable: %s", p, strings.Join(updatable, ", "))
		}
	}
	j, err := s.life.EditJob(ctx, req.GetJobId(), func(j *store.Job) error {
		merged := mergeJobRequest(currentRequest(j), req.GetJob(), paths)
		if err := jobFromRequest(merged, j, func(name string) bool {
			return slices.Contains(j.SecretNames, name) || slices.Contains(j.SecretRefs, name)
		}); err != nil {
			return err
		}
		if err := s.checkStepPlugins("steps", merged.GetSteps()); err != nil {
			return err
		}
		if j.TrustedAgents && !isAdmin(ctx) {
			// What an admin allowed on trusted agents, changed by a lesser
			// token, is no longer the admin's.
			j.TrustedAgents, j.TrustReason = jobTrust(ctx)
			j.TrustReason = "updated by a token without admin scope: " + j.TrustReason
		}
		return nil
	})
	if err != nil {
		return nil, storeError(err, "job "+req.GetJobId())
	}
	return &jobv1.UpdateJobResponse{Job: jobDetail(j)}, nil
}

func currentRequest(j *store.Job) *jobv1.CreateJobRequest {
	d := jobDetail(j)
	return &jobv1.CreateJobRequest{
		Name: d.Name, Commands: d.Commands, Steps: d.Steps, Env: d.Env, Timeout: d.Timeout, Image: d.Image,
		Container: d.Container, Artifacts: d.Artifacts, Retries: d.Retries, LabelSelector: d.LabelSelector, Labels: d.Labels,
	}
}

// mergeJobRequest applies the fields of upd named by paths (or, with no
// paths, every field upd sets) onto cur.
func mergeJobRequest(cur, upd *jobv1.CreateJobRequest, paths []string) *jobv1.CreateJobRequest {
	set := func(name string, present bool) bool {
		if len(paths) == 0 {
			return present
		}
		return slices.Contains(paths, name)
	}
	if set("name", upd.Name != "") {
		cur.Name = upd.Name
	}
	// A job runs commands or steps: setting one clears the other.
	if set("commands", len(upd.Commands) > 0) {
		cur.Commands = upd.Commands
		if len(upd.Commands) > 0 {
			cur.Steps = nil
		}
	}
	if set("steps", len(upd.Steps) > 0) {
		cur.Steps = upd.Steps
		if len(upd.Steps) > 0 {
			cur.Commands = nil
		}
	}
	if set("env", upd.Env != nil) {
		cur.Env = upd.Env
	}
	if set("timeout", upd.Timeout != nil) {
		cur.Timeout = upd.Timeout
	}
	if set("image", upd.Image != "") {
		cur.Image = upd.Image
	}
	if set("container", upd.Container != nil) {
		cur.Container = upd.Container
	}
	if set("artifacts", upd.Artifacts != nil) {
		cur.Artifacts = upd.Artifacts
	}
	if set("retries", upd.Retries != 0) {
		cur.Retries = upd.Retries
	}
	if set("labels", upd.Labels != nil) {
		cur.Labels = upd.Labels
	}
	selectorChanged := set("label_selector", upd.LabelSelector != nil) || set("selector", upd.Selector != "")
	if selectorChanged {
		cur.LabelSelector, cur.Selector = upd.LabelSelector, upd.Selector
	}
	return cur
}

// DeleteJob implements JobService.DeleteJob.
func (js *JobServer) DeleteJob(ctx context.Context, req *jobv1.DeleteJobRequest) (*jobv1.DeleteJobResponse, error) {
	if err := requireID("job_id", req.GetJobId()); err != nil {
		return nil, err
	}
	stored, err := js.s.jobObjects(ctx, req.GetJobId())
	if err != nil {
		return nil, err
	}
	if err := js.s.store.DeleteJob(ctx, req.GetJobId()); err != nil {
		return nil, storeError(err, "job "+req.GetJobId())
	}
	js.s.deleteObjects(ctx, stored)
	return &jobv1.DeleteJobResponse{}, nil
}

// CancelJob implements JobService.CancelJob. A pending job ends at once; a
// running one is stopped by its agent, which reports CANCELLED.
func (js *JobServer) CancelJob(ctx context.Context, req *jobv1.CancelJobRequest) (*jobv1.CancelJobResponse, error) {
	s := js.s
	if err := requireID("job_id", req.GetJobId()); err != nil {
		return nil, err
	}
	j, err := s.life.CancelJob(ctx, req.GetJobId(), req.GetReason())
	if err != nil {
		return nil, storeError(err, "job "+req.GetJobId())
	}
	return &jobv1.CancelJobResponse{Job: jobDetail(j)}, nil
}

// RetryJob implements JobService.RetryJob: a job that ended without success
// runs again as its next attempt, keeping the logs of earlier attempts.
func (js *JobServer) RetryJob(ctx context.Context, req *jobv1.RetryJobRequest) (*jobv1.RetryJobResponse, error) {
	s := js.s
	if err := requireID("job_id", req.GetJobId()); err != nil {
		return nil, err
	}
	j, err := s.life.RetryJob(ctx, req.GetJobId())
	if err != nil {
		return nil, storeError(err, "job "+req.GetJobId())
	}
	return &jobv1.RetryJobResponse{Job: jobDetail(j)}, nil
}

const (
	defaultLogLimit = 1000
	maxLogLimit     = 10000
)

// GetJobLog implements JobService.GetJobLog.
func (js *JobServer) GetJobLog(ctx context.Context, req *jobv1.GetJobLogRequest) (*jobv1.GetJobLogResponse, error) {
	j, err := js.get(ctx, req.GetJobId())
	if err != nil {
		return nil, err
	}
	attempt := req.GetAttempt()
	switch {
	case attempt < 0:
		return nil, invalid("attempt", "must not be negative")
	case attempt == 0:
		attempt = j.Attempt
	case attempt > j.Attempt:
		return nil, grpcstatus.Errorf(codes.NotFound, "attempt: job %s has %d attempt(s), not %d", j.ID, j.Attempt, attempt)
	}
	if req.GetFromLine() < 0 {
		return nil, invalid("from_line", "must not be negative")
	}
	if req.GetLimit() < 0 {
		return nil, invalid("limit", "must not be negative")
	}
	limit := int(req.GetLimit())
	if limit == 0 {
		limit = defaultLogLimit
	}
	limit = min(limit, maxLogLimit)
	from := max(req.GetFromLine(), 1)
	lines, err := js.s.readLogs(ctx, j, attempt, from, limit)
	if err != nil {
		return nil, err
	}
	resp := &jobv1.GetJobLogResponse{Attempt: attempt, NextLine: from}
	page := newPageBytes()
	for _, l := range lines {
		c := logChunk(l)
		if !page.take(c) {
			break
		}
		resp.Lines = append(resp.Lines, c)
	}
	if n := len(resp.Lines); n > 0 {
		resp.NextLine = resp.Lines[n-1].GetLineNumber() + 1
	}
	ended := attempt < j.Attempt || jobstate.Terminal(status(j))
	resp.Complete = ended && len(lines) < limit && len(resp.Lines) == len(lines)
	return resp, nil
}

// sealSecrets stores a job's secrets encrypted, and their names.
func (s *Service) sealSecrets(sec map[string]string, j *store.Job) error {
	sealed, names, err := s.seal("secrets", sec)
	if err != nil || sealed == nil {
		return err
	}
	j.Secrets, j.SecretNames = sealed, names
	return nil
}

// seal encrypts secrets (the request field named field) and returns them
// with their sorted names; nil without secrets.
func (s *Service) seal(field string, sec map[string]string) ([]byte, []string, error) {
	if len(sec) == 0 {
		return nil, nil, nil
	}
	for k := range sec {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, nil, invalid(fmt.Sprintf("%s[%q]", field, k), "not a valid variable name")
		}
	}
	if s.cfg.Secrets == nil {
		return nil, nil, grpcstatus.Errorf(codes.FailedPrecondition, "%s: this server has no secret key", field)
	}
	sealed, err := s.cfg.Secrets.Seal(sec)
	if err != nil {
		return nil, nil, grpcstatus.Errorf(codes.Internal, "seal %s: %v", field, err)
	}
	return sealed, slices.Sorted(maps.Keys(sec)), nil
}
