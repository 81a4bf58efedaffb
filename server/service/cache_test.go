package service

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/jobstate"
	"github.com/go-arcade/arcade/server/auth"
	"github.com/go-arcade/arcade/server/lifecycle"
	"github.com/go-arcade/arcade/server/store"
)

// TestUntrustedOriginWritesNoCache: a job of a run of untrusted origin
// (a pull request from a fork) is refused when it saves a cache entry, so
// it cannot poison what trusted runs restore; the same job of a manual run
// gets past that check, and an entry over cache_entry_max_bytes is refused
// naming it.
func TestUntrustedOriginWritesNoCache(t *testing.T) {
	s := newTestService(t)
	ctx := context.Background()
	if _, err := s.JobServer().CreatePipeline(as(auth.Admin, "admin"), &jobv1.CreatePipelineRequest{Yaml: `name: pr
stages: [{name: s, jobs: [{name: build, cache: {key: deps, paths: [deps]}, commands: [make]}]}]`}); err != nil {
		t.Fatal(err)
	}
	p, err := s.store.GetPipeline(ctx, "pr")
	if err != nil {
		t.Fatal(err)
	}
	// The run's job as an agent runs it.
	running := func(r *store.PipelineRun) *store.Job {
		t.Helper()
		jobs, err := s.store.RunJobs(ctx, r.ID)
		if err != nil || len(jobs) != 1 {
			t.Fatalf("jobs %v, %v", jobs, err)
		}
		j, err := s.store.ModifyJob(ctx, jobs[0].ID, func(j *store.Job) error {
			j.Status, j.AgentID = jobstate.Name(jobstate.Running), "agent-1"
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	saveOf := func(j *store.Job, size int64) error {
		agent := auth.WithIdentity(ctx, auth.Identity{Kind: auth.AgentCaller, AgentID: "agent-1"})
		_, err := s.AgentServer().BeginCacheSave(agent, &agentv1.BeginCacheSaveRequest{Header: &agentv1.CacheHeader{
			JobId: j.ID, Attempt: j.Attempt, Key: "deps", SizeBytes: size, Sha256: strings.Repeat("ab", 32)}})
		return err
	}
	save := func(j *store.Job) error { return saveOf(j, 10) }

	fork, err := s.life.StartRunFrom(ctx, p, jobv1.TriggerType_TRIGGER_TYPE_WEBHOOK, "pull request", nil,
		lifecycle.RunOrigin{Branch: "main", Untrusted: true, Why: "pull request #9 from a fork"})
	if err != nil {
		t.Fatal(err)
	}
	err = save(running(fork))
	if grpcstatus.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "untrusted origin") {
		t.Fatalf("a fork's cache save: %v", err)
	}

	manual, err := s.life.StartRun(ctx, p, jobv1.TriggerType_TRIGGER_TYPE_MANUAL, "api", nil)
	if err != nil {
		t.Fatal(err)
	}
	// No store is configured here: the save gets past the trust check and
	// stops at the missing store.
	j := running(manual)
	// An entry over the size limit is refused naming it.
	if err := saveOf(j, 3<<30); grpcstatus.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "cache_entry_max_bytes") {
		t.Errorf("an entry over the limit: %v", err)
	}
	if err := save(j); grpcstatus.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "artifact_store is not set") {
		t.Fatalf("a manual run's cache save: %v", err)
	}
}
