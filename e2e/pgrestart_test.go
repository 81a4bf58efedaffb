package e2e

import (
	"context"
	"fmt"
	"testing"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/internal/pgtest"
)

// TestPostgresRestartUnderServer restarts PostgreSQL while a job prints:
// the server reconnects by itself, the writes that failed meanwhile are
// retried by the agent, and the log ends up whole.
func TestPostgresRestartUnderServer(t *testing.T) {
	c := newCluster(t, pgtest.Start(t), "--lease-ttl", "30s")
	c.startAgent("patient", 1)
	const n = 20000
	j := c.create(&jobv1.CreateJobRequest{Name: "printer", Commands: []string{
		fmt.Sprintf(`i=1; while [ $i -le %d ]; do seq $i $((i+999)); i=$((i+1000)); sleep 0.1; done`, n)}})
	ctx := context.Background()
	c.waitFor("a quarter of the log", func() bool {
		resp, err := c.jobs.GetJobLog(ctx, &jobv1.GetJobLogRequest{JobId: j.GetId(), FromLine: n / 4, Limit: 1})
		return err == nil && len(resp.GetLines()) == 1
	})
	pgtest.Restart(t)

	done := c.waitStatus(j.GetId(), success, failed)
	if done.GetStatus() != success || done.GetAttempt() != 1 {
		t.Fatalf("job across the restart: %v attempt %d (%s)", done.GetStatus(), done.GetAttempt(), done.GetMessage())
	}
	values, numbers, final, err := follow(ctx, c, j.GetId(), 1)
	if err != nil || final != success {
		t.Fatalf("read back: %v, final %v", err, final)
	}
	checkWhole(t, "log across the restart", values, numbers, 1, n)
	after := c.create(&jobv1.CreateJobRequest{Name: "after", Commands: []string{"echo after"}})
	if got := c.waitStatus(after.GetId(), success, failed); got.GetStatus() != success {
		t.Errorf("job after the restart: %v", got.GetStatus())
	}
}
