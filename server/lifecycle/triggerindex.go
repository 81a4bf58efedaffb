package lifecycle

import (
	"context"
	"sync"
	"time"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/server/secrets"
	"github.com/go-arcade/arcade/server/store"
	"github.com/go-arcade/arcade/server/trigger"
)

// triggerIndex keeps what the scans over every pipeline need — cron
// entries, pipeline-completed triggers, webhook triggers — parsed once per
// change of a pipeline. Each use asks the store for every pipeline's
// version (id, name, updated_at: no definitions) and parses again only the
// pipelines written since, so changes made through another replica count
// as soon as they are stored.
type triggerIndex struct {
	mu   sync.Mutex
	byID map[string]*indexedPipeline
	// parsed counts the definitions read.
	parsed int
}

// indexedPipeline is what the index knows of one pipeline.
type indexedPipeline struct {
	id, name string
	updated  time.Time
	cron     []trigger.CronEntry
	after    []string // pipelines (names or ids) whose success starts this one
	webhooks []trigger.WebhookConfig
	// repo is the normalized URL of the pipeline's source ("" without
	// one, or when it is not understood).
	repo string
}

func indexPipeline(p *store.Pipeline) *indexedPipeline {
	ip := &indexedPipeline{id: p.ID, name: p.Name, updated: p.UpdatedAt}
	spec, err := DecodeSpec(p.Spec)
	if err != nil {
		return ip
	}
	if src := spec.GetSource(); src != nil {
		if repo, err := secrets.NormalizeRepo(src.GetUrl()); err == nil {
			ip.repo = repo
		}
	}
	for _, t := range spec.GetTriggers() {
		switch t.GetType() {
		case jobv1.TriggerType_TRIGGER_TYPE_CRON:
			ip.cron = append(ip.cron, trigger.CronEntry{PipelineID: p.ID, Pipeline: p.Name, Expr: t.GetCron(), Timezone: t.GetTimezone()})
		case jobv1.TriggerType_TRIGGER_TYPE_PIPELINE:
			ip.after = append(ip.after, t.GetPipeline())
		case jobv1.TriggerType_TRIGGER_TYPE_WEBHOOK:
			ip.webhooks = append(ip.webhooks, trigger.WebhookConfig{Secret: t.GetSecret(), Branches: t.GetBranches()})
		}
	}
	return ip
}

// pipelines returns every pipeline as indexed now, in id order.
func (ix *triggerIndex) pipelines(ctx context.Context, st *store.Store) ([]*indexedPipeline, error) {
	versions, err := st.PipelineVersions(ctx)
	if err != nil {
		return nil, err
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.byID == nil {
		ix.byID = map[string]*indexedPipeline{}
	}
	var stale []string
	seen := make(map[string]bool, len(versions))
	for _, v := range versions {
		seen[v.ID] = true
		if ip, ok := ix.byID[v.ID]; !ok || !ip.updated.Equal(v.UpdatedAt) || ip.name != v.Name {
			stale = append(stale, v.ID)
		}
	}
	for id := range ix.byID {
		if !seen[id] {
			delete(ix.byID, id)
		}
	}
	if len(stale) > 0 {
		ps, err := st.PipelinesByID(ctx, stale)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			ix.byID[p.ID] = indexPipeline(p)
		}
		ix.parsed += len(ps)
	}
	out := make([]*indexedPipeline, 0, len(versions))
	for _, v := range versions {
		if ip, ok := ix.byID[v.ID]; ok {
			out = append(out, ip)
		}
	}
	return out, nil
}
