package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
)

// TestLostAgentRequeuesOrFails kills an agent mid-job: a job with retries
// left goes back to the queue and runs elsewhere as attempt 2; one without
// fails, naming the lost agent. The agent goes offline.
func TestLostAgentRequeuesOrFails(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		c := newCluster(t, dsn)
		doomed := c.startAgent("doomed", 2, "pool=doomed")
		pids := t.TempDir()
		// The killed agent cannot stop its jobs: the test does.
		t.Cleanup(func() { killPids(t, pids) })
		retried := c.create(&jobv1.CreateJobRequest{Name: "retried", Selector: "pool", Retries: 1,
			Commands: []string{fmt.Sprintf(`echo $$ > %s/$ARCADE_JOB_ID-$ARCADE_JOB_ATTEMPT; if [ "$ARCADE_JOB_ATTEMPT" = 1 ]; then sleep 60; fi`, pids)}})
		lost := c.create(&jobv1.CreateJobRequest{Name: "lost", Selector: "pool=doomed",
			Commands: []string{fmt.Sprintf(`echo $$ > %s/$ARCADE_JOB_ID; sleep 60`, pids)}})
		c.waitStatus(retried.GetId(), running)
		c.waitStatus(lost.GetId(), running)

		c.waitFor("attempt 1's first log line", func() bool { return len(c.logOf(retried.GetId(), 1)) > 0 })
		doomed.stop(syscall.SIGKILL)
		c.startAgent("rescuer", 1, "pool=rescuer")

		j := c.waitStatus(retried.GetId(), success, failed)
		if j.GetStatus() != success || j.GetAttempt() != 2 || j.GetAgentName() != "rescuer" {
			t.Errorf("retried job: %v attempt %d on %s (%s); want SUCCESS, attempt 2, on rescuer", j.GetStatus(), j.GetAttempt(), j.GetAgentName(), j.GetMessage())
		}
		if first := c.logOf(retried.GetId(), 1); len(first) == 0 {
			t.Error("attempt 1's log is gone after the requeue")
		}
		j = c.waitStatus(lost.GetId(), failed, success)
		if j.GetStatus() != failed || !strings.Contains(j.GetMessage(), "agent lost") {
			t.Errorf("lost job: %v (%s), want FAILED naming the lost agent", j.GetStatus(), j.GetMessage())
		}
		c.waitFor("doomed to be offline", func() bool {
			a := c.agent("doomed")
			return a != nil && a.GetStatus().String() == "AGENT_STATUS_OFFLINE"
		})
	})
}

// TestCapacityIsHonoured runs more jobs than an agent's slots and checks from
// the recorded times that no more than max-jobs ever overlapped.
func TestCapacityIsHonoured(t *testing.T) {
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db")
	c.startAgent("pair", 2)
	var ids []string
	for i := range 6 {
		ids = append(ids, c.create(&jobv1.CreateJobRequest{Name: fmt.Sprint("job ", i), Commands: []string{"sleep 0.3"}}).GetId())
	}
	type span struct{ start, end time.Time }
	var spans []span
	for _, id := range ids {
		j := c.waitStatus(id, success, failed)
		spans = append(spans, span{j.GetStartedAt().AsTime(), j.GetFinishedAt().AsTime()})
	}
	most := 0
	for _, s := range spans {
		n := 0
		for _, o := range spans {
			if !o.start.After(s.start) && o.end.After(s.start) {
				n++
			}
		}
		most = max(most, n)
	}
	if most != 2 {
		t.Errorf("at most %d jobs ran at once on an agent with 2 slots, want exactly 2", most)
	}
}

func killPids(t *testing.T, dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
			syscall.Kill(-pid, syscall.SIGKILL) // the job's process group
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
