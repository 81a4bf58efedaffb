package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/client"
	"github.com/go-arcade/arcade/internal/pgtest"
)

// TestScaleOutSurvivesReplicaLoss runs 2,000 jobs on 20 agents spread over
// 3 server replicas sharing one PostgreSQL, and kills one replica (SIGKILL)
// half-way. Every job must end SUCCESS, none may stay pending, and each must
// have run exactly once: every job appends its id to one file, and the file
// must hold each id once.
func TestScaleOutSurvivesReplicaLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 jobs on 3 replicas: not in -short")
	}
	const (
		replicas = 3
		agents   = 20
		jobs     = 2000
	)
	dsn := pgtest.Start(t)
	// Realistic heartbeats: leases outlive the moment an agent needs to
	// move to another replica, so a job never runs twice for it.
	args := []string{"--heartbeat-interval", "1s", "--lease-ttl", "15s", "--max-poll-wait", "30s"}
	var rs []*cluster
	var addrs []string
	for range replicas {
		c := newCluster(t, dsn, args...)
		rs = append(rs, c)
		addrs = append(addrs, c.addr)
	}
	// Agent i lists the replicas starting with replica i%3, so each replica
	// has agents of its own and they all know where to go when it dies.
	for i := range agents {
		var order []string
		for k := range replicas {
			order = append(order, addrs[(i+k)%replicas])
		}
		rs[0].startAgentWith(fmt.Sprintf("scale-%02d", i), 4, []string{"--server", strings.Join(order, ",")})
	}
	runs := filepath.Join(t.TempDir(), "runs")

	// The test's own client also follows the replicas.
	conn, err := client.Dial(strings.Join(addrs, ","), client.Static(apiToken))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	api := jobv1.NewJobServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	// retry repeats a call answered Unavailable: the replica it went to may
	// just have died, and the client moves to the next.
	retry := func(call func() error) error {
		for {
			err := call()
			if c := status.Code(err); (c != codes.Unavailable && c != codes.Canceled) || ctx.Err() != nil {
				return err
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	ids := make([]string, jobs)
	var created atomic.Int32
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < jobs; i += 8 {
				err := retry(func() error {
					resp, err := api.CreateJob(ctx, &jobv1.CreateJobRequest{
						Name:     fmt.Sprintf("scale-%04d", i),
						Commands: []string{`echo "$ARCADE_JOB_ID" >> ` + runs},
					})
					ids[i] = resp.GetJob().GetId()
					return err
				})
				if err != nil {
					t.Errorf("create job %d: %v", i, err)
					return
				}
				created.Add(1)
			}
		})
	}

	count := func(st agentv1.JobStatus) int32 {
		var n int32
		err := retry(func() error {
			resp, err := api.ListJobs(ctx, &jobv1.ListJobsRequest{PageSize: 1, Statuses: []agentv1.JobStatus{st}})
			n = resp.GetTotalSize()
			return err
		})
		if err != nil {
			t.Fatalf("ListJobs: %v", err)
		}
		return n
	}
	// Kill replica 1 once about half the jobs have finished.
	for count(success) < jobs/2 {
		if ctx.Err() != nil {
			t.Fatal("half the jobs never finished")
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("killing replica %s with %d jobs done", rs[1].addr, count(success))
	rs[1].server.stop(syscall.SIGKILL)
	wg.Wait()
	if created.Load() != jobs {
		t.Fatalf("created %d of %d jobs", created.Load(), jobs)
	}

	last, lastChange := int32(-1), time.Now()
	for {
		done := count(success)
		if done == jobs {
			break
		}
		if done != last {
			last, lastChange = done, time.Now()
		}
		if time.Since(lastChange) > 90*time.Second {
			t.Fatalf("stuck at %d of %d jobs done (pending %d, running %d, failed %d)", done, jobs,
				count(pending), count(running), count(failed))
		}
		time.Sleep(250 * time.Millisecond)
	}
	if n := count(pending) + count(running) + count(failed); n != 0 {
		t.Errorf("%d jobs not successful", n)
	}

	// Each job ran exactly once.
	f, err := os.Open(runs)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		seen[sc.Text()]++
	}
	var retried int
	for i, id := range ids {
		if seen[id] != 1 {
			t.Errorf("job %d (%s) ran %d times", i, id, seen[id])
		}
		delete(seen, id)
	}
	if len(seen) != 0 {
		t.Errorf("runs of unknown jobs: %v", seen)
	}
	// A job whose assignment died with the replica before the agent got it
	// comes back as attempt 2 once its lease ends; it still ran once.
	for _, id := range ids[:50] {
		var j *jobv1.JobDetail
		if err := retry(func() error {
			resp, err := api.GetJob(ctx, &jobv1.GetJobRequest{JobId: id})
			j = resp.GetJob()
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if j.GetAttempt() > 1 {
			retried++
		}
	}
	t.Logf("%d jobs on %d agents over %d replicas, one killed: all ran once (%d of the first 50 needed a second attempt)",
		jobs, agents, replicas, retried)
}
