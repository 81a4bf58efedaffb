package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-arcade/arcade/server/store"
)

func TestEventHistory(t *testing.T) {
	eachStore(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		var evs []*store.Event
		for i := range 10 {
			name := "job.created"
			if i%2 == 1 {
				name = "job.failed"
			}
			evs = append(evs, &store.Event{ID: fmt.Sprintf("e%02d", i), Time: t0.Add(time.Duration(i) * time.Second), Type: 1,
				Name: name, ResourceType: "job", ResourceID: fmt.Sprintf("j%d", i%3), Message: "m", Attributes: map[string]string{"i": fmt.Sprint(i)}})
		}
		if err := s.AppendEvents(ctx, evs[:6]); err != nil {
			t.Fatal(err)
		}
		// Writing again (a retried batch) stores each event once.
		if err := s.AppendEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
		ids := func(es []*store.Event) string {
			out := ""
			for _, e := range es {
				out += e.ID + " "
			}
			return out
		}
		got, err := s.EventsSince(ctx, t0.Add(7*time.Second), "", store.EventFilter{}, 100)
		if err != nil || ids(got) != "e07 e08 e09 " {
			t.Errorf("since time: %s %v", ids(got), err)
		}
		e3, err := s.EventByID(ctx, "e03")
		if err != nil || e3.Attributes["i"] != "3" || e3.Name != "job.failed" || !e3.Time.Equal(t0.Add(3*time.Second)) {
			t.Fatalf("by id: %+v %v", e3, err)
		}
		got, _ = s.EventsSince(ctx, e3.Time, e3.ID, store.EventFilter{Names: []string{"job.failed"}}, 2)
		if ids(got) != "e05 e07 " {
			t.Errorf("after e03, failed, 2: %s", ids(got))
		}
		got, _ = s.LastEvents(ctx, 3, store.EventFilter{ResourceType: "job", ResourceID: "j0"})
		if ids(got) != "e03 e06 e09 " {
			t.Errorf("last 3 of j0: %s", ids(got))
		}
		if _, err := s.EventByID(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("missing event: %v", err)
		}
		// Bounded by age, then by count.
		n, err := s.PruneEvents(ctx, 100, t0.Add(2*time.Second))
		if err != nil || n != 2 {
			t.Errorf("prune by age: %d %v", n, err)
		}
		n, err = s.PruneEvents(ctx, 3, t0)
		if err != nil || n != 5 {
			t.Errorf("prune by count: %d %v", n, err)
		}
		got, _ = s.LastEvents(ctx, 100, store.EventFilter{})
		if ids(got) != "e07 e08 e09 " {
			t.Errorf("left: %s", ids(got))
		}
	})
}
