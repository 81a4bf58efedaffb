package service

import (
	"context"
	"fmt"
	"slices"
	"strings"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/labels"
	"github.com/go-arcade/arcade/server/store"
)

// ExplainJob implements JobService.ExplainJob: how every agent stands
// against a job's selector, capacity and plugins, and the job's place in
// the queue.
func (js *JobServer) ExplainJob(ctx context.Context, req *jobv1.ExplainJobRequest) (*jobv1.ExplainJobResponse, error) {
	s := js.s
	j, err := js.get(ctx, req.GetJobId())
	if err != nil {
		return nil, err
	}
	detail := jobDetail(j)
	resp := &jobv1.ExplainJobResponse{Job: detail}
	sel, selErr := labels.Parse(j.Selector)

	agents, _, err := s.store.ListAgents(ctx, store.AgentFilter{}, store.Page{Order: store.Order{Column: "name"}})
	if err != nil {
		return nil, storeError(err, "agents")
	}
	counts, err := s.store.RunningCounts(ctx)
	if err != nil {
		return nil, storeError(err, "agents")
	}
	uses := stepPlugins(detail.GetSteps())
	for _, a := range agents {
		ap := s.agentProto(ctx, a, counts[a.ID])
		fit := &jobv1.AgentFit{
			AgentId: a.ID, AgentName: a.Name, Status: ap.GetStatus(),
			RunningJobs: int32(counts[a.ID]), MaxConcurrentJobs: max(a.MaxJobs, 1),
		}
		if selErr != nil {
			fit.FailedTerms = append(fit.FailedTerms, fmt.Sprintf("selector %q cannot be read: %v", j.Selector, selErr))
		} else {
			for _, f := range sel.Explain(a.Labels) {
				fit.FailedTerms = append(fit.FailedTerms, f.String())
			}
		}
		if j.Image != "" && a.Labels[labels.ContainerRuntime] == "" {
			fit.FailedTerms = append(fit.FailedTerms, fmt.Sprintf("image %s: agent has no %s label (no container runtime)", j.Image, labels.ContainerRuntime))
		}
		if len(j.Checkout) > 0 && a.Labels[labels.Git] == "" {
			fit.FailedTerms = append(fit.FailedTerms, fmt.Sprintf("checkout: agent has no %s label (git not found when it started)", labels.Git))
		}
		fit.Trusted = a.Trusted
		if a.Trusted && !j.TrustedAgents {
			fit.TrustRefused = j.TrustReason
			fit.FailedTerms = append(fit.FailedTerms, "trusted agent: this job may not run on trusted agents: "+j.TrustReason)
		}
		fit.Matches = len(fit.FailedTerms) == 0
		fit.Full = fit.Matches && fit.RunningJobs >= fit.MaxConcurrentJobs
		fit.MissingPlugins = missingPlugins(uses, ap.GetPlugins())
		resp.Agents = append(resp.Agents, fit)
	}
	if status(j) != agentv1.JobStatus_JOB_STATUS_PENDING {
		resp.Summary = notWaiting(j)
		return resp, nil
	}
	if held, err := s.heldSummary(ctx, j); err != nil || held != "" {
		resp.Summary = held
		return resp, err
	}
	place, length, err := s.store.QueuePlace(ctx, j)
	if err != nil {
		return nil, storeError(err, "queue")
	}
	resp.QueuePosition, resp.QueueLength = int32(place), int32(length)
	resp.Summary = summarize(resp.GetAgents(), agents, place)
	if s.plugins != nil {
		var compiling []string
		for _, name := range j.Plugins {
			if s.plugins.Compiling(name) {
				compiling = append(compiling, name)
			}
		}
		if len(compiling) > 0 {
			resp.Summary = fmt.Sprintf("waits for plugin %s, which the server is still compiling; then: %s", strings.Join(compiling, ", "), resp.Summary)
		}
	}
	return resp, nil
}

// notWaiting sums up a job that is not in the queue.
func notWaiting(j *store.Job) string {
	st := strings.TrimPrefix(status(j).String(), "JOB_STATUS_")
	if j.AgentName != "" {
		return fmt.Sprintf("not waiting: the job is %s on agent %s", st, j.AgentName)
	}
	return "not waiting: the job is " + st
}

