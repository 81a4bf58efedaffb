package lifecycle

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/jobstate"
	"github.com/go-arcade/arcade/server/secrets"
	"github.com/go-arcade/arcade/server/store"
)

// This file holds what a run's origin decides: which stored secrets its jobs
// get, and whether they may use trusted agents. The rule for trusted agents:
// a pipeline job may run on one only when its run may — the pipeline is
// allowed on trusted agents (by an admin), the run is of an allowed branch
// (when the pipeline names branches and the run names one), and the run is
// not of untrusted origin (a pull request from a fork). The dispatcher
// (dispatch.Matches, and store.ClaimBatch in SQL) holds to what the job
// says, whatever its selector.

// RunOrigin is where a run comes from, as its trigger knows it. Manual,
// cron, API and pipeline-completed runs have none.
type RunOrigin struct {
	// Source is the repository the run is of (any URL form; normalized):
	// the run's jobs get its source-scoped secrets.
	Source string
	// Branch is the branch the run is of.
	Branch string
	// Untrusted marks a run from outside the trusted circle, such as a pull
	// request from a fork: its jobs get no secrets and never run on trusted
	// agents. Why says so for people ("pull request #12 from a fork").
	Untrusted bool
	Why       string

	// What started the run: the event (push, tag, pull_request, manual,
	// cron, api, pipeline), the ref and commit built (Commit empty: the
	// pipeline's source resolves Ref, or its default branch, when the run
	// starts), the author, the pull request.
	Event            string
	Ref              string
	Commit           string
	Author           string
	PullRequest      int64
	PullRequestTitle string
	// BaseBranch is a pull request's base branch: a pull request from a
	// fork runs the definition found there.
	BaseBranch string
	// DefinitionApprovedBy names who approved a fork's pull request's own
	// definition (ApproveRunDefinition): the run follows it, at Commit,
	// still of untrusted origin.
	DefinitionApprovedBy string
	// Spec, when set, is the definition the run follows instead of the
	// stored one (read from the repository); Definition says where it came
	// from. DefinitionError, when set, ends the run FAILED at once with it
	// (a broken definition file: its validation errors).
	Spec            []byte
	Definition      string
	DefinitionError string
}

// applyOrigin records a run's origin and what it decides.
func (l *Lifecycle) applyOrigin(r *store.PipelineRun, p *store.Pipeline, o RunOrigin) {
	r.UntrustedOrigin, r.Branch = o.Untrusted, o.Branch
	r.Event, r.Ref, r.Commit, r.Author = o.Event, o.Ref, o.Commit, o.Author
	r.PullRequest, r.PullRequestTitle = o.PullRequest, o.PullRequestTitle
	r.Definition = o.Definition
	if len(o.Spec) > 0 {
		r.Spec = o.Spec
	}
	if o.Source != "" {
		if repo, err := secrets.NormalizeRepo(o.Source); err == nil {
			r.Source = repo
		} else {
			l.log.Warn("run source not understood; its source-scoped secrets are not given", "pipeline", p.Name, "source", o.Source, "err", err)
		}
	}
	r.TrustedAgents, r.TrustReason = runTrust(p, o)
	if r.UntrustedOrigin {
		r.Secrets = nil
	}
}

// runTrust decides whether the jobs of a run of p from origin o may use
// trusted agents, and says why.
func runTrust(p *store.Pipeline, o RunOrigin) (bool, string) {
	switch {
	case o.Untrusted:
		why := o.Why
		if why == "" {
			why = "untrusted origin"
		}
		return false, fmt.Sprintf("run of untrusted origin (%s): no secrets, no trusted agents", why)
	case !p.TrustedAgents:
		return false, fmt.Sprintf("pipeline %s is not allowed on trusted agents (an admin allows it: arcade pipeline trust %s)", p.Name, p.Name)
	case o.Branch != "" && len(p.TrustedBranches) > 0 && !branchAllowed(p.TrustedBranches, o.Branch):
		return false, fmt.Sprintf("branch %s is not one pipeline %s may use trusted agents for (%s)", o.Branch, p.Name, strings.Join(p.TrustedBranches, ", "))
	case o.Branch != "":
		return true, fmt.Sprintf("pipeline %s is allowed on trusted agents for branch %s", p.Name, o.Branch)
	}
	return true, fmt.Sprintf("pipeline %s is allowed on trusted agents", p.Name)
}

