package e2e

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
)

// TestChannelSurvivesServerRestart cuts the agent's channel while a job
// prints (the server is killed and started again on the same database): the
// agent reconnects, resends what was not acknowledged, and the log ends up
// whole, in order, without a duplicate.
func TestChannelSurvivesServerRestart(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		// A long lease: the job must survive the restart on its agent.
		c := newCluster(t, dsn, "--lease-ttl", "30s")
		agent := c.startAgent("steady", 1)
		const n = 30000
		j := c.create(&jobv1.CreateJobRequest{Name: "printer", Commands: []string{
			fmt.Sprintf(`i=1; while [ $i -le %d ]; do seq $i $((i+999)); i=$((i+1000)); sleep 0.05; done`, n)}})
		ctx := context.Background()
		c.waitFor("a third of the log", func() bool {
			resp, err := c.jobs.GetJobLog(ctx, &jobv1.GetJobLogRequest{JobId: j.GetId(), FromLine: n / 3, Limit: 1})
			return err == nil && len(resp.GetLines()) == 1
		})
		c.server.stop(syscall.SIGKILL)
		time.Sleep(300 * time.Millisecond) // lines pile up on the agent meanwhile
		c.startServer()

		done := c.waitStatus(j.GetId(), success, failed)
		if done.GetStatus() != success || done.GetAttempt() != 1 {
			t.Fatalf("job: %v attempt %d (%s)", done.GetStatus(), done.GetAttempt(), done.GetMessage())
		}
		values, numbers, final, err := follow(ctx, c, j.GetId(), 1)
		if err != nil || final != success {
			t.Fatalf("read back: %v, final %v", err, final)
		}
		checkWhole(t, "log after the restart", values, numbers, 1, n)
		// Lines may have gone by the unary fallback while the channel was
		// down; the channel itself comes back too.
		c.waitFor("the agent to reopen its channel", func() bool { return len(agent.grepLog("agent channel open")) >= 2 })
	})
}

// TestCancelThroughChannel: a cancel reaches the running job's agent through
// its channel at once.
func TestCancelThroughChannel(t *testing.T) {
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db")
	agent := c.startAgent("listener", 1)
	j := c.create(&jobv1.CreateJobRequest{Name: "sleeper", Commands: []string{"sleep 60"}})
	c.waitStatus(j.GetId(), running)
	asked := time.Now()
	if _, err := c.jobs.CancelJob(context.Background(), &jobv1.CancelJobRequest{JobId: j.GetId()}); err != nil {
		t.Fatal(err)
	}
	got := c.waitStatus(j.GetId(), cancelled, failed, success)
	took := time.Since(asked)
	t.Logf("cancel through the channel took %s", took)
	if got.GetStatus() != cancelled || took > time.Second {
		t.Errorf("cancel: %v after %s, want CANCELLED in under a second", got.GetStatus(), took)
	}
	if len(agent.grepLog("agent channel open")) == 0 {
		t.Error("the agent did not use its channel")
	}
	if len(c.server.grepLog("job leased")) == 0 {
		t.Error("no lease in the server log")
	}
	for _, rec := range c.server.grepLog("job leased") {
		if rec["via"] != "channel" {
			t.Errorf("job leased %v, not through the channel", rec["via"])
		}
	}
}
