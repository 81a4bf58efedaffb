package sources

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/gitref"
	"github.com/go-arcade/arcade/internal/gitcli"
	"github.com/go-arcade/arcade/server/forge"
	"github.com/go-arcade/arcade/server/lifecycle"
	"github.com/go-arcade/arcade/server/secrets"
	"github.com/go-arcade/arcade/server/store"
)

// MaxPayload bounds a delivery's body.
const MaxPayload = 5 << 20

// DefaultKeepDeliveries is how many delivery ids and body digests are
// remembered to refuse replays (two per delivery with an id).
const DefaultKeepDeliveries = 20000

// Pipelines opens a stored pipeline's definition with its webhook secrets
// (the service).
type Pipelines interface {
	TriggerSecrets(p *store.Pipeline) (*jobv1.PipelineDetail, error)
}

// Runs starts runs, and finds the pipelines that build a repository in
// its index of triggers (the life cycle).
type Runs interface {
	StartRunFrom(ctx context.Context, p *store.Pipeline, typ jobv1.TriggerType, cause string, params map[string]string, o lifecycle.RunOrigin) (*store.PipelineRun, error)
	SourcePipelines(ctx context.Context, repos map[string]bool) ([]string, error)
}

// Hooks serves POST /hooks/{name}: a forge's name (github, gitea, forgejo,
// gitlab) reads that forge's delivery and starts the pipelines whose
// source is its repository; any other name is a pipeline's, served by
// Legacy (the generic signed push of server/trigger).
type Hooks struct {
	Sources   *Sources
	Store     *store.Store
	Pipelines Pipelines
	Runs      Runs
	Legacy    http.Handler
	// KeepDeliveries bounds the delivery ids remembered (default
	// DefaultKeepDeliveries).
	KeepDeliveries int
	// Audit, when set, records each run a delivery started.
	Audit func(ctx context.Context, forge forge.Forge, pipeline string, run *store.PipelineRun)
	Log   *slog.Logger
	Now   func() time.Time
}

// Handler is the webhook endpoint.
func (h *Hooks) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hooks/{name}", func(w http.ResponseWriter, r *http.Request) {
		f, ok := forge.Known(r.PathValue("name"))
		if !ok {
			h.Legacy.ServeHTTP(w, r)
			return
		}
		h.serveForge(w, r, f)
	})
	return mux
}

// Started is one run a delivery started; Skipped a pipeline it did not.
type Started struct {
	Pipeline string `json:"pipeline"`
	RunID    string `json:"run_id"`
	Number   int64  `json:"number"`
}

type Skipped struct {
	Pipeline string `json:"pipeline"`
	Reason   string `json:"reason"`
}

// Answer is the body of a delivery's answer.
type Answer struct {
	Event    string    `json:"event,omitempty"`
	Runs     []Started `json:"runs,omitempty"`
	Skipped  []Skipped `json:"skipped,omitempty"`
	Replayed bool      `json:"replayed,omitempty"`
	Ignored  string    `json:"ignored,omitempty"`
}

func answer(w http.ResponseWriter, code int, a Answer) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(a) //nolint:errcheck // best effort
}

// candidate is a pipeline whose source is the delivery's repository, with
// the webhook triggers whose secret signed it.
type candidate struct {
	p        *store.Pipeline
	spec     *jobv1.PipelineDetail
	triggers []*jobv1.Trigger
}

