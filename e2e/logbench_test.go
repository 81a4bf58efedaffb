package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/client"
	"github.com/go-arcade/arcade/core/logpack"
)

const (
	lineBytes = 80
	logBatch  = 2000
)

// batches returns n 80-byte lines in AgentChannel log messages of size
// lines each, numbered from 1: packed, as the agent sends them, or one
// LogChunk per line when size is 1.
func batches(jobID string, attempt int32, n, size int) []*jobv1.AgentChannelRequest {
	content := strings.Repeat("x", lineBytes)
	now := time.Now()
	var out []*jobv1.AgentChannelRequest
	for first := 1; first <= n; first += size {
		req := &agentv1.ReportJobLogRequest{JobId: jobID, Attempt: attempt}
		if size == 1 {
			req.Chunks = []*agentv1.LogChunk{{LineNumber: int64(first), Timestamp: timestamppb.New(now), Content: content,
				Level: agentv1.LogLevel_LOG_LEVEL_INFO, Stream: agentv1.LogStream_LOG_STREAM_STDOUT}}
		} else {
			var lines []logpack.Line
			for l := first; l < first+size && l <= n; l++ {
				lines = append(lines, logpack.Line{Line: int64(l), Time: now, Content: content,
					Level: int16(agentv1.LogLevel_LOG_LEVEL_INFO), Stream: int16(agentv1.LogStream_LOG_STREAM_STDOUT)})
			}
			req.Packed, req.FirstLine = logpack.Encode(lines), int64(first)
		}
		out = append(out, &jobv1.AgentChannelRequest{Payload: &jobv1.AgentChannelRequest_Log{Log: req}})
	}
	return out
}

// BenchmarkLogThroughput moves 80-byte log lines from an agent (a client
// speaking AgentChannel, packed batches of 2000 lines, as the agent sends
// them) through the server, which stores them, to one live StreamJobLog
// subscriber (packed), and reports lines/s and MB/s until the subscriber has
// them all; beside it, a plain grpc-go bidirectional stream moving the same
// messages to a server that only counts them, and one line per message.
func BenchmarkLogThroughput(b *testing.B) {
	b.Run("arcade/sqlite", func(b *testing.B) { benchArcadeLogs(b, "sqlite://"+b.TempDir()+"/arcade.db", 1_000_000, false) })
	b.Run("arcade/sqlite/scraped", func(b *testing.B) { benchArcadeLogs(b, "sqlite://"+b.TempDir()+"/arcade.db", 1_000_000, true) })
	b.Run("plain-grpc/batched", func(b *testing.B) { benchPlainStream(b, 1_000_000, logBatch) })
	b.Run("plain-grpc/line-per-message", func(b *testing.B) { benchPlainStream(b, 200_000, 1) })
}

func reportRate(b *testing.B, what string, lines int, d time.Duration) {
	rate := float64(lines) / d.Seconds()
	b.ReportMetric(rate, "lines/s")
	b.ReportMetric(rate*lineBytes/1e6, "MB/s")
	b.Logf("%s: %d lines in %s: %.0f lines/s, %.1f MB/s", what, lines, d.Round(time.Millisecond), rate, rate*lineBytes/1e6)
}

