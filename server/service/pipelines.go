package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/jobimage"
	"github.com/go-arcade/arcade/core/jobstate"
	"github.com/go-arcade/arcade/core/jobstep"
	"github.com/go-arcade/arcade/core/pipeline"
	"github.com/go-arcade/arcade/server/lifecycle"
	"github.com/go-arcade/arcade/server/store"
	"github.com/go-arcade/arcade/server/trigger"
)

// This file is the pipeline half of JobService: pipeline definitions, and
// views of runs. Runs change state in server/lifecycle (started, advanced,
// stopped); a run's jobs are created only when they are ready, so waiting
// jobs appear in a run's view as PENDING without an id.

// specFrom reads the definition of a Create/Update request: the YAML file or
// the message, not both; a file over the size limit is refused unread.
//
// files are the files the definition includes (CreatePipelineRequest.files);
// they are kept with it. For a YAML file, the index of its lines is returned
// too, for errors to name theirs.
func (s *Service) specFrom(msg *jobv1.PipelineDetail, yaml string, files map[string]string) (*jobv1.PipelineDetail, *pipeline.Lines, error) {
	if err := checkIncludeFiles(files); err != nil {
		return nil, nil, err
	}
	switch {
	case yaml != "" && msg != nil && !onlyIDAndSecrets(msg):
		return nil, nil, invalid("yaml", "give the pipeline as yaml or as the message, not both (beside yaml, the message may carry only id and secrets)")
	case yaml != "":
		p, err := s.cfg.PipelineLimits.ParseYAML([]byte(yaml))
		if err != nil {
			return nil, nil, pipelineError(err)
		}
		if len(files) > 0 {
			p.IncludeFiles = files
		}
		return p, pipeline.IndexLines([]byte(yaml)), nil
	case msg == nil:
		return nil, nil, invalid("pipeline", "must be set (or yaml)")
	}
	p := proto.Clone(msg).(*jobv1.PipelineDetail)
	p.Id, p.Statistics, p.CreatedAt, p.UpdatedAt = "", nil, nil, nil
	if len(files) > 0 {
		p.IncludeFiles = files
	}
	return p, nil, nil
}

// checkIncludeFiles bounds the files sent with a pipeline.
func checkIncludeFiles(files map[string]string) error {
	if len(files) > pipeline.MaxIncludes {
		return invalid("files", "at most %d files", pipeline.MaxIncludes)
	}
	for name, data := range files {
		clean, err := pipeline.CleanIncludePath(name)
		if err != nil || clean != name {
			return invalid(fmt.Sprintf("files[%q]", name), "want a clean relative path inside the pipeline file's directory")
		}
		if len(data) > pipeline.MaxIncludeBytes {
			return invalid(fmt.Sprintf("files[%q]", name), "%d bytes, more than the limit of %d", len(data), pipeline.MaxIncludeBytes)
		}
	}
	return nil
}

// onlyIDAndSecrets reports whether msg sets no field but id and secrets,
// which may accompany a pipeline given as yaml.
func onlyIDAndSecrets(msg *jobv1.PipelineDetail) bool {
	rest := proto.Clone(msg).(*jobv1.PipelineDetail)
	rest.Id, rest.Secrets = "", nil
	return proto.Size(rest) == 0
}

// sealPipelineSecrets moves the secrets given with a pipeline out of its
// spec: sealed for the row, their names into the spec.
func (s *Service) sealPipelineSecrets(given map[string]string, spec *jobv1.PipelineDetail) ([]byte, error) {
	sealed, names, err := s.seal("pipeline.secrets", given)
	if err != nil {
		return nil, err
	}
	spec.Secrets, spec.SecretNames = nil, names
	return sealed, nil
}

