package lifecycle

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/go-arcade/arcade/core/pipeline"
	"github.com/go-arcade/arcade/server/store"
	"github.com/go-arcade/arcade/server/trigger"
)

// The scans over every pipeline (cron entries each tick, webhook
// deliveries, pipeline-completed triggers) read a definition once per
// change of it, and see creations, updates, renames and deletions at once.
func TestTriggerIndexParsesOnlyChanges(t *testing.T) {
	eachStore(t, func(f *fixture) {
		t := f.t
		var ps []*store.Pipeline
		for i := range 3 {
			ps = append(ps, f.createPipeline(fmt.Sprintf(`name: p%d
triggers: [{type: cron, cron: "%d * * * *"}, {type: webhook, secret: s%d}]
stages: [{name: s, jobs: [{name: a, commands: [x]}]}]`, i, i, i)))
		}
		exprs := func() []string {
			es, err := f.l.CronEntries(f.ctx)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, e := range es {
				out = append(out, e.Pipeline+" "+e.Expr)
			}
			slices.Sort(out)
			return out
		}
		for range 5 {
			if got := exprs(); !slices.Equal(got, []string{"p0 0 * * * *", "p1 1 * * * *", "p2 2 * * * *"}) {
				t.Fatalf("cron entries %v", got)
			}
		}
		if f.l.index.parsed != 3 {
			t.Fatalf("%d definitions read for 5 ticks over 3 pipelines", f.l.index.parsed)
		}
		// An update (here a rename with a new schedule) reads that one again.
		f.advance(time.Second)
		if _, err := f.st.ModifyPipeline(f.ctx, ps[1].ID, func(p *store.Pipeline) error {
			spec, err := pipeline.ParseYAML([]byte(`name: renamed
triggers: [{type: cron, cron: "7 * * * *"}]
stages: [{name: s, jobs: [{name: a, commands: [x]}]}]`))
			if err != nil {
				return err
			}
			p.Name, p.Spec, p.UpdatedAt = "renamed", EncodeSpec(spec), f.clock
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := f.st.DeletePipeline(f.ctx, ps[2].ID); err != nil {
			t.Fatal(err)
		}
		if got := exprs(); !slices.Equal(got, []string{"p0 0 * * * *", "renamed 7 * * * *"}) {
			t.Fatalf("cron entries after an update and a deletion: %v", got)
		}
		if f.l.index.parsed != 4 {
			t.Fatalf("%d definitions read; want one more for the update", f.l.index.parsed)
		}
		hooks, err := f.l.Webhooks(f.ctx, "p0")
		if err != nil || len(hooks) != 1 || hooks[0].Secret != "s0" {
			t.Fatalf("webhooks of p0: %v %v", hooks, err)
		}
		if _, err := f.l.Webhooks(f.ctx, "p2"); err != trigger.ErrNoPipeline {
			t.Fatalf("webhooks of a deleted pipeline: %v", err)
		}
		if f.l.index.parsed != 4 {
			t.Fatalf("webhook deliveries read definitions: %d", f.l.index.parsed)
		}
	})
}

// A forge delivery finds the pipelines whose source is its repository in
// the index (URLs normalized), without reading a definition again.
func TestSourcePipelinesFromTheIndex(t *testing.T) {
	eachStore(t, func(f *fixture) {
		t := f.t
		mk := func(name, source, triggers string) string {
			y := "name: " + name + "\n"
			if source != "" {
				y += "source: {url: " + source + "}\n"
			}
			if triggers != "" {
				y += "triggers: " + triggers + "\n"
			}
			return f.createPipeline(y + "stages: [{name: s, jobs: [{name: a, commands: [x]}]}]").ID
		}
		hook := "[{type: webhook, secret: s}]"
		app := mk("app", "https://github.com/acme/app.git", hook)
		appSSH := mk("app-ssh", "git@GitHub.com:acme/app", hook)
		mk("app-cron", "https://github.com/acme/app.git", `[{type: cron, cron: "0 * * * *"}]`)
		mk("other", "https://github.com/acme/other.git", hook)
		mk("plain", "", hook)
		repos := map[string]bool{"github.com/acme/app": true}
		for range 3 {
			ids, err := f.l.SourcePipelines(f.ctx, repos)
			slices.Sort(ids)
			want := []string{app, appSSH}
			slices.Sort(want)
			if err != nil || !slices.Equal(ids, want) {
				t.Fatalf("pipelines of github.com/acme/app: %v %v, want %v", ids, err, want)
			}
		}
		if f.l.index.parsed != 5 {
			t.Fatalf("%d definitions read for 3 deliveries over 5 pipelines", f.l.index.parsed)
		}
	})
}