// benchArcadeLogs measures the log path; scraped serves /metrics and
// scrapes it four times a second meanwhile.
func benchArcadeLogs(b *testing.B, dsn string, n int, scraped bool) {
	// The client in the agent's place sends no heartbeats: keep its lease.
	args := []string{"--lease-ttl", "10m"}
	if addr := os.Getenv("ARCADE_BENCH_PPROF"); addr != "" {
		args = append(args, "--pprof-listen", addr) // go tool pprof http://ADDR/debug/pprof/profile?seconds=2
	}
	newServer := newCluster
	if scraped {
		newServer = newClusterWithMetrics
	}
	c := newServer(b, dsn, args...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if scraped {
		go func() {
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if resp, err := http.Get("http://" + c.metricsAddr + "/metrics"); err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				}
			}
		}()
	}
	// A client in the agent's place: register, lease a job, open the channel.
	reg, err := client.Dial(c.addr, client.Static(agentToken))
	if err != nil {
		b.Fatal(err)
	}
	defer reg.Close()
	r, err := agentv1.NewAgentServiceClient(reg).Register(ctx, &agentv1.RegisterRequest{Name: "fake", Labels: map[string]string{"bench": "logs"}})
	if err != nil {
		b.Fatal(err)
	}
	conn, err := client.Dial(c.addr, client.Static(r.GetAgentToken()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	for range b.N {
		j := c.create(&jobv1.CreateJobRequest{Name: "flood", Commands: []string{"true"}, Selector: "bench=logs"})
		f, err := agentv1.NewAgentServiceClient(conn).FetchJob(ctx, &agentv1.FetchJobRequest{AgentId: r.GetAgentId(), Wait: durationpb.New(5 * time.Second)})
		if err != nil || f.GetJob().GetId() != j.GetId() {
			b.Fatalf("lease: %v %v", f, err)
		}
		msgs := batches(j.GetId(), 1, n, logBatch)
		ch, err := jobv1.NewStreamServiceClient(conn).AgentChannel(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := ch.Send(&jobv1.AgentChannelRequest{Payload: &jobv1.AgentChannelRequest_Hello{Hello: &jobv1.ChannelHello{AgentId: r.GetAgentId()}}}); err != nil {
			b.Fatal(err)
		}
		sub, err := jobv1.NewStreamServiceClient(c.conn).StreamJobLog(ctx, &jobv1.StreamJobLogRequest{JobId: j.GetId(), Follow: true, Packed: true})
		if err != nil {
			b.Fatal(err)
		}
		got := make(chan error, 1)
		go func() {
			seen := 0
			for seen < n {
				resp, err := sub.Recv()
				if err != nil {
					got <- err
					return
				}
				k, err := logpack.Count(resp.GetPacked())
				if err != nil {
					got <- err
					return
				}
				seen += k
			}
			got <- nil
		}()
		acked := make(chan error, 1)
		go func() {
			for {
				resp, err := ch.Recv()
				if err != nil {
					acked <- err
					return
				}
				if a := resp.GetLogAck(); a != nil && (a.GetError() != "" || a.GetLastLine() == int64(n)) {
					acked <- errors.New(a.GetError())
					return
				}
			}
		}()
		b.ResetTimer()
		start := time.Now()
		for _, m := range msgs {
			if err := ch.Send(m); err != nil {
				b.Fatal(err)
			}
		}
		if err := <-got; err != nil {
			b.Fatalf("subscriber: %v", err)
		}
		took := time.Since(start)
		b.StopTimer()
		if err := <-acked; err != nil && err.Error() != "" {
			b.Fatalf("ack: %v", err)
		}
		ch.CloseSend()
		reportRate(b, "arcade: agent → server (stored) → live subscriber", n, took)
	}
}

// countingServer is a bare AgentChannel that counts log lines and
// acknowledges the last one.
type countingServer struct {
	jobv1.UnimplementedStreamServiceServer
}

func (countingServer) AgentChannel(s grpc.BidiStreamingServer[jobv1.AgentChannelRequest, jobv1.AgentChannelResponse]) error {
	var last int64
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if cs := m.GetLog().GetChunks(); len(cs) > 0 {
			last = cs[len(cs)-1].GetLineNumber()
		}
		if p := m.GetLog().GetPacked(); len(p) > 0 {
			k, err := logpack.Count(p)
			if err != nil {
				return err
			}
			last = m.GetLog().GetFirstLine() + int64(k) - 1
		}
		if m.GetJobRequest() != nil { // "done": acknowledge
			if err := s.Send(&jobv1.AgentChannelResponse{Payload: &jobv1.AgentChannelResponse_LogAck{LogAck: &jobv1.LogAck{LastLine: last}}}); err != nil {
				return err
			}
		}
	}
}

func benchPlainStream(b *testing.B, n, size int) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer(grpc.MaxRecvMsgSize(client.MaxMessageSize))
	jobv1.RegisterStreamServiceServer(gs, countingServer{})
	go gs.Serve(lis)
	defer gs.Stop()
	conn, err := client.Dial(lis.Addr().String(), client.Static(""))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	msgs := batches("job", 1, n, size)
	for range b.N {
		ch, err := jobv1.NewStreamServiceClient(conn).AgentChannel(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		start := time.Now()
		for _, m := range msgs {
			if err := ch.Send(m); err != nil {
				b.Fatal(err)
			}
		}
		if err := ch.Send(&jobv1.AgentChannelRequest{Payload: &jobv1.AgentChannelRequest_JobRequest{JobRequest: &jobv1.JobRequest{}}}); err != nil {
			b.Fatal(err)
		}
		resp, err := ch.Recv()
		took := time.Since(start)
		b.StopTimer()
		if err != nil || resp.GetLogAck().GetLastLine() != int64(n) {
			b.Fatalf("ack %v, %v", resp, err)
		}
		ch.CloseSend()
		reportRate(b, fmt.Sprintf("plain grpc-go stream, %d line(s) per message", size), n, took)
	}
}