// pipelineError turns a *pipeline.Error into InvalidArgument naming the
// field, and a *pipeline.LimitError into InvalidArgument naming the field
// and the limit; the caller's context ending stays what it is.
func pipelineError(err error) error {
	var pe *pipeline.Error
	var le *pipeline.LimitError
	switch {
	case errors.As(err, &pe):
		return invalid(pe.Field+pe.Where(), "%s", pe.Reason)
	case errors.As(err, &le):
		return grpcstatus.Error(codes.InvalidArgument, le.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return storeError(err, "pipeline")
	}
	return invalid("pipeline", "%v", err)
}

// validatePipeline checks a definition fully, within the pipeline limits
// (counted on the pipeline expanded: includes, templates, matrices): core
// rules, then what needs the server (cron expressions, time zones). Errors
// name the line when lines index the definition's file. It stops when ctx
// ends.
func (s *Service) validatePipeline(ctx context.Context, p *jobv1.PipelineDetail, lines *pipeline.Lines) (*pipeline.Plan, error) {
	if fromRepositoryIncludes(p) {
		return s.validateRepoIncludes(ctx, p, lines)
	}
	plan, err := s.cfg.PipelineLimits.Validate(ctx, p)
	if err != nil {
		return nil, pipelineError(lines.Annotate(err, nil))
	}
	return plan, validateTriggers(p)
}

// RepoIncludes reads the files a stored definition with a source includes
// from its repository, at the head of its default branch
// (server/sources.Sources). check runs while the files can be read.
type RepoIncludes interface {
	CheckIncludes(ctx context.Context, pipelineRef string, def *jobv1.PipelineDetail, check func(pipeline.Files) error) error
}

// fromRepositoryIncludes reports whether p is a stored definition with a
// source that includes files: they are read from its repository, at each
// run's commit.
func fromRepositoryIncludes(p *jobv1.PipelineDetail) bool {
	return p.GetSource().GetUrl() != "" && !pipeline.FromRepository(p) && len(p.GetInclude()) > 0
}

// validateRepoIncludes validates p, a stored definition with a source that
// includes files, reading them from its repository at the head of its
// default branch (each run reads them again, at its own commit). Files sent
// with it are refused: they would not be what runs.
func (s *Service) validateRepoIncludes(ctx context.Context, p *jobv1.PipelineDetail, lines *pipeline.Lines) (*pipeline.Plan, error) {
	if len(p.GetIncludeFiles()) > 0 {
		return nil, invalid("files", "a pipeline with a source reads the files it includes from its repository, at each run's commit; send none (arcade pipeline create sends none for a file with a source)")
	}
	if s.includes == nil {
		return nil, grpcstatus.Error(codes.FailedPrecondition, "include: this server has no git: the files a pipeline with a source includes are read from its repository")
	}
	if err := pipeline.CheckSource(p.GetSource()); err != nil {
		return nil, pipelineError(lines.Annotate(err, nil))
	}
	var plan *pipeline.Plan
	var verr error
	err := s.includes.CheckIncludes(ctx, p.GetName(), p, func(files pipeline.Files) error {
		plan, verr = s.cfg.PipelineLimits.ValidateFiles(ctx, p, files)
		return nil
	})
	if err != nil {
		return nil, storeError(err, "source")
	}
	if verr != nil {
		return nil, pipelineError(lines.Annotate(verr, nil))
	}
	return plan, validateTriggers(p)
}

// validateTriggers checks what of a definition's triggers needs the server.
func validateTriggers(p *jobv1.PipelineDetail) error {
	for i, t := range p.GetTriggers() {
		field := fmt.Sprintf("triggers[%d]", i)
		switch t.GetType() {
		case jobv1.TriggerType_TRIGGER_TYPE_CRON:
			if _, _, err := trigger.ParseCron(t.GetCron(), t.GetTimezone()); err != nil {
				if t.GetTimezone() != "" && strings.Contains(err.Error(), "time zone") {
					return invalid(field+".timezone", "%v", err)
				}
				return invalid(field+".cron", "%v", err)
			}
		case jobv1.TriggerType_TRIGGER_TYPE_PIPELINE:
			if t.GetPipeline() == p.GetName() {
				return invalid(field+".pipeline", "a pipeline cannot be triggered by its own completion")
			}
		}
	}
	return nil
}

// redacted is the spec as shown: webhook secrets replaced by has_secret.
func redacted(p *jobv1.PipelineDetail) *jobv1.PipelineDetail {
	out := proto.Clone(p).(*jobv1.PipelineDetail)
	for _, t := range out.GetTriggers() {
		if t.GetSecret() != "" {
			t.Secret, t.HasSecret = "", true
		}
	}
	return out
}

func (s *Service) pipelineDetail(ctx context.Context, p *store.Pipeline) (*jobv1.PipelineDetail, error) {
	spec, err := lifecycle.DecodeSpec(p.Spec)
	if err != nil {
		return nil, err
	}
	d := redacted(spec)
	d.Id, d.Name, d.CreatedAt, d.UpdatedAt = p.ID, p.Name, ts(p.CreatedAt), ts(p.UpdatedAt)
	runs, err := s.store.RunSummaries(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	d.Statistics = statistics(runs)
	return d, nil
}

// statistics summarises runs: the success rate and average duration count
// finished runs (success, failed, cancelled); the last run is the newest.
func statistics(runs []store.RunSummary) *jobv1.PipelineStatistics {
	st := &jobv1.PipelineStatistics{TotalRuns: int64(len(runs))}
	var finished, succeeded int
	var total time.Duration
	for _, r := range runs {
		s, err := jobstate.Parse(r.Status)
		if err != nil || !pipeline.RunTerminal(s) {
			continue
		}
		finished++
		if s == jobstate.Success {
			succeeded++
		}
		start := r.StartedAt
		if start.IsZero() {
			start = r.CreatedAt
		}
		total += r.FinishedAt.Sub(start)
	}
	if finished > 0 {
		st.SuccessRate = float64(succeeded) / float64(finished)
		st.AverageDuration = durationpb.New(total / time.Duration(finished))
	}
	if n := len(runs); n > 0 {
		last := runs[n-1]
		st.LastRunStatus, _ = jobstate.Parse(last.Status)
		st.LastRunAt = ts(last.CreatedAt)
	}
	return st
}

// CreatePipeline implements JobService.CreatePipeline.
func (js *JobServer) CreatePipeline(ctx context.Context, req *jobv1.CreatePipelineRequest) (*jobv1.CreatePipelineResponse, error) {
	s := js.s
	spec, lines, err := s.specFrom(req.GetPipeline(), req.GetYaml(), req.GetFiles())
	if err != nil {
		return nil, err
	}
	for i, t := range spec.GetTriggers() {
		if t.GetHasSecret() && t.GetSecret() == "" {
			return nil, invalid(fmt.Sprintf("triggers[%d].secret", i), "must be set for a webhook trigger")
		}
		t.HasSecret = false
	}
	plan, err := s.validatePipeline(ctx, spec, lines)
	if err != nil {
		return nil, err
	}
	if err := s.checkPipelinePlugins(plan.Spec); err != nil {
		return nil, err
	}
	if err := s.checkPipelineSecretRefs(ctx, plan.Spec); err != nil {
		return nil, err
	}
	if err := s.checkSourceCredential(ctx, spec); err != nil {
		return nil, err
	}
	if err := s.checkPipelineChain(ctx, spec, ""); err != nil {
		return nil, err
	}
	if err := s.auditPipeline(ctx, spec); err != nil {
		return nil, err
	}
	sealed, err := s.sealPipelineSecrets(req.GetPipeline().GetSecrets(), spec)
	if err != nil {
		return nil, err
	}
	triggerSecrets, err := s.takeTriggerSecrets(spec)
	if err != nil {
		return nil, err
	}
	now := s.now()
	p := &store.Pipeline{ID: newID(), Name: spec.GetName(), Spec: lifecycle.EncodeSpec(spec), Secrets: sealed,
		TriggerSecrets: triggerSecrets, CreatedAt: now, UpdatedAt: now}
	if err := s.store.CreatePipeline(ctx, p); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, grpcstatus.Errorf(codes.AlreadyExists, "name: a pipeline named %q exists", p.Name)
		}
		return nil, storeError(err, "pipeline")
	}
	s.log.Info("pipeline created", "pipeline", p.Name, "id", p.ID)
	d, err := s.pipelineDetail(ctx, p)
	if err != nil {
		return nil, storeError(err, "pipeline")
	}
	return &jobv1.CreatePipelineResponse{Pipeline: d}, nil
}

