package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/jobimage"
	"github.com/go-arcade/arcade/core/jobstate"
	"github.com/go-arcade/arcade/core/jobstep"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func statusName(s agentv1.JobStatus) string { return strings.ToUpper(jobstate.Name(s)) }

// printJSON prints m as indented JSON. protojson varies its whitespace on
// purpose; re-indenting makes the output stable for people and scripts.
func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.Marshal(m)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, out.String())
	return err
}

func age(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return time.Since(t.AsTime()).Round(time.Second).String() + " ago"
}

func newJobCmd() *cobra.Command {
	f := &clientFlags{}
	cmd := &cobra.Command{Use: "job", Short: "Create, inspect and control jobs"}
	f.register(cmd)

	var (
		file     string
		name     string
		commands []string
		envs     []string
		secrets  []string
		refs     []string
		selector string
		jlabels  []string
		timeout  time.Duration
		retries  int32
		image    string
		arts     []string
		follow   bool
		uses     string
		with     []string
		pull     string
		regAuth  string
		cpus     float64
		memory   string
		network  string
	)
	create := &cobra.Command{
		Use:   "create [-f FILE] [--cmd CMD]... [-- COMMAND...]",
		Short: "Create a job",
		Example: `  arcade job create --selector 'env in (staging,production),gpu' --cmd 'uname -a' --follow
  arcade job create -f examples/jobs/hello.yaml
  arcade job create --cmd 'go mod tidy' --uses go-lint --with dir=/workspace`,
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &jobv1.CreateJobRequest{}
			if file != "" {
				jf, err := readJobFile(file)
				if err != nil {
					return err
				}
				req = jf.request()
			}
			if len(args) > 0 {
				commands = append(commands, strings.Join(args, " "))
			}
			if len(commands) > 0 {
				req.Commands = commands
			}
			if uses != "" {
				// Commands first, then the plugin, in one workspace.
				if len(req.Commands) > 0 {
					req.Steps = append(req.Steps, &agentv1.Step{Commands: req.Commands})
					req.Commands = nil
				}
				step := &agentv1.Step{Uses: uses}
				if len(with) > 0 {
					step.With = map[string]string{}
					for k, v := range pairs(with) {
						step.With[k] = v.(string)
					}
				}
				req.Steps = append(req.Steps, step)
			} else if len(with) > 0 {
				return fmt.Errorf("--with goes with --uses")
			}
			if name != "" {
				req.Name = name
			}
			if selector != "" {
				req.Selector = selector
			}
			if len(envs) > 0 {
				req.Env = map[string]string{}
				for k, v := range pairs(envs) {
					req.Env[k] = v.(string)
				}
			}
			if len(secrets) > 0 {
				req.Secrets = map[string]string{}
				for k, v := range pairs(secrets) {
					req.Secrets[k] = v.(string)
				}
			}
			if len(refs) > 0 {
				req.SecretRefs = refs
			}
			if len(jlabels) > 0 {
				req.Labels = map[string]string{}
				for k, v := range pairs(jlabels) {
					req.Labels[k] = v.(string)
				}
			}
			if cmd.Flags().Changed("timeout") {
				req.Timeout = durationpb.New(timeout)
			}
			if cmd.Flags().Changed("retries") {
				req.Retries = retries
			}
			if image != "" {
				req.Image = image
			}
			if f := cmd.Flags(); f.Changed("pull") || f.Changed("registry-auth") || f.Changed("cpus") || f.Changed("memory") || f.Changed("network") {
				if req.Container == nil {
					req.Container = &agentv1.ContainerOptions{}
				}
				o := req.Container
				if f.Changed("pull") {
					p, err := jobimage.ParsePullPolicy(pull)
					if err != nil {
						return fmt.Errorf("--pull: %w", err)
					}
					o.PullPolicy = p
				}
				if f.Changed("registry-auth") {
					o.RegistryAuthSecret = regAuth
				}
				if f.Changed("cpus") {
					o.Cpus = cpus
				}
				if f.Changed("memory") {
					m, err := jobimage.ParseMemory(memory)
					if err != nil {
						return fmt.Errorf("--memory: %w", err)
					}
					o.MemoryBytes = m
				}
				if f.Changed("network") {
					o.NetworkMode = network
				}
			}
			if len(arts) > 0 {
				req.Artifacts = &agentv1.ArtifactConfig{Paths: arts}
			}
			c, err := f.dial()
			if err != nil {
				return err
			}
			defer c.close()
			if follow {
				return c.runAndFollow(cmd.Context(), req, cmd.OutOrStdout())
			}
			resp, err := c.jobs.CreateJob(cmd.Context(), req)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), resp.GetJob())
			}
			return printJobs(cmd.OutOrStdout(), f.output, resp.GetJob())
		},
	}
	create.Flags().StringVarP(&file, "file", "f", "", "job file (YAML)")
	create.Flags().StringVar(&name, "name", "", "job name")
	create.Flags().StringArrayVar(&commands, "cmd", nil, "command (repeatable)")
	create.Flags().StringArrayVar(&envs, "env", nil, "environment variable K=V (repeatable)")
	create.Flags().StringArrayVar(&secrets, "secret", nil, "secret K=V: env for the job, stored encrypted, masked as *** in its log (repeatable)")
	create.Flags().StringArrayVar(&refs, "secret-ref", nil, "stored secret NAME (arcade secret set) given to the job as env $NAME, masked in its log (repeatable)")
	create.Flags().StringVar(&selector, "selector", "", "label selector, e.g. 'env in (staging,production),gpu,!spot,cpu-cores>8'")
	create.Flags().StringArrayVar(&jlabels, "label", nil, "label of the job itself k=v (repeatable)")
	create.Flags().DurationVar(&timeout, "timeout", 0, "timeout (0: none)")
	create.Flags().Int32Var(&retries, "retries", 0, "automatic retries on failure")
	create.Flags().StringVar(&image, "image", "", "run the job in this container image (only agents with a container runtime)")
	create.Flags().StringVar(&pull, "pull", "", "with --image: pull policy if-not-present (default), always or never")
	create.Flags().StringVar(&regAuth, "registry-auth", "", "with --image: the name of the --secret holding the registry credential (user:password or docker config JSON)")
	create.Flags().Float64Var(&cpus, "cpus", 0, "with --image: CPUs the container may use (0: no limit)")
	create.Flags().StringVar(&memory, "memory", "", "with --image: memory limit, like 512m or 2g")
	create.Flags().StringVar(&network, "network", "", `with --image: none, host or bridge (default: a network of the job alone)`)
	create.Flags().StringArrayVar(&arts, "artifact", nil, "artifact glob (repeatable)")
	create.Flags().BoolVar(&follow, "follow", false, "print the log until the job ends; exit with its outcome")
	create.Flags().StringVar(&uses, "uses", "", "run plugin NAME[@VERSION] as a step after the commands (a job file mixes steps freely)")
	create.Flags().StringArrayVar(&with, "with", nil, "parameter K=V of the --uses step (repeatable)")

	get := &cobra.Command{
		Use: "get JOB", Short: "Show a job", Args: cobra.ExactArgs(1),
		RunE: f.withAPI(func(cmd *cobra.Command, args []string, c *api) error {
			resp, err := c.jobs.GetJob(cmd.Context(), &jobv1.GetJobRequest{JobId: args[0]})
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), resp.GetJob())
			}
			return printJobDetail(cmd.OutOrStdout(), resp.GetJob())
		}),
	}

	var (
		statuses []string
		lsel     string
		pages    pageFlags
		orderBy  string
	)
	list := &cobra.Command{
		Use: "list", Short: "List jobs, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &jobv1.ListJobsRequest{PageSize: pages.size, LabelSelector: lsel, OrderBy: orderBy}
			for _, s := range statuses {
				st, err := jobstate.Parse(strings.ToLower(s))
				if err != nil {
					return fmt.Errorf("--status: %w", err)
				}
				req.Statuses = append(req.Statuses, st)
			}
			c, err := f.dial()
			if err != nil {
				return err
			}
			defer c.close()
			var (
				jobs  []*jobv1.JobDetail
				total int32
			)
			next, err := pages.fetch(func(token string) (string, error) {
				req.PageToken = token
				resp, err := c.jobs.ListJobs(cmd.Context(), req)
				jobs, total = append(jobs, resp.GetJobs()...), resp.GetTotalSize()
				return resp.GetNextPageToken(), err
			})
			if err != nil {
				return err
			}
			if err := printJobs(cmd.OutOrStdout(), f.output, jobs...); err != nil {
				return err
			}
			pages.more(cmd, cmd.ErrOrStderr(), next, fmt.Sprintf("%d of %d jobs shown", len(jobs), total))
			return nil
		},
	}
	list.Flags().StringArrayVar(&statuses, "status", nil, "only jobs in this status (repeatable)")
	list.Flags().StringVar(&lsel, "label-selector", "", "only jobs whose labels match")
	pages.register(list.Flags(), "jobs", 50)
	list.Flags().StringVar(&orderBy, "order-by", "", "created_at, updated_at, name or status, optionally with ' desc'")

	var (
		reason     string
		cancelWait time.Duration
	)
	cancel := &cobra.Command{
		Use: "cancel JOB", Short: "Cancel a job and print it once it has stopped", Args: cobra.ExactArgs(1),
		Long: `Cancel a job. A pending job ends at once; a running one is stopped by its
agent, and the command waits (--wait) until the job has ended to print it
as it is after the cancel.`,
		RunE: f.withAPI(func(cmd *cobra.Command, args []string, c *api) error {
			resp, err := c.jobs.CancelJob(cmd.Context(), &jobv1.CancelJobRequest{JobId: args[0], Reason: reason})
			if err != nil {
				return err
			}
			j := resp.GetJob()
			if !jobEnded(j.GetStatus()) && cancelWait > 0 {
				j, err = c.waitJobEnd(cmd.Context(), j, cancelWait)
				if err != nil {
					return err
				}
			}
			if !jobEnded(j.GetStatus()) {
				fmt.Fprintf(cmd.ErrOrStderr(), "job %s: cancel requested; its agent has not stopped it yet\n", j.GetId())
			}
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), j)
			}
			return printJobs(cmd.OutOrStdout(), f.output, j)
		}),
	}
	cancel.Flags().StringVar(&reason, "reason", "", "why")
	cancel.Flags().DurationVar(&cancelWait, "wait", 30*time.Second, "how long to wait for a running job to stop (0: do not wait)")

	retry := &cobra.Command{
		Use: "retry JOB", Short: "Run a finished job again as its next attempt", Args: cobra.ExactArgs(1),
		RunE: f.withAPI(func(cmd *cobra.Command, args []string, c *api) error {
			resp, err := c.jobs.RetryJob(cmd.Context(), &jobv1.RetryJobRequest{JobId: args[0]})
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), resp.GetJob())
			}
			return printJobs(cmd.OutOrStdout(), f.output, resp.GetJob())
		}),
	}

	del := &cobra.Command{
		Use: "delete JOB", Short: "Delete a job that is not running, with its logs", Args: cobra.ExactArgs(1),
		RunE: f.withAPI(func(cmd *cobra.Command, args []string, c *api) error {
			_, err := c.jobs.DeleteJob(cmd.Context(), &jobv1.DeleteJobRequest{JobId: args[0]})
			return err
		}),
	}

	var (
		attempt   int32
		followLog bool
	)
	logs := &cobra.Command{
		Use: "logs JOB", Short: "Print a job's log", Args: cobra.ExactArgs(1),
		RunE: f.withAPI(func(cmd *cobra.Command, args []string, c *api) error {
			if followLog {
				return c.follow(cmd.Context(), args[0], attempt, cmd.OutOrStdout())
			}
			color := isTerminal(cmd.OutOrStdout())
			next := int64(1)
			for {
				resp, err := c.jobs.GetJobLog(cmd.Context(), &jobv1.GetJobLogRequest{JobId: args[0], Attempt: attempt, FromLine: next, Limit: 10000})
				if err != nil {
					return err
				}
				for _, l := range resp.GetLines() {
					printLine(cmd.OutOrStdout(), l, color)
				}
				if len(resp.GetLines()) == 0 {
					return nil
				}
				next = resp.GetNextLine()
			}
		}),
	}
	logs.Flags().Int32Var(&attempt, "attempt", 0, "attempt (default: the latest)")
	logs.Flags().BoolVarP(&followLog, "follow", "f", false, "follow the log until the job ends; exit with its outcome")

	cmd.AddCommand(create, get, list, cancel, retry, del, logs, newJobWhyCmd(f))
	return cmd
}

