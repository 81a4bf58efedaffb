package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

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
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", p.GetName(), kindName(m.GetKind()), m.GetVersion(),
					strings.ToLower(strings.TrimPrefix(p.GetState().String(), "PLUGIN_STATE_")), p.GetInstances(), p.GetMaxInstances(),
					strings.Join(m.GetFunctions(), ","), problem(p))
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
			return printJSON(cmd.OutOrStdout(), resp.GetPlugin())
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
			for _, p := range resp.GetPlugins() {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s\n", p.GetName(), p.GetMetadata().GetVersion(),
					strings.ToLower(strings.TrimPrefix(p.GetState().String(), "PLUGIN_STATE_")))
			}
			return nil
		},
	}
	cmd.AddCommand(append([]*cobra.Command{list, info, call, reload, newPluginRunCmd(), newPluginNewCmd()}, newPluginSignCmds()...)...)
	return cmd
}

func kindName(k pluginv1.Kind) string {
	return strings.ToLower(strings.TrimPrefix(k.String(), "KIND_"))
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
