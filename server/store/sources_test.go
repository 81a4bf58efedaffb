package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-arcade/arcade/server/store"
)

// Delivery ids: the first sighting is new, a replay is not, and only the
// newest are kept.
func TestFirstDeliveryBounded(t *testing.T) {
	eachStore(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
		for i := range 5 {
			first, err := s.FirstDelivery(ctx, fmt.Sprint("github:d", i), at.Add(time.Duration(i)*time.Second), 3)
			if err != nil || !first {
				t.Fatalf("delivery %d: %v %v", i, first, err)
			}
		}
		if first, err := s.FirstDelivery(ctx, "github:d4", at.Add(time.Minute), 3); err != nil || first {
			t.Fatalf("replay: %v %v", first, err)
		}
		if n, err := s.CountDeliveries(ctx); err != nil || n != 3 {
			t.Fatalf("%d deliveries kept, want 3 (%v)", n, err)
		}
		// A forgotten delivery (its run did not start) is new again.
		if err := s.ForgetDelivery(ctx, "github:d4"); err != nil {
			t.Fatal(err)
		}
		if first, err := s.FirstDelivery(ctx, "github:d4", at.Add(2*time.Minute), 3); err != nil || !first {
			t.Fatalf("forgotten delivery: %v %v", first, err)
		}
	})
}

// Commit statuses: only the oldest of each key is due, a claim holds it,
// and the next of the key is due once it is delivered; a run's reported
// state only moves forward.
func TestCommitStatusQueueOrder(t *testing.T) {
	eachStore(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
		for _, q := range []struct{ key, state string }{{"a", "pending"}, {"a", "running"}, {"b", "pending"}, {"a", "success"}} {
			if err := s.QueueStatus(ctx, &store.CommitStatus{Key: q.key, Payload: []byte(q.state), CreatedAt: now, NextAt: now}); err != nil {
				t.Fatal(err)
			}
		}
		due, err := s.DueStatuses(ctx, now, 10)
		if err != nil || len(due) != 2 || string(due[0].Payload) != "pending" || due[0].Key != "a" || due[1].Key != "b" {
			t.Fatalf("due %v %v", due, err)
		}
		if ok, err := s.ClaimStatus(ctx, due[0], now.Add(time.Minute)); err != nil || !ok {
			t.Fatalf("claim: %v %v", ok, err)
		}
		if ok, _ := s.ClaimStatus(ctx, due[0], now.Add(time.Minute)); ok {
			t.Fatal("claimed twice")
		}
		again, _ := s.DueStatuses(ctx, now, 10)
		if len(again) != 1 || again[0].Key != "b" {
			t.Fatalf("a claimed state let the next of its key pass: %v", again)
		}
		if err := s.StatusDelivered(ctx, due[0].ID); err != nil {
			t.Fatal(err)
		}
		next, _ := s.DueStatuses(ctx, now, 10)
		if len(next) != 2 || string(next[0].Payload) != "running" {
			t.Fatalf("after delivery: %v", next)
		}
	})
}
