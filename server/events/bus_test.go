package events

import (
	"testing"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
)

func ev(t jobv1.EventType, rt, id string) *jobv1.Event {
	return &jobv1.Event{Type: t, ResourceType: rt, ResourceId: id}
}

func TestFilterAndDelivery(t *testing.T) {
	b := New()
	all := b.Subscribe(Filter{}, 10)
	jobs := b.Subscribe(Filter{ResourceType: Job}, 10)
	one := b.Subscribe(Filter{ResourceType: Job, ResourceID: "j1", Types: []jobv1.EventType{jobv1.EventType_EVENT_TYPE_JOB_FINISHED}}, 10)
	b.Publish(ev(jobv1.EventType_EVENT_TYPE_JOB_CREATED, Job, "j1"))
	b.Publish(ev(jobv1.EventType_EVENT_TYPE_JOB_FINISHED, Job, "j1"))
	b.Publish(ev(jobv1.EventType_EVENT_TYPE_JOB_FINISHED, Job, "j2"))
	b.Publish(ev(jobv1.EventType_EVENT_TYPE_AGENT_OFFLINE, Agent, "a1"))
	if n := len(all.C); n != 4 {
		t.Errorf("unfiltered got %d events, want 4", n)
	}
	if n := len(jobs.C); n != 3 {
		t.Errorf("job filter got %d events, want 3", n)
	}
	if n := len(one.C); n != 1 {
		t.Errorf("narrow filter got %d events, want 1", n)
	}
	e := <-all.C
	if e.GetId() == "" || e.GetTimestamp() == nil {
		t.Errorf("event without id or time: %v", e)
	}
}

func TestSlowSubscriberIsDroppedNotWaitedFor(t *testing.T) {
	b := New()
	slow := b.Subscribe(Filter{}, 2)
	fast := b.Subscribe(Filter{}, 100)
	for range 50 {
		b.Publish(ev(jobv1.EventType_EVENT_TYPE_JOB_CREATED, Job, "j"))
	}
	if !slow.Overflowed() {
		t.Error("slow subscriber not marked overflowed")
	}
	n := 0
	for range slow.C {
		n++
	}
	if n != 2 {
		t.Errorf("slow subscriber drained %d events before close, want 2", n)
	}
	if len(fast.C) != 50 || fast.Overflowed() {
		t.Errorf("fast subscriber: %d events, overflowed %v", len(fast.C), fast.Overflowed())
	}
	fast.Close()
	fast.Close() // twice is fine
	if b.Subscribers() != 0 {
		t.Errorf("%d subscribers left", b.Subscribers())
	}
}
