package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	coreevents "github.com/go-arcade/arcade/core/events"
	"google.golang.org/protobuf/types/known/timestamppb"
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
		since    string
		last     int32
	)
	cmd := &cobra.Command{
		Use:   "events [--type NAME]... [--resource job/ID] [--since 10m|TIME|EVENT_ID | --last N]",
		Short: "Print system events: the stored history (--since, --last), then live ones",
		Long: `Print system events as they happen. With --since or --last, the events the
server keeps (event_history in server.yaml) come first.

Event names (--type; FAMILY.* selects a family):
` + eventNamesHelp(),
		Example: `  arcade events --type job.failed --type agent.offline
  arcade events --since 1h --type 'notification.*'
  arcade events --last 20 --resource job/JOB_ID`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &jobv1.StreamEventsRequest{Last: last}
			for _, t := range types {
				p, alias, err := coreevents.Parse(t)
				if err != nil {
					return fmt.Errorf("--type: %w", err)
				}
				if alias {
					fmt.Fprintf(cmd.ErrOrStderr(), "arcade: warning: --type %s is an older spelling of %s\n", t, p)
				}
				req.Names = append(req.Names, p.String())
			}
			if resource != "" {
				req.ResourceType, req.ResourceId, _ = strings.Cut(resource, "/")
			}
			if since != "" {
				if last != 0 {
					return errors.New("--since and --last: give one of them")
				}
				id, at, err := parseSince(since, time.Now())
				if err != nil {
					return err
				}
				req.SinceId = id
				if !at.IsZero() {
					req.SinceTime = timestamppb.New(at)
				}
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
				if resp.GetHistoryEnd() {
					fmt.Fprintln(cmd.ErrOrStderr(), "-- live events from here --")
					continue
				}
				if f.output == "json" {
					if err := printJSON(cmd.OutOrStdout(), e); err != nil {
						return err
					}
					continue
				}
				name := e.GetName()
				if name == "" {
					name = string(coreevents.Of(e))
				}
				at := e.GetTimestamp().AsTime().Local()
				when := at.Format(time.TimeOnly)
				if y, m, d := at.Date(); y != time.Now().Year() || m != time.Now().Month() || d != time.Now().Day() {
					when = at.Format(time.DateTime)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s  %s\n", when, eventLine(name, e))
			}
		},
	}
	f.register(cmd)
	cmd.Flags().StringArrayVar(&types, "type", nil, "only events of this name or family, e.g. job.failed, job.* (repeatable)")
	cmd.Flags().StringVar(&resource, "resource", "", "only events of this resource: job, job/ID, agent/ID, pipeline_run/ID, plugin/NAME, notification/RULE")
	cmd.Flags().StringVar(&since, "since", "", "start with the stored events since a time ago (10m, 2h), a time (2026-12-06T10:00:00Z) or after an event id")
	cmd.Flags().Int32Var(&last, "last", 0, "start with the newest N stored events")
	return cmd
}

// eventNamesHelp lists the event names, one a line, for help texts.
func eventNamesHelp() string {
	var b strings.Builder
	for _, d := range coreevents.Defs() {
		fmt.Fprintf(&b, "  %-24s %s\n", d.Name, d.Help)
	}
	b.WriteString("  job.finished             succeeded, failed, timeout or skipped\n")
	b.WriteString("  pipeline.status          any pipeline.* event\n")
	return b.String()
}

// parseSince reads --since: a duration back from now, a time (RFC 3339, or
// a date and time in the local zone), or else an event id.
func parseSince(s string, now time.Time) (id string, at time.Time, err error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return "", time.Time{}, fmt.Errorf("--since %s: want a duration back from now (10m), not a negative one", s)
		}
		return "", now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return "", t, nil
	}
	for _, layout := range []string{time.DateTime, "2006-01-02T15:04:05", "2006-01-02 15:04", time.DateOnly} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return "", t, nil
		}
	}
	if strings.ContainsAny(s, " :") || len(s) > 64 {
		return "", time.Time{}, fmt.Errorf("--since %q: want a duration (10m), a time (2026-12-06T10:00:00Z) or an event id", s)
	}
	return s, time.Time{}, nil
}

// eventLine is an event as `arcade events` prints it after the time: its
// name, resource, message and attributes, without the name said again (a
// notification's message and "event" attribute repeat it).
func eventLine(name string, e *jobv1.Event) string {
	parts := []string{fmt.Sprintf("%-22s %s/%s", name, e.GetResourceType(), e.GetResourceId())}
	if msg := e.GetMessage(); msg != "" && msg != name {
		parts = append(parts, strings.TrimPrefix(msg, name+": "))
	}
	attrs := map[string]string{}
	for k, v := range e.GetAttributes() {
		if v != name {
			attrs[k] = v
		}
	}
	if a := attrText(attrs); a != "" {
		parts = append(parts, a)
	}
	return strings.Join(parts, "  ")
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
