package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/client"
)

// baselineEnv names an arcade binary built from an earlier commit; the
// benchmarks below run it beside this build, on the same input, when set.
const baselineEnv = "ARCADE_BENCH_BASELINE"

// benchBinaries are the builds to measure: this one, and the baseline.
func benchBinaries() map[string]string {
	bins := map[string]string{"current": arcadeBin}
	if b := os.Getenv(baselineEnv); b != "" {
		bins["baseline"] = b
	}
	return bins
}

// benchServer starts the server binary bin on SQLite, with no plugins.
func benchServer(b *testing.B, bin string) (*proc, jobv1.JobServiceClient) {
	c := benchCluster(b, bin)
	return c.server, c.jobs
}

// benchCluster is a cluster whose server is the binary bin.
func benchCluster(b *testing.B, bin string) *cluster {
	b.Helper()
	dir := b.TempDir()
	addr := freeAddr(b)
	p := startBin(b, bin, "server", "server", "--listen", addr, "--db", "sqlite://"+filepath.Join(dir, "arcade.db"),
		"--data-dir", dir, "--config", os.DevNull, "--plugins-config", filepath.Join(dir, "none.yaml"),
		"--plugin-dirs", filepath.Join(dir, "none"))
	c := &cluster{t: b, addr: addr, server: p, agents: map[string]*proc{}}
	c.waitHealthy()
	conn, err := client.Dial(addr, client.Static(apiToken))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	c.conn, c.jobs, c.agentsC = conn, jobv1.NewJobServiceClient(conn), agentv1.NewAgentServiceClient(conn)
	return c
}

// bigPipeline is 10,000 jobs: a depends_on chain in one stage, or two
// stages of 5,000 (every job of the second waits for the stage barrier).
func bigPipeline(shape string) *jobv1.PipelineDetail {
	p := &jobv1.PipelineDetail{Name: "big-" + shape}
	switch shape {
	case "chain":
		st := &jobv1.Stage{Name: "s"}
		for i := range 10_000 {
			j := &jobv1.PipelineJob{Name: fmt.Sprintf("j%d", i), Commands: []string{"true"}}
			if i > 0 {
				j.DependsOn = []string{fmt.Sprintf("j%d", i-1)}
			}
			st.Jobs = append(st.Jobs, j)
		}
		p.Stages = []*jobv1.Stage{st}
	case "wide":
		for s := range 2 {
			st := &jobv1.Stage{Name: fmt.Sprintf("s%d", s)}
			for i := range 5_000 {
				st.Jobs = append(st.Jobs, &jobv1.PipelineJob{Name: fmt.Sprintf("s%dj%d", s, i), Commands: []string{"true"}})
			}
			p.Stages = append(p.Stages, st)
		}
	}
	return p
}

// BenchmarkBigPipeline creates and triggers a 10,000-job pipeline (chain
// and wide) on a real server with no agent, and reports the time of each
// call and the server's peak RSS (VmHWM) until 3 s after the trigger
// (housekeeping rounds included). With ARCADE_BENCH_BASELINE it measures
// that build too, in the same run.
func BenchmarkBigPipeline(b *testing.B) {
	for _, shape := range []string{"chain", "wide"} {
		for which, bin := range benchBinaries() {
			b.Run(shape+"/"+which, func(b *testing.B) {
				report := b.Errorf // this build must not fail; the baseline may
				if which == "baseline" {
					report = b.Logf
				}
				for range b.N {
					srv, jobs := benchServer(b, bin)
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
					start := time.Now()
					if _, err := jobs.CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Pipeline: bigPipeline(shape)}); err != nil {
						b.Fatalf("create: %v", err)
					}
					created := time.Since(start)
					start = time.Now()
					// An error is reported, not fatal: the baseline's may fail
					// (its run view outgrows the message limit).
					run, err := jobs.TriggerPipeline(ctx, &jobv1.TriggerPipelineRequest{PipelineId: "big-" + shape})
					triggered := time.Since(start)
					if err != nil {
						report("%s %s: trigger: %.200v", shape, which, err)
					}
					time.Sleep(3 * time.Second)
					peak := float64(procStatus(b, srv.cmd.Process.Pid, "VmHWM")) / 1024
					// Is the server still answering others?
					start = time.Now()
					if _, err := jobs.CreateJob(ctx, &jobv1.CreateJobRequest{Commands: []string{"true"}}); err != nil {
						report("%s %s: a job beside the run: %.200v", shape, which, err)
					}
					other := time.Since(start)
					cancel()
					b.ReportMetric(created.Seconds(), "create-s")
					b.ReportMetric(triggered.Seconds(), "trigger-s")
					b.ReportMetric(peak, "peak-MiB")
					b.ReportMetric(other.Seconds(), "other-job-s")
					b.Logf("%s %s: create %.2fs, trigger %.2fs (%d jobs in the run view), peak RSS %.0f MiB, a job beside it %.3fs",
						shape, which, created.Seconds(), triggered.Seconds(), len(run.GetRun().GetJobs()), peak, other.Seconds())
					srv.stop(syscall.SIGTERM)
				}
			})
		}
	}
}

// BenchmarkIdleServer stores 1,000 pipelines (20 jobs and a cron trigger
// that never fires today) and measures the server's CPU over 10 s with
// nothing to do.
func BenchmarkIdleServer(b *testing.B) {
	for which, bin := range benchBinaries() {
		b.Run(which, func(b *testing.B) {
			for range b.N {
				srv, jobs := benchServer(b, bin)
				ctx := context.Background()
				for i := range 1000 {
					p := &jobv1.PipelineDetail{Name: fmt.Sprintf("p%04d", i),
						Triggers: []*jobv1.Trigger{{Type: jobv1.TriggerType_TRIGGER_TYPE_CRON, Cron: "0 0 29 2 *"}}}
					st := &jobv1.Stage{Name: "build", Env: map[string]string{"GOFLAGS": "-mod=readonly"}}
					for j := range 20 {
						st.Jobs = append(st.Jobs, &jobv1.PipelineJob{Name: fmt.Sprintf("job-%d", j),
							Commands: []string{"make build", "make test", "echo done"}, Env: map[string]string{"N": strconv.Itoa(j)}})
					}
					p.Stages = []*jobv1.Stage{st}
					if _, err := jobs.CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Pipeline: p}); err != nil {
						b.Fatal(err)
					}
				}
				time.Sleep(3 * time.Second)
				pid := srv.cmd.Process.Pid
				before, start := cpuTime(b, pid), time.Now()
				time.Sleep(10 * time.Second)
				used := cpuTime(b, pid) - before
				pct := 100 * used.Seconds() / time.Since(start).Seconds()
				b.ReportMetric(pct, "cpu-%")
				b.Logf("idle with 1,000 pipelines, %s: %.1f %% of a core (%s in 10 s)", which, pct, used)
				srv.stop(syscall.SIGTERM)
			}
		})
	}
}

// BenchmarkShutdown measures how long a server with an agent connected
// (its channel open) takes to exit on SIGTERM, beside the baseline build.
func BenchmarkShutdown(b *testing.B) {
	for which, bin := range benchBinaries() {
		b.Run(which, func(b *testing.B) {
			for range b.N {
				c := benchCluster(b, bin)
				c.startAgent("connected", 1)
				took, ok := stopWithin(c.server, 30*time.Second)
				if !ok {
					b.Errorf("%s: still running after %s", which, took)
				}
				b.ReportMetric(took.Seconds(), "stop-s")
				b.Logf("server with an agent connected, %s: stopped in %s", which, took)
			}
		})
	}
}
