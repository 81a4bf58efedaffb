package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/go-arcade/arcade/agent"
	"github.com/go-arcade/arcade/server"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/pipeline"
)

// Local runs: `arcade run [FILE]` runs a pipeline file against the working
// tree of the current directory, with a server and an agent embedded in the
// process, and exits with the run's outcome. The working tree is what git
// would commit if every change were added: tracked files as they are on
// disk (uncommitted changes included) and untracked files that git does
// not ignore. It is committed into a throwaway repository (the user's own
// repository is not written to), which becomes the pipeline's source: the
// agent checks it out as it would a pushed commit.

func newRunCmd(g *globals) *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "run [FILE]",
		Short: "Run a pipeline file against the working tree, locally",
		Long: `Run a pipeline file (default .arcade.yaml) against the current directory's
working tree — tracked files with their uncommitted changes, and untracked
files git does not ignore — on a server and an agent embedded in this
process, printing each job's log, and exit with the run's outcome.

Plugins for "uses:" steps come from the embedded server's plugin config
(--plugins-config, default conf.d/plugins.yaml, and --plugin-dirs, default
plugins/): the first-party plugins once built with "make plugins".`,
		Example: `  arcade run                       # .arcade.yaml of the current directory
  arcade run ci/build.arcade.yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := ".arcade.yaml"
			if len(args) == 1 {
				file = args[0]
			}
			return runEmbedded(cmd, g, configPath, "", file, true)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "conf.d/server.yaml", "server configuration file")
	addServerFlags(cmd.Flags())
	addAgentFlags(cmd.Flags())
	cmd.Flags().Lookup("max-jobs").DefValue = "2"
	return cmd
}

// snapshot commits the working tree of the git repository holding dir into
// a new bare repository under tmp and returns its file:// URL and the
// commit. It returns ("", "", nil) when dir is not in a git repository.
func snapshot(ctx context.Context, dir, tmp string) (string, string, error) {
	run := func(env []string, stdin []byte, d string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = d
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdin = bytes.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
		}
		return strings.TrimSpace(out.String()), nil
	}
	if _, err := exec.LookPath("git"); err != nil {
		return "", "", nil
	}
	root, err := run(nil, nil, dir, "rev-parse", "--show-toplevel")
	if err != nil {
		return "", "", nil // not a git repository
	}
	files, err := run(nil, nil, root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	if err != nil {
		return "", "", err
	}
	// Tracked files deleted from the working tree are not part of it.
	var keep []string
	for f := range strings.SplitSeq(files, "\x00") {
		if f == "" {
			continue
		}
		if _, err := os.Lstat(filepath.Join(root, f)); err == nil {
			keep = append(keep, f)
		}
	}
	bare := filepath.Join(tmp, "worktree.git")
	if _, err := run(nil, nil, tmp, "init", "--quiet", "--bare", bare); err != nil {
		return "", "", err
	}
	env := []string{"GIT_DIR=" + bare, "GIT_WORK_TREE=" + root, "GIT_INDEX_FILE=" + filepath.Join(tmp, "index"),
		"GIT_AUTHOR_NAME=arcade run", "GIT_AUTHOR_EMAIL=arcade@localhost", "GIT_COMMITTER_NAME=arcade run", "GIT_COMMITTER_EMAIL=arcade@localhost"}
	list := []byte(strings.Join(keep, "\x00"))
	if _, err := run(env, list, root, "add", "--force", "--pathspec-from-file=-", "--pathspec-file-nul"); err != nil && len(keep) > 0 {
		return "", "", err
	}
	tree, err := run(env, nil, root, "write-tree")
	if err != nil {
		return "", "", err
	}
	commit, err := run(env, nil, root, "commit-tree", "-m", "working tree of "+root, tree)
	if err != nil {
		return "", "", err
	}
	if _, err := run(env, nil, root, "update-ref", "refs/heads/worktree", commit); err != nil {
		return "", "", err
	}
	return "file://" + bare, commit, nil
}

// localPipeline reads a pipeline file for a local run: its source is the
// working tree's snapshot (when there is one) and it has no triggers. The
// files it includes are read from beside it, as on disk, and merged in
// here (the expanded pipeline is sent): a pipeline with a source would
// read them from the snapshot's root, not from beside the file.
func localPipeline(file, url string) (*jobv1.PipelineDetail, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read pipeline file: %w", err)
	}
	p, err := pipeline.ParseYAML(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(p.GetInclude()) > 0 {
		files, err := bundleIncludes(file, raw)
		if err != nil {
			return nil, err
		}
		p.IncludeFiles = files
		exp, err := pipeline.Expand(p, nil, 0)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, pipeline.IndexLines(raw).Annotate(err, nil))
		}
		p = exp.Pipeline
	}
	if p.GetName() == "" {
		p.Name = strings.TrimSuffix(strings.TrimSuffix(filepath.Base(file), ".yaml"), ".arcade")
		if p.Name == "" {
			p.Name = "local"
		}
	}
	p.Triggers = nil
	if url != "" {
		src := p.GetSource()
		if src == nil {
			src = &jobv1.Source{}
		}
		src.Url, src.Credential, src.DefinitionPath, src.StatusPlugin, src.DefaultBranch = url, "", "", "", "worktree"
		p.Source = src
	} else {
		p.Source = nil
	}
	return p, nil
}

// runLocalPipeline creates the pipeline of a local run and runs it.
func (c *api) runLocalPipeline(ctx context.Context, p *jobv1.PipelineDetail, commit string) error {
	created, err := c.jobs.CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Pipeline: p})
	if status.Code(err) == codes.AlreadyExists {
		upd, uerr := c.jobs.UpdatePipeline(ctx, &jobv1.UpdatePipelineRequest{Pipeline: p})
		if uerr != nil {
			return fmt.Errorf("update pipeline: %w", uerr)
		}
		created, err = &jobv1.CreatePipelineResponse{Pipeline: upd.GetPipeline()}, nil
	}
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	return c.followRun(ctx, created.GetPipeline(), &jobv1.TriggerPipelineRequest{PipelineId: created.GetPipeline().GetId(), Ref: commit}, os.Stdout)
}

// runEmbedded runs a server and an agent in this process. With runFile it
// submits the job or pipeline of the file, follows it and returns its
// outcome; a pipeline builds the working tree (local runs). local is
// `arcade run`: a throwaway server (a temporary data folder, a free
// loopback port, no dashboard) unless flags say otherwise.
func runEmbedded(cmd *cobra.Command, g *globals, configPath, agentConfigPath, runFile string, local bool) error {
	log, err := g.logger(os.Stderr)
	if err != nil {
		return err
	}
	scfg, err := serverConfig(cmd, configPath)
	if err != nil {
		return err
	}
	var (
		job      *jobFile
		pipeline bool
	)
	if runFile != "" {
		raw, err := os.ReadFile(runFile)
		if err != nil {
			return fmt.Errorf("read %s: %w", runFile, err)
		}
		if pipeline = isPipelineFile(raw); !pipeline {
			if local {
				return fmt.Errorf("%s is not a pipeline file (it has no stages)", runFile)
			}
			if job, err = readJobFile(runFile); err != nil {
				return err
			}
		}
	}
	tmp, err := os.MkdirTemp("", "arcade-run-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if local {
		f := cmd.Flags()
		if !f.Changed("listen") {
			scfg.Listen = "127.0.0.1:0"
		}
		if !f.Changed("http-listen") {
			scfg.HTTPListen = ""
		}
		if !f.Changed("data-dir") {
			scfg.DataDir = filepath.Join(tmp, "data")
			scfg.DB = ""
		}
		if !f.Changed("webhook-port") {
			scfg.WebhookPort = 0
		}
	}
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	var (
		localP *jobv1.PipelineDetail
		commit string
	)
	if pipeline {
		wd, _ := os.Getwd()
		url, c, err := snapshot(ctx, wd, tmp)
		if err != nil {
			return fmt.Errorf("working tree: %w", err)
		}
		if url == "" {
			fmt.Fprintln(os.Stderr, "not in a git repository: the pipeline runs without a checkout")
		} else {
			fmt.Fprintf(os.Stderr, "building the working tree (%.12s)\n", c)
		}
		if localP, err = localPipeline(runFile, url); err != nil {
			return err
		}
		commit = c
	}
	srv, err := server.New(ctx, scfg, log.With("component", "server"))
	if err != nil {
		return err
	}
	scfg = srv.Config()
	acfg, err := agentConfig(cmd, agentConfigPath, "agent-config")
	if err != nil {
		return err
	}
	acfg.Server, acfg.Token = srv.Addr(), scfg.AgentToken
	if scfg.TLSCert != "" && acfg.TLS.CAFile == "" {
		acfg.TLS.CAFile = scfg.TLSCert // a self-signed certificate is its own CA
	}
	if local && !cmd.Flags().Changed("work-dir") {
		acfg.WorkDir = filepath.Join(tmp, "agent")
		if acfg.DataDir == "" || !cmd.Flags().Changed("data-dir") {
			acfg.DataDir = acfg.WorkDir
		}
	}
	ag, err := agent.New(acfg, log.With("component", "agent"))
	if err != nil {
		return err
	}
	done := make(chan error, 2)
	go func() { done <- srv.Run(ctx) }()
	go func() { done <- ag.Run(ctx) }()
	if job == nil && !pipeline {
		// The banner never prints a token: it says where the token is.
		fmt.Fprintf(os.Stderr, "arcade is up on %s; client commands need:\n", srv.Addr())
		if file := srv.CredentialsFile(); file != "" {
			fmt.Fprintf(os.Stderr, "  export ARCADE_SERVER=%s; set -a; . %s; set +a\n", srv.Addr(), file)
		} else {
			fmt.Fprintf(os.Stderr, "  export ARCADE_SERVER=%s (and ARCADE_API_TOKEN, the API token this server was given)\n", srv.Addr())
		}
		if a := srv.HTTPAddr(); a != "" {
			scheme := "http"
			if scfg.TLSCert != "" {
				scheme = "https"
			}
			where := "the API token"
			if file := srv.CredentialsFile(); file != "" {
				where += " in " + file
			}
			fmt.Fprintf(os.Stderr, "dashboard: %s://%s/ (log in with %s)\n", scheme, a, where)
		}
		<-ctx.Done()
		return waitBoth(done, nil)
	}
	c, err := dialAPI(srv.Addr(), scfg.APIToken, acfg.TLS)
	if err != nil {
		cancel()
		return waitBoth(done, err)
	}
	defer c.close()
	var runErr error
	if pipeline {
		runErr = c.runLocalPipeline(ctx, localP, commit)
	} else {
		runErr = c.runAndFollow(ctx, job.request(), os.Stdout)
	}
	cancel()
	return waitBoth(done, runErr)
}
