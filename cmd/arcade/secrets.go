package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	secretv1 "github.com/go-arcade/arcade/api/secret/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// maxSecretInput bounds what arcade secret set reads (the server takes at
// most 64 KiB; a bit more is read to say so).
const maxSecretInput = 64<<10 + 1

// secretScopeFlags pick a secret's scope.
type secretScopeFlags struct {
	pipeline string
	source   string
}

func (s *secretScopeFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.pipeline, "pipeline", "", "the secret of one pipeline (by name) instead of a global one")
	cmd.Flags().StringVar(&s.source, "source", "", "the secret of one source repository (its URL) instead of a global one")
}

func (s *secretScopeFlags) scope() (secretv1.SecretScope, string, error) {
	switch {
	case s.pipeline != "" && s.source != "":
		return 0, "", errors.New("--pipeline and --source: give one of them")
	case s.pipeline != "":
		return secretv1.SecretScope_SECRET_SCOPE_PIPELINE, s.pipeline, nil
	case s.source != "":
		return secretv1.SecretScope_SECRET_SCOPE_SOURCE, s.source, nil
	}
	return secretv1.SecretScope_SECRET_SCOPE_GLOBAL, "", nil
}

func newSecretCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Stored secrets: set (value from stdin or a file, never the command line), list, rm",
		Long: `Stored secrets are sealed at rest and never shown again. Jobs get them as
env by name (masked in their logs): a pipeline lists them under "secrets:",
a job request under secret_refs (arcade job create --secret-ref NAME), and
plugins.yaml under a plugin's "secrets:". A secret is global, or of one
pipeline (--pipeline NAME), or of one source repository (--source URL).`,
	}
	cmd.AddCommand(newSecretSetCmd(), newSecretListCmd(), newSecretRmCmd())
	return cmd
}

func newSecretSetCmd() *cobra.Command {
	f := &clientFlags{}
	var (
		sc          secretScopeFlags
		fromFile    string
		description string
	)
	cmd := &cobra.Command{
		Use:   "set NAME [--from-file FILE] < VALUE",
		Short: "Create a secret, or give it a new value (rotation)",
		Example: `  printf %s "$DEPLOY_TOKEN" | arcade secret set DEPLOY_TOKEN
  arcade secret set REGISTRY_PASSWORD --pipeline deploy --from-file registry.pass`,
		Args: cobra.ExactArgs(1),
		RunE: f.withAPI(func(cmd *cobra.Command, args []string, c *api) error {
			scope, target, err := sc.scope()
			if err != nil {
				return err
			}
			value, err := readSecretValue(cmd.InOrStdin(), fromFile)
			if err != nil {
				return err
			}
			secrets := secretv1.NewSecretServiceClient(c.conn)
			created, err := secrets.CreateSecret(cmd.Context(), &secretv1.CreateSecretRequest{
				Name: args[0], Scope: scope, Target: target, Value: value, Description: description})
			var sec *secretv1.Secret
			switch {
			case err == nil:
				sec = created.GetSecret()
			case status.Code(err) == codes.AlreadyExists:
				req := &secretv1.UpdateSecretRequest{Name: args[0], Scope: scope, Target: target, Value: value}
				if cmd.Flags().Changed("description") {
					req.Description = &description
				}
				updated, err := secrets.UpdateSecret(cmd.Context(), req)
				if err != nil {
					return err
				}
				sec = updated.GetSecret()
			default:
				return err
			}
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), sec)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "secret %s (%s) set, version %d\n", sec.GetName(), secretScopeText(sec), sec.GetVersion())
			return nil
		}),
	}
	f.register(cmd)
	sc.register(cmd)
	cmd.Flags().StringVar(&fromFile, "from-file", "", "read the value from this file instead of stdin")
	cmd.Flags().StringVar(&description, "description", "", "what the secret is for")
	return cmd
}

// readSecretValue reads a secret's value from a file or stdin: never from
// the command line, where process lists and shell histories would keep it.
// One trailing newline is dropped (echo VALUE | arcade secret set NAME).
func readSecretValue(stdin io.Reader, file string) (string, error) {
	var r io.Reader = stdin
	what := "stdin"
	if file != "" {
		fh, err := os.Open(file)
		if err != nil {
			return "", fmt.Errorf("--from-file: %w", err)
		}
		defer fh.Close()
		r, what = fh, file
	} else if f, ok := stdin.(*os.File); ok && isTerminal(f) {
		fmt.Fprint(os.Stderr, "value (end with Ctrl-D): ")
	}
	b, err := io.ReadAll(io.LimitReader(r, maxSecretInput))
	if err != nil {
		return "", fmt.Errorf("read the value from %s: %w", what, err)
	}
	if len(b) >= maxSecretInput {
		return "", fmt.Errorf("the value on %s is longer than %d bytes", what, maxSecretInput-1)
	}
	v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if v == "" {
		return "", fmt.Errorf("no value on %s (give it on stdin or with --from-file; never on the command line)", what)
	}
	return v, nil
}

