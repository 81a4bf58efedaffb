package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	secretv1 "github.com/go-arcade/arcade/api/secret/v1"
	"github.com/go-arcade/arcade/server"
)

func newTrustCmd() *cobra.Command {
	f := &clientFlags{}
	cmd := &cobra.Command{
		Use:   "trust",
		Short: "Trusted agents and the pipelines allowed on them",
		Long: `A trusted agent (marked by an admin, or carrying a trusted label) runs only
jobs that may use trusted agents: jobs of pipelines an admin allowed there
(for some branches, when given), never runs of untrusted origin (pull
requests from forks), and jobs an admin token created alone. A job's
selector cannot get past this.

  arcade trust                          the policy: labels, pipelines, agents
  arcade trust labels pool=deploy       agents labelled pool=deploy are trusted
  arcade agent trust deploy-1           one agent (--off to undo)
  arcade pipeline trust deploy --branch main`,
		Args: cobra.NoArgs,
		RunE: f.withAPI(func(cmd *cobra.Command, _ []string, c *api) error {
			resp, err := secretv1.NewTrustServiceClient(c.conn).GetTrustPolicy(cmd.Context(), &secretv1.GetTrustPolicyRequest{})
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "trusted labels: %s\n", listOrNone(resp.GetTrustedLabels()))
			for _, p := range resp.GetPipelines() {
				fmt.Fprintf(w, "pipeline %s: allowed on trusted agents%s\n", p.GetPipelineName(), branchesText(p.GetBranches()))
			}
			var agents []string
			for _, a := range resp.GetTrustedAgents() {
				agents = append(agents, fmt.Sprintf("%s (%s)", a.GetName(), a.GetTrustedBecause()))
			}
			fmt.Fprintf(w, "trusted agents: %s\n", listOrNone(agents))
			return nil
		}),
	}
	f.register(cmd)
	cmd.AddCommand(newTrustLabelsCmd())
	return cmd
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func branchesText(b []string) string {
	if len(b) == 0 {
		return ""
	}
	return " for branches " + strings.Join(b, ", ")
}

func newTrustLabelsCmd() *cobra.Command {
	f := &clientFlags{}
	var none bool
	cmd := &cobra.Command{
		Use:   "labels KEY=VALUE... | --none",
		Short: "Set the labels that make agents trusted (replaces the list)",
		RunE: f.withAPI(func(cmd *cobra.Command, args []string, c *api) error {
			if len(args) == 0 && !none {
				return fmt.Errorf("give labels, or --none to trust no label")
			}
			if len(args) > 0 && none {
				return fmt.Errorf("labels or --none, not both")
			}
			resp, err := secretv1.NewTrustServiceClient(c.conn).SetTrustedLabels(cmd.Context(), &secretv1.SetTrustedLabelsRequest{Labels: args})
			if err != nil {
				return err
			}
			var agents []string
			for _, a := range resp.GetTrustedAgents() {
				agents = append(agents, a.GetName())
			}
			fmt.Fprintf(cmd.OutOrStdout(), "trusted labels: %s\ntrusted agents: %s\n", listOrNone(resp.GetTrustedLabels()), listOrNone(agents))
			return nil
		}),
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&none, "none", false, "trust no label")
	return cmd
}

func newAgentTrustCmd() *cobra.Command {
	f := &clientFlags{}
	var off bool
	cmd := &cobra.Command{
		Use: "trust AGENT [--off]", Short: "Mark an agent trusted (it then runs only jobs allowed on trusted agents)", Args: cobra.ExactArgs(1),
		RunE: f.withAPI(func(cmd *cobra.Command, args []string, c *api) error {
			resp, err := secretv1.NewTrustServiceClient(c.conn).SetAgentTrust(cmd.Context(), &secretv1.SetAgentTrustRequest{AgentId: args[0], Trusted: !off})
			if err != nil {
				return err
			}
			a := resp.GetAgent()
			state := "not trusted"
			if a.GetTrusted() {
				state = "trusted (" + a.GetTrustedBecause() + ")"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "agent %s is %s\n", a.GetName(), state)
			return nil
		}),
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&off, "off", false, "withdraw the mark")
	return cmd
}

func newPipelineTrustCmd() *cobra.Command {
	f := &clientFlags{}
	var (
		off      bool
		branches []string
	)
	cmd := &cobra.Command{
		Use:   "trust PIPELINE [--branch GLOB]... [--off]",
		Short: "Allow a pipeline's runs on trusted agents (admin); changing the pipeline then needs an admin token",
		Args:  cobra.ExactArgs(1),
		RunE: f.withAPI(func(cmd *cobra.Command, args []string, c *api) error {
			resp, err := secretv1.NewTrustServiceClient(c.conn).SetPipelineTrust(cmd.Context(),
				&secretv1.SetPipelineTrustRequest{PipelineId: args[0], Allowed: !off, Branches: branches})
			if err != nil {
				return err
			}
			p := resp.GetPipeline()
			if p.GetAllowed() {
				fmt.Fprintf(cmd.OutOrStdout(), "pipeline %s: allowed on trusted agents%s\n", p.GetPipelineName(), branchesText(p.GetBranches()))
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "pipeline %s: not allowed on trusted agents\n", p.GetPipelineName())
			}
			return nil
		}),
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&off, "off", false, "withdraw the allowance")
	cmd.Flags().StringArrayVar(&branches, "branch", nil, "only runs of this branch (glob, repeatable; runs that name no branch stay allowed)")
	return cmd
}

func newRekeyCmd(g *globals) *cobra.Command {
	var (
		configPath string
		wait       time.Duration
	)
	cmd := &cobra.Command{
		Use:   "rekey",
		Short: "Seal every secret again under a new key, while the servers run",
		Long: `rekey adds a new key to the keyring file (DATA_DIR/secret.keyring, or
secret_keyring), waits until every running server holds it (servers re-read
the file every few seconds; copy it to servers on other machines), makes it
the key every server seals with, and seals every secret in the database
again under it. Old keys keep opening what they sealed until nothing is
sealed under them; rekey names the ones you may then remove.`,
		Example: `  arcade server rekey --data-dir data`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			cfg, err := serverConfig(cmd, configPath)
			if err != nil {
				return err
			}
			return server.Rekey(cmd.Context(), cfg, server.RekeyOptions{Wait: wait, Out: cmd.OutOrStdout()}, log)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "conf.d/server.yaml", "server configuration file")
	cmd.Flags().String("db", "", "database: sqlite://PATH or postgres://… (default: SQLite in the data dir)")
	cmd.Flags().String("data-dir", "data", "the servers' data directory (secret.key, secret.keyring)")
	cmd.Flags().String("secret-keyring", "", "keyring file (default DATA_DIR/secret.keyring)")
	cmd.Flags().DurationVar(&wait, "wait", 2*time.Minute, "how long to wait for every running server to load the new key")
	return cmd
}
