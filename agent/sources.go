package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/go-arcade/arcade/agent/checkout"
	"github.com/go-arcade/arcade/agent/executor"
	"github.com/go-arcade/arcade/agent/sysinfo"
	"github.com/go-arcade/arcade/internal/confine"
	"github.com/go-arcade/arcade/internal/gitcli"
)

// defaultMirrorBytes bounds the agent's repository mirrors by default.
const defaultMirrorBytes = 10 << 30

// newCheckout finds git as the configuration says; nil when there is none
// (the agent then takes no checkout jobs).
func newCheckout(cfg Config, log *slog.Logger) *checkout.Checkout {
	if cfg.Git == "none" {
		log.Info("git turned off: no checkout jobs")
		return nil
	}
	var g *gitcli.Git
	var err error
	if cfg.Git == "" {
		g, err = gitcli.Find()
	} else {
		g, err = gitcli.FindAt(cfg.Git)
	}
	if err != nil {
		log.Warn("git not found: this agent takes no jobs that check out a source", "err", err)
		return nil
	}
	g.TempDir = filepath.Join(cfg.DataDir, "git-tmp")
	g.KnownHosts = filepath.Join(cfg.DataDir, "known_hosts")
	if err := os.MkdirAll(g.TempDir, 0o700); err != nil {
		log.Warn("git temp folder: no checkouts", "err", err)
		return nil
	}
	max := cfg.GitMirrorMaxBytes
	if max <= 0 {
		max = defaultMirrorBytes
	}
	log.Info("git found: checkout jobs taken", "git", g.Path, "version", g.Version)
	return &checkout.Checkout{Git: g, Mirrors: &gitcli.Mirrors{Git: g, Dir: filepath.Join(cfg.DataDir, "git-mirrors"), MaxBytes: max, Log: log}}
}

// gitLabel is the git label's value: the version, as a label value.
func gitLabel(version string) string {
	if v := sysinfo.SanitizeLabelValue(version); v != "" {
		return v
	}
	return "yes"
}

// checkoutPhase checks the job's source out into its (empty) workspace,
// the first phase of a job. It runs on the host; a container job gets the
// workspace mounted, so its image needs no git.
func checkoutPhase(ctx context.Context, a *Agent, r *jobRun) phaseResult {
	job := r.job
	co := job.GetCheckout()
	if co == nil {
		return phaseResult{}
	}
	note := func(text string) { r.ship.add(executor.Line{Stream: executor.System, Text: text, Time: time.Now()}) }
	fail := func(err error) phaseResult {
		note("checkout failed: " + err.Error())
		return phaseResult{res: &executor.Result{Outcome: executor.Failed, ExitCode: -1, Err: err}}
	}
	if a.checkout == nil {
		return fail(fmt.Errorf("this agent has no git"))
	}
	dir, err := confine.Open(r.ws)
	if err != nil {
		return fail(err)
	}
	defer dir.Close()
	spec := checkout.Spec{URL: co.GetUrl(), Commit: co.GetCommit(), Ref: co.GetRef(), Depth: int(co.GetDepth()),
		Submodules: co.GetSubmodules(), Auth: gitcli.ParseAuth(co.GetCredential())}
	start := time.Now()
	res, err := a.checkout.Run(ctx, spec, dir, note)
	if err != nil {
		if ctx.Err() != nil {
			return phaseResult{res: &executor.Result{Outcome: executor.Cancelled, ExitCode: -1, Err: err}}
		}
		return fail(err)
	}
	a.log.Info("checked out", "job", job.GetId(), "url", co.GetUrl(), "commit", co.GetCommit(), "fetched", res.Fetched,
		"fetch", res.Fetch, "checkout", res.Checkout, "took", time.Since(start))
	return phaseResult{}
}
