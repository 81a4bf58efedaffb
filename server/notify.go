package server

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	"github.com/go-arcade/arcade/host"
	"github.com/go-arcade/arcade/server/notify"
	"github.com/go-arcade/arcade/server/store"
)

// pluginSender sends notifications through the notify plugins of the
// server's plugin host, which is set once the plugins are loaded.
type pluginSender struct{ host atomic.Pointer[host.Manager] }

func (p *pluginSender) Send(ctx context.Context, name string, req *pluginv1.SendRequest) (*pluginv1.SendResponse, error) {
	m := p.host.Load()
	if m == nil {
		return nil, fmt.Errorf("plugin %s: the plugins are not loaded yet", name)
	}
	np, err := m.GetNotifyPlugin(name)
	if err != nil {
		return nil, err
	}
	// The notifier retries failed deliveries itself: errors come back as
	// errors, whatever the plugin's failure policy.
	return np.Deliver(ctx, req)
}

// Ready waits while the plugin compiles (the server loads its plugins after
// it starts), so that a notification does not spend its attempts on it.
func (p *pluginSender) Ready(ctx context.Context, name string) error {
	if m := p.host.Load(); m != nil {
		return m.WaitCompiled(ctx, name)
	}
	return nil
}

// pluginAuditor audits pipeline definitions with a security plugin.
type pluginAuditor struct {
	name string
	host *host.Manager
}

func (a pluginAuditor) Plugin() string { return a.name }

func (a pluginAuditor) Audit(ctx context.Context, req *pluginv1.StepRequest) (*pluginv1.StepResponse, error) {
	if err := a.host.WaitCompiled(ctx, a.name); err != nil {
		return nil, err
	}
	sp, err := a.host.GetSecurityPlugin(a.name)
	if err != nil {
		return nil, err
	}
	return sp.Audit(ctx, req)
}

// storeRuns names runs for the notifier.
type storeRuns struct{ store *store.Store }

func (r storeRuns) RunOf(ctx context.Context, runID string) (string, int64, error) {
	run, err := r.store.GetRun(ctx, runID)
	if err != nil {
		return "", 0, err
	}
	return run.PipelineName, run.Number, nil
}

// FailedJob is the run's job that failed or timed out first.
func (r storeRuns) FailedJob(ctx context.Context, runID string) (notify.FailedJob, bool, error) {
	jobs, err := r.store.RunJobs(ctx, runID)
	if err != nil {
		return notify.FailedJob{}, false, err
	}
	var first *store.Job
	for _, j := range jobs {
		if (j.Status == "failed" || j.Status == "timeout") && (first == nil || j.FinishedAt.Before(first.FinishedAt)) {
			first = j
		}
	}
	if first == nil {
		return notify.FailedJob{}, false, nil
	}
	return notify.FailedJob{ID: first.ID, Name: first.Name, Attempt: strconv.Itoa(int(first.Attempt)), Message: first.Message}, true, nil
}