func (s *Service) getPipeline(ctx context.Context, idOrName string) (*store.Pipeline, error) {
	if err := requireID("pipeline_id", idOrName); err != nil {
		return nil, err
	}
	p, err := s.store.GetPipeline(ctx, idOrName)
	if err != nil {
		return nil, storeError(err, "pipeline "+idOrName)
	}
	return p, nil
}

// GetPipeline implements JobService.GetPipeline; pipeline_id may be the name.
func (js *JobServer) GetPipeline(ctx context.Context, req *jobv1.GetPipelineRequest) (*jobv1.GetPipelineResponse, error) {
	p, err := js.s.getPipeline(ctx, req.GetPipelineId())
	if err != nil {
		return nil, err
	}
	d, err := js.s.pipelineDetail(ctx, p)
	if err != nil {
		return nil, storeError(err, "pipeline")
	}
	return &jobv1.GetPipelineResponse{Pipeline: d}, nil
}

// ListPipelines implements JobService.ListPipelines.
func (js *JobServer) ListPipelines(ctx context.Context, req *jobv1.ListPipelinesRequest) (*jobv1.ListPipelinesResponse, error) {
	p, err := page(req.GetPageSize(), req.GetPageToken(), req.GetOrderBy(), store.PipelineColumns, store.Order{Column: "name"})
	if err != nil {
		return nil, err
	}
	ps, total, err := js.s.store.ListPipelines(ctx, p)
	if err != nil {
		return nil, storeError(err, "pipelines")
	}
	resp := &jobv1.ListPipelinesResponse{}
	page := newPageBytes()
	for _, sp := range ps {
		d, err := js.s.pipelineDetail(ctx, sp)
		if err != nil {
			return nil, storeError(err, "pipeline "+sp.ID)
		}
		if !page.take(d) {
			break
		}
		resp.Pipelines = append(resp.Pipelines, d)
	}
	resp.NextPageToken = nextToken(p, len(resp.Pipelines), total)
	return resp, nil
}