func branchAllowed(patterns []string, branch string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, branch); ok || p == branch {
			return true
		}
	}
	return false
}

// jobSecretRefs are the stored secrets a pipeline job gets: the pipeline's
// and its own.
func jobSecretRefs(spec *jobv1.PipelineDetail, j *jobv1.PipelineJob) []string {
	refs := append(slices.Clone(spec.GetSecretRefs()), j.GetSecrets()...)
	if len(refs) == 0 {
		return nil
	}
	slices.Sort(refs)
	return slices.Compact(refs)
}

// missingRunSecrets says which stored secrets a new run's jobs reference
// that do not exist in the run's scopes (deleted since the pipeline was
// created), "" when none.
func (l *Lifecycle) missingRunSecrets(ctx context.Context, r *store.PipelineRun) (string, error) {
	if r.UntrustedOrigin {
		return "", nil // it gets none
	}
	spec, err := DecodeSpec(r.Spec)
	if err != nil {
		return "", err
	}
	users := map[string][]string{} // secret → jobs
	var names []string
	for _, st := range spec.GetStages() {
		for _, j := range st.GetJobs() {
			for _, ref := range jobSecretRefs(spec, j) {
				if users[ref] == nil {
					names = append(names, ref)
				}
				users[ref] = append(users[ref], j.GetName())
			}
		}
	}
	if len(names) == 0 {
		return "", nil
	}
	found, err := l.store.FindSecrets(ctx, store.SecretQuery{Names: names, Pipeline: r.PipelineID, Source: r.Source})
	if err != nil {
		return "", err
	}
	var missing []string
	for _, n := range names {
		if found[n] == nil {
			missing = append(missing, fmt.Sprintf("%s (jobs %s)", n, strings.Join(users[n], ", ")))
		}
	}
	if len(missing) == 0 {
		return "", nil
	}
	where := "global, pipeline " + r.PipelineName
	if r.Source != "" {
		where += ", source " + r.Source
	}
	return fmt.Sprintf("stored secrets not found: %s (looked in: %s); deleted? set them again with arcade secret set, or drop the references",
		strings.Join(missing, "; "), where), nil
}

// failRunAtStart ends a run that cannot start FAILED with the reason; its
// jobs are recorded SKIPPED.
func (l *Lifecycle) failRunAtStart(ctx context.Context, runID, reason string) error {
	rp, err := l.runPlan(ctx, runID)
	if err != nil {
		return err
	}
	defer l.plans.forget(runID)
	now := l.now()
	r, err := l.store.ModifyRun(ctx, runID, func(r *store.PipelineRun, _ []*store.Job) (store.RunChange, error) {
		var ch store.RunChange
		if err := setRunStatus(r, jobstate.Running, now); err != nil {
			return ch, err
		}
		if err := setRunStatus(r, jobstate.Failed, now); err != nil {
			return ch, err
		}
		r.Message = reason
		for _, n := range rp.plan.Nodes {
			j := newRunJob(r, rp.spec, n, now)
			j.Status, j.FinishedAt, j.Message = jobstate.Name(jobstate.Skipped), now, "not run: "+reason
			ch.Insert = append(ch.Insert, j)
		}
		return ch, nil
	})
	if err != nil {
		return err
	}
	l.log.Warn("pipeline run failed before it started", "pipeline", r.PipelineName, "run", r.ID, "number", r.Number, "reason", reason)
	l.fx.RunEvent(r)
	return nil
}