// summarize writes the one line of a pending job's explanation.
func summarize(fits []*jobv1.AgentFit, agents []*store.Agent, place int) string {
	var ready, full, offline int
	var refused []string
	for i, f := range fits {
		usable := agents[i].Online && !agents[i].Revoked
		switch {
		case f.GetMatches() && len(f.GetMissingPlugins()) > 0:
			if usable {
				refused = append(refused, fmt.Sprintf("%s: missing plugins %s", f.GetAgentName(), strings.Join(f.GetMissingPlugins(), ", ")))
			}
		case f.GetMatches() && !usable:
			offline++
		case f.GetMatches() && f.GetFull():
			full++
		case f.GetMatches():
			ready++
		case usable:
			refused = append(refused, f.GetAgentName()+": "+strings.Join(f.GetFailedTerms(), "; "))
		}
	}
	switch {
	case ready > 0 && place <= 1:
		return fmt.Sprintf("next in queue: %s with a free slot", agentCount(ready, "matches", "match"))
	case ready > 0:
		return fmt.Sprintf("%d jobs ahead in the queue; %s with a free slot", place-1, agentCount(ready, "matches", "match"))
	case full > 0:
		return fmt.Sprintf("%s but %s full", agentCount(full, "matches", "match"), plural(full, "is", "are"))
	}
	var b strings.Builder
	b.WriteString("no online agent matches")
	if len(refused) > 0 {
		const most = 3
		b.WriteString(": ")
		b.WriteString(strings.Join(refused[:min(len(refused), most)], " | "))
		if len(refused) > most {
			fmt.Fprintf(&b, " | and %d more", len(refused)-most)
		}
	}
	if offline > 0 {
		fmt.Fprintf(&b, " (%s offline or revoked)", agentCount(offline, "matches but is", "match but are"))
	}
	return b.String()
}

func agentCount(n int, one, many string) string {
	if n == 1 {
		return "1 agent " + one
	}
	return fmt.Sprintf("%d agents %s", n, many)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// stepPlugins returns the plugin names the steps use, without versions.
func stepPlugins(steps []*agentv1.Step) []string {
	var out []string
	for _, st := range steps {
		name, _, _ := strings.Cut(st.GetUses(), "@")
		if name = strings.TrimSpace(name); name != "" && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// missingPlugins returns the plugins of uses an agent does not run: none
// when it runs any ("*" or nothing said), all of them when it runs none
// ("-").
func missingPlugins(uses, runs []string) []string {
	if len(uses) == 0 || len(runs) == 0 || slices.Contains(runs, "*") {
		return nil
	}
	var out []string
	for _, u := range uses {
		if !slices.Contains(runs, u) {
			out = append(out, u)
		}
	}
	return out
}

// heldSummary says why a held job waits ("" when it is not held): for
// its approval, or for its concurrency group and the job that holds it.
func (s *Service) heldSummary(ctx context.Context, j *store.Job) (string, error) {
	switch j.Hold {
	case store.HoldApproval:
		return fmt.Sprintf("held: waiting for approval until %s (arcade pipeline approve %s %s, or reject)",
			j.ApprovalExpiresAt.UTC().Format("2006-01-02 15:04:05Z"), j.RunID, quoteArg(j.Name)), nil
	case store.HoldConcurrency:
		jobs, err := s.store.GroupJobs(ctx, j.ConcurrencyGroup)
		if err != nil {
			return "", storeError(err, "concurrency group")
		}
		ahead := 0
		for _, o := range jobs {
			if o.ID == j.ID {
				break
			}
			if status(o) == agentv1.JobStatus_JOB_STATUS_RUNNING || o.Hold == store.HoldNone {
				return fmt.Sprintf("held: waiting for concurrency group %s, held by job %s (%s, %s)", j.ConcurrencyGroup, o.Name, o.ID, o.Status), nil
			}
			ahead++
		}
		return fmt.Sprintf("held: waiting for concurrency group %s (%d job(s) of the group ahead)", j.ConcurrencyGroup, ahead), nil
	}
	return "", nil
}
