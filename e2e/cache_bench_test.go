package e2e

import (
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/go-arcade/arcade/agent/cache/cachetest"
)

// BenchmarkCacheAcrossAgents saves a cache of 200 MiB of files shaped like
// a Go module cache on one agent and restores it on another, through the
// server (fs-store keeps the entry; no presigned transfer), and, in the
// same run, hands a 200 MiB artifact from one agent to the other (the
// artifact transfer figure beside it). Times are the agents' own, from
// their log lines: restore_MB/s is the cache's files (uncompressed) per
// second of download and unpack; input_MB/s the artifact's bytes per
// second of download and check.
func BenchmarkCacheAcrossAgents(b *testing.B) {
	src := b.TempDir()
	_, total, err := cachetest.GoModCache(src, 200<<20)
	if err != nil {
		b.Fatal(err)
	}
	c := storeCluster(b, "sqlite://"+filepath.Join(b.TempDir(), "arcade.db"), b.TempDir(), "--cache-max-bytes", "10000000000", "--lease-ttl", "10m")
	parallelDone(
		func() { c.startAgentWith("writer", 1, []string{"--cache-local-bytes", "-1"}, "role=w") },
		func() { c.startAgentWith("reader", 1, []string{"--cache-local-bytes", "-1"}, "role=r") },
	)
	c.createPipeline(`
name: across
stages:
  - name: save
    jobs:
      - name: save
        selector: role=w
        cache: {key: "mod-${{ env.N }}", paths: [pkg]}
        commands: ['cp -a "$SRC"/pkg pkg', 'head -c 209715200 /dev/urandom > big.bin']
        artifacts: {paths: [big.bin]}
  - name: restore
    jobs:
      - name: restore
        selector: role=r
        needs_artifacts: [save]
        cache: {key: "mod-${{ env.N }}", paths: [pkg]}
        commands: ["true"]
`)
	took := regexp.MustCompile(`in ([0-9.]+m?s)$`)
	dur := func(line string) time.Duration {
		m := took.FindStringSubmatch(line)
		if m == nil {
			return 0
		}
		d, _ := time.ParseDuration(m[1])
		return d
	}
	var restore, input time.Duration
	for i := range b.N {
		r := c.waitRunWithin(c.trigger("across", map[string]string{"N": strconv.Itoa(i), "SRC": src}).GetId(), 15*time.Minute)
		if r.GetStatus() != success {
			b.Fatalf("run: %v %s", r.GetStatus(), r.GetMessage())
		}
		var gotRestore, gotInput bool
		for _, l := range c.logOf(jobsByName(r)["restore"].GetId(), 0) {
			switch t := l.GetContent(); {
			case regexp.MustCompile(`^cache restored: .* from the server`).MatchString(t):
				restore += dur(t)
				gotRestore = true
			case regexp.MustCompile(`^input big.bin `).MatchString(t):
				input += dur(t)
				gotInput = true
			}
		}
		if !gotRestore || !gotInput {
			b.Fatalf("the restore job's log lacks its cache restore or its input:\n%s", jobLog(c, jobsByName(r)["restore"].GetId()))
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(total)/1e6/(restore.Seconds()/n), "restore_MB/s")
	b.ReportMetric(200*(1<<20)/1e6/(input.Seconds()/n), "input_MB/s")
}
