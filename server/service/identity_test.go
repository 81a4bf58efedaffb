package service

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	secretv1 "github.com/go-arcade/arcade/api/secret/v1"
	"github.com/go-arcade/arcade/core/jobstate"
	"github.com/go-arcade/arcade/server/auth"
	"github.com/go-arcade/arcade/server/lifecycle"
	"github.com/go-arcade/arcade/server/secrets"
)

func withKeyring(t *testing.T, s *Service) *Service {
	t.Helper()
	ring, err := secrets.New(bytes.Repeat([]byte{9}, secrets.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	s.cfg.Secrets = ring
	s.secrets = secrets.NewResolver(s.store, ring)
	return s
}

func as(scope auth.Scope, name string) context.Context {
	return auth.WithIdentity(context.Background(), auth.Identity{Kind: auth.APIClient, Scope: scope, Name: name})
}

func setSecret(t *testing.T, s *Service, name string, scope secretv1.SecretScope, target, value string) {
	t.Helper()
	if _, err := s.SecretServer().CreateSecret(as(auth.Admin, "admin"), &secretv1.CreateSecretRequest{
		Name: name, Scope: scope, Target: target, Value: value}); err != nil {
		t.Fatal(err)
	}
}

// TestSecretRefsCheckedAndResolved: a pipeline referencing an unknown
// secret is refused naming the field; a known one reaches the job when it
// is handed out, in the pipeline's scope, rotated values included; a secret
// deleted since fails the next run at once with the reason.
func TestSecretRefsCheckedAndResolved(t *testing.T) {
	s := withKeyring(t, newTestService(t))
	ctx := as(auth.Admin, "admin")
	js := s.JobServer()
	yaml := `name: ship
secrets: [REGISTRY_PASSWORD]
stages: [{name: s, jobs: [{name: deploy, commands: [./deploy], secrets: [DEPLOY_KEY]}]}]`
	_, err := js.CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Yaml: yaml})
	if grpcstatus.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "secret_refs[0]") || !strings.Contains(err.Error(), "REGISTRY_PASSWORD") {
		t.Fatalf("unknown secret: %v, want InvalidArgument naming secret_refs[0] and the secret", err)
	}
	setSecret(t, s, "REGISTRY_PASSWORD", secretv1.SecretScope_SECRET_SCOPE_GLOBAL, "", "global-pw")
	_, err = js.CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Yaml: yaml})
	if grpcstatus.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "stages[0].jobs[0].secrets[0]") {
		t.Fatalf("unknown job secret: %v", err)
	}
	setSecret(t, s, "DEPLOY_KEY", secretv1.SecretScope_SECRET_SCOPE_PIPELINE, "ship", "ship-key-1")
	setSecret(t, s, "DEPLOY_KEY", secretv1.SecretScope_SECRET_SCOPE_PIPELINE, "other", "other-key")
	if _, err := js.CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Yaml: yaml}); err != nil {
		t.Fatal(err)
	}
	run, err := js.TriggerPipeline(ctx, &jobv1.TriggerPipelineRequest{PipelineId: "ship"})
	if err != nil {
		t.Fatal(err)
	}
	j, err := s.store.GetJob(context.Background(), run.GetRun().GetJobs()[0].GetId())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(j.SecretRefs, ",") != "DEPLOY_KEY,REGISTRY_PASSWORD" {
		t.Errorf("job secret refs %v", j.SecretRefs)
	}
	// Rotation: the job handed out now gets the value of now.
	if _, err := s.SecretServer().UpdateSecret(ctx, &secretv1.UpdateSecretRequest{Name: "DEPLOY_KEY",
		Scope: secretv1.SecretScope_SECRET_SCOPE_PIPELINE, Target: "ship", Value: "ship-key-2"}); err != nil {
		t.Fatal(err)
	}
	job, err := s.agentJob(j)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.addStoredSecrets(context.Background(), j, job); err != nil {
		t.Fatal(err)
	}
	if job.Secrets["DEPLOY_KEY"] != "ship-key-2" || job.Secrets["REGISTRY_PASSWORD"] != "global-pw" {
		t.Errorf("handed-out secrets %v", job.Secrets)
	}
	// Deleted: the job cannot be handed out, and the next run fails at
	// once, saying why.
	if _, err := s.SecretServer().DeleteSecret(ctx, &secretv1.DeleteSecretRequest{Name: "DEPLOY_KEY",
		Scope: secretv1.SecretScope_SECRET_SCOPE_PIPELINE, Target: "ship"}); err != nil {
		t.Fatal(err)
	}
	if err := s.addStoredSecrets(context.Background(), j, job); !errors.Is(err, secrets.ErrMissing) || !strings.Contains(err.Error(), "pipeline ship") {
		t.Errorf("hand-out of a deleted secret: %v", err)
	}
	run, err = js.TriggerPipeline(ctx, &jobv1.TriggerPipelineRequest{PipelineId: "ship"})
	if err != nil {
		t.Fatal(err)
	}
	r := run.GetRun()
	if r.GetStatus() != jobstate.Failed || !strings.Contains(r.GetMessage(), "DEPLOY_KEY (jobs deploy)") {
		t.Errorf("run after the deletion: %v %q", r.GetStatus(), r.GetMessage())
	}
	if j := r.GetJobs()[0]; j.GetStatus() != jobstate.Skipped || !strings.Contains(j.GetMessage(), "DEPLOY_KEY") {
		t.Errorf("its job: %v %q", j.GetStatus(), j.GetMessage())
	}
	// A job created alone references global secrets only.
	_, err = js.CreateJob(ctx, &jobv1.CreateJobRequest{Commands: []string{"true"}, SecretRefs: []string{"DEPLOY_KEY"}})
	if grpcstatus.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "secret_refs[0]") {
		t.Errorf("job with another pipeline's secret: %v", err)
	}
}

