package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
)

// newLogsCmd is `arcade logs [-f] JOB`, the short form of `arcade job logs`.
func newLogsCmd() *cobra.Command {
	cmd := newJobCmd()
	for _, c := range cmd.Commands() {
		if c.Name() == "logs" {
			cmd.RemoveCommand(c)
			c.Short += " (arcade logs -f JOB follows it like tail -f)"
			c.PersistentFlags().AddFlagSet(cmd.PersistentFlags())
			return c
		}
	}
	panic("job logs command missing")
}

func newEventsCmd() *cobra.Command {
	f := &clientFlags{}
	var (
		types    []string
		resource string
	)
	cmd := &cobra.Command{
		Use:   "events [--type job_finished]... [--resource job/ID]",
		Short: "Print system events as they happen",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &jobv1.StreamEventsRequest{}
			for _, t := range types {
				v, ok := jobv1.EventType_value["EVENT_TYPE_"+strings.ToUpper(t)]
				if !ok || v == 0 {
					return fmt.Errorf("--type: unknown event type %q (e.g. job_created, job_finished, agent_offline, plugin_loaded)", t)
				}
				req.Types = append(req.Types, jobv1.EventType(v))
			}
			if resource != "" {
				req.ResourceType, req.ResourceId, _ = strings.Cut(resource, "/")
			}
			c, err := f.dial()
			if err != nil {
				return err
			}
			defer c.close()
			stream, err := jobv1.NewStreamServiceClient(c.conn).StreamEvents(cmd.Context(), req)
			if err != nil {
				return err
			}
			for {
				resp, err := stream.Recv()
				if err != nil {
					if cmd.Context().Err() != nil {
						return nil
					}
					return err
				}
				e := resp.GetEvent()
				if f.output == "json" {
					if err := printJSON(cmd.OutOrStdout(), e); err != nil {
						return err
					}
					continue
				}
				typ := strings.ToLower(strings.TrimPrefix(e.GetType().String(), "EVENT_TYPE_"))
				fmt.Fprintf(cmd.OutOrStdout(), "%s  %-22s %s/%s  %s %s\n", e.GetTimestamp().AsTime().Local().Format(time.TimeOnly),
					typ, e.GetResourceType(), e.GetResourceId(),
					e.GetMessage(), attrText(e.GetAttributes()))
			}
		},
	}
	f.register(cmd)
	cmd.Flags().StringArrayVar(&types, "type", nil, "only events of this type (repeatable)")
	cmd.Flags().StringVar(&resource, "resource", "", "only events of this resource: job, job/ID, agent/ID, pipeline_run/ID, plugin/NAME, notification/RULE")
	return cmd
}

func attrText(m map[string]string) string {
	var parts []string
	for k, v := range m {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	sortStrings(parts)
	return strings.Join(parts, " ")
}

func newWatchCmd() *cobra.Command {
	f := &clientFlags{}
	cmd := &cobra.Command{
		Use:   "watch RUN_ID",
		Short: "Watch a pipeline run live: stages, jobs, status, durations",
		Args:  cobra.ExactArgs(1),
		RunE: f.withAPI(func(cmd *cobra.Command, args []string, c *api) error {
			stream, err := jobv1.NewStreamServiceClient(c.conn).StreamPipelineStatus(cmd.Context(), &jobv1.StreamPipelineStatusRequest{RunId: args[0]})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			clear := isTerminal(w)
			var last *jobv1.PipelineRun
			for {
				resp, err := stream.Recv()
				if err != nil {
					if last == nil {
						return err
					}
					break // the run ended (or the server went away)
				}
				last = resp.GetRun()
				if clear {
					fmt.Fprint(w, "\x1b[H\x1b[2J")
				}
				if err := showRun(w, f.output, last); err != nil {
					return err
				}
			}
			if last.GetStatus() != agentv1.JobStatus_JOB_STATUS_SUCCESS {
				fmt.Fprintf(os.Stderr, "run %s ended %s\n", last.GetId(), statusName(last.GetStatus()))
				return exitError(1)
			}
			return nil
		}),
	}
	f.register(cmd)
	return cmd
}
