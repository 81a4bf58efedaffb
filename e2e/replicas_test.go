package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/internal/pgtest"
)

// TestReplicasShareWork runs two server replicas on one PostgreSQL
// database. The agent talks to replica A; work created on replica B reaches
// it at once (long polls are held for a minute, so only a wake-up through
// the database can explain a prompt start), a cancel asked on B stops the
// job on A's agent, and a follower on B gets the log and events of a job
// running through A.
func TestReplicasShareWork(t *testing.T) {
	dsn := pgtest.Start(t)
	a := newCluster(t, dsn, "--max-poll-wait", "60s")
	b := newCluster(t, dsn, "--max-poll-wait", "60s")
	a.startAgent("on-a", 1)
	// Without the replicas telling each other, this would take a minute.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	events, err := jobv1.NewStreamServiceClient(b.conn).StreamEvents(ctx, &jobv1.StreamEventsRequest{ResourceType: "job"})
	if err != nil {
		t.Fatal(err)
	}
	const n = 5000
	j := b.create(&jobv1.CreateJobRequest{Name: "from b", Commands: []string{
		fmt.Sprintf(`i=1; while [ $i -le %d ]; do seq $i $((i+499)); i=$((i+500)); sleep 0.05; done`, n)}})
	values, numbers, final, err := follow(ctx, b, j.GetId(), 1)
	if err != nil || final != success {
		t.Fatalf("follower on replica B: %v, final %v", err, final)
	}
	checkWhole(t, "follower on replica B", values, numbers, 1, n)
	if got := b.get(j.GetId()); got.GetAgentName() != "on-a" {
		t.Errorf("ran on %q", got.GetAgentName())
	}
	seen := map[jobv1.EventType]bool{}
	for !seen[jobv1.EventType_EVENT_TYPE_JOB_FINISHED] {
		resp, err := events.Recv()
		if err != nil {
			t.Fatalf("events on replica B: %v (seen %v)", err, seen)
		}
		if resp.GetEvent().GetResourceId() == j.GetId() {
			seen[resp.GetEvent().GetType()] = true
		}
	}
	if !seen[jobv1.EventType_EVENT_TYPE_JOB_STARTED] {
		t.Errorf("replica B did not see the job start: %v", seen)
	}

	// A cancel asked on B reaches the agent connected to A.
	sleeper := b.create(&jobv1.CreateJobRequest{Name: "sleeper", Commands: []string{"sleep 60"}})
	b.waitStatus(sleeper.GetId(), running)
	if _, err := b.jobs.CancelJob(ctx, &jobv1.CancelJobRequest{JobId: sleeper.GetId()}); err != nil {
		t.Fatal(err)
	}
	if got := b.waitStatus(sleeper.GetId(), cancelled, failed, success); got.GetStatus() != cancelled {
		t.Errorf("cancel across replicas: %v", got.GetStatus())
	}
	// Housekeeping (lease expiry, offline agents, run advancement) runs on
	// one replica at a time.
	holders := 0
	for _, c := range []*cluster{a, b} {
		for _, rec := range c.server.grepLog("lease acquired; this replica runs the work") {
			if rec["lease"] == "housekeeping" {
				holders++
			}
		}
	}
	if holders != 1 {
		t.Errorf("housekeeping lease taken %d times across two replicas, want once", holders)
	}
}