// jobEnded reports whether a job's status is final.
func jobEnded(s agentv1.JobStatus) bool { return jobstate.Terminal(s) }

// waitJobEnd follows a job's status (StreamJobStatus) until it ends or
// wait passes, and returns the job as it is then.
func (c *api) waitJobEnd(ctx context.Context, j *jobv1.JobDetail, wait time.Duration) (*jobv1.JobDetail, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	stream, err := jobv1.NewStreamServiceClient(c.conn).StreamJobStatus(ctx, &jobv1.StreamJobStatusRequest{JobId: j.GetId()})
	if err != nil {
		return j, nil
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return j, nil // ended, timed out or lost: the last state seen
		}
		j = resp.GetJob()
		if jobEnded(j.GetStatus()) {
			return j, nil
		}
	}
}

func printJobs(w io.Writer, output string, jobs ...*jobv1.JobDetail) error {
	if output == "json" {
		return printJSON(w, &jobv1.ListJobsResponse{Jobs: jobs})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tATTEMPT\tAGENT\tCREATED")
	for _, j := range jobs {
		agent := j.GetAgentName()
		if agent == "" {
			agent = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", j.GetId(), j.GetName(), statusName(j.GetStatus()), j.GetAttempt(), agent, age(j.GetCreatedAt()))
	}
	return tw.Flush()
}

func printJobDetail(w io.Writer, j *jobv1.JobDetail) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s:\t%v\n", k, v) }
	row("ID", j.GetId())
	row("Name", j.GetName())
	row("Status", statusName(j.GetStatus()))
	row("Attempt", j.GetAttempt())
	row("Agent", j.GetAgentName())
	row("Exit code", j.GetExitCode())
	if j.GetMessage() != "" {
		row("Message", j.GetMessage())
	}
	row("Created", age(j.GetCreatedAt()))
	row("Started", age(j.GetStartedAt()))
	row("Finished", age(j.GetFinishedAt()))
	if sel := selectorText(j); sel != "" {
		row("Selector", sel)
	}
	if j.GetImage() != "" {
		row("Image", j.GetImage())
		if o := j.GetContainer(); o != nil {
			row("Container", describeContainer(o))
		}
	}
	for i, c := range j.GetCommands() {
		row(fmt.Sprintf("Command %d", i+1), c)
	}
	for i, st := range j.GetSteps() {
		row(fmt.Sprintf("Step %d", i+1), describeStep(st, i))
	}
	if names := append(slices.Clone(j.GetSecretNames()), j.GetSecretRefs()...); len(names) > 0 {
		row("Secrets", strings.Join(names, ", "))
	}
	if j.GetTrustReason() != "" {
		word := "no"
		if j.GetTrustedAgents() {
			word = "yes"
		}
		row("Trusted agents", word+": "+j.GetTrustReason())
	}
	return tw.Flush()
}

// describeContainer is one line for a job's container options.
func describeContainer(o *agentv1.ContainerOptions) string {
	parts := []string{"pull " + jobimage.PullPolicyName(o.GetPullPolicy())}
	if o.GetCpus() > 0 {
		parts = append(parts, fmt.Sprintf("cpus %g", o.GetCpus()))
	}
	if o.GetMemoryBytes() > 0 {
		parts = append(parts, fmt.Sprintf("memory %s", humanSize(o.GetMemoryBytes())))
	}
	if o.GetNetworkMode() != "" {
		parts = append(parts, "network "+o.GetNetworkMode())
	}
	if o.GetRegistryAuthSecret() != "" {
		parts = append(parts, "registry credential from secret "+o.GetRegistryAuthSecret())
	}
	for _, s := range o.GetServices() {
		parts = append(parts, fmt.Sprintf("service %s (%s)", s.GetName(), s.GetImage()))
	}
	return strings.Join(parts, ", ")
}

// humanSize writes a byte count in binary units: 512MiB.
func humanSize(n int64) string {
	for _, u := range []struct {
		unit string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.unit)
		}
	}
	return fmt.Sprintf("%dB", n)
}

