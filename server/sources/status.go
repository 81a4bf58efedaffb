package sources

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	"github.com/go-arcade/arcade/internal/gitcli"
	"github.com/go-arcade/arcade/server/lifecycle"
	"github.com/go-arcade/arcade/server/secrets"
	"github.com/go-arcade/arcade/server/store"
)

// Commit statuses: each run of a pipeline whose source names a status
// plugin reports pending, running, success or failure to the forge,
// linking the run's page. They take their own path, not the general
// notification queue (which may drop and reorder under load): each state
// is a row of commit_statuses, queued when the run changes (in the order
// the run changes, states only moving forward), delivered one at a time per
// (repository, commit, context) in the order queued, retried with backoff
// until delivered, so none is dropped and the last one queued is the last
// the forge gets. Keys are delivered in parallel.

// Sender calls a notify plugin (the server's plugin host).
type Sender interface {
	Send(ctx context.Context, name string, req *pluginv1.SendRequest) (*pluginv1.SendResponse, error)
}

// Statuses queues and delivers commit statuses.
type Statuses struct {
	Store       *store.Store
	Send        Sender
	Credentials Credentials
	// RunURL is the dashboard page of a run ("" when public_url is unset).
	RunURL func(runID string) string
	Log    *slog.Logger
	Now    func() time.Time
	// Timeout bounds one delivery (default 30s); Parallel the keys
	// delivered at once (default 8).
	Timeout  time.Duration
	Parallel int

	wake chan struct{}
	once sync.Once
}

// statusPayload is a queued state.
type statusPayload struct {
	Plugin      string `json:"plugin"`
	Repository  string `json:"repository"`
	Commit      string `json:"commit"`
	State       string `json:"state"`
	Context     string `json:"context"`
	TargetURL   string `json:"target_url"`
	Description string `json:"description"`
	RunID       string `json:"run_id"`
}

func (s *Statuses) init() {
	s.once.Do(func() { s.wake = make(chan struct{}, 1) })
}

// stateOf maps a run's status to the state reported and its rank.
func stateOf(status string) (string, int32) {
	switch status {
	case "pending":
		return "pending", 1
	case "running":
		return "running", 2
	case "success":
		return "success", 3
	case "failed":
		return "failure", 3
	case "cancelled":
		return "cancelled", 3
	}
	return "", 0
}

