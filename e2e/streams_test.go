package e2e

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
)

// follow reads a job's log stream to its end and returns the numbers of the
// stdout lines (the job prints numbers) and every line number seen.
func follow(ctx context.Context, c *cluster, jobID string, from int64) (values, numbers []int64, final agentv1.JobStatus, err error) {
	stream, err := jobv1.NewStreamServiceClient(c.conn).StreamJobLog(ctx, &jobv1.StreamJobLogRequest{JobId: jobID, FromLine: from, Follow: true})
	if err != nil {
		return nil, nil, 0, err
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return values, numbers, final, err
		}
		for _, l := range resp.GetLines() {
			numbers = append(numbers, l.GetLineNumber())
			if l.GetStream() == agentv1.LogStream_LOG_STREAM_STDOUT {
				v, _ := strconv.ParseInt(l.GetContent(), 10, 64)
				values = append(values, v)
			}
		}
		if resp.GetFinalStatus() != agentv1.JobStatus_JOB_STATUS_UNSPECIFIED {
			return values, numbers, resp.GetFinalStatus(), nil
		}
	}
}

func checkWhole(t *testing.T, who string, values, numbers []int64, from int64, want int) {
	t.Helper()
	if len(values) != want {
		t.Errorf("%s: %d stdout lines, want %d", who, len(values), want)
	}
	for i, v := range values {
		if v != int64(i+1) {
			t.Errorf("%s: stdout line %d is %d", who, i+1, v)
			break
		}
	}
	for i, n := range numbers {
		if n != from+int64(i) {
			t.Errorf("%s: line number %d at position %d: a gap or a repeat", who, n, i)
			break
		}
	}
}

// TestStreamJobLogFollowers: a job prints 100,000 lines; a follower attached
// from the start and one attached halfway both get every line once, in order.
func TestStreamJobLogFollowers(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		c := newCluster(t, dsn)
		c.startAgent("printer", 1)
		const n = 100000
		j := c.create(&jobv1.CreateJobRequest{Name: "printer", Commands: []string{
			fmt.Sprintf(`i=1; while [ $i -le %d ]; do seq $i $((i+1999)); i=$((i+2000)); sleep 0.02; done`, n)}})
		ctx := context.Background()
		type result struct {
			values, numbers []int64
			final           agentv1.JobStatus
			err             error
		}
		early := make(chan result, 1)
		go func() {
			v, nums, final, err := follow(ctx, c, j.GetId(), 0)
			early <- result{v, nums, final, err}
		}()
		// Attach the second follower once half the log is stored.
		c.waitFor("half the log", func() bool {
			resp, err := c.jobs.GetJobLog(ctx, &jobv1.GetJobLogRequest{JobId: j.GetId(), FromLine: n / 2, Limit: 1})
			return err == nil && len(resp.GetLines()) == 1
		})
		if got := c.get(j.GetId()); got.GetStatus() != running {
			t.Logf("note: the job was %v when the second follower attached", got.GetStatus())
		}
		v, nums, final, err := follow(ctx, c, j.GetId(), 1)
		if err != nil || final != success {
			t.Fatalf("late follower: %v, final %v", err, final)
		}
		checkWhole(t, "late follower", v, nums, 1, n)
		r := <-early
		if r.err != nil || r.final != success {
			t.Fatalf("early follower: %v, final %v", r.err, r.final)
		}
		checkWhole(t, "early follower", r.values, r.numbers, 1, n)
	})
}

