package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/pipeline"
)

func newPipelineCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{Use: "pipeline", Aliases: []string{"pipelines", "pl"}, Short: "Define, run and watch pipelines"}
	f.register(cmd)

	var file string
	var secrets []string
	readFile := func() (string, error) {
		if file == "" {
			return "", fmt.Errorf("-f FILE is required (a pipeline file, like .arcade.yaml)")
		}
		raw, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read pipeline file: %w", err)
		}
		return string(raw), nil
	}
	// fromFile is a command that sends the pipeline file through send and
	// shows the pipeline it answers with (create and update).
	fromFile := func(use, short string, send func(ctx context.Context, c *api, yaml string, given *jobv1.PipelineDetail, files map[string]string) (*jobv1.PipelineDetail, error)) *cobra.Command {
		cmd := &cobra.Command{
			Use: use, Short: short, Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				text, err := readFile()
				if err != nil {
					return err
				}
				// A pipeline with a source reads the files it includes from
				// its repository, at each run's commit: none are sent.
				var files map[string]string
				if p, err := pipeline.ParseYAML([]byte(text)); err != nil || p.GetSource().GetUrl() == "" {
					if files, err = bundleIncludes(file, []byte(text)); err != nil {
						return err
					}
				}
				var given *jobv1.PipelineDetail
				if len(secrets) > 0 {
					given = &jobv1.PipelineDetail{Secrets: map[string]string{}}
					for _, kv := range secrets {
						k, v, ok := strings.Cut(kv, "=")
						if !ok {
							return fmt.Errorf("--secret %q: want NAME=VALUE", k)
						}
						given.Secrets[k] = v
					}
				}
				return f.withAPI(func(cmd *cobra.Command, _ []string, c *api) error {
					p, err := send(cmd.Context(), c, text, given, files)
					if err != nil {
						return err
					}
					return showPipeline(cmd.OutOrStdout(), f.output, p)
				})(cmd, nil)
			},
		}
		cmd.Flags().StringVarP(&file, "file", "f", "", "pipeline file (YAML)")
		cmd.Flags().StringArrayVar(&secrets, "secret", nil,
			"secret NAME=VALUE for every job of the pipeline: env, stored encrypted, masked as *** in logs (repeatable; update keeps the current ones unless given)")
		return cmd
	}
	create := fromFile("create -f FILE", "Create a pipeline from a pipeline file",
		func(ctx context.Context, c *api, yaml string, given *jobv1.PipelineDetail, files map[string]string) (*jobv1.PipelineDetail, error) {
			resp, err := c.jobs.CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Yaml: yaml, Pipeline: given, Files: files})
			return resp.GetPipeline(), err
		})
	update := fromFile("update -f FILE", "Replace a pipeline's definition (matched by the name in the file)",
		func(ctx context.Context, c *api, yaml string, given *jobv1.PipelineDetail, files map[string]string) (*jobv1.PipelineDetail, error) {
			resp, err := c.jobs.UpdatePipeline(ctx, &jobv1.UpdatePipelineRequest{Yaml: yaml, Pipeline: given, Files: files})
			return resp.GetPipeline(), err
		})

	get := &cobra.Command{
		Use: "get PIPELINE", Short: "Show a pipeline (by name or id) with its statistics", Args: cobra.ExactArgs(1),
		RunE: f.withAPI(func(cmd *cobra.Command, args []string, c *api) error {
			resp, err := c.jobs.GetPipeline(cmd.Context(), &jobv1.GetPipelineRequest{PipelineId: args[0]})
			if err != nil {
				return err
			}
			return showPipeline(cmd.OutOrStdout(), f.output, resp.GetPipeline())
		}),
	}

	var listPages pageFlags
	list := &cobra.Command{
		Use: "list", Short: "List pipelines", Args: cobra.NoArgs,
		RunE: f.withAPI(func(cmd *cobra.Command, _ []string, c *api) error {
			resp := &jobv1.ListPipelinesResponse{}
			next, err := listPages.fetch(func(token string) (string, error) {
				page, err := c.jobs.ListPipelines(cmd.Context(), &jobv1.ListPipelinesRequest{PageSize: listPages.size, PageToken: token})
				resp.Pipelines = append(resp.Pipelines, page.GetPipelines()...)
				return page.GetNextPageToken(), err
			})
			if err != nil {
				return err
			}
			resp.NextPageToken = next
			defer listPages.more(cmd, cmd.ErrOrStderr(), next, fmt.Sprintf("%d pipelines shown", len(resp.GetPipelines())))
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTAGES\tJOBS\tRUNS\tSUCCESS\tAVG\tLAST")
			for _, p := range resp.GetPipelines() {
				st := p.GetStatistics()
				jobs := 0
				for _, s := range p.GetStages() {
					jobs += len(s.GetJobs())
				}
				last := "-"
				if st.GetLastRunAt() != nil {
					last = statusName(st.GetLastRunStatus()) + " " + st.GetLastRunAt().AsTime().Local().Format("2006-01-02 15:04")
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\n", p.GetName(), len(p.GetStages()), jobs, st.GetTotalRuns(),
					rate(st), average(st), last)
			}
			return tw.Flush()
		}),
	}
	listPages.register(list.Flags(), "pipelines", 100)

	var (
		params []string
		wait   bool
		ref    string
	)
	trig := &cobra.Command{
		Use: "trigger PIPELINE [--param k=v]… [--ref REF]", Short: "Start a run; parameters become env of its jobs", Args: cobra.ExactArgs(1),
		Long: "Start a run. Parameters become env of its jobs. A pipeline with a source builds the head of its\n" +
			"default branch as it is now, or --ref: a branch, tag, full ref or commit id.",
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &jobv1.TriggerPipelineRequest{PipelineId: args[0], Params: map[string]string{}, Ref: ref}
			for _, p := range params {
				k, v, ok := strings.Cut(p, "=")
				if !ok || k == "" {
					return fmt.Errorf("--param: want k=v, got %q", p)
				}
				req.Params[k] = v
			}
			c, err := f.dial()
			if err != nil {
				return err
			}
			defer c.close()
			resp, err := c.jobs.TriggerPipeline(cmd.Context(), req)
			if err != nil {
				return err
			}
			run := resp.GetRun()
			if wait {
				if run, err = c.waitRun(cmd.Context(), run.GetId()); err != nil {
					return err
				}
			}
			if err := showRun(cmd.OutOrStdout(), f.output, run); err != nil {
				return err
			}
			if wait && run.GetStatus() != agentv1.JobStatus_JOB_STATUS_SUCCESS {
				return exitError(1)
			}
			return nil
		},
	}
	trig.Flags().StringArrayVar(&params, "param", nil, "parameter k=v (repeatable)")
	trig.Flags().BoolVar(&wait, "wait", false, "wait until the run ends; exit with its outcome")
	trig.Flags().StringVar(&ref, "ref", "", "for a pipeline with a source: the branch, tag, ref or commit to build (default: its default branch)")

	var reason string
	stop := &cobra.Command{
		Use: "stop RUN", Short: "Stop a run: cancel every pending and running job", Args: cobra.ExactArgs(1),
		RunE: f.withAPI(func(cmd *cobra.Command, args []string, c *api) error {
			resp, err := c.jobs.StopPipeline(cmd.Context(), &jobv1.StopPipelineRequest{RunId: args[0], Reason: reason})
			if err != nil {
				return err
			}
			return showRun(cmd.OutOrStdout(), f.output, resp.GetRun())
		}),
	}
	stop.Flags().StringVar(&reason, "reason", "", "why")

	var runPages pageFlags
	runs := &cobra.Command{
		Use:   "runs PIPELINE [RUN]",
		Short: "List a pipeline's runs, newest first, or show one run (by number or id)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: f.withAPI(func(cmd *cobra.Command, args []string, c *api) error {
			if len(args) == 2 {
				run, err := c.findRun(cmd.Context(), args[0], args[1])
				if err != nil {
					return err
				}
				return showRun(cmd.OutOrStdout(), f.output, run)
			}
			resp := &jobv1.ListPipelineRunsResponse{}
			next, err := runPages.fetch(func(token string) (string, error) {
				page, err := c.jobs.ListPipelineRuns(cmd.Context(), &jobv1.ListPipelineRunsRequest{PipelineId: args[0], PageSize: runPages.size, PageToken: token})
				resp.Runs, resp.TotalSize = append(resp.Runs, page.GetRuns()...), page.GetTotalSize()
				return page.GetNextPageToken(), err
			})
			if err != nil {
				return err
			}
			resp.NextPageToken = next
			defer runPages.more(cmd, cmd.ErrOrStderr(), next, fmt.Sprintf("%d of %d runs shown", len(resp.GetRuns()), resp.GetTotalSize()))
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "#\tSTATUS\tTRIGGER\tBY\tCREATED\tQUEUED\tDURATION\tID")
			for _, r := range resp.GetRuns() {
				queued := "-"
				if r.GetStartedAt() != nil {
					queued = short(r.GetStartedAt().AsTime().Sub(r.GetCreatedAt().AsTime()))
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.GetNumber(), statusName(r.GetStatus()),
					pipeline.TriggerName(r.GetTrigger()), r.GetTriggeredBy(),
					r.GetCreatedAt().AsTime().Local().Format("2006-01-02 15:04:05"), queued, runDuration(r), r.GetId())
			}
			return tw.Flush()
		}),
	}
	runPages.register(runs.Flags(), "runs", 20)

	del := &cobra.Command{
		Use: "delete PIPELINE", Short: "Delete a pipeline with its runs (none may be under way)", Args: cobra.ExactArgs(1),
		RunE: f.withAPI(func(cmd *cobra.Command, args []string, c *api) error {
			_, err := c.jobs.DeletePipeline(cmd.Context(), &jobv1.DeletePipelineRequest{PipelineId: args[0]})
			return err
		}),
	}
	cmd.AddCommand(create, update, get, list, trig, stop, runs, del, newPipelineTrustCmd(), newPipelineLintCmd())
	cmd.AddCommand(newPipelineDecideCmds(&f)...)
	cmd.AddCommand(newPipelineApproveDefinitionCmd(&f))
	return cmd
}

