package main

import (
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
)

func newAgentLabelCmd() *cobra.Command {
	f := &clientFlags{}
	var (
		remove  []string
		replace bool
	)
	cmd := &cobra.Command{
		Use:   "label AGENT KEY=VALUE... [--remove KEY] [--replace]",
		Short: "Set an agent's labels as an admin (they outlive its restarts; only they can make it trusted)",
		Example: `  arcade agent label deploy-1 pool=deploy
  arcade agent label deploy-1 --remove pool`,
		Args: cobra.MinimumNArgs(1),
		RunE: f.withAPI(func(cmd *cobra.Command, args []string, c *api) error {
			id, err := c.agentID(cmd, args[0])
			if err != nil {
				return err
			}
			mode := agentv1.LabelUpdateMode_LABEL_UPDATE_MODE_MERGE
			if replace {
				mode = agentv1.LabelUpdateMode_LABEL_UPDATE_MODE_REPLACE
			}
			set := map[string]string{}
			for k, v := range pairs(args[1:]) {
				set[k] = v.(string)
			}
			resp, err := c.agents.UpdateLabels(cmd.Context(), &agentv1.UpdateLabelsRequest{AgentId: id, Labels: set, RemoveKeys: remove, Mode: mode})
			if err != nil {
				return err
			}
			a := resp.GetAgent()
			keys := slices.Sorted(func(yield func(string) bool) {
				for k := range a.GetLabels() {
					if !yield(k) {
						return
					}
				}
			})
			fmt.Fprintf(cmd.OutOrStdout(), "agent %s labels:", a.GetName())
			for _, k := range keys {
				fmt.Fprintf(cmd.OutOrStdout(), " %s=%s", k, a.GetLabels()[k])
			}
			fmt.Fprintln(cmd.OutOrStdout())
			return nil
		}),
	}
	f.register(cmd)
	cmd.Flags().StringSliceVar(&remove, "remove", nil, "label keys to remove")
	cmd.Flags().BoolVar(&replace, "replace", false, "replace the agent's labels with these (its own come back when it registers again)")
	return cmd
}

// agentID finds an agent by id or name.
func (c *api) agentID(cmd *cobra.Command, idOrName string) (string, error) {
	req := &agentv1.ListAgentsRequest{PageSize: 500}
	for {
		resp, err := c.agents.ListAgents(cmd.Context(), req)
		if err != nil {
			return "", err
		}
		for _, a := range resp.GetAgents() {
			if a.GetId() == idOrName || a.GetName() == idOrName {
				return a.GetId(), nil
			}
		}
		if resp.GetNextPageToken() == "" {
			return "", fmt.Errorf("no agent has the id or name %q", idOrName)
		}
		req.PageToken = resp.GetNextPageToken()
	}
}
