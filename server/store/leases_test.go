package store_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-arcade/arcade/server/store"
)

func TestLeaseOneHolderAtATime(t *testing.T) {
	eachStore(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		ttl := time.Minute
		acquire := func(holder string, at time.Time) bool {
			t.Helper()
			ok, err := s.TryAcquireAt(ctx, "sweep", holder, at, ttl)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if !acquire("a", t0) {
			t.Fatal("a did not get a free lease")
		}
		if acquire("b", t0.Add(time.Second)) {
			t.Fatal("b got a lease a holds")
		}
		// a renews it; b still cannot take it, even past a's first expiry.
		if !acquire("a", t0.Add(50*time.Second)) {
			t.Fatal("a could not renew its lease")
		}
		if acquire("b", t0.Add(70*time.Second)) {
			t.Fatal("b took a renewed lease before it expired")
		}
		// Another name is another lease.
		if ok, err := s.TryAcquireAt(ctx, "archive", "b", t0, ttl); err != nil || !ok {
			t.Fatalf("b on another lease: %v %v", ok, err)
		}
		// a stops renewing: once expired, b takes it and a has lost it.
		if !acquire("b", t0.Add(111*time.Second)) {
			t.Fatal("b could not take an expired lease")
		}
		if acquire("a", t0.Add(112*time.Second)) {
			t.Fatal("a got back a lease b holds")
		}
		// Released, it is free at once.
		if err := s.Release(ctx, "sweep", "a"); err != nil { // not a's: no effect
			t.Fatal(err)
		}
		if acquire("a", t0.Add(113*time.Second)) {
			t.Fatal("a release by a non-holder freed the lease")
		}
		if err := s.Release(ctx, "sweep", "b"); err != nil {
			t.Fatal(err)
		}
		if !acquire("a", t0.Add(114*time.Second)) {
			t.Fatal("a could not take a released lease")
		}
	})
}

func TestLeaseRace(t *testing.T) {
	eachStore(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		var won atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				ok, err := s.TryAcquire(ctx, "race", string(rune('a'+i)), time.Minute)
				if err != nil {
					t.Error(err)
				}
				if ok {
					won.Add(1)
				}
			})
		}
		wg.Wait()
		if n := won.Load(); n != 1 {
			t.Errorf("%d holders got the lease at once, want 1", n)
		}
	})
}
