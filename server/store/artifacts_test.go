package store_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-arcade/arcade/server/store"
)

// TestArtifactSweepClaims: of several sweeps claiming the same expired
// artifacts at once, each artifact goes to exactly one; a claim that went
// stale may be taken over; unexpired artifacts are never claimed.
func TestArtifactSweepClaims(t *testing.T) {
	eachStore(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		if err := s.CreateJob(ctx, newJob("j", t0)); err != nil {
			t.Fatal(err)
		}
		var arts []store.Artifact
		for _, p := range []string{"a", "b", "c", "d", "e"} {
			arts = append(arts, store.Artifact{JobID: "j", Attempt: 1, Path: p, SizeBytes: 1, SHA256: "x",
				CreatedAt: t0, ExpiresAt: t0.Add(time.Minute), Stored: true, StorageKey: "artifacts/j/1/" + p, Parts: 1})
		}
		arts = append(arts, store.Artifact{JobID: "j", Attempt: 1, Path: "kept", SizeBytes: 1, SHA256: "x", CreatedAt: t0})
		for i := range arts {
			if err := s.SaveArtifact(ctx, &arts[i]); err != nil {
				t.Fatal(err)
			}
		}
		now := t0.Add(2 * time.Minute)
		stale := now.Add(-10 * time.Minute)
		expired, err := s.ExpiredArtifacts(ctx, now, stale, 100)
		if err != nil || len(expired) != 5 {
			t.Fatalf("expired: %d %v, want 5", len(expired), err)
		}
		var claims [5]atomic.Int32
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for i := range expired {
					ok, err := s.ClaimArtifact(ctx, &expired[i], now, stale)
					if err != nil {
						t.Error(err)
					}
					if ok {
						claims[i].Add(1)
					}
				}
			})
		}
		wg.Wait()
		for i := range claims {
			if n := claims[i].Load(); n != 1 {
				t.Errorf("artifact %s claimed %d times, want once", expired[i].Path, n)
			}
		}
		// Claimed ones are not offered again until their claim is stale.
		if again, _ := s.ExpiredArtifacts(ctx, now, stale, 100); len(again) != 0 {
			t.Errorf("claimed artifacts offered again: %d", len(again))
		}
		later := now.Add(11 * time.Minute)
		if ok, err := s.ClaimArtifact(ctx, &expired[0], later, later.Add(-10*time.Minute)); err != nil || !ok {
			t.Errorf("stale claim not taken over: %v %v", ok, err)
		}
		if err := s.DeleteArtifact(ctx, &expired[0]); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetArtifact(ctx, "j", 1, expired[0].Path); err == nil {
			t.Error("deleted artifact still there")
		}
		if a, err := s.GetArtifact(ctx, "j", 0, "kept"); err != nil || !a.ExpiresAt.IsZero() {
			t.Errorf("artifact without expiry: %v %v", a, err)
		}
	})
}
