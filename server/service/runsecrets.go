package service

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/jobstate"
	"github.com/go-arcade/arcade/server/store"
)

// This file holds the pipeline side of stored secrets and trust: references
// checked when a pipeline is created or changed, checked again when a run
// starts (a secret deleted since fails the run with the reason), and the
// admin's say over pipelines allowed on trusted agents.

// checkPipelineSecretRefs refuses references to stored secrets that exist
// neither globally, nor for the pipeline, nor for any source repository
// (a pipeline does not name its repository: its runs do), naming the field.
func (s *Service) checkPipelineSecretRefs(ctx context.Context, spec *jobv1.PipelineDetail) error {
	if err := s.checkSecretRefs(ctx, spec.GetSecretRefs(), spec.GetName(), true,
		func(i int) string { return fmt.Sprintf("secret_refs[%d]", i) }); err != nil {
		return err
	}
	for si, st := range spec.GetStages() {
		for ji, j := range st.GetJobs() {
			field := fmt.Sprintf("stages[%d].jobs[%d].secrets", si, ji)
			if err := s.checkSecretRefs(ctx, j.GetSecrets(), spec.GetName(), true,
				func(i int) string { return fmt.Sprintf("%s[%d]", field, i) }); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkPipelineUpdate refuses an update of a pipeline allowed on trusted
// agents by a token without admin scope (what an admin allowed there is an
// admin's to change), and references to secrets that do not exist.
func (s *Service) checkPipelineUpdate(ctx context.Context, cur *store.Pipeline, upd *jobv1.PipelineDetail, paths []string) error {
	if cur.TrustedAgents && !isAdmin(ctx) {
		return grpcstatus.Errorf(codes.PermissionDenied, "pipeline %s may run on trusted agents: changing it needs an admin token", cur.Name)
	}
	old, err := unmarshalSpec(cur.Spec)
	if err != nil {
		return storeError(err, "pipeline "+cur.Name)
	}
	next, err := mergePipeline(old, proto.Clone(upd).(*jobv1.PipelineDetail), paths)
	if err != nil {
		return err
	}
	return s.checkPipelineSecretRefs(ctx, next)
}

// jobSecretRefs are the stored secrets a pipeline job gets: the pipeline's
// and its own.
func jobSecretRefs(spec *jobv1.PipelineDetail, j *jobv1.PipelineJob) []string {
	refs := append(slices.Clone(spec.GetSecretRefs()), j.GetSecrets()...)
	if len(refs) == 0 {
		return nil
	}
	slices.Sort(refs)
	return slices.Compact(refs)
}

// missingRunSecrets says which stored secrets a new run's jobs reference
// that do not exist in the run's scopes (deleted since the pipeline was
// created), "" when none.
func (s *Service) missingRunSecrets(ctx context.Context, r *store.PipelineRun) (string, error) {
	if r.UntrustedOrigin {
		return "", nil // it gets none
	}
	spec, err := unmarshalSpec(r.Spec)
	if err != nil {
		return "", err
	}
	users := map[string][]string{} // secret → jobs
	var names []string
	for _, st := range spec.GetStages() {
		for _, j := range st.GetJobs() {
			for _, ref := range jobSecretRefs(spec, j) {
				if users[ref] == nil {
					names = append(names, ref)
				}
				users[ref] = append(users[ref], j.GetName())
			}
		}
	}
	if len(names) == 0 {
		return "", nil
	}
	found, err := s.store.FindSecrets(ctx, store.SecretQuery{Names: names, Pipeline: r.PipelineID, Source: r.Source})
	if err != nil {
		return "", err
	}
	var missing []string
	for _, n := range names {
		if found[n] == nil {
			missing = append(missing, fmt.Sprintf("%s (jobs %s)", n, strings.Join(users[n], ", ")))
		}
	}
	if len(missing) == 0 {
		return "", nil
	}
	where := "global, pipeline " + r.PipelineName
	if r.Source != "" {
		where += ", source " + r.Source
	}
	return fmt.Sprintf("stored secrets not found: %s (looked in: %s); deleted? set them again with arcade secret set, or drop the references",
		strings.Join(missing, "; "), where), nil
}

// failRunAtStart ends a run that cannot start FAILED with the reason; its
// jobs are recorded SKIPPED.
func (s *Service) failRunAtStart(ctx context.Context, runID, reason string) error {
	now := s.now()
	r, err := s.store.ModifyRun(ctx, runID, func(r *store.PipelineRun, jobs []*store.Job) (store.RunChange, error) {
		var ch store.RunChange
		if err := setRunStatus(r, jobstate.Running, now); err != nil {
			return ch, err
		}
		if err := setRunStatus(r, jobstate.Failed, now); err != nil {
			return ch, err
		}
		r.Message = reason
		_, plan, err := runPlan(r)
		if err != nil {
			return ch, err
		}
		spec, _ := unmarshalSpec(r.Spec)
		for _, n := range plan.Nodes {
			j := s.newRunJob(r, spec, n, now)
			j.Status, j.FinishedAt, j.Message = jobstate.Name(jobstate.Skipped), now, "not run: "+reason
			ch.Insert = append(ch.Insert, j)
		}
		return ch, nil
	})
	if err != nil {
		return err
	}
	s.log.Warn("pipeline run failed before it started", "pipeline", r.PipelineName, "run", r.ID, "number", r.Number, "reason", reason)
	s.publishRun(r)
	return nil
}
