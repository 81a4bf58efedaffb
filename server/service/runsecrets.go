package service

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/server/store"
)

// This file holds the pipeline side of stored secrets and trust: references
// checked when a pipeline is created or changed (lifecycle checks them again
// when a run starts), and the admin's say over pipelines allowed on trusted
// agents.

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
	old, err := s.specWithTriggerSecrets(cur)
	if err != nil {
		return storeError(err, "pipeline "+cur.Name)
	}
	next, _, err := s.mergePipeline(ctx, old, proto.Clone(upd).(*jobv1.PipelineDetail), paths, nil)
	if err != nil {
		return err
	}
	if err := s.checkSourceCredential(ctx, next); err != nil {
		return err
	}
	return s.checkPipelineSecretRefs(ctx, next)
}
