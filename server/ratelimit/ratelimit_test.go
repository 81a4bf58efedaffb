package ratelimit

import (
	"testing"
	"time"
)

func TestBucketPerClient(t *testing.T) {
	l := New(10, 3)
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	for i := range 3 {
		if !l.Allow("a") {
			t.Fatalf("call %d within the burst refused", i+1)
		}
	}
	if l.Allow("a") {
		t.Error("4th call at once allowed past a burst of 3")
	}
	if !l.Allow("b") {
		t.Error("another client is held by a's bucket")
	}
	now = now.Add(100 * time.Millisecond) // one token at 10/s
	if !l.Allow("a") || l.Allow("a") {
		t.Error("refill is not one call per 100 ms")
	}
	if off := New(0, 0); !off.Allow("x") {
		t.Error("a zero rate limits")
	}
	var none *Limiter
	if !none.Allow("x") {
		t.Error("a nil limiter limits")
	}
}
