package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-arcade/arcade/server/store"
)

// Writes that arrive together are committed together, yet each keeps its
// own outcome: a duplicate id fails alone, a refusing modification changes
// nothing and fails alone, and modifications of one job from many callers
// all apply (none is lost to another's round).
func TestGroupCommitKeepsEachOutcome(t *testing.T) {
	eachStore(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Millisecond)
		const n = 60
		var wg sync.WaitGroup
		errs := make([]error, n+1)
		for i := range n {
			wg.Go(func() { errs[i] = s.CreateJob(ctx, newJob(fmt.Sprintf("g-%02d", i), now)) })
		}
		wg.Go(func() { errs[n] = s.CreateJob(ctx, newJob("g-07", now)) }) // a duplicate
		wg.Wait()
		failed := 0
		for _, err := range errs {
			if err != nil {
				failed++
			}
		}
		if failed != 1 {
			t.Fatalf("%d creates failed, want exactly the duplicate: %v", failed, errs)
		}

		refuse := errors.New("refused")
		var mu sync.Mutex
		applied := 0
		for i := range n {
			wg.Go(func() {
				// Every caller appends to the same job's message; odd ones
				// also to their own job, and every tenth refuses.
				_, err := s.ModifyJob(ctx, "g-00", func(j *store.Job) error {
					if i%10 == 9 {
						j.Message += "x" // must not be stored
						return refuse
					}
					j.Message += "."
					return nil
				})
				if i%10 == 9 {
					if !errors.Is(err, refuse) {
						t.Errorf("refusing modification %d: %v", i, err)
					}
				} else if err != nil {
					t.Errorf("modification %d: %v", i, err)
				} else {
					mu.Lock()
					applied++
					mu.Unlock()
				}
				if _, err := s.ModifyJob(ctx, "no-such-job", func(*store.Job) error { return nil }); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("unknown job: %v", err)
				}
				if i%2 == 1 {
					j, err := s.ModifyJob(ctx, fmt.Sprintf("g-%02d", i), func(j *store.Job) error { j.Message = "own"; return nil })
					if err != nil || j.Message != "own" {
						t.Errorf("own job %d: %v %v", i, j, err)
					}
				}
			})
		}
		wg.Wait()
		j, err := s.GetJob(ctx, "g-00")
		if err != nil {
			t.Fatal(err)
		}
		if want := applied; len(j.Message) != want || applied != n-n/10 {
			t.Errorf("g-00 message %q (%d chars), want %d dots", j.Message, len(j.Message), n-n/10)
		}
		for i := 1; i < n; i += 2 {
			if j, err := s.GetJob(ctx, fmt.Sprintf("g-%02d", i)); err != nil || j.Message != "own" {
				t.Errorf("job %d: %+v %v", i, j, err)
			}
		}
	})
}