// TestJobTrust: a job created alone may use trusted agents when an admin
// token created it.
func TestJobTrust(t *testing.T) {
	if ok, _ := jobTrust(as(auth.Admin, "root")); !ok {
		t.Error("a job an admin creates may not use trusted agents")
	}
	if ok, why := jobTrust(as(auth.Write, "dev")); ok || !strings.Contains(why, "write token dev") {
		t.Errorf("a job a write token creates: %v %q", ok, why)
	}
}

// TestUntrustedOriginGetsNothing: a run of untrusted origin gets no
// secrets (stored or its pipeline's own) and no trusted agents, even of a
// pipeline allowed on them; changing such a pipeline needs an admin.
func TestUntrustedOriginGetsNothing(t *testing.T) {
	s := withKeyring(t, newTestService(t))
	admin := as(auth.Admin, "admin")
	setSecret(t, s, "TOKEN", secretv1.SecretScope_SECRET_SCOPE_GLOBAL, "", "tok")
	yaml := `name: pr
secrets: [TOKEN]
stages: [{name: s, jobs: [{name: test, commands: [make test]}]}]`
	if _, err := s.JobServer().CreatePipeline(admin, &jobv1.CreatePipelineRequest{Yaml: yaml,
		Pipeline: &jobv1.PipelineDetail{Secrets: map[string]string{"OWN": "own-value"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TrustServer().SetPipelineTrust(admin, &secretv1.SetPipelineTrustRequest{PipelineId: "pr", Allowed: true}); err != nil {
		t.Fatal(err)
	}
	p, _ := s.store.GetPipeline(context.Background(), "pr")
	r, err := s.life.StartRunFrom(context.Background(), p, jobv1.TriggerType_TRIGGER_TYPE_WEBHOOK, "pull request", nil,
		lifecycle.RunOrigin{Branch: "main", Untrusted: true, Why: "pull request #7 from a fork"})
	if err != nil {
		t.Fatal(err)
	}
	if !r.UntrustedOrigin || r.TrustedAgents || len(r.Secrets) != 0 {
		t.Errorf("run: untrusted %v, trusted agents %v, secrets %d bytes", r.UntrustedOrigin, r.TrustedAgents, len(r.Secrets))
	}
	jobs, _ := s.store.RunJobs(context.Background(), r.ID)
	if len(jobs) != 1 {
		t.Fatalf("%d jobs", len(jobs))
	}
	j := jobs[0]
	if j.TrustedAgents || len(j.Secrets) != 0 || len(j.SecretRefs) != 0 || !strings.Contains(j.TrustReason, "fork") {
		t.Errorf("job: trusted %v, secrets %d, refs %v, reason %q", j.TrustedAgents, len(j.Secrets), j.SecretRefs, j.TrustReason)
	}
	// The same pipeline, run by hand: trusted agents, its secrets.
	r2, err := s.life.StartRun(context.Background(), p, jobv1.TriggerType_TRIGGER_TYPE_MANUAL, "api", nil)
	if err != nil {
		t.Fatal(err)
	}
	jobs, _ = s.store.RunJobs(context.Background(), r2.ID)
	if j := jobs[0]; !j.TrustedAgents || len(j.Secrets) == 0 || len(j.SecretRefs) != 1 {
		t.Errorf("manual run's job: trusted %v, secrets %d, refs %v", j.TrustedAgents, len(j.Secrets), j.SecretRefs)
	}
	// A write token may not change a pipeline allowed on trusted agents.
	_, err = s.JobServer().UpdatePipeline(as(auth.Write, "dev"), &jobv1.UpdatePipelineRequest{Yaml: yaml})
	if grpcstatus.Code(err) != codes.PermissionDenied {
		t.Errorf("write token updating a trusted pipeline: %v", err)
	}
	if _, err := s.JobServer().UpdatePipeline(admin, &jobv1.UpdatePipelineRequest{Yaml: yaml}); err != nil {
		t.Errorf("admin updating it: %v", err)
	}
}
