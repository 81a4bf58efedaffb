package lifecycle

import (
	"context"
	"fmt"
	"slices"
	"time"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/server/store"
	"github.com/go-arcade/arcade/server/trigger"
)

// What triggers create: Lifecycle is the trigger.CronTarget and
// trigger.WebhookTarget of the server, and a run that succeeds starts the
// pipelines that name its pipeline in a pipeline trigger.

// pipelineCompleted starts the pipelines whose trigger names the pipeline of
// a run that just succeeded. The triggers come from the index: no
// definition is read but those that changed.
func (l *Lifecycle) pipelineCompleted(ctx context.Context, done *store.PipelineRun) {
	ps, err := l.index.pipelines(ctx, l.store)
	if err != nil {
		l.log.Warn("pipeline-completed triggers", "err", err)
		return
	}
	for _, ip := range ps {
		if ip.id == done.PipelineID || !slices.ContainsFunc(ip.after, func(a string) bool { return a == done.PipelineName || a == done.PipelineID }) {
			continue
		}
		p, err := l.store.GetPipeline(ctx, ip.id)
		if err != nil {
			l.log.Warn("pipeline-completed trigger", "pipeline", ip.name, "after", done.PipelineName, "err", err)
			continue
		}
		cause := fmt.Sprintf("pipeline %s run #%d succeeded", done.PipelineName, done.Number)
		if _, err := l.StartRun(ctx, p, jobv1.TriggerType_TRIGGER_TYPE_PIPELINE, cause, nil); err != nil {
			l.log.Warn("pipeline-completed trigger", "pipeline", p.Name, "after", done.PipelineName, "err", err)
		}
	}
}

// CronEntries implements trigger.CronTarget, from the index: each tick
// lists the pipelines' versions and parses only those that changed.
func (l *Lifecycle) CronEntries(ctx context.Context) ([]trigger.CronEntry, error) {
	ps, err := l.index.pipelines(ctx, l.store)
	if err != nil {
		return nil, err
	}
	var out []trigger.CronEntry
	for _, ip := range ps {
		out = append(out, ip.cron...)
	}
	return out, nil
}

// RunsAfter returns, for every pipeline by name, the pipelines (names or
// ids) whose success starts it, and the name of every pipeline by id and by
// name: the graph pipeline-completed triggers make, from the index.
func (l *Lifecycle) RunsAfter(ctx context.Context) (after map[string][]string, names map[string]string, err error) {
	ps, err := l.index.pipelines(ctx, l.store)
	if err != nil {
		return nil, nil, err
	}
	after, names = make(map[string][]string, len(ps)), make(map[string]string, 2*len(ps))
	for _, ip := range ps {
		after[ip.name] = ip.after
		names[ip.id], names[ip.name] = ip.name, ip.name
	}
	return after, names, nil
}

// FireCron implements trigger.CronTarget.
func (l *Lifecycle) FireCron(ctx context.Context, e trigger.CronEntry, at time.Time) error {
	// Every replica's scheduler sees the same schedule; one fires.
	mine, err := l.store.ClaimCronFire(ctx, e.PipelineID+" "+e.Expr+" "+e.Timezone, at, l.now())
	if err != nil || !mine {
		return err
	}
	p, err := l.store.GetPipeline(ctx, e.PipelineID)
	if err != nil {
		return err
	}
	cause := fmt.Sprintf("cron %q at %s", e.Expr, at.Format(time.RFC3339))
	_, err = l.StartRun(ctx, p, jobv1.TriggerType_TRIGGER_TYPE_CRON, cause, nil)
	return err
}

// Webhooks returns a pipeline's webhook triggers from the index, with the
// secrets its definition holds: none once they are sealed in their own
// column (the service opens those).
func (l *Lifecycle) Webhooks(ctx context.Context, pipelineName string) ([]trigger.WebhookConfig, error) {
	ps, err := l.index.pipelines(ctx, l.store)
	if err != nil {
		return nil, err
	}
	for _, ip := range ps {
		if ip.name == pipelineName || ip.id == pipelineName {
			return ip.webhooks, nil
		}
	}
	return nil, trigger.ErrNoPipeline
}

// SourcePipelines returns, from the index, the ids of the pipelines with a
// webhook trigger whose source is one of repos (normalized URLs, as
// secrets.NormalizeRepo makes them): a forge delivery reads only their
// rows.
func (l *Lifecycle) SourcePipelines(ctx context.Context, repos map[string]bool) ([]string, error) {
	ps, err := l.index.pipelines(ctx, l.store)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, ip := range ps {
		if ip.repo != "" && repos[ip.repo] && len(ip.webhooks) > 0 {
			ids = append(ids, ip.id)
		}
	}
	return ids, nil
}

// FireWebhook implements trigger.WebhookTarget: the push's commit, branch
// and author become env of the run.
func (l *Lifecycle) FireWebhook(ctx context.Context, pipelineName string, push trigger.Push) (string, int64, error) {
	p, err := l.store.GetPipeline(ctx, pipelineName)
	if err != nil {
		return "", 0, err
	}
	short := push.Commit
	if len(short) > 12 {
		short = short[:12]
	}
	cause := fmt.Sprintf("push to %s by %s (%s)", push.Branch, push.Author, short)
	origin := RunOrigin{Branch: push.Branch, Source: push.CloneURL, Event: "push", Ref: push.Ref, Author: push.Author}
	if len(push.Commit) == 40 || len(push.Commit) == 64 {
		origin.Commit = push.Commit
	}
	r, err := l.StartRunFrom(ctx, p, jobv1.TriggerType_TRIGGER_TYPE_WEBHOOK, cause, push.Env(), origin)
	if err != nil {
		return "", 0, err
	}
	return r.ID, r.Number, nil
}
