package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
)

func newPluginCmd() *cobra.Command {
	f := &clientFlags{}
	cmd := &cobra.Command{Use: "plugin", Short: "Inspect, call and reload the server's plugins"}
	f.register(cmd)

	var kind string
	list := &cobra.Command{
		Use: "list", Short: "List plugins", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &pluginv1.ListPluginsRequest{}
			if kind != "" {
				k, ok := pluginv1.Kind_value["KIND_"+strings.ToUpper(kind)]
				if !ok {
					return fmt.Errorf("--kind: want ci, cd, security, notify, storage or custom, got %q", kind)
				}
				req.Kind = pluginv1.Kind(k)
			}
			c, err := f.dial()
			if err != nil {
				return err
			}
			defer c.close()
			resp, err := pluginv1.NewPluginServiceClient(c.conn).ListPlugins(cmd.Context(), req)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKIND\tVERSION\tSTATE\tINSTANCES\tFUNCTIONS\tERROR")
			for _, p := range resp.GetPlugins() {
				m := p.GetMetadata()
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", p.GetName(), kindName(pluginKind(p)), dash(m.GetVersion()),
					stateName(p.GetState()), p.GetInstances(), p.GetMaxInstances(),
					dash(strings.Join(m.GetFunctions(), ",")), problem(p))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&kind, "kind", "", "only plugins of this kind")

	info := &cobra.Command{
		Use: "info NAME", Short: "Show a plugin: metadata, grants, state", Args: cobra.ExactArgs(1),
		RunE: f.withAPI(func(cmd *cobra.Command, args []string, c *api) error {
			resp, err := pluginv1.NewPluginServiceClient(c.conn).GetPlugin(cmd.Context(), &pluginv1.GetPluginRequest{Name: args[0]})
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), resp.GetPlugin())
			}
			return printPluginInfo(cmd.OutOrStdout(), resp.GetPlugin())
		}),
	}

	var (
		input, action, params string
		paramList             []string
	)
	call := &cobra.Command{
		Use:   "call NAME FUNCTION [--input JSON|@FILE|-] [--action ACTION --params JSON --param K=V...]",
		Short: "Call a plugin function with a JSON input and print its JSON output",
		Example: `  arcade plugin call semver execute --action next --param bump=minor
  arcade plugin call semver execute --action next --params '{"bump":"minor"}'
  arcade plugin call secret-scan audit --input @request.json`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			execute := action != "" || params != "" || len(paramList) > 0
			if execute && cmd.Flags().Changed("input") {
				return fmt.Errorf("--input: give the whole input or --action/--params/--param, not both")
			}
			var in string
			var err error
			if execute {
				in, err = executeInput(action, params, paramList)
			} else {
				in, err = readInput(input, cmd.InOrStdin())
			}
			if err != nil {
				return err
			}
			c, err := f.dial()
			if err != nil {
				return err
			}
			defer c.close()
			resp, err := pluginv1.NewPluginServiceClient(c.conn).CallPlugin(cmd.Context(),
				&pluginv1.CallPluginRequest{Name: args[0], Function: args[1], InputJson: in})
			if err != nil {
				return err
			}
			var pretty bytes.Buffer
			if json.Indent(&pretty, []byte(resp.GetOutputJson()), "", "  ") == nil {
				fmt.Fprintln(cmd.OutOrStdout(), pretty.String())
			} else {
				fmt.Fprintln(cmd.OutOrStdout(), resp.GetOutputJson())
			}
			fmt.Fprintf(os.Stderr, "%s.%s answered in %d ms\n", args[0], args[1], resp.GetDurationMs())
			if execute {
				return executeOutcome(resp.GetOutputJson())
			}
			return nil
		},
	}
	call.Flags().StringVar(&input, "input", "{}", "input JSON, @FILE to read a file, - for standard input")
	call.Flags().StringVar(&action, "action", "", "custom plugins: the action of an ExecuteRequest")
	call.Flags().StringVar(&params, "params", "", `custom plugins: the ExecuteRequest's params as a JSON object, e.g. '{"k":"v"}'`)
	call.Flags().StringArrayVar(&paramList, "param", nil, "custom plugins: one param K=V (repeatable; added to --params)")

	reload := &cobra.Command{
		Use: "reload [NAME]", Short: "Reload one plugin from disk, or every plugin", Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			c, err := f.dial()
			if err != nil {
				return err
			}
			defer c.close()
			resp, err := pluginv1.NewPluginServiceClient(c.conn).ReloadPlugin(cmd.Context(), &pluginv1.ReloadPluginRequest{Name: name})
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tVERSION\tSTATE\tERROR")
			var failed []string
			for _, p := range resp.GetPlugins() {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.GetName(), dash(p.GetMetadata().GetVersion()), stateName(p.GetState()), p.GetLastError())
				if p.GetState() == pluginv1.PluginState_PLUGIN_STATE_FAILED {
					failed = append(failed, p.GetName())
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(failed) > 0 {
				return fmt.Errorf("%d of %d plugins did not load: %s", len(failed), len(resp.GetPlugins()), strings.Join(failed, ", "))
			}
			return nil
		},
	}
	cmd.AddCommand(append([]*cobra.Command{list, info, call, reload, newPluginRunCmd(), newPluginNewCmd(), newPluginPushCmd()}, newPluginSignCmds()...)...)
	return cmd
}