// pipelineUpdatable are the fields UpdatePipeline may change. Secrets
// change only when given or named in the mask (to clear them): a definition
// re-sent from its file keeps the secrets set beside it.
var pipelineUpdatable = []string{"name", "env", "triggers", "stages", "secrets", "secret_refs", "include", "templates", "concurrency"}

// UpdatePipeline implements JobService.UpdatePipeline. The new definition
// (yaml or message) replaces the fields named by update_mask, or all of them
// without one. A webhook trigger given with has_secret and no secret keeps
// the secret of the webhook trigger at the same position. Runs under way
// keep the definition they started with. The merged definition is checked
// (and audited) before the row is locked; the write only stores it, if the
// pipeline did not change meanwhile (else it starts over, or, once audited,
// is refused with Aborted).
func (js *JobServer) UpdatePipeline(ctx context.Context, req *jobv1.UpdatePipelineRequest) (*jobv1.UpdatePipelineResponse, error) {
	s := js.s
	id := req.GetPipeline().GetId()
	upd, lines, err := s.specFrom(req.GetPipeline(), req.GetYaml(), req.GetFiles())
	if err != nil {
		return nil, err
	}
	if id == "" {
		id = upd.GetName()
	}
	paths := req.GetUpdateMask().GetPaths()
	for i, p := range paths {
		if !slices.Contains(pipelineUpdatable, p) {
			return nil, invalid(fmt.Sprintf("update_mask.paths[%d]", i), "cannot update %q; updatable: %s", p, strings.Join(pipelineUpdatable, ", "))
		}
	}
	for attempt := 0; ; attempt++ {
		cur, err := s.getPipeline(ctx, id)
		if err != nil {
			return nil, err
		}
		if err := s.checkPipelineUpdate(ctx, cur, upd, paths); err != nil {
			return nil, err
		}
		if set := len(paths) == 0 || slices.Contains(paths, "triggers") || slices.Contains(paths, "name"); set {
			probe := proto.Clone(upd).(*jobv1.PipelineDetail)
			if probe.GetName() == "" || !(len(paths) == 0 || slices.Contains(paths, "name")) {
				probe.Name = cur.Name
			}
			if err := s.checkPipelineChain(ctx, probe, cur.ID); err != nil {
				return nil, err
			}
		}
		old, err := s.specWithTriggerSecrets(cur)
		if err != nil {
			return nil, storeError(err, "pipeline "+id)
		}
		next, plan, err := s.mergePipeline(ctx, old, upd, paths, lines)
		if err != nil {
			return nil, err
		}
		if err := s.checkPipelinePlugins(plan.Spec); err != nil {
			return nil, err
		}
		// The audit sees the definition as it will be; should the pipeline
		// change meanwhile, the update is refused rather than stored
		// unaudited.
		if err := s.auditPipeline(ctx, next); err != nil {
			return nil, err
		}
		given := req.GetPipeline().GetSecrets()
		var sealed []byte
		sealing := len(given) > 0 || slices.Contains(paths, "secrets")
		if sealing {
			if sealed, err = s.sealPipelineSecrets(given, next); err != nil {
				return nil, err
			}
		}
		// The webhook secrets go to their own sealed column; the
		// definition keeps has_secret.
		triggerSecrets, err := s.takeTriggerSecrets(next)
		if err != nil {
			return nil, err
		}
		spec := lifecycle.EncodeSpec(next)
		changed := false
		sp, err := s.store.ModifyPipeline(ctx, cur.ID, func(p *store.Pipeline) error {
			if !bytes.Equal(p.Spec, cur.Spec) || p.Name != cur.Name || !bytes.Equal(p.TriggerSecrets, cur.TriggerSecrets) {
				changed = true
				return errPipelineChanged
			}
			if sealing {
				p.Secrets = sealed
			}
			p.TriggerSecrets = triggerSecrets
			p.Name, p.Spec, p.UpdatedAt = next.GetName(), spec, s.now()
			return nil
		})
		if changed {
			if s.audit != nil || attempt >= 2 {
				return nil, grpcstatus.Errorf(codes.Aborted, "pipeline %s changed while it was being updated; retry", id)
			}
			continue
		}
		if err != nil {
			if errors.Is(err, store.ErrConflict) {
				return nil, grpcstatus.Errorf(codes.AlreadyExists, "name: %v", err)
			}
			return nil, storeError(err, "pipeline "+id)
		}
		d, err := s.pipelineDetail(ctx, sp)
		if err != nil {
			return nil, storeError(err, "pipeline")
		}
		return &jobv1.UpdatePipelineResponse{Pipeline: d}, nil
	}
}

