package service

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/jobstate"
	"github.com/go-arcade/arcade/core/pipeline"
	"github.com/go-arcade/arcade/server/store"
	"github.com/go-arcade/arcade/server/trigger"
)

func newTestService(t *testing.T) *Service {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "arcade.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// Every server has a keyring (webhook secrets are sealed with it).
	return withKeyring(t, New(Config{}, st, nil, slog.New(slog.DiscardHandler)))
}

// The cron trigger fires on schedule through the real scheduler, service
// and store, with time driven by an injected clock.
func TestCronTriggerWithInjectedClock(t *testing.T) {
	s := newTestService(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 29, 10, 2, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s.now = clock
	_, err := s.JobServer().CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Yaml: `name: nightly
triggers: [{type: cron, cron: "*/5 * * * *"}]
stages: [{name: s, jobs: [{name: a, commands: [echo a]}, {name: b, commands: [echo b], depends_on: [a]}]}]`})
	if err != nil {
		t.Fatal(err)
	}
	sched := trigger.NewScheduler(s, clock, time.UTC, slog.New(slog.DiscardHandler))
	runs := func() []*jobv1.PipelineRun {
		resp, err := s.JobServer().ListPipelineRuns(ctx, &jobv1.ListPipelineRunsRequest{PipelineId: "nightly"})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetRuns()
	}
	sched.Tick(ctx)
	now = now.Add(2*time.Minute + 59*time.Second) // 10:04:59
	sched.Tick(ctx)
	if n := len(runs()); n != 0 {
		t.Fatalf("%d runs before 10:05", n)
	}
	now = time.Date(2026, 11, 29, 10, 5, 0, 0, time.UTC)
	if sched.Tick(ctx) != 1 {
		t.Fatal("cron did not fire at 10:05")
	}
	rs := runs()
	if len(rs) != 1 {
		t.Fatalf("%d runs after 10:05", len(rs))
	}
	r := rs[0]
	if r.GetTrigger() != jobv1.TriggerType_TRIGGER_TYPE_CRON || !strings.Contains(r.GetTriggeredBy(), `cron "*/5 * * * *" at 2026-11-29T10:05:00Z`) {
		t.Fatalf("run trigger %v by %q", r.GetTrigger(), r.GetTriggeredBy())
	}
	if r.GetStatus() != jobstate.Pending || len(r.GetJobs()) != 2 || r.GetJobs()[0].GetId() == "" || r.GetJobs()[1].GetId() != "" {
		t.Fatalf("run %v: want pending with a created and b waiting", r)
	}
	now = now.Add(time.Minute)
	if sched.Tick(ctx) != 0 || len(runs()) != 1 {
		t.Fatal("fired again before 10:10")
	}
}

func TestStatistics(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sum := func(st string, took time.Duration) store.RunSummary {
		at = at.Add(time.Hour)
		r := store.RunSummary{Status: st, CreatedAt: at, StartedAt: at}
		if took > 0 {
			r.FinishedAt = at.Add(took)
		}
		return r
	}
	got := statistics([]store.RunSummary{
		sum("success", 10*time.Second), sum("failed", 20*time.Second), sum("success", 30*time.Second),
		sum("cancelled", 40*time.Second), sum("running", 0),
	})
	if got.GetTotalRuns() != 5 || got.GetSuccessRate() != 0.5 || got.GetAverageDuration().AsDuration() != 25*time.Second ||
		got.GetLastRunStatus() != jobstate.Running || !got.GetLastRunAt().AsTime().Equal(at) {
		t.Fatalf("statistics %v", got)
	}
	if empty := statistics(nil); empty.GetTotalRuns() != 0 || empty.GetSuccessRate() != 0 || empty.GetLastRunAt() != nil {
		t.Fatalf("empty statistics %v", empty)
	}
}