// describeStep is one line for a step: its name and what it runs.
func describeStep(st *agentv1.Step, i int) string {
	name := jobstep.Name(st, i)
	var b strings.Builder
	if st.GetUses() == "" {
		fmt.Fprintf(&b, "%s: run %s", name, strings.Join(st.GetCommands(), " && "))
	} else {
		fmt.Fprintf(&b, "%s: uses %s", name, st.GetUses())
		if st.GetFunction() != "" {
			fmt.Fprintf(&b, ", function %s", st.GetFunction())
		}
		if len(st.GetWith()) > 0 {
			var kv []string
			for _, k := range slices.Sorted(maps.Keys(st.GetWith())) {
				kv = append(kv, k+"="+st.GetWith()[k])
			}
			fmt.Fprintf(&b, ", with %s", strings.Join(kv, " "))
		}
	}
	if d := st.GetTimeout().AsDuration(); d > 0 {
		fmt.Fprintf(&b, ", timeout %s", d)
	}
	return b.String()
}

func newAgentListCmd() *cobra.Command {
	f := &clientFlags{}
	var (
		selector string
		pages    pageFlags
	)
	cmd := &cobra.Command{
		Use: "list", Short: "List agents", Args: cobra.NoArgs,
		RunE: f.withAPI(func(cmd *cobra.Command, _ []string, c *api) error {
			var (
				agents []*agentv1.Agent
				total  int32
			)
			next, err := pages.fetch(func(token string) (string, error) {
				resp, err := c.agents.ListAgents(cmd.Context(), &agentv1.ListAgentsRequest{LabelSelector: selector, PageSize: pages.size, PageToken: token})
				agents, total = append(agents, resp.GetAgents()...), resp.GetTotalSize()
				return resp.GetNextPageToken(), err
			})
			if err != nil {
				return err
			}
			if f.output == "json" {
				if err := printJSON(cmd.OutOrStdout(), &agentv1.ListAgentsResponse{Agents: agents, NextPageToken: next, TotalSize: total}); err != nil {
					return err
				}
				pages.more(cmd, cmd.ErrOrStderr(), next, fmt.Sprintf("%d of %d agents shown", len(agents), total))
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tJOBS\tCPU\tMEM\tLAST SEEN\tPLUGINS\tLABELS")
			for _, a := range agents {
				var lbls []string
				for k, v := range a.GetLabels() {
					lbls = append(lbls, k+"="+v)
				}
				sortStrings(lbls)
				plugins := strings.Join(a.GetPlugins(), ",")
				if plugins == "" {
					plugins = "*"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%.0f%%\t%.0f%%\t%s\t%s\t%s\n", a.GetId(), a.GetName(),
					agentState(a), a.GetRunningJobs(), a.GetMaxConcurrentJobs(),
					a.GetMetrics().GetCpuPercent(), a.GetMetrics().GetMemoryPercent(), age(a.GetLastHeartbeatAt()), plugins, strings.Join(lbls, ","))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			pages.more(cmd, cmd.ErrOrStderr(), next, fmt.Sprintf("%d of %d agents shown", len(agents), total))
			return nil
		}),
	}
	f.register(cmd)
	cmd.Flags().StringVar(&selector, "selector", "", "only agents matching this label selector")
	pages.register(cmd.Flags(), "agents", 100)
	return cmd
}

func newAgentRevokeCmd() *cobra.Command {
	f := &clientFlags{}
	var reason string
	cmd := &cobra.Command{
		Use:   "revoke AGENT_ID",
		Short: "Revoke an agent's token: refused at once, channel closed, jobs requeued, no re-registration",
		Args:  cobra.ExactArgs(1),
		RunE: f.withAPI(func(cmd *cobra.Command, args []string, c *api) error {
			resp, err := c.agents.RevokeAgent(cmd.Context(), &agentv1.RevokeAgentRequest{AgentId: args[0], Reason: reason})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "agent %s (%s) revoked\n", resp.GetAgent().GetName(), resp.GetAgent().GetId())
			return nil
		}),
	}
	f.register(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why (logged and sent as an event)")
	return cmd
}

func agentState(a *agentv1.Agent) string {
	if a.GetRevoked() {
		return "REVOKED"
	}
	return strings.TrimPrefix(a.GetStatus().String(), "AGENT_STATUS_")
}
