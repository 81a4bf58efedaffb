package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/lmittmann/tint"
	"github.com/spf13/cobra"
)

// globals are the flags every command takes.
type globals struct {
	logLevel  string
	logFormat string
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "arcade",
		Short: "Arcade: a CI/CD server and agents, extended by WebAssembly plugins",
		Long: `Arcade runs jobs on agents chosen by label selectors.

  arcade up                 server + one agent in one process (embedded SQLite)
  arcade run [FILE]         run a pipeline file against the working tree, locally
  arcade server             the server alone
  arcade agent              an agent alone
  arcade job …, arcade agent list   client commands (ARCADE_SERVER, ARCADE_API_TOKEN)`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "auto", "log format: auto (coloured text on a terminal), text, json")
	root.AddCommand(newServerCmd(g), newAgentCmd(g), newUpCmd(g), newRunCmd(g), newJobCmd(), newPipelineCmd(), newPluginCmd(), newVersionCmd(),
		newLogsCmd(), newEventsCmd(), newWatchCmd(), newArtifactCmd(), newSecretCmd(), newTokenCmd(), newAuditCmd(), newTrustCmd())
	reportUnknownCommands(root)
	return root
}

// reportUnknownCommands makes every group of commands (job, pipeline, …)
// say that a command does not exist, with suggestions, before it would
// complain about the flags given to it: `arcade job creat --cmd true` is an
// unknown command "creat", not an unknown flag --cmd.
func reportUnknownCommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		reportUnknownCommands(sub)
	}
	if c.HasParent() && c.HasSubCommands() && c.Run == nil && c.RunE == nil {
		c.FParseErrWhitelist.UnknownFlags = true
		c.Args = cobra.ArbitraryArgs
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf("; did you mean %s?", strings.Join(s, " or "))
			}
			return fmt.Errorf("%s (arcade %s --help lists them)", msg, strings.TrimPrefix(cmd.CommandPath(), "arcade "))
		}
	}
}

// logger builds the process logger: tint on a terminal, JSON on request.
func (g *globals) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	var h slog.Handler
	switch strings.ToLower(g.logFormat) {
	case "json":
		h = slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	case "text":
		h = slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})
	case "auto", "":
		if isTerminal(w) {
			h = tint.NewHandler(w, &tint.Options{Level: level, TimeFormat: time.TimeOnly})
		} else {
			h = slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})
		}
	default:
		return nil, fmt.Errorf("--log-format: want auto, text or json, got %q", g.logFormat)
	}
	return slog.New(nestedComponents{Handler: h}), nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

var version = "dev"

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "arcade", version)
		},
	}
}

func sortStrings(s []string) { slices.Sort(s) }
