package e2e

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/client"
	"github.com/go-arcade/arcade/internal/pgtest"
)

// BenchmarkDispatchLatency measures the time from CreateJob to the agent
// starting the job (the start time the agent reports), one job at a time on
// one idle agent, through the AgentChannel and through FetchJob long-polls,
// beside a plain grpc-go unary round trip on the same machine. It reports
// p50 and p99 of each, in milliseconds.
func BenchmarkDispatchLatency(b *testing.B) {
	const jobs = 1000
	b.Run("sqlite/channel", func(b *testing.B) { benchDispatch(b, "sqlite://"+b.TempDir()+"/arcade.db", "channel", jobs) })
	b.Run("sqlite/poll", func(b *testing.B) { benchDispatch(b, "sqlite://"+b.TempDir()+"/arcade.db", "poll", jobs) })
	b.Run("postgres/channel", func(b *testing.B) { benchDispatch(b, pgtest.Start(b), "channel", jobs) })
}

func benchDispatch(b *testing.B, dsn, transport string, jobs int) {
	unary := plainUnary(b, 2000)
	c := newCluster(b, dsn)
	c.startAgentWith("bench", 1, []string{"--transport", transport})
	ctx := context.Background()
	var lat []time.Duration
	b.ResetTimer()
	for range b.N {
		for range jobs {
			t0 := time.Now()
			resp, err := c.jobs.CreateJob(ctx, &jobv1.CreateJobRequest{Name: "bench", Commands: []string{"true"}})
			if err != nil {
				b.Fatal(err)
			}
			var j *jobv1.JobDetail
			for {
				j = c.get(resp.GetJob().GetId())
				if j.GetFinishedAt() != nil {
					break
				}
				time.Sleep(500 * time.Microsecond)
			}
			if j.GetStatus() != success {
				b.Fatalf("bench job %v: %s", j.GetStatus(), j.GetMessage())
			}
			lat = append(lat, j.GetStartedAt().AsTime().Sub(t0))
		}
	}
	b.StopTimer()
	p50, p99 := percentile(lat, 50), percentile(lat, 99)
	u50, u99 := percentile(unary, 50), percentile(unary, 99)
	b.ReportMetric(ms(p50), "dispatch-p50-ms")
	b.ReportMetric(ms(p99), "dispatch-p99-ms")
	b.ReportMetric(ms(u50), "unary-p50-ms")
	b.ReportMetric(ms(u99), "unary-p99-ms")
	b.Logf("%s: create→start over %d jobs: p50 %s p99 %s; plain unary round trip: p50 %s p99 %s; ratio p50 %.0fx",
		transport, len(lat), p50, p99, u50, u99, float64(p50)/float64(u50))
}

// plainUnary times n round trips of a bare grpc-go health check over loopback.
func plainUnary(b *testing.B, n int) []time.Duration {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go gs.Serve(lis)
	defer gs.Stop()
	conn, err := client.Dial(lis.Addr().String(), client.Static(""))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	h := healthpb.NewHealthClient(conn)
	ctx := context.Background()
	out := make([]time.Duration, 0, n)
	for i := range n + 100 {
		t0 := time.Now()
		if _, err := h.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			b.Fatal(err)
		}
		if i >= 100 { // warmed up
			out = append(out, time.Since(t0))
		}
	}
	return out
}

func percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, len(s)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