func secretScopeText(s *secretv1.Secret) string {
	switch s.GetScope() {
	case secretv1.SecretScope_SECRET_SCOPE_PIPELINE:
		return "pipeline " + s.GetTarget()
	case secretv1.SecretScope_SECRET_SCOPE_SOURCE:
		return "source " + s.GetTarget()
	}
	return "global"
}

func newSecretListCmd() *cobra.Command {
	f := &clientFlags{}
	var sc secretScopeFlags
	cmd := &cobra.Command{
		Use: "list", Short: "List secrets (names and metadata; values are never shown)", Args: cobra.NoArgs,
		RunE: f.withAPI(func(cmd *cobra.Command, _ []string, c *api) error {
			req := &secretv1.ListSecretsRequest{PageSize: 1000}
			if sc.pipeline != "" || sc.source != "" {
				var err error
				if req.Scope, req.Target, err = sc.scope(); err != nil {
					return err
				}
			}
			resp, err := secretv1.NewSecretServiceClient(c.conn).ListSecrets(cmd.Context(), req)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSCOPE\tVERSION\tUPDATED\tBY\tKEY\tDESCRIPTION")
			for _, s := range resp.GetSecrets() {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", s.GetName(), secretScopeText(s), s.GetVersion(),
					age(s.GetUpdatedAt()), s.GetUpdatedBy(), s.GetKeyId(), s.GetDescription())
			}
			return tw.Flush()
		}),
	}
	f.register(cmd)
	sc.register(cmd)
	return cmd
}

func newSecretRmCmd() *cobra.Command {
	f := &clientFlags{}
	var sc secretScopeFlags
	cmd := &cobra.Command{
		Use: "rm NAME", Short: "Delete a secret (pipelines that reference it fail their next runs, saying so)", Args: cobra.ExactArgs(1),
		RunE: f.withAPI(func(cmd *cobra.Command, args []string, c *api) error {
			scope, target, err := sc.scope()
			if err != nil {
				return err
			}
			if _, err := secretv1.NewSecretServiceClient(c.conn).DeleteSecret(cmd.Context(),
				&secretv1.DeleteSecretRequest{Name: args[0], Scope: scope, Target: target}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "secret %s deleted\n", args[0])
			return nil
		}),
	}
	f.register(cmd)
	sc.register(cmd)
	return cmd
}

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Named API tokens (admin): create, list, revoke"}
	cmd.AddCommand(newTokenCreateCmd(), newTokenListCmd(), newTokenRevokeCmd())
	return cmd
}

func tokenScopeFlag(s string) (secretv1.TokenScope, error) {
	switch strings.ToLower(s) {
	case "read":
		return secretv1.TokenScope_TOKEN_SCOPE_READ, nil
	case "write":
		return secretv1.TokenScope_TOKEN_SCOPE_WRITE, nil
	case "admin":
		return secretv1.TokenScope_TOKEN_SCOPE_ADMIN, nil
	}
	return 0, fmt.Errorf("--scope: want read, write or admin, got %q", s)
}

func newTokenCreateCmd() *cobra.Command {
	f := &clientFlags{}
	var (
		owner, scope string
		expires      time.Duration
	)
	cmd := &cobra.Command{
		Use:     "create NAME --scope read|write|admin [--owner WHO] [--expires-in 720h]",
		Short:   "Create a named token; it is printed once, on stdout",
		Example: `  arcade token create ci-reader --scope read --owner "team web" --expires-in 720h`,
		Args:    cobra.ExactArgs(1),
		RunE: f.withAPI(func(cmd *cobra.Command, args []string, c *api) error {
			sc, err := tokenScopeFlag(scope)
			if err != nil {
				return err
			}
			req := &secretv1.CreateTokenRequest{Name: args[0], Owner: owner, Scope: sc}
			if expires != 0 {
				req.ExpiresIn = durationpb.New(expires)
			}
			resp, err := secretv1.NewTokenServiceClient(c.conn).CreateToken(cmd.Context(), req)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			t := resp.GetToken()
			exp := "never"
			if t.GetExpiresAt() != nil {
				exp = t.GetExpiresAt().AsTime().Format(time.RFC3339)
			}
			fmt.Fprintf(os.Stderr, "token %s (%s, owner %q, expires %s) created; it is shown once:\n", t.GetName(), tokenScopeText(t.GetScope()), t.GetOwner(), exp)
			fmt.Fprintln(cmd.OutOrStdout(), resp.GetSecret())
			return nil
		}),
	}
	f.register(cmd)
	cmd.Flags().StringVar(&owner, "owner", "", "who the token is for")
	cmd.Flags().StringVar(&scope, "scope", "", "read, write or admin")
	cmd.Flags().DurationVar(&expires, "expires-in", 0, "expiry (0: never)")
	return cmd
}