// findRun finds a run of a pipeline by number, or any run by id.
func (c *api) findRun(ctx context.Context, pipelineName, run string) (*jobv1.PipelineRun, error) {
	n, err := strconv.ParseInt(strings.TrimPrefix(run, "#"), 10, 64)
	if err != nil {
		resp, err := c.jobs.GetPipelineRun(ctx, &jobv1.GetPipelineRunRequest{RunId: run})
		if err != nil {
			return nil, err
		}
		return resp.GetRun(), nil
	}
	req := &jobv1.ListPipelineRunsRequest{PipelineId: pipelineName, PageSize: 100}
	for {
		resp, err := c.jobs.ListPipelineRuns(ctx, req)
		if err != nil {
			return nil, err
		}
		for _, r := range resp.GetRuns() {
			if r.GetNumber() == n {
				return r, nil
			}
		}
		if resp.GetNextPageToken() == "" {
			return nil, fmt.Errorf("pipeline %s has no run #%d", pipelineName, n)
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

// waitRun polls a run until it ends.
func (c *api) waitRun(ctx context.Context, id string) (*jobv1.PipelineRun, error) {
	for {
		resp, err := c.jobs.GetPipelineRun(ctx, &jobv1.GetPipelineRunRequest{RunId: id})
		if err != nil {
			return nil, err
		}
		switch resp.GetRun().GetStatus() {
		case agentv1.JobStatus_JOB_STATUS_SUCCESS, agentv1.JobStatus_JOB_STATUS_FAILED, agentv1.JobStatus_JOB_STATUS_CANCELLED:
			return resp.GetRun(), nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// rate is the success rate of the finished runs, "-" before any run
// finished (the server sets the average duration only then).
func rate(st *jobv1.PipelineStatistics) string {
	if st.GetAverageDuration() == nil {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*st.GetSuccessRate())
}

// average is the average duration of the finished runs, "-" before any.
func average(st *jobv1.PipelineStatistics) string {
	if st.GetAverageDuration() == nil {
		return "-"
	}
	return short(st.GetAverageDuration().AsDuration())
}

func runDuration(r *jobv1.PipelineRun) string {
	if r.GetStartedAt() == nil {
		return "-"
	}
	end := time.Now()
	if r.GetFinishedAt() != nil {
		end = r.GetFinishedAt().AsTime()
	}
	return short(end.Sub(r.GetStartedAt().AsTime()))
}

// queuedNote says how long a run waited for its first job to start.
func queuedNote(r *jobv1.PipelineRun) string {
	if r.GetStartedAt() == nil || r.GetCreatedAt() == nil {
		return ""
	}
	return " (queued " + short(r.GetStartedAt().AsTime().Sub(r.GetCreatedAt().AsTime())) + ")"
}

// short rounds a duration for people: milliseconds under a second, tenths
// of a second above.
func short(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

func showPipeline(w io.Writer, output string, p *jobv1.PipelineDetail) error {
	if output == "json" {
		return printJSON(w, p)
	}
	fmt.Fprintf(w, "pipeline %s (%s)\n", p.GetName(), p.GetId())
	if len(p.GetEnv()) > 0 {
		fmt.Fprintf(w, "env: %s\n", envText(p.GetEnv()))
	}
	if len(p.GetSecretNames()) > 0 {
		fmt.Fprintf(w, "secrets: %s\n", strings.Join(p.GetSecretNames(), ", "))
	}
	if len(p.GetSecretRefs()) > 0 {
		fmt.Fprintf(w, "stored secrets: %s\n", strings.Join(p.GetSecretRefs(), ", "))
	}
	if src := p.GetSource(); src != nil {
		branch := src.GetDefaultBranch()
		if branch == "" {
			branch = "main"
		}
		fmt.Fprintf(w, "source: %s, branch %s", src.GetUrl(), branch)
		if src.GetCredential() != "" {
			fmt.Fprintf(w, ", credential from secret %s", src.GetCredential())
		}
		if src.GetDepth() > 0 {
			fmt.Fprintf(w, ", depth %d", src.GetDepth())
		}
		if src.GetSubmodules() {
			fmt.Fprint(w, ", submodules")
		}
		if src.GetDefinitionPath() != "" {
			fmt.Fprintf(w, ", definition from %s in the repository", src.GetDefinitionPath())
		}
		fmt.Fprintln(w)
	}
	for _, t := range p.GetTriggers() {
		desc := pipeline.TriggerName(t.GetType())
		switch t.GetType() {
		case jobv1.TriggerType_TRIGGER_TYPE_CRON:
			desc += fmt.Sprintf(" %q", t.GetCron())
			if t.GetTimezone() != "" {
				desc += " in " + t.GetTimezone()
			}
		case jobv1.TriggerType_TRIGGER_TYPE_WEBHOOK:
			desc += " POST /hooks/" + p.GetName()
			if p.GetSource() != nil {
				desc += " or /hooks/{github,gitea,forgejo,gitlab}"
			}
			if len(t.GetEvents()) > 0 {
				desc += ", events " + strings.Join(t.GetEvents(), ", ")
			}
			if len(t.GetBranches()) > 0 {
				desc += ", branches " + strings.Join(t.GetBranches(), ", ")
			}
			if len(t.GetTags()) > 0 {
				desc += ", tags " + strings.Join(t.GetTags(), ", ")
			}
			if len(t.GetPaths()) > 0 {
				desc += ", paths " + strings.Join(t.GetPaths(), ", ")
			}
		case jobv1.TriggerType_TRIGGER_TYPE_PIPELINE:
			desc += " after " + t.GetPipeline() + " succeeds"
		}
		fmt.Fprintf(w, "trigger: %s\n", desc)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tJOB\tDEPENDS ON\tWHEN\tRUNS")
	for _, s := range p.GetStages() {
		for _, j := range s.GetJobs() {
			what := strings.Join(j.GetCommands(), "; ")
			if j.GetUses() != "" {
				what = "uses " + j.GetUses()
			}
			if len(j.GetSteps()) > 0 {
				var parts []string
				for _, st := range j.GetSteps() {
					if st.GetUses() != "" {
						parts = append(parts, "uses "+st.GetUses())
					} else {
						parts = append(parts, strings.Join(st.GetCommands(), "; "))
					}
				}
				what = strings.Join(parts, ", then ")
			}
			if len(what) > 50 {
				what = what[:50] + "…"
			}
			deps := strings.Join(j.GetDependsOn(), ",")
			if deps == "" {
				deps = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.GetName(), j.GetName(), deps, pipeline.WhenName(j.GetWhen()), what)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	st := p.GetStatistics()
	fmt.Fprintf(w, "runs: %d, success rate %s, average %s", st.GetTotalRuns(), rate(st), average(st))
	if st.GetLastRunAt() != nil {
		fmt.Fprintf(w, ", last %s at %s", statusName(st.GetLastRunStatus()), st.GetLastRunAt().AsTime().Local().Format(time.DateTime))
	}
	fmt.Fprintln(w)
	return nil
}

// startedBy says what started a run in one phrase: its cause when that
// names the trigger already (`cron "0 * * * *" at …`, `pipeline build run
// #3 succeeded`), else the trigger and the cause (`manual trigger: api by
// api_token`).
func startedBy(r *jobv1.PipelineRun) string {
	name, by := pipeline.TriggerName(r.GetTrigger()), r.GetTriggeredBy()
	switch {
	case by == "":
		return name + " trigger"
	case strings.HasPrefix(by, name+" "):
		return by
	}
	return name + " trigger: " + by
}

// showRun prints the one-screen view of a run: a header, then every job by
// stage with its status, attempt, agent and duration.
func showRun(w io.Writer, output string, r *jobv1.PipelineRun) error {
	if output == "json" {
		return printJSON(w, r)
	}
	fmt.Fprintf(w, "%s run #%d  %s  %s%s\n", r.GetPipelineName(), r.GetNumber(), statusName(r.GetStatus()), runDuration(r), queuedNote(r))
	fmt.Fprintf(w, "id %s, %s", r.GetId(), startedBy(r))
	if len(r.GetParams()) > 0 {
		fmt.Fprintf(w, ", params %s", envText(r.GetParams()))
	}
	fmt.Fprintln(w)
	if r.GetCommit() != "" {
		fmt.Fprintf(w, "%s %s at %s", r.GetEvent(), r.GetRef(), r.GetCommit())
		if r.GetAuthor() != "" {
			fmt.Fprintf(w, " by %s", r.GetAuthor())
		}
		if r.GetPullRequest() > 0 {
			fmt.Fprintf(w, ", pull request #%d %q", r.GetPullRequest(), r.GetPullRequestTitle())
		}
		if r.GetUntrustedOrigin() {
			fmt.Fprint(w, " (untrusted: no secrets, no trusted agents, no cache writes)")
		}
		fmt.Fprintln(w)
	}
	if r.GetDefinition() != "" && r.GetDefinition() != "stored pipeline" {
		fmt.Fprintf(w, "definition: %s\n", r.GetDefinition())
	}
	if r.GetUrl() != "" {
		fmt.Fprintln(w, r.GetUrl())
	}
	if r.GetMessage() != "" {
		fmt.Fprintln(w, r.GetMessage())
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tJOB\tSTATUS\tTRY\tAGENT\tTOOK\tNOTE")
	prev := ""
	for _, j := range r.GetJobs() {
		stage := j.GetStage()
		if stage == prev {
			stage = ""
		}
		prev = j.GetStage()
		took := "-"
		if j.GetStartedAt() != nil {
			end := time.Now()
			if j.GetFinishedAt() != nil {
				end = j.GetFinishedAt().AsTime()
			}
			took = short(end.Sub(j.GetStartedAt().AsTime()))
		}
		note := j.GetMessage()
		if j.GetHeld() != "" {
			note = j.GetHeld()
		}
		if a := j.GetApproval(); a.GetDecision() != "" {
			note = fmt.Sprintf("%s by %s at %s", a.GetDecision(), a.GetBy(), a.GetAt().AsTime().Local().Format("15:04:05"))
		}
		if len(note) > 60 {
			note = note[:60] + "…"
		}
		try, agent := "-", "-"
		if j.GetId() != "" {
			try = strconv.Itoa(int(j.GetAttempt()))
		}
		if j.GetAgentName() != "" {
			agent = j.GetAgentName()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", stage, j.GetName(), statusName(j.GetStatus()), try, agent, took, note)
	}
	return tw.Flush()
}

func envText(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, " ")
}