// TestManySubscribersAndOneThatNeverReads: 100 followers all get the whole
// log while one follower never reads; the job is not held up by it.
func TestManySubscribersAndOneThatNeverReads(t *testing.T) {
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db")
	c.startAgent("busy", 1)
	const n = 20000
	j := c.create(&jobv1.CreateJobRequest{Name: "wide", Commands: []string{
		fmt.Sprintf(`i=1; while [ $i -le %d ]; do seq -f '%%080.0f' $i $((i+999)); i=$((i+1000)); sleep 0.01; done`, n)}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The one that never reads: its stream is opened and left alone.
	if _, err := jobv1.NewStreamServiceClient(c.conn).StreamJobLog(ctx, &jobv1.StreamJobLogRequest{JobId: j.GetId(), Follow: true}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Go(func() {
			v, _, final, err := follow(ctx, c, j.GetId(), 0)
			switch {
			case err != nil:
				errs <- fmt.Errorf("subscriber %d: %w", i, err)
			case final != success || len(v) != n || v[0] != 1 || v[n-1] != n:
				errs <- fmt.Errorf("subscriber %d: %d lines, final %v", i, len(v), final)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := c.get(j.GetId()); got.GetStatus() != success {
		t.Errorf("job: %v", got.GetStatus())
	}
}

// TestStreamEventsLifecycle: a job's life and an agent going offline and
// coming back show up on StreamEvents, filtered by type.
func TestStreamEventsLifecycle(t *testing.T) {
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	streams := jobv1.NewStreamServiceClient(c.conn)
	all, err := streams.StreamEvents(ctx, &jobv1.StreamEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	agentsOnly, err := streams.StreamEvents(ctx, &jobv1.StreamEventsRequest{Types: []jobv1.EventType{
		jobv1.EventType_EVENT_TYPE_AGENT_ONLINE, jobv1.EventType_EVENT_TYPE_AGENT_OFFLINE}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen, agentSeen []string
	collect := func(s jobv1.StreamService_StreamEventsClient, into *[]string) {
		for {
			resp, err := s.Recv()
			if err != nil {
				return
			}
			e := resp.GetEvent()
			mu.Lock()
			*into = append(*into, fmt.Sprintf("%s %s", e.GetType(), e.GetResourceId()))
			mu.Unlock()
		}
	}
	go collect(all, &seen)
	go collect(agentsOnly, &agentSeen)
	has := func(list *[]string, want string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			return slices.Contains(*list, want)
		}
	}

	p := c.startAgent("eventful", 1)
	agentID := c.agent("eventful").GetId()
	j := c.create(&jobv1.CreateJobRequest{Name: "short", Commands: []string{"true"}})
	c.waitStatus(j.GetId(), success)
	for _, want := range []string{"EVENT_TYPE_AGENT_ONLINE " + agentID, "EVENT_TYPE_JOB_CREATED " + j.GetId(),
		"EVENT_TYPE_JOB_STARTED " + j.GetId(), "EVENT_TYPE_JOB_FINISHED " + j.GetId()} {
		c.waitFor(want, has(&seen, want))
	}
	mu.Lock()
	order := slices.Clone(seen)
	mu.Unlock()
	created := slices.Index(order, "EVENT_TYPE_JOB_CREATED "+j.GetId())
	started := slices.Index(order, "EVENT_TYPE_JOB_STARTED "+j.GetId())
	finished := slices.Index(order, "EVENT_TYPE_JOB_FINISHED "+j.GetId())
	if created >= started || started >= finished {
		t.Errorf("job events out of order: %v", order)
	}

	p.stop(syscall.SIGKILL)
	c.waitFor("agent offline event", has(&agentSeen, "EVENT_TYPE_AGENT_OFFLINE "+agentID))
	c.startAgent("eventful", 1) // the same name takes its record back
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		online := 0
		for _, s := range agentSeen {
			if s == "EVENT_TYPE_AGENT_ONLINE "+agentID {
				online++
			}
		}
		onlyAgents := true
		for _, s := range agentSeen {
			if !slices.Contains([]string{"EVENT_TYPE_AGENT_ONLINE " + agentID, "EVENT_TYPE_AGENT_OFFLINE " + agentID}, s) {
				onlyAgents = false
			}
		}
		mu.Unlock()
		if !onlyAgents {
			t.Fatalf("the type filter let other events through: %v", agentSeen)
		}
		if online >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no second online event: %v", agentSeen)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
