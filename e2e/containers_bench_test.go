package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
)

// BenchmarkContainerJob measures a container job of one step "true" in a
// local image, from CreateJob to SUCCESS, beside the same engine work done
// by the docker command line in the same run (network create, run -d,
// exec, rm -f, network rm) and beside "docker run --rm IMAGE true". It
// also measures what one more step costs in a running job's container,
// beside "docker exec". Rounds alternate between the three, and the
// medians are reported (milliseconds) with the ratios.
func BenchmarkContainerJob(b *testing.B) {
	e := containerEngine(b)
	dockerBin, err := exec.LookPath("docker")
	if err != nil {
		b.Skip("no docker command line for the baseline")
	}
	c := newCluster(b, "sqlite://"+b.TempDir()+"/arcade.db")
	c.startAgentWith("bench", 1, engineFlags(e))
	ctx := context.Background()
	docker := func(args ...string) string {
		b.Helper()
		cmd := exec.Command(dockerBin, args...)
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+e.Host)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("docker %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
		}
		return strings.TrimSpace(string(out))
	}
	job := func(steps int) time.Duration {
		b.Helper()
		var st []*agentv1.Step
		for range steps {
			st = append(st, &agentv1.Step{Commands: []string{"true"}})
		}
		t0 := time.Now()
		resp, err := c.jobs.CreateJob(ctx, &jobv1.CreateJobRequest{Name: "bench", Image: testImage, Steps: st})
		if err != nil {
			b.Fatal(err)
		}
		for {
			j := c.get(resp.GetJob().GetId())
			if j.GetFinishedAt() != nil {
				if j.GetStatus() != success {
					b.Fatalf("bench job %v: %s", j.GetStatus(), j.GetMessage())
				}
				return time.Since(t0)
			}
			time.Sleep(time.Millisecond)
		}
	}
	ws := b.TempDir()
	cli := func() time.Duration {
		t0 := time.Now()
		net := fmt.Sprintf("bench-%d", time.Now().UnixNano())
		docker("network", "create", net)
		id := docker("run", "-d", "--init", "--network", net, "-v", ws+":/workspace", "-w", "/workspace",
			"--entrypoint", "/bin/sh", testImage, "-c", "while :; do sleep 86400; done")
		docker("exec", id, "/bin/sh", "-c", "true")
		docker("rm", "-f", id)
		docker("network", "rm", net)
		return time.Since(t0)
	}
	runRm := func() time.Duration {
		t0 := time.Now()
		docker("run", "--rm", testImage, "true")
		return time.Since(t0)
	}
	const rounds, moreSteps = 15, 10
	// Warm up each path once.
	job(1)
	cli()
	runRm()
	var arcade, many, base, rm, execs []time.Duration
	b.ResetTimer()
	for range b.N {
		for range rounds {
			arcade = append(arcade, job(1))
			many = append(many, job(1+moreSteps))
			base = append(base, cli())
			rm = append(rm, runRm())
		}
	}
	b.StopTimer()
	// docker exec in a running container, for one more step.
	id := docker("run", "-d", "--init", testImage, "sh", "-c", "while :; do sleep 86400; done")
	for range rounds {
		t0 := time.Now()
		docker("exec", id, "/bin/sh", "-c", "true")
		execs = append(execs, time.Since(t0))
	}
	docker("rm", "-f", id)

	a, m, cl, r, x := percentile(arcade, 50), percentile(many, 50), percentile(base, 50), percentile(rm, 50), percentile(execs, 50)
	step := (m - a) / moreSteps
	b.ReportMetric(ms(a), "job-ms")
	b.ReportMetric(ms(cl), "cli-ms")
	b.ReportMetric(ms(r), "run-rm-ms")
	b.ReportMetric(float64(a)/float64(cl), "ratio-vs-cli")
	b.ReportMetric(float64(a)/float64(r), "ratio-vs-run-rm")
	b.ReportMetric(ms(step), "step-ms")
	b.ReportMetric(ms(x), "exec-ms")
	b.ReportMetric(float64(step)/float64(x), "ratio-step-vs-exec")
	b.Logf("container job CreateJob→SUCCESS p50 %s; docker CLI (network create, run -d, exec, rm -f, network rm) %s: ratio %.2f; docker run --rm %s: ratio %.2f",
		a, cl, float64(a)/float64(cl), r, float64(a)/float64(r))
	b.Logf("one more step in the job's container %s; docker exec %s: ratio %.2f", step, x, float64(step)/float64(x))
}
