package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/labels"
)

// newJobWhyCmd is `arcade job why JOB`: why a job waits.
func newJobWhyCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "why JOB",
		Short: "Explain why a job waits: each agent's failing selector terms, full agents, place in the queue",
		Args:  cobra.ExactArgs(1),
		RunE: f.withAPI(func(cmd *cobra.Command, args []string, c *api) error {
			resp, err := c.jobs.ExplainJob(cmd.Context(), &jobv1.ExplainJobRequest{JobId: args[0]})
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			return printExplanation(cmd.OutOrStdout(), resp)
		}),
	}
}

func printExplanation(w io.Writer, r *jobv1.ExplainJobResponse) error {
	j := r.GetJob()
	fmt.Fprintf(w, "Job %s (%s): %s\n", j.GetId(), j.GetName(), statusName(j.GetStatus()))
	if sel := selectorText(j); sel != "" {
		fmt.Fprintf(w, "Selector: %s\n", sel)
	}
	if r.GetQueuePosition() > 0 {
		fmt.Fprintf(w, "Queue: %d of %d pending\n", r.GetQueuePosition(), r.GetQueueLength())
	}
	fmt.Fprintf(w, "Summary: %s\n\n", r.GetSummary())
	if len(r.GetAgents()) == 0 {
		fmt.Fprintln(w, "No agents are registered.")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AGENT\tSTATUS\tJOBS\tFIT\tWHY NOT")
	for _, a := range r.GetAgents() {
		fit, why := "matches", "-"
		switch {
		case !a.GetMatches():
			fit, why = "no", strings.Join(a.GetFailedTerms(), "; ")
		case len(a.GetMissingPlugins()) > 0:
			fit, why = "no", "missing plugins: "+strings.Join(a.GetMissingPlugins(), ", ")
		case a.GetFull():
			fit, why = "full", fmt.Sprintf("running %d of %d jobs", a.GetRunningJobs(), a.GetMaxConcurrentJobs())
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\n", a.GetAgentName(), strings.TrimPrefix(a.GetStatus().String(), "AGENT_STATUS_"),
			a.GetRunningJobs(), a.GetMaxConcurrentJobs(), fit, why)
	}
	return tw.Flush()
}

// selectorText writes a job's selector in the text form.
func selectorText(j *jobv1.JobDetail) string {
	sel, err := labels.FromProto(j.GetLabelSelector())
	if err != nil {
		return ""
	}
	return sel.String()
}