func tokenScopeText(s secretv1.TokenScope) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "TOKEN_SCOPE_"))
}

func newTokenListCmd() *cobra.Command {
	f := &clientFlags{}
	var all bool
	cmd := &cobra.Command{
		Use: "list", Short: "List named tokens", Args: cobra.NoArgs,
		RunE: f.withAPI(func(cmd *cobra.Command, _ []string, c *api) error {
			resp, err := secretv1.NewTokenServiceClient(c.conn).ListTokens(cmd.Context(), &secretv1.ListTokensRequest{IncludeInactive: all, PageSize: 1000})
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSCOPE\tOWNER\tSTATE\tEXPIRES\tLAST USED\tCREATED BY\tID")
			for _, t := range resp.GetTokens() {
				state := "active"
				switch {
				case t.GetRevokedAt() != nil:
					state = "revoked by " + t.GetRevokedBy()
				case !t.GetActive():
					state = "expired"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.GetName(), tokenScopeText(t.GetScope()), t.GetOwner(), state,
					when(t.GetExpiresAt(), "never"), age(t.GetLastUsedAt()), t.GetCreatedBy(), t.GetId())
			}
			return tw.Flush()
		}),
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&all, "all", false, "also revoked and expired tokens")
	return cmd
}

func when(t *timestamppb.Timestamp, none string) string {
	if t == nil {
		return none
	}
	return t.AsTime().Local().Format(time.RFC3339)
}

func newTokenRevokeCmd() *cobra.Command {
	f := &clientFlags{}
	cmd := &cobra.Command{
		Use: "revoke NAME|ID", Short: "Revoke a named token: refused at once on every server, its streams cut", Args: cobra.ExactArgs(1),
		RunE: f.withAPI(func(cmd *cobra.Command, args []string, c *api) error {
			resp, err := secretv1.NewTokenServiceClient(c.conn).RevokeToken(cmd.Context(), &secretv1.RevokeTokenRequest{TokenId: args[0]})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "token %s revoked\n", resp.GetToken().GetName())
			return nil
		}),
	}
	f.register(cmd)
	return cmd
}

func newAuditCmd() *cobra.Command {
	f := &clientFlags{}
	var (
		actor, method string
		since         time.Duration
		limit         int32
	)
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "The audit log (admin): every write with who, what, when and from where, newest first",
		Example: `  arcade audit --actor api_token --since 24h
  arcade audit --method Secret`,
		Args: cobra.NoArgs,
		RunE: f.withAPI(func(cmd *cobra.Command, _ []string, c *api) error {
			req := &secretv1.ListAuditEventsRequest{Actor: actor, Method: method, PageSize: limit}
			if since > 0 {
				req.Since = timestamppb.New(time.Now().Add(-since))
			}
			resp, err := secretv1.NewAuditServiceClient(c.conn).ListAuditEvents(cmd.Context(), req)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tWHO\tWHAT\tON\tFROM\tOUTCOME")
			for _, e := range resp.GetEvents() {
				outcome := e.GetOutcome()
				if e.GetMessage() != "" {
					outcome += ": " + e.GetMessage()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.GetTime().AsTime().Local().Format(time.DateTime), e.GetActor(),
					shortMethod(e.GetMethod()), e.GetResource(), e.GetPeer(), outcome)
			}
			return tw.Flush()
		}),
	}
	f.register(cmd)
	cmd.Flags().StringVar(&actor, "actor", "", "only this token's entries (its name)")
	cmd.Flags().StringVar(&method, "method", "", "only methods containing this text, e.g. Secret or CancelJob")
	cmd.Flags().DurationVar(&since, "since", 0, "only entries this recent, e.g. 24h")
	cmd.Flags().Int32Var(&limit, "limit", 100, "at most this many entries")
	return cmd
}

// shortMethod drops the package: arcade.job.v1.JobService/CancelJob →
// JobService/CancelJob.
func shortMethod(m string) string {
	if svc, name, ok := strings.Cut(m, "/"); ok {
		if i := strings.LastIndex(svc, "."); i >= 0 {
			svc = svc[i+1:]
		}
		return svc + "/" + name
	}
	return m
}