// RunChanged queues the state of a run, when its pipeline reports
// statuses and the state is one it has not queued yet (service.OnRunChange).
func (s *Statuses) RunChanged(r *store.PipelineRun) {
	s.init()
	if r.Commit == "" {
		return
	}
	spec, err := lifecycle.DecodeSpec(r.Spec)
	if err != nil || spec.GetSource().GetStatusPlugin() == "" {
		return
	}
	state, rank := stateOf(r.Status)
	if rank == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ok, err := s.Store.ReportRunState(ctx, r.ID, rank)
	if err != nil {
		s.Log.Warn("commit status: record state", "run", r.ID, "err", err)
		return
	}
	if !ok {
		return // queued already (or a later state was)
	}
	src := spec.GetSource()
	p := statusPayload{Plugin: src.GetStatusPlugin(), Repository: src.GetUrl(), Commit: r.Commit, State: state,
		Context: "arcade/" + r.PipelineName, Description: describe(r), RunID: r.ID}
	if s.RunURL != nil {
		p.TargetURL = s.RunURL(r.ID)
	}
	repo, err := secrets.NormalizeRepo(src.GetUrl())
	if err != nil {
		repo = src.GetUrl()
	}
	b, _ := json.Marshal(p)
	now := s.Now()
	cs := &store.CommitStatus{Key: repo + " " + r.Commit + " " + p.Context, PipelineID: r.PipelineID, Payload: b, CreatedAt: now, NextAt: now}
	if err := s.Store.QueueStatus(ctx, cs); err != nil {
		s.Log.Warn("commit status: queue", "run", r.ID, "state", state, "err", err)
		return
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func describe(r *store.PipelineRun) string {
	switch r.Status {
	case "pending":
		return fmt.Sprintf("run #%d is waiting for an agent", r.Number)
	case "running":
		return fmt.Sprintf("run #%d is running", r.Number)
	case "success":
		return fmt.Sprintf("run #%d succeeded", r.Number)
	}
	msg := fmt.Sprintf("run #%d %s", r.Number, r.Status)
	if r.Message != "" {
		msg += ": " + r.Message
	}
	if len(msg) > 140 { // GitHub's limit on descriptions
		msg = msg[:137] + "..."
	}
	return msg
}

// Run delivers queued states until ctx ends.
func (s *Statuses) Run(ctx context.Context) {
	s.init()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		for s.deliverDue(ctx) > 0 && ctx.Err() == nil {
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-tick.C:
		}
	}
}

// deliverDue delivers the oldest due state of each key, in parallel, and
// returns how many it tried.
func (s *Statuses) deliverDue(ctx context.Context) int {
	par := s.Parallel
	if par <= 0 {
		par = 8
	}
	due, err := s.Store.DueStatuses(ctx, s.Now(), par)
	if err != nil {
		if ctx.Err() == nil {
			s.Log.Warn("commit status: read queue", "err", err)
		}
		return 0
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	var wg sync.WaitGroup
	for _, cs := range due {
		// Claimed past the call's timeout: another replica passes it by.
		if ok, err := s.Store.ClaimStatus(ctx, cs, s.Now().Add(2*timeout)); err != nil || !ok {
			continue
		}
		wg.Go(func() { s.deliver(ctx, cs, timeout) })
	}
	wg.Wait()
	return len(due)
}

func (s *Statuses) deliver(ctx context.Context, cs *store.CommitStatus, timeout time.Duration) {
	var p statusPayload
	if err := json.Unmarshal(cs.Payload, &p); err != nil {
		s.Log.Warn("commit status: unreadable; dropped", "id", cs.ID, "err", err)
		s.Store.StatusDelivered(ctx, cs.ID) //nolint:errcheck // best effort
		return
	}
	meta := map[string]string{"repository": p.Repository, "commit": p.Commit, "state": p.State, "context": p.Context,
		"target_url": p.TargetURL, "description": p.Description}
	if tok, err := s.token(ctx, cs.PipelineID, p.Repository); err != nil {
		s.failed(ctx, cs, p, err)
		return
	} else if tok != "" {
		meta["token"] = tok
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := s.Send.Send(cctx, p.Plugin, &pluginv1.SendRequest{Title: p.Context + ": " + p.State, Body: p.Description, Metadata: meta,
		Event: &pluginv1.NotifyEvent{Type: "commit_status", PipelineId: cs.PipelineID, PipelineRunId: p.RunID, Status: p.State, Url: p.TargetURL}})
	if err == nil && resp.GetStatus() != pluginv1.Status_STATUS_SUCCESS {
		var msgs []string
		for _, m := range resp.GetMessages() {
			msgs = append(msgs, m.GetText())
		}
		err = fmt.Errorf("plugin %s answered %s: %s", p.Plugin, resp.GetStatus(), strings.Join(msgs, "; "))
	}
	if err != nil {
		s.failed(ctx, cs, p, err)
		return
	}
	if err := s.Store.StatusDelivered(ctx, cs.ID); err != nil {
		s.Log.Warn("commit status: delivered, not removed from the queue (it is sent again)", "id", cs.ID, "err", err)
		return
	}
	s.Log.Info("commit status delivered", "repository", p.Repository, "commit", p.Commit, "state", p.State, "context", p.Context)
}

func (s *Statuses) failed(ctx context.Context, cs *store.CommitStatus, p statusPayload, err error) {
	wait := time.Second << min(cs.Attempts, 9) // 1s … 8.5min
	s.Log.Warn("commit status not delivered; retrying", "repository", p.Repository, "commit", p.Commit, "state", p.State,
		"attempt", cs.Attempts+1, "retry_in", wait, "err", err)
	if err := s.Store.StatusFailed(ctx, cs.ID, s.Now().Add(wait), err.Error()); err != nil && ctx.Err() == nil {
		s.Log.Warn("commit status: record failure", "err", err)
	}
}

// token is the API token of a pipeline's source credential ("" when it
// has none or it is an SSH key: the plugin's own config token is used).
func (s *Statuses) token(ctx context.Context, pipelineID, repoURL string) (string, error) {
	p, err := s.Store.GetPipeline(ctx, pipelineID)
	if err != nil {
		return "", err
	}
	spec, err := lifecycle.DecodeSpec(p.Spec)
	if err != nil {
		return "", err
	}
	name := spec.GetSource().GetCredential()
	if name == "" {
		return "", nil
	}
	scope := secrets.Scope{Pipeline: pipelineID}
	if repo, err := secrets.NormalizeRepo(repoURL); err == nil {
		scope.Source = repo
	}
	vals, err := s.Credentials.Resolve(ctx, scope, name)
	if err != nil {
		return "", err
	}
	a := gitcli.ParseAuth(vals[name])
	if a == nil {
		return "", nil
	}
	return a.Password, nil
}
