package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/internal/pgtest"
)

// pastEvents reads the history part of a StreamEvents call: the events
// marked past, until the first live one or a quiet moment.
func pastEvents(t *testing.T, c *cluster, req *jobv1.StreamEventsRequest) ([]*jobv1.Event, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := jobv1.NewStreamServiceClient(c.conn).StreamEvents(ctx, req)
	if err != nil {
		return nil, err
	}
	type msg struct {
		resp *jobv1.StreamEventsResponse
		err  error
	}
	ch := make(chan msg, 1)
	go func() {
		for {
			resp, err := stream.Recv()
			ch <- msg{resp, err}
			if err != nil {
				return
			}
		}
	}()
	var out []*jobv1.Event
	for {
		select {
		case m := <-ch:
			if m.err != nil {
				return out, m.err
			}
			if m.resp.GetHistoryEnd() {
				return out, nil
			}
			if !m.resp.GetPast() {
				t.Errorf("a live event before the end of the history: %v", m.resp)
				return out, nil
			}
			out = append(out, m.resp.GetEvent())
		case <-time.After(20 * time.Second):
			return out, fmt.Errorf("no end of the history after %d events", len(out))
		}
	}
}

func namesOf(events []*jobv1.Event, resource string) []string {
	var out []string
	for _, e := range events {
		if resource == "" || e.GetResourceId() == resource {
			out = append(out, e.GetName())
		}
	}
	return out
}

// TestEventHistory: the server keeps recent events in the database, so a
// stream can start in the past (the newest N, since a time, after an
// event), the history survives a restart and is bounded as configured, and
// the CLI reads it with --since and --last under the events' names.
func TestEventHistory(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		dir := t.TempDir()
		c := newCluster(t, dsn)
		c.startAgent("historian", 1)
		j := c.create(&jobv1.CreateJobRequest{Name: "past", Commands: []string{"exit 3"}})
		c.waitStatus(j.GetId(), failed)

		past, err := pastEvents(t, c, &jobv1.StreamEventsRequest{Last: 100})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(namesOf(past, j.GetId()), " "); got != "job.created job.started job.failed" {
			t.Errorf("the job's past events: %q", got)
		}
		if !slices.Contains(namesOf(past, ""), "agent.online") {
			t.Errorf("no agent.online in the history: %v", namesOf(past, ""))
		}
		// Filtered by name, with an older spelling; then after an event.
		failedOnly, err := pastEvents(t, c, &jobv1.StreamEventsRequest{Last: 100, Names: []string{"job_finished"}})
		if err != nil || strings.Join(namesOf(failedOnly, ""), " ") != "job.failed" {
			t.Errorf("job_finished history: %v %v", namesOf(failedOnly, ""), err)
		}
		var started *jobv1.Event
		for _, e := range past {
			if e.GetName() == "job.started" {
				started = e
			}
		}
		after, err := pastEvents(t, c, &jobv1.StreamEventsRequest{SinceId: started.GetId(), ResourceType: "job"})
		if err != nil || strings.Join(namesOf(after, ""), " ") != "job.failed" {
			t.Errorf("after job.started: %v %v", namesOf(after, ""), err)
		}
		if _, err := pastEvents(t, c, &jobv1.StreamEventsRequest{SinceId: "0190aaaa-0000-7000-8000-000000000000"}); status.Code(err) != codes.NotFound {
			t.Errorf("since an unknown event: %v", err)
		}
		if _, err := pastEvents(t, c, &jobv1.StreamEventsRequest{Last: 3, SinceTime: timestamppb.Now()}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("last and since_time: %v", err)
		}

		// The CLI: names, --last, and the older spelling accepted with a
		// warning.
		out := cliUntil(t, c, "job.failed", "events", "--last", "50", "--type", "job_finished")
		if !strings.Contains(out, "job.failed") || !strings.Contains(out, "job/"+j.GetId()) ||
			!strings.Contains(out, "older spelling of job.finished") {
			t.Errorf("arcade events --last --type job_finished:\n%s", out)
		}
		out = cliUntil(t, c, "job.created", "events", "--since", "1h", "--resource", "job/"+j.GetId())
		if !strings.Contains(out, "job.created") {
			t.Errorf("arcade events --since 1h:\n%s", out)
		}

		// After a restart, with a history bounded to 2 events.
		cfg := filepath.Join(dir, "server.yaml")
		if err := os.WriteFile(cfg, []byte("event_history: {max_events: 2, max_age: 24h}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c.server.stop(15)
		c.serverArgs = append(c.serverArgs, "--config", cfg)
		c.startServer()
		var kept []*jobv1.Event
		// A read returns at most max_events, oldest first: two events read
		// are no proof of a prune; the job's first event gone is.
		c.waitFor("the history pruned to 2", func() bool {
			kept, err = pastEvents(t, c, &jobv1.StreamEventsRequest{SinceTime: timestamppb.New(time.Unix(0, 0)), ResourceType: "job"})
			return err == nil && len(kept) <= 2 && !slices.Contains(namesOf(kept, j.GetId()), "job.created")
		})
		if got := strings.Join(namesOf(kept, j.GetId()), " "); got != "job.started job.failed" {
			t.Errorf("kept after restart: %q", got)
		}
	})
}

// TestEventHistoryAcrossReplicas: both replicas of one database show the
// same history, whichever replica the events happened on.
func TestEventHistoryAcrossReplicas(t *testing.T) {
	dsn := pgtest.Start(t)
	a := newCluster(t, dsn)
	b := newCluster(t, dsn)
	a.startAgent("on-a", 1)
	j := a.create(&jobv1.CreateJobRequest{Name: "on a", Commands: []string{"true"}})
	a.waitStatus(j.GetId(), success)
	for _, c := range []*cluster{a, b} {
		past, err := pastEvents(t, c, &jobv1.StreamEventsRequest{Last: 20, ResourceType: "job"})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(namesOf(past, j.GetId()), " "); got != "job.created job.started job.succeeded" {
			t.Errorf("replica %s: %q", c.addr, got)
		}
	}
}

// cliUntil runs a CLI command that streams until a line holds want (or 20 s
// pass), then stops it and returns its output.
func cliUntil(t *testing.T, c *cluster, want string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, arcadeBin, args...)
	cmd.Env = append(os.Environ(), "ARCADE_SERVER="+c.addr, "ARCADE_API_TOKEN="+apiToken)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	for !strings.Contains(out.String(), want) {
		select {
		case <-done:
			return out.String()
		case <-ctx.Done():
			<-done
			return out.String()
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	<-done
	return out.String()
}