func (h *Hooks) serveForge(w http.ResponseWriter, r *http.Request, f forge.Forge) {
	log := h.Log.With("forge", f)
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxPayload+1))
	if err != nil || len(body) > MaxPayload {
		http.Error(w, fmt.Sprintf("payload unreadable or larger than %d bytes", MaxPayload), http.StatusRequestEntityTooLarge)
		return
	}
	urls, err := forge.RepoURLs(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	repos := map[string]bool{}
	for _, u := range urls {
		if n, err := secrets.NormalizeRepo(u); err == nil {
			repos[n] = true
		}
	}
	cands, err := h.candidates(r.Context(), repos)
	if err != nil {
		log.Warn("webhook: find pipelines", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if len(cands) == 0 {
		http.Error(w, "no pipeline builds this repository", http.StatusNotFound)
		return
	}
	var signed []candidate
	for _, c := range cands {
		var ts []*jobv1.Trigger
		for _, t := range c.triggers {
			if forge.Verify(f, r.Header, body, t.GetSecret()) == nil {
				ts = append(ts, t)
			}
		}
		if len(ts) > 0 {
			c.triggers = ts
			signed = append(signed, c)
		}
	}
	if len(signed) == 0 {
		log.Warn("webhook: bad signature", "remote", r.RemoteAddr, "repository", urls[0])
		http.Error(w, forge.ErrBadSignature.Error(), http.StatusUnauthorized)
		return
	}
	ev, err := forge.Parse(f, r.Header, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if ev.Kind == forge.Deleted || ev.Kind == forge.Ignored {
		log.Info("webhook: nothing to build", "why", ev.Why, "delivery", ev.Delivery)
		answer(w, http.StatusOK, Answer{Event: string(ev.Kind), Ignored: ev.Why})
		return
	}
	// A delivery is a replay for a pipeline when its id, or its signed
	// body, was seen for that pipeline (no forge signs the id header: a
	// captured delivery sent again under a new id is refused by its body).
	// The claim is dropped when the run does not start, so that the
	// forge's redelivery of a failed delivery starts it then.
	sum := sha256.Sum256(body)
	deliveryKeys := []string{string(f) + ":sha256:" + hex.EncodeToString(sum[:])}
	if ev.Delivery != "" {
		deliveryKeys = append(deliveryKeys, string(f)+":"+ev.Delivery)
	}
	out := Answer{Event: string(ev.Kind)}
	replays, failures := 0, 0
	for _, c := range signed {
		claimed, first, err := h.claim(r.Context(), deliveryKeys, c.p.ID)
		if err != nil {
			log.Warn("webhook: record delivery", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		if !first {
			log.Info("webhook: delivery seen before; nothing started", "pipeline", c.p.Name, "delivery", ev.Delivery)
			out.Skipped = append(out.Skipped, Skipped{Pipeline: c.p.Name, Reason: "delivery seen before"})
			replays++
			continue
		}
		reason, err := h.filter(r.Context(), c, ev)
		if err != nil {
			log.Warn("webhook: filter", "pipeline", c.p.Name, "err", err)
			h.forget(claimed)
			out.Skipped = append(out.Skipped, Skipped{Pipeline: c.p.Name, Reason: "error: " + err.Error()})
			failures++
			continue
		}
		if reason != "" {
			out.Skipped = append(out.Skipped, Skipped{Pipeline: c.p.Name, Reason: reason})
			continue
		}
		run, err := h.start(r.Context(), c, ev)
		if err != nil {
			log.Warn("webhook: start run", "pipeline", c.p.Name, "err", err)
			h.forget(claimed)
			out.Skipped = append(out.Skipped, Skipped{Pipeline: c.p.Name, Reason: "error: " + err.Error()})
			failures++
			continue
		}
		if h.Audit != nil {
			h.Audit(r.Context(), f, c.p.Name, run)
		}
		out.Runs = append(out.Runs, Started{Pipeline: c.p.Name, RunID: run.ID, Number: run.Number})
	}
	if replays > 0 && len(out.Runs) == 0 && failures == 0 {
		out.Replayed = true
		answer(w, http.StatusOK, out)
		return
	}
	if failures > 0 {
		// The forge records the delivery as failed; its redelivery starts
		// what did not start now (the rest is seen before).
		answer(w, http.StatusServiceUnavailable, out)
		return
	}
	code := http.StatusAccepted
	if len(out.Runs) > 0 {
		code = http.StatusCreated
	}
	answer(w, code, out)
}

// claim records the delivery keys for a pipeline; first is false when one
// of them was recorded before (a replay). claimed are the keys recorded
// now.
func (h *Hooks) claim(ctx context.Context, keys []string, pipelineID string) (claimed []string, first bool, err error) {
	keep := h.KeepDeliveries
	if keep <= 0 {
		keep = DefaultKeepDeliveries
	}
	first = true
	for _, k := range keys {
		k += " " + pipelineID
		isNew, err := h.Store.FirstDelivery(ctx, k, h.Now(), keep)
		if err != nil {
			h.forget(claimed)
			return nil, false, err
		}
		if isNew {
			claimed = append(claimed, k)
		} else {
			first = false
		}
	}
	return claimed, first, nil
}

// forget drops delivery keys of a run that did not start.
func (h *Hooks) forget(keys []string) {
	for _, k := range keys {
		if err := h.Store.ForgetDelivery(context.Background(), k); err != nil {
			h.Log.Warn("webhook: forget delivery", "err", err)
		}
	}
}

// candidates are the pipelines whose source is one of repos, with their
// webhook triggers (secrets opened), in name order. Only their rows are
// read: the life cycle's index of triggers names them.
func (h *Hooks) candidates(ctx context.Context, repos map[string]bool) ([]candidate, error) {
	ids, err := h.Runs.SourcePipelines(ctx, repos)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	ps, err := h.Store.PipelinesByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(ps, func(a, b *store.Pipeline) int { return strings.Compare(a.Name, b.Name) })
	var out []candidate
	for _, p := range ps {
		spec, err := lifecycle.DecodeSpec(p.Spec)
		if err != nil || spec.GetSource() == nil {
			continue
		}
		n, err := secrets.NormalizeRepo(spec.GetSource().GetUrl())
		if err != nil || !repos[n] {
			continue
		}
		full, err := h.Pipelines.TriggerSecrets(p)
		if err != nil {
			return nil, err
		}
		c := candidate{p: p, spec: full}
		for _, t := range full.GetTriggers() {
			if t.GetType() == jobv1.TriggerType_TRIGGER_TYPE_WEBHOOK {
				c.triggers = append(c.triggers, t)
			}
		}
		if len(c.triggers) > 0 {
			out = append(out, c)
		}
	}
	return out, nil
}

// filter says why no trigger of c takes ev ("" when one does).
func (h *Hooks) filter(ctx context.Context, c candidate, ev *forge.Event) (string, error) {
	var reasons []string
	var changed []string
	changedDone, truncated := false, false
	for _, t := range c.triggers {
		if len(t.GetEvents()) > 0 && !slices.Contains(t.GetEvents(), string(ev.Kind)) {
			reasons = append(reasons, fmt.Sprintf("event %s is not among %s", ev.Kind, strings.Join(t.GetEvents(), ", ")))
			continue
		}
		switch ev.Kind {
		case forge.Tag:
			if len(t.GetTags()) > 0 && !gitref.AnyMatch(t.GetTags(), ev.Tag) {
				reasons = append(reasons, fmt.Sprintf("tag %s matches none of %s", ev.Tag, strings.Join(t.GetTags(), ", ")))
				continue
			}
		default:
			if !gitref.AnyMatch(t.GetBranches(), ev.Branch) {
				reasons = append(reasons, fmt.Sprintf("branch %s matches none of %s", ev.Branch, strings.Join(t.GetBranches(), ", ")))
				continue
			}
		}
		if len(t.GetPaths()) > 0 && ev.Kind != forge.Tag {
			if !changedDone {
				var err error
				changed, truncated, err = h.Sources.ChangedFiles(ctx, c.p, c.spec.GetSource(), ev)
				if err != nil {
					return "", err
				}
				changedDone = true
			}
			if !truncated && !anyPath(t.GetPaths(), changed) {
				reasons = append(reasons, fmt.Sprintf("none of the %d changed files matches %s", len(changed), strings.Join(t.GetPaths(), ", ")))
				continue
			}
		}
		return "", nil
	}
	return strings.Join(reasons, "; "), nil
}

func anyPath(patterns, files []string) bool {
	for _, f := range files {
		if gitref.AnyMatch(patterns, f) {
			return true
		}
	}
	return false
}

// ChangedFiles lists the files an event changes, from the server's mirror:
// a push's before..after, a pull request's merge base..head; a new branch
// (or a before the mirror never saw, after a force push) counts every file.
func (s *Sources) ChangedFiles(ctx context.Context, p *store.Pipeline, src *jobv1.Source, ev *forge.Event) ([]string, bool, error) {
	var extra []string
	if ev.Kind == forge.PullRequest {
		extra = append(extra, ev.Ref)
	}
	mr, err := s.mirror(ctx, p, src, ev.After, extra...)
	if err != nil {
		return nil, false, err
	}
	defer mr.Release()
	from := ev.Before
	if ev.Kind == forge.PullRequest {
		base, _, err := resolve(ctx, mr, "refs/heads/"+ev.PR.BaseBranch)
		if err != nil {
			return nil, false, fmt.Errorf("base branch %s: %w", ev.PR.BaseBranch, err)
		}
		if from, err = mr.MergeBase(ctx, base, ev.After); err != nil {
			return nil, false, fmt.Errorf("merge base of %s and %.12s: %w", ev.PR.BaseBranch, ev.After, err)
		}
	} else if !forge.IsZero(from) && !mr.Has(ctx, from) {
		from = ""
	}
	return mr.ChangedFiles(ctx, from, ev.After, MaxChangedFiles)
}

// start starts the run of c for ev.
func (h *Hooks) start(ctx context.Context, c candidate, ev *forge.Event) (*store.PipelineRun, error) {
	o := lifecycle.RunOrigin{Source: c.spec.GetSource().GetUrl(), Event: string(ev.Kind), Ref: ev.Ref, Commit: ev.After,
		Author: ev.Author, Branch: ev.Branch}
	if ev.Kind == forge.Tag {
		o.Branch = ""
	}
	if pr := ev.PR; pr != nil {
		o.PullRequest, o.PullRequestTitle, o.BaseBranch, o.Branch = pr.Number, pr.Title, pr.BaseBranch, pr.HeadRef
		if pr.Fork {
			o.Untrusted = true
			o.Why = fmt.Sprintf("pull request #%d from fork %s", pr.Number, pr.HeadRepo.FullName)
		}
	}
	if !gitcli.IsSHA(o.Commit) {
		return nil, errors.New("the delivery names no commit")
	}
	return h.Runs.StartRunFrom(ctx, c.p, jobv1.TriggerType_TRIGGER_TYPE_WEBHOOK, ev.Describe(), nil, o)
}
