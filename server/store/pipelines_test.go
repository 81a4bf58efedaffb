package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/go-arcade/arcade/server/store"
)

func TestPipelinesAndRuns(t *testing.T) {
	eachStore(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		p := &store.Pipeline{ID: "p1", Name: "build", Spec: []byte(`{"name":"build"}`), CreatedAt: at, UpdatedAt: at}
		if err := s.CreatePipeline(ctx, p); err != nil {
			t.Fatal(err)
		}
		dup := *p
		dup.ID = "p2"
		if err := s.CreatePipeline(ctx, &dup); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate name: %v", err)
		}
		if got, err := s.GetPipeline(ctx, "build"); err != nil || got.ID != "p1" {
			t.Fatalf("by name: %v %v", got, err)
		}
		if _, err := s.GetPipeline(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("missing: %v", err)
		}

		// Concurrent triggers get distinct consecutive numbers.
		var wg sync.WaitGroup
		errs := make(chan error, 5)
		for i := range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := &store.PipelineRun{ID: "r" + string(rune('a'+i)), PipelineID: "p1", PipelineName: "build", Status: "pending",
					Trigger: "manual", Params: map[string]string{}, Spec: p.Spec, CreatedAt: at, UpdatedAt: at}
				errs <- s.CreateRun(ctx, r)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		runs, total, err := s.ListRuns(ctx, "p1", store.Page{})
		if err != nil || total != 5 || runs[0].Number != 5 || runs[4].Number != 1 {
			t.Fatalf("runs %v total %d err %v", runs, total, err)
		}

		// ModifyRun writes the run and new jobs together.
		r, err := s.ModifyRun(ctx, runs[0].ID, func(r *store.PipelineRun, jobs []*store.Job) (store.RunChange, error) {
			if len(jobs) != 0 {
				t.Errorf("jobs %v", jobs)
			}
			r.Status = "running"
			j := newJob("j1", at)
			j.RunID, j.PipelineID = r.ID, r.PipelineID
			return store.RunChange{Insert: []*store.Job{j}}, nil
		})
		if err != nil || r.Status != "running" {
			t.Fatalf("modify: %v %v", r, err)
		}
		if _, err := s.ModifyRun(ctx, r.ID, func(r *store.PipelineRun, jobs []*store.Job) (store.RunChange, error) {
			if len(jobs) != 1 {
				t.Errorf("jobs %v", jobs)
			}
			return store.RunChange{}, store.ErrUnchanged
		}); err != nil {
			t.Fatal(err)
		}
		active, err := s.ActiveRuns(ctx)
		if err != nil || len(active) != 5 {
			t.Fatalf("active %v %v", active, err)
		}
		if err := s.DeletePipeline(ctx, "p1"); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("delete with runs under way: %v", err)
		}
		for _, id := range active {
			if _, err := s.ModifyRun(ctx, id, func(r *store.PipelineRun, _ []*store.Job) (store.RunChange, error) {
				r.Status = "cancelled"
				return store.RunChange{}, nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.DeletePipeline(ctx, "p1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetJob(ctx, "j1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("job of a deleted pipeline: %v", err)
		}
	})
}