func kindName(k pluginv1.Kind) string {
	if k == pluginv1.Kind_KIND_UNSPECIFIED {
		return "-"
	}
	return strings.ToLower(strings.TrimPrefix(k.String(), "KIND_"))
}

// pluginKind is a plugin's kind: its module's, else its configured one.
func pluginKind(p *pluginv1.PluginInfo) pluginv1.Kind {
	if k := p.GetMetadata().GetKind(); k != pluginv1.Kind_KIND_UNSPECIFIED {
		return k
	}
	return p.GetKind()
}

func stateName(s pluginv1.PluginState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "PLUGIN_STATE_"))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printPluginInfo shows one plugin as a list of fields.
func printPluginInfo(w io.Writer, p *pluginv1.PluginInfo) error {
	m := p.GetMetadata()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s:\t%v\n", k, v) }
	row("Name", p.GetName())
	row("Kind", kindName(pluginKind(p)))
	row("State", stateName(p.GetState()))
	if p.GetLastError() != "" {
		row("Error", p.GetLastError())
	}
	if p.GetWarning() != "" {
		row("Warning", p.GetWarning())
	}
	if len(p.GetNeededBy()) > 0 {
		row("Needed by", strings.Join(p.GetNeededBy(), ", "))
	}
	row("Version", dash(m.GetVersion()))
	if m.GetDescription() != "" {
		row("Description", m.GetDescription())
	}
	row("Functions", dash(strings.Join(m.GetFunctions(), ", ")))
	row("Path", p.GetPath())
	row("SHA-256", dash(p.GetSha256()))
	row("Failure policy", strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(p.GetFailurePolicy().String(), "FAILURE_POLICY_"), "_", " ")))
	row("Instances", fmt.Sprintf("%d of %d", p.GetInstances(), p.GetMaxInstances()))
	if p.GetLoadedAt() != nil {
		row("Loaded", p.GetLoadedAt().AsTime().Local().Format(time.DateTime))
	}
	g := p.GetGranted()
	row("Hosts", dash(strings.Join(g.GetAllowedHosts(), ", ")))
	var paths []string
	for _, pg := range g.GetAllowedPaths() {
		mode := "rw"
		if pg.GetReadOnly() {
			mode = "ro"
		}
		paths = append(paths, fmt.Sprintf("%s → %s (%s)", pg.GetHostPath(), pg.GetGuestPath(), mode))
	}
	row("Paths", dash(strings.Join(paths, ", ")))
	row("Memory", fmt.Sprintf("%d MiB", g.GetMemoryLimitMib()))
	row("Timeout", (time.Duration(g.GetTimeoutMs()) * time.Millisecond).String())
	if want := m.GetCapabilities(); want != nil {
		var asks []string
		asks = append(asks, want.GetAllowedHosts()...)
		for _, pg := range want.GetAllowedPaths() {
			asks = append(asks, pg.GetGuestPath())
		}
		if len(asks) > 0 {
			row("Asks for", strings.Join(asks, ", "))
		}
	}
	return tw.Flush()
}

func readInput(arg string, stdin io.Reader) (string, error) {
	switch {
	case arg == "-":
		b, err := io.ReadAll(stdin)
		return string(b), err
	case strings.HasPrefix(arg, "@"):
		b, err := os.ReadFile(arg[1:])
		if err != nil {
			return "", fmt.Errorf("--input: %w", err)
		}
		return string(b), nil
	}
	return arg, nil
}

// problem is what a listing shows of a plugin's trouble: the last failed
// load, else a warning about the serving version.
func problem(p *pluginv1.PluginInfo) string {
	if p.GetLastError() == "" && p.GetWarning() != "" {
		return "warning: " + p.GetWarning()
	}
	return p.GetLastError()
}