func TestUpdatePipelineKeepsSecretsAndValidates(t *testing.T) {
	s := newTestService(t)
	ctx := context.Background()
	js := s.JobServer()
	created, err := js.CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Yaml: `name: app
triggers: [{type: webhook, secret: hush}]
stages: [{name: s, jobs: [{name: a, commands: [echo a]}]}]`})
	if err != nil {
		t.Fatal(err)
	}
	p := created.GetPipeline()
	if p.GetTriggers()[0].GetSecret() != "" || !p.GetTriggers()[0].GetHasSecret() {
		t.Fatalf("secret shown: %v", p.GetTriggers())
	}
	// Round trip of the shown message: the secret stays.
	p.Stages[0].Jobs = append(p.Stages[0].Jobs, &jobv1.PipelineJob{Name: "b", Commands: []string{"echo b"}, DependsOn: []string{"a"}})
	upd, err := js.UpdatePipeline(ctx, &jobv1.UpdatePipelineRequest{Pipeline: p})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(upd.GetPipeline().GetStages()[0].GetJobs()); n != 2 {
		t.Fatalf("%d jobs after update", n)
	}
	hooks, err := s.Webhooks(ctx, "app")
	if err != nil || len(hooks) != 1 || hooks[0].Secret != "hush" {
		t.Fatalf("webhooks after update: %v %v", hooks, err)
	}
	// A bad update answers InvalidArgument and changes nothing.
	p.Stages[0].Jobs[1].DependsOn = []string{"ghost"}
	if _, err := js.UpdatePipeline(ctx, &jobv1.UpdatePipelineRequest{Pipeline: p}); grpcstatus.Code(err) != codes.InvalidArgument ||
		!strings.Contains(err.Error(), `stages[0].jobs[1].depends_on[0]: unknown job "ghost"`) {
		t.Fatalf("bad update: %v", err)
	}
	got, err := js.GetPipeline(ctx, &jobv1.GetPipelineRequest{PipelineId: "app"})
	if err != nil || got.GetPipeline().GetStages()[0].GetJobs()[1].GetDependsOn()[0] != "a" {
		t.Fatalf("bad update was stored: %v %v", got, err)
	}
	if _, err := js.DeletePipeline(ctx, &jobv1.DeletePipelineRequest{PipelineId: "app"}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.GetPipeline(ctx, &jobv1.GetPipelineRequest{PipelineId: "app"}); grpcstatus.Code(err) != codes.NotFound {
		t.Fatalf("after delete: %v", err)
	}
}

func TestPipelineTriggerLoopsRefused(t *testing.T) {
	s := newTestService(t)
	ctx := context.Background()
	js := s.JobServer()
	mk := func(name, after string) error {
		y := "name: " + name + "\n"
		if after != "" {
			y += "triggers: [{type: pipeline, pipeline: " + after + "}]\n"
		}
		_, err := js.CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Yaml: y + "stages: [{name: s, jobs: [{name: j, commands: [x]}]}]"})
		return err
	}
	if err := mk("a", "c"); err != nil { // c does not exist yet: fine
		t.Fatal(err)
	}
	if err := mk("b", "a"); err != nil {
		t.Fatal(err)
	}
	err := mk("c", "b")
	if grpcstatus.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "triggers[0].pipeline: pipelines would start each other forever: c → a → b → c") {
		t.Fatalf("loop a→b→c→a: %v", err)
	}
	if err := mk("self", "self"); grpcstatus.Code(err) != codes.InvalidArgument {
		t.Fatalf("self trigger: %v", err)
	}
}

// TestCronFiresOnceAcrossReplicas: two schedulers (two replicas) over one
// database fire a scheduled time once.
func TestCronFiresOnceAcrossReplicas(t *testing.T) {
	s := newTestService(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 29, 10, 4, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s.now = clock
	if _, err := s.JobServer().CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Yaml: `name: shared
triggers: [{type: cron, cron: "*/5 * * * *"}]
stages: [{name: s, jobs: [{name: a, commands: [echo a]}]}]`}); err != nil {
		t.Fatal(err)
	}
	a := trigger.NewScheduler(s, clock, time.UTC, slog.New(slog.DiscardHandler))
	b := trigger.NewScheduler(s, clock, time.UTC, slog.New(slog.DiscardHandler))
	a.Tick(ctx)
	b.Tick(ctx)
	now = now.Add(time.Minute) // 10:05
	a.Tick(ctx)
	b.Tick(ctx)
	resp, err := s.JobServer().ListPipelineRuns(ctx, &jobv1.ListPipelineRunsRequest{PipelineId: "shared"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.GetRuns()); n != 1 {
		t.Errorf("two replicas fired 10:05 %d times, want once", n)
	}
}

// TestRunsHeldToTheServersLimits: a pipeline within this server's limits
// but over the default ones (1,001 stages; the default is 1,000) is
// stored and runs: a run is held to the limits the pipeline was created
// under, never to the defaults.
func TestRunsHeldToTheServersLimits(t *testing.T) {
	s := newTestService(t)
	s.cfg.PipelineLimits = pipeline.Limits{Stages: 1100}.WithDefaults()
	ctx := context.Background()
	var b strings.Builder
	b.WriteString("name: long\nstages:\n")
	for i := range pipeline.DefaultLimits.Stages + 1 {
		fmt.Fprintf(&b, "  - {name: s%d, jobs: [{name: j%d, commands: [true]}]}\n", i, i)
	}
	if _, err := s.JobServer().CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Yaml: b.String()}); err != nil {
		t.Fatal(err)
	}
	r, err := s.JobServer().TriggerPipeline(ctx, &jobv1.TriggerPipelineRequest{PipelineId: "long"})
	if err != nil {
		t.Fatalf("trigger: %v", err)
	}
	if got := len(r.GetRun().GetJobs()); got != pipeline.DefaultLimits.Stages+1 {
		t.Errorf("the run shows %d jobs", got)
	}
}