// errPipelineChanged ends an update whose pipeline changed after it was
// read.
var errPipelineChanged = errors.New("pipeline changed")

// mergePipeline applies an update to a definition: the fields named by
// paths (all without), keeping webhook secrets given back as has_secret,
// and validates the result.
func (s *Service) mergePipeline(ctx context.Context, old, upd *jobv1.PipelineDetail, paths []string, lines *pipeline.Lines) (*jobv1.PipelineDetail, *pipeline.Plan, error) {
	next := proto.Clone(old).(*jobv1.PipelineDetail)
	set := func(name string) bool { return len(paths) == 0 || slices.Contains(paths, name) }
	if set("name") && upd.GetName() != "" {
		next.Name = upd.GetName()
	}
	if set("env") {
		next.Env = upd.GetEnv()
	}
	if set("triggers") {
		next.Triggers = upd.GetTriggers()
		for i, t := range next.Triggers {
			if t.GetHasSecret() && t.GetSecret() == "" && i < len(old.GetTriggers()) && old.Triggers[i].GetType() == t.GetType() {
				t.Secret = old.Triggers[i].GetSecret()
			}
			if t.GetHasSecret() && t.GetSecret() == "" {
				return nil, nil, invalid(fmt.Sprintf("triggers[%d].secret", i), "must be set for a new webhook trigger")
			}
			t.HasSecret = false
		}
	}
	if set("stages") {
		next.Stages = upd.GetStages()
	}
	if set("secret_refs") {
		next.SecretRefs = upd.GetSecretRefs()
	}
	if set("include") {
		next.Include, next.IncludeFiles = upd.GetInclude(), upd.GetIncludeFiles()
	}
	if set("templates") {
		next.Templates = upd.GetTemplates()
	}
	if set("concurrency") {
		next.Concurrency = upd.GetConcurrency()
	}
	plan, err := s.validatePipeline(ctx, next, lines)
	if err != nil {
		return nil, nil, err
	}
	return next, plan, nil
}

// DeletePipeline implements JobService.DeletePipeline: a pipeline with no
// run under way goes, with its runs and their jobs.
func (js *JobServer) DeletePipeline(ctx context.Context, req *jobv1.DeletePipelineRequest) (*jobv1.DeletePipelineResponse, error) {
	p, err := js.s.getPipeline(ctx, req.GetPipelineId())
	if err != nil {
		return nil, err
	}
	stored, err := js.s.store.PipelineStored(ctx, p.ID)
	if err != nil {
		return nil, storeError(err, "pipeline "+p.Name)
	}
	if err := js.s.store.DeletePipeline(ctx, p.ID); err != nil {
		return nil, storeError(err, "pipeline "+p.Name)
	}
	for _, st := range stored {
		js.s.deleteObjects(ctx, st)
	}
	return &jobv1.DeletePipelineResponse{}, nil
}

