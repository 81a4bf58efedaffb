package e2e

import (
	"context"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
)

// TestStopDoesNotWaitForStreams: SIGTERM to a server with agents connected
// (a channel and a long poll), an event follower and a log follower stops
// it gracefully without waiting for them: they end with Unavailable (connect
// again), and the fallback that cuts calls after 5 s is not needed.
func TestStopDoesNotWaitForStreams(t *testing.T) {
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db")
	c.startAgent("on-channel", 1)
	c.startAgentWith("polling", 1, []string{"--transport", "poll"}, "role=poll")
	j := c.create(&jobv1.CreateJobRequest{Name: "sleeper", Commands: []string{"sleep 60"}, Selector: "role!=poll"})
	c.waitStatus(j.GetId(), running)
	ctx := context.Background()
	streams := jobv1.NewStreamServiceClient(c.conn)
	events, err := streams.StreamEvents(ctx, &jobv1.StreamEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	logs, err := streams.StreamJobLog(ctx, &jobv1.StreamJobLogRequest{JobId: j.GetId(), Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	c.server.stop(syscall.SIGTERM)
	if len(c.server.grepLog("arcade server stopped")) != 1 {
		t.Fatal("the server did not stop")
	}
	if recs := c.server.grepLog("calls still running 5s after the stop began; ending them"); len(recs) != 0 {
		t.Errorf("the stop waited for streams and long polls until it cut them")
	}
	for name, recv := range map[string]func() error{
		"events": func() error { _, err := events.Recv(); return err },
		"log":    func() error { _, err := logs.Recv(); return err },
	} {
		var err error
		for err == nil {
			err = recv()
		}
		if status.Code(err) != codes.Unavailable {
			t.Errorf("%s follower ended with %v, want Unavailable", name, err)
		}
	}
}
