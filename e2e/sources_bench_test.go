package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/internal/gittest"
)

// BenchmarkPushToFirstLogLine: 50 pushes, each delivered as GitHub sends
// it to a server with one agent (git over smart HTTP): the time from the
// webhook's POST to the first log line of the run's job (the agent's time
// stamp of the line: the checkout's first note), p50 and p90 in
// milliseconds. Run with -benchtime 1x.
func BenchmarkPushToFirstLogLine(b *testing.B) {
	remote := gittest.New(b)
	repo := remote.Repo("bench")
	h := remote.ServeHTTP("", "")
	url := h.RepoURL("bench")
	sc := newSourcesCluster(b, "sqlite://"+filepath.Join(b.TempDir(), "arcade.db"))
	sc.createPipeline(fmt.Sprintf(`name: bench
source: {url: %q}
triggers: [{type: webhook, secret: hush}]
stages: [{name: s, jobs: [{name: j, commands: ["echo built"]}]}]
`, url))
	sc.startGitAgent("bench-agent")
	for range b.N {
		var lat []time.Duration
		before := repo.Head()
		for i := range 50 {
			after := repo.Commit(map[string]string{"n.txt": fmt.Sprint(i)}, "push")
			v := gittest.Vars{Branch: "main", Before: before, After: after, Author: "ada", Owner: "acme", Name: "bench", RepoID: 1, CloneURL: url, WebURL: "https://github.com/acme/bench"}
			body := gittest.Delivery(b, "github-push", v)
			t0 := time.Now()
			code, ans := sc.deliver("github", "push", fmt.Sprint("bench-", i, "-", time.Now().UnixNano()), "hush", body)
			if code != http.StatusCreated {
				b.Fatalf("push %d: %d %v", i, code, ans)
			}
			r := sc.waitRun(runIDs(ans)[0])
			lines, err := sc.jobs.GetJobLog(context.Background(), &jobv1.GetJobLogRequest{JobId: r.GetJobs()[0].GetId(), FromLine: 1, Limit: 1})
			if err != nil || len(lines.GetLines()) == 0 {
				b.Fatalf("log of push %d: %v", i, err)
			}
			lat = append(lat, lines.GetLines()[0].GetTimestamp().AsTime().Sub(t0))
			before = after
		}
		slices.Sort(lat)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
		b.ReportMetric(ms(lat[len(lat)*9/10]), "p90-ms")
		b.ReportMetric(ms(lat[0]), "min-ms")
	}
}