// TriggerPipeline implements JobService.TriggerPipeline: a manual run whose
// parameters become env overriding the pipeline's.
func (js *JobServer) TriggerPipeline(ctx context.Context, req *jobv1.TriggerPipelineRequest) (*jobv1.TriggerPipelineResponse, error) {
	s := js.s
	for k := range req.GetParams() {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, invalid(fmt.Sprintf("params[%q]", k), "not a valid variable name")
		}
	}
	if ref := req.GetRef(); len(ref) > 255 || strings.ContainsAny(ref, " \x00\n") {
		return nil, invalid("ref", "not a branch, tag, ref or commit id: %q", ref)
	}
	p, err := s.getPipeline(ctx, req.GetPipelineId())
	if err != nil {
		return nil, err
	}
	if err := checkRunImages(ctx, p, req.GetParams()); err != nil {
		return nil, err
	}
	origin := lifecycle.RunOrigin{Event: "manual", Ref: req.GetRef()}
	if req.GetRef() != "" {
		spec, err := lifecycle.DecodeSpec(p.Spec)
		if err != nil {
			return nil, storeError(err, "pipeline "+p.Name)
		}
		if spec.GetSource() == nil {
			return nil, invalid("ref", "pipeline %s has no source to resolve a ref in", p.Name)
		}
	}
	r, err := s.life.StartRunFrom(ctx, p, jobv1.TriggerType_TRIGGER_TYPE_MANUAL, "api by "+actor(ctx), req.GetParams(), origin)
	if err != nil {
		return nil, storeError(err, "run")
	}
	run, err := s.runProto(ctx, r)
	if err != nil {
		return nil, storeError(err, "run")
	}
	return &jobv1.TriggerPipelineResponse{Run: run}, nil
}

// checkPipelineChain refuses pipeline-completed triggers that would make
// pipelines start each other in a loop forever. spec replaces the stored
// pipeline selfID (empty: spec is new).
func (s *Service) checkPipelineChain(ctx context.Context, spec *jobv1.PipelineDetail, selfID string) error {
	// The other pipelines' triggers come from the life cycle's index: no
	// definition is read but those that changed.
	after, names, err := s.life.RunsAfter(ctx)
	if err != nil {
		return storeError(err, "pipelines")
	}
	if selfID != "" {
		delete(after, names[selfID])
		names[selfID] = spec.GetName()
	}
	var own []string
	for _, t := range spec.GetTriggers() {
		if t.GetType() == jobv1.TriggerType_TRIGGER_TYPE_PIPELINE {
			own = append(own, t.GetPipeline())
		}
	}
	after[spec.GetName()] = own
	names[spec.GetName()] = spec.GetName()
	// Walk "runs after" edges backwards from spec: spec runs after X, X runs
	// after Y…; meeting spec again is a loop.
	var walk func(name string, path []string) []string
	seen := map[string]bool{}
	walk = func(name string, path []string) []string {
		for _, a := range after[name] {
			up, ok := names[a]
			if !ok {
				continue // not created yet
			}
			if up == spec.GetName() {
				return append(path, up)
			}
			if _, known := after[up]; !seen[up] && known {
				seen[up] = true
				if loop := walk(up, append(path, up)); loop != nil {
					return loop
				}
			}
		}
		return nil
	}
	if loop := walk(spec.GetName(), []string{spec.GetName()}); loop != nil {
		slices.Reverse(loop)
		for i, t := range spec.GetTriggers() {
			if t.GetType() == jobv1.TriggerType_TRIGGER_TYPE_PIPELINE && names[t.GetPipeline()] == loop[len(loop)-2] {
				return invalid(fmt.Sprintf("triggers[%d].pipeline", i), "pipelines would start each other forever: %s", strings.Join(loop, " → "))
			}
		}
		return invalid("triggers", "pipelines would start each other forever: %s", strings.Join(loop, " → "))
	}
	return nil
}

// StopPipeline implements JobService.StopPipeline: the run ends CANCELLED at
// once; its pending jobs are cancelled, its running jobs are told to stop
// (their agents report CANCELLED), and jobs not yet created are recorded as
// cancelled.
func (js *JobServer) StopPipeline(ctx context.Context, req *jobv1.StopPipelineRequest) (*jobv1.StopPipelineResponse, error) {
	s := js.s
	if err := requireID("run_id", req.GetRunId()); err != nil {
		return nil, err
	}
	r, err := s.life.StopRun(ctx, req.GetRunId(), req.GetReason())
	if err != nil {
		return nil, storeError(err, "run "+req.GetRunId())
	}
	run, err := s.runProto(ctx, r)
	if err != nil {
		return nil, storeError(err, "run")
	}
	return &jobv1.StopPipelineResponse{Run: run}, nil
}

