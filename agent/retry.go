package agent

import (
	"context"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
)

const (
	// patience is how long the agent keeps trying to hand the server what
	// a job produced (log lines, artifacts, its outcome) while the server
	// cannot take it: unreachable, restarting, or its database failing.
	// What the job did is kept that long; the server, back, keeps the job
	// leased for a full lease period (its grace) to hear it.
	patience = 15 * time.Minute
	// drain is how long, once the agent is stopping, it still tries.
	drain = 10 * time.Second
	// retryCapDefault caps the wait between tries before the server said
	// how often to heartbeat.
	retryCapDefault = 5 * time.Second
	// retryCapMax caps it whatever the heartbeat interval.
	retryCapMax = 10 * time.Second
)

// refusal reports whether err is the server's answer about the request
// itself, which trying again does not change (as opposed to the server
// or its database being unable to answer now).
func refusal(err error) bool {
	switch grpcstatus.Code(err) {
	case codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.PermissionDenied,
		codes.FailedPrecondition, codes.OutOfRange, codes.Unimplemented, codes.Unauthenticated:
		return true
	}
	return false
}

// retryCap is the longest the agent waits between two tries: its heartbeat
// interval, so that after an outage it is heard again (its leases renewed)
// well within a lease, which is three heartbeats by default.
func (a *Agent) retryCap() time.Duration {
	a.mu.Lock()
	every := a.heartbeat
	a.mu.Unlock()
	if every <= 0 {
		return retryCapDefault
	}
	return min(every, retryCapMax)
}

// backoff is the wait before try attempt+1: from 200 ms, doubling, up to
// the retry cap, with ±20% jitter so that agents that lost the same server
// do not come back in lockstep.
func (a *Agent) backoff(attempt int) time.Duration {
	d := min(200*time.Millisecond<<min(attempt, 8), a.retryCap())
	jitter := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * jitter)
}

// stoppingSince returns when the agent began to stop (zero while it runs).
func (a *Agent) stoppingSince() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stopping
}

// retrier paces the tries of one thing the agent hands the server.
type retrier struct {
	a       *Agent
	start   time.Time
	attempt int
}

func (a *Agent) retrier() *retrier { return &retrier{a: a, start: time.Now()} }

// again waits before the next try; false when no try should follow: the
// patience is spent, the agent has been stopping for longer than its drain,
// the server refuses the agent, or ctx ended.
func (r *retrier) again(ctx context.Context) bool {
	now := time.Now()
	if now.Sub(r.start) > patience || r.a.refused.Load() {
		return false
	}
	if s := r.a.stoppingSince(); !s.IsZero() && now.Sub(s) > drain {
		return false
	}
	d := r.a.backoff(r.attempt)
	r.attempt++
	return sleep(ctx, d)
}
