package lifecycle

import (
	"context"
	"fmt"
	"time"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/server/store"
	"github.com/go-arcade/arcade/server/trigger"
)

// What triggers create: Lifecycle is the trigger.CronTarget and
// trigger.WebhookTarget of the server, and a run that succeeds starts the
// pipelines that name its pipeline in a pipeline trigger.

// pipelineCompleted starts the pipelines whose trigger names the pipeline of
// a run that just succeeded.
func (l *Lifecycle) pipelineCompleted(ctx context.Context, done *store.PipelineRun) {
	ps, _, err := l.store.ListPipelines(ctx, store.Page{Order: store.Order{Column: "name"}})
	if err != nil {
		l.log.Warn("pipeline-completed triggers", "err", err)
		return
	}
	for _, p := range ps {
		if p.ID == done.PipelineID {
			continue
		}
		spec, err := DecodeSpec(p.Spec)
		if err != nil {
			continue
		}
		for _, t := range spec.GetTriggers() {
			if t.GetType() != jobv1.TriggerType_TRIGGER_TYPE_PIPELINE || (t.GetPipeline() != done.PipelineName && t.GetPipeline() != done.PipelineID) {
				continue
			}
			cause := fmt.Sprintf("pipeline %s run #%d succeeded", done.PipelineName, done.Number)
			if _, err := l.StartRun(ctx, p, jobv1.TriggerType_TRIGGER_TYPE_PIPELINE, cause, nil); err != nil {
				l.log.Warn("pipeline-completed trigger", "pipeline", p.Name, "after", done.PipelineName, "err", err)
			}
			break
		}
	}
}

// CronEntries implements trigger.CronTarget.
func (l *Lifecycle) CronEntries(ctx context.Context) ([]trigger.CronEntry, error) {
	ps, _, err := l.store.ListPipelines(ctx, store.Page{Order: store.Order{Column: "name"}})
	if err != nil {
		return nil, err
	}
	var out []trigger.CronEntry
	for _, p := range ps {
		spec, err := DecodeSpec(p.Spec)
		if err != nil {
			continue
		}
		for _, t := range spec.GetTriggers() {
			if t.GetType() == jobv1.TriggerType_TRIGGER_TYPE_CRON {
				out = append(out, trigger.CronEntry{PipelineID: p.ID, Pipeline: p.Name, Expr: t.GetCron(), Timezone: t.GetTimezone()})
			}
		}
	}
	return out, nil
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