// GetPipelineRun implements JobService.GetPipelineRun.
func (js *JobServer) GetPipelineRun(ctx context.Context, req *jobv1.GetPipelineRunRequest) (*jobv1.GetPipelineRunResponse, error) {
	if err := requireID("run_id", req.GetRunId()); err != nil {
		return nil, err
	}
	r, err := js.s.store.GetRun(ctx, req.GetRunId())
	if err != nil {
		return nil, storeError(err, "run "+req.GetRunId())
	}
	run, err := js.s.runProto(ctx, r)
	if err != nil {
		return nil, storeError(err, "run")
	}
	return &jobv1.GetPipelineRunResponse{Run: run}, nil
}

// ListPipelineRuns implements JobService.ListPipelineRuns, newest first.
func (js *JobServer) ListPipelineRuns(ctx context.Context, req *jobv1.ListPipelineRunsRequest) (*jobv1.ListPipelineRunsResponse, error) {
	p, err := js.s.getPipeline(ctx, req.GetPipelineId())
	if err != nil {
		return nil, err
	}
	pg, err := page(req.GetPageSize(), req.GetPageToken(), "", []string{"number"}, store.Order{Column: "number", Desc: true})
	if err != nil {
		return nil, err
	}
	runs, total, err := js.s.store.ListRuns(ctx, p.ID, pg)
	if err != nil {
		return nil, storeError(err, "runs")
	}
	resp := &jobv1.ListPipelineRunsResponse{TotalSize: int32(total)}
	page := newPageBytes()
	for _, r := range runs {
		run, err := js.s.runProto(ctx, r)
		if err != nil {
			return nil, storeError(err, "run")
		}
		if !page.take(run) {
			break
		}
		resp.Runs = append(resp.Runs, run)
	}
	resp.NextPageToken = nextToken(pg, len(resp.Runs), total)
	return resp, nil
}

// checkPipelinePlugins refuses jobs whose steps use plugins the server does
// not serve, naming the field.
func (s *Service) checkPipelinePlugins(spec *jobv1.PipelineDetail) error {
	for si, st := range spec.GetStages() {
		for ji, j := range st.GetJobs() {
			field := fmt.Sprintf("stages[%d].jobs[%d]", si, ji)
			if uses := strings.TrimSpace(j.GetUses()); uses != "" {
				name, version, err := jobstep.ParseUses(uses)
				if err == nil {
					_, err = s.module(name, version)
				}
				if err != nil {
					return invalid(field+".uses", "%v", err)
				}
				continue
			}
			if err := s.checkStepPlugins(field+".steps", j.GetSteps()); err != nil {
				return err
			}
		}
	}
	return nil
}

