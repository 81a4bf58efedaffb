package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/internal/pgtest"
)

// runSpan is when a run's jobs ran: the first start to the last finish,
// as the server recorded them.
func runSpan(t *testing.T, r *jobv1.PipelineRun) (time.Time, time.Time) {
	t.Helper()
	var from, to time.Time
	for _, j := range r.GetJobs() {
		if j.GetStartedAt() == nil || j.GetFinishedAt() == nil {
			continue
		}
		s, f := j.GetStartedAt().AsTime(), j.GetFinishedAt().AsTime()
		if from.IsZero() || s.Before(from) {
			from = s
		}
		if f.After(to) {
			to = f
		}
	}
	if from.IsZero() {
		t.Fatalf("run #%d has no job that ran", r.GetNumber())
	}
	return from, to
}

// noOverlap fails unless the runs ran one after the other.
func noOverlap(t *testing.T, runs ...*jobv1.PipelineRun) {
	t.Helper()
	type span struct {
		n        int64
		from, to time.Time
	}
	var spans []span
	for _, r := range runs {
		f, e := runSpan(t, r)
		spans = append(spans, span{r.GetNumber(), f, e})
	}
	for i, a := range spans {
		for _, b := range spans[i+1:] {
			if a.from.Before(b.to) && b.from.Before(a.to) {
				t.Errorf("runs #%d (%s–%s) and #%d (%s–%s) of one concurrency group overlap", a.n, a.from.Format(time.StampMilli),
					a.to.Format(time.StampMilli), b.n, b.from.Format(time.StampMilli), b.to.Format(time.StampMilli))
			}
		}
	}
}

const groupPipeline = `
name: deploy
concurrency: {group: "deploy-${{ arcade.pipeline }}"}
env: {NAP: "1"}
stages:
  - name: s
    jobs:
      - {name: a, commands: ["sleep $NAP"]}
      - {name: b, commands: ["sleep $NAP"]}
`

// TestConcurrencyGroups runs, on each database: two runs of one group one
// after the other (by the times the server recorded), a newer run that
// cancels the older (cancel_in_progress), and a job held for its group,
// which `job why` says.
func TestConcurrencyGroups(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		c := newCluster(t, dsn)
		c.startAgent("conc", 4)

		c.createPipeline(groupPipeline)
		r1, r2 := c.trigger("deploy", nil), c.trigger("deploy", nil)
		c.waitFor("run #2 to wait for its group", func() bool {
			r := c.run(r2.GetId())
			return strings.Contains(r.GetMessage(), "waiting for concurrency group deploy-deploy") || r.GetStatus() == success
		})
		d1, d2 := c.waitRun(r1.GetId()), c.waitRun(r2.GetId())
		if d1.GetStatus() != success || d2.GetStatus() != success {
			t.Fatalf("runs: %v, %v", d1.GetStatus(), d2.GetStatus())
		}
		noOverlap(t, d1, d2)

		c.createPipeline(`
name: latest
concurrency: {group: latest, cancel_in_progress: true}
env: {NAP: "60"}
stages:
  - name: s
    jobs: [{name: work, commands: ["sleep $NAP"]}]
`)
		old := c.trigger("latest", nil)
		c.waitFor("the older run's job to run", func() bool {
			return jobsByName(c.run(old.GetId()))["work"].GetStatus() == running
		})
		newer := c.trigger("latest", map[string]string{"NAP": "0"})
		if o := c.waitRun(old.GetId()); o.GetStatus() != cancelled || !strings.Contains(o.GetMessage(), "cancel_in_progress") {
			t.Errorf("older run: %v %q", o.GetStatus(), o.GetMessage())
		}
		if n := c.waitRun(newer.GetId()); n.GetStatus() != success {
			t.Errorf("newer run: %v %q", n.GetStatus(), n.GetMessage())
		}

		c.createPipeline(`
name: migrate
stages:
  - name: s
    jobs: [{name: db, concurrency: {group: database}, commands: ["sleep 2"]}]
`)
		m1, m2 := c.trigger("migrate", nil), c.trigger("migrate", nil)
		var held *jobv1.JobDetail
		c.waitFor("one migration held for its group", func() bool {
			for _, id := range []string{m1.GetId(), m2.GetId()} {
				if j := jobsByName(c.run(id))["db"]; j.GetHeld() != "" {
					held = j
					return true
				}
			}
			return false
		})
		why, err := c.jobs.ExplainJob(ctx, &jobv1.ExplainJobRequest{JobId: held.GetId()})
		if err != nil || !strings.Contains(why.GetSummary(), "waiting for concurrency group database, held by job db") {
			t.Errorf("job why of a held job: %q, %v", why.GetSummary(), err)
		}
		if out := c.mustCLI(t, "job", "why", held.GetId()); !strings.Contains(out, "waiting for concurrency group database") {
			t.Errorf("arcade job why: %s", out)
		}
		noOverlap(t, c.waitRun(m1.GetId()), c.waitRun(m2.GetId()))
	})
}

// TestConcurrencyAcrossReplicas: two servers on one PostgreSQL database,
// each with its agent, start runs of one group at the same moment; the
// group, kept in the database, lets them run one after the other.
func TestConcurrencyAcrossReplicas(t *testing.T) {
	dsn := pgtest.Start(t)
	a, b := newCluster(t, dsn), newCluster(t, dsn)
	parallelDone(func() { a.startAgent("on-a", 2) }, func() { b.startAgent("on-b", 2) })
	a.createPipeline(groupPipeline)
	var ra, rb, ra2, rb2 *jobv1.PipelineRun
	parallelDone(
		func() { ra, ra2 = a.trigger("deploy", nil), a.trigger("deploy", nil) },
		func() { rb, rb2 = b.trigger("deploy", nil), b.trigger("deploy", nil) },
	)
	var done []*jobv1.PipelineRun
	for _, r := range []*jobv1.PipelineRun{ra, rb, ra2, rb2} {
		d := a.waitRun(r.GetId())
		if d.GetStatus() != success {
			t.Fatalf("run #%d: %v %q", d.GetNumber(), d.GetStatus(), d.GetMessage())
		}
		done = append(done, d)
	}
	noOverlap(t, done...)
}