// runProto is the view of a run: its jobs in plan order (stage by stage),
// jobs not created yet shown PENDING without an id.
func (s *Service) runProto(ctx context.Context, r *store.PipelineRun) (*jobv1.PipelineRun, error) {
	st, _ := jobstate.Parse(r.Status)
	typ := jobv1.TriggerType_TRIGGER_TYPE_UNSPECIFIED
	if t, err := pipeline.ParseTriggerType(r.Trigger); err == nil {
		typ = t
	}
	out := &jobv1.PipelineRun{
		Id: r.ID, PipelineId: r.PipelineID, PipelineName: r.PipelineName, Number: r.Number, Status: st,
		Trigger: typ, TriggeredBy: r.TriggeredBy, Params: r.Params, Message: r.Message,
		CreatedAt: ts(r.CreatedAt), StartedAt: ts(r.StartedAt), FinishedAt: ts(r.FinishedAt),
		UntrustedOrigin: r.UntrustedOrigin, Source: r.Source, Branch: r.Branch,
		TrustedAgents: r.TrustedAgents, TrustReason: r.TrustReason,
		Event: r.Event, Ref: r.Ref, Commit: r.Commit, Author: r.Author, PullRequest: r.PullRequest,
		PullRequestTitle: r.PullRequestTitle, Definition: r.Definition,
		Url:              s.RunURL(r.ID),
		ConcurrencyGroup: r.ConcurrencyGroup, ConcurrencyHeld: r.ConcurrencyHeld,
	}
	jobs, err := s.store.RunJobs(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	byName := map[string]*store.Job{}
	for _, j := range jobs {
		byName[j.Name] = j
	}
	spec, plan, err := s.life.RunPlan(ctx, r)
	if err != nil {
		return nil, err
	}
	for _, stage := range spec.GetStages() {
		out.Stages = append(out.Stages, stage.GetName())
		for _, pj := range stage.GetJobs() {
			if j, ok := byName[pj.GetName()]; ok {
				out.Jobs = append(out.Jobs, jobDetail(j))
				continue
			}
			n := plan.Node(pj.GetName())
			waiting := &jobv1.JobDetail{Name: n.Name, Stage: n.Stage, Status: jobstate.Pending,
				PipelineId: r.PipelineID, RunId: r.ID, Commands: pj.GetCommands(), Message: "waiting for " + plan.WaitingFor(n),
				Matrix: pj.GetMatrixInstance(), Type: pj.GetType()}
			if len(n.Deps) == 0 && n.StageIndex == 0 {
				waiting.Message = r.Message
			}
			out.Jobs = append(out.Jobs, waiting)
		}
	}
	return out, nil
}

// The server's trigger targets: the runs triggers create are the life
// cycle's to start.

// CronEntries implements trigger.CronTarget.
func (s *Service) CronEntries(ctx context.Context) ([]trigger.CronEntry, error) {
	return s.life.CronEntries(ctx)
}

// FireCron implements trigger.CronTarget.
func (s *Service) FireCron(ctx context.Context, e trigger.CronEntry, at time.Time) error {
	return s.life.FireCron(ctx, e, at)
}

// Webhooks implements trigger.WebhookTarget: the webhook triggers of a
// pipeline with their secrets, opened from their sealed column.
func (s *Service) Webhooks(ctx context.Context, pipelineName string) ([]trigger.WebhookConfig, error) {
	p, err := s.store.GetPipeline(ctx, pipelineName)
	if errors.Is(err, store.ErrNotFound) {
		return nil, trigger.ErrNoPipeline
	}
	if err != nil {
		return nil, err
	}
	spec, err := s.specWithTriggerSecrets(p)
	if err != nil {
		return nil, err
	}
	var out []trigger.WebhookConfig
	for _, t := range spec.GetTriggers() {
		if t.GetType() == jobv1.TriggerType_TRIGGER_TYPE_WEBHOOK {
			out = append(out, trigger.WebhookConfig{Secret: t.GetSecret(), Branches: t.GetBranches()})
		}
	}
	return out, nil
}

// FireWebhook implements trigger.WebhookTarget.
func (s *Service) FireWebhook(ctx context.Context, pipelineName string, push trigger.Push) (string, int64, error) {
	return s.life.FireWebhook(ctx, pipelineName, push)
}

// checkRunImages refuses a run whose jobs' images, once their ${NAME}
// references are expanded with the run's parameters, are no image
// references.
func checkRunImages(ctx context.Context, p *store.Pipeline, params map[string]string) error {
	spec, err := lifecycle.DecodeSpec(p.Spec)
	if err != nil {
		return storeError(err, "pipeline")
	}
	if fromRepositoryIncludes(spec) {
		// Its jobs are known only once its run's commit is read (as for a
		// definition read from the repository): not checked here.
		return nil
	}
	// Stored, so held to the limits of its day: planned without them.
	plan, err := pipeline.Replan(ctx, spec)
	if err != nil {
		return pipelineError(err)
	}
	for _, n := range plan.Nodes {
		if n.Job.GetImage() == "" {
			continue
		}
		env := pipeline.EnvFor(plan.Spec, n, params)
		field := fmt.Sprintf("params: job %s: image", n.Name)
		if err := jobimage.CheckExpanded(field, n.Job.GetImage(), jobimage.Expand(n.Job.GetImage(), env)); err != nil {
			return imageError(err)
		}
		for i, svc := range n.Job.GetContainer().GetServices() {
			field := fmt.Sprintf("params: job %s: services[%d].image", n.Name, i)
			if err := jobimage.CheckExpanded(field, svc.GetImage(), jobimage.Expand(svc.GetImage(), env)); err != nil {
				return imageError(err)
			}
		}
	}
	return nil
}
