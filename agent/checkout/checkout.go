// Package checkout puts a run's exact commit into a job's workspace, the
// first phase of a job on the agent (on the host; a container job gets the
// workspace mounted).
//
// The agent keeps one bare mirror per repository (internal/gitcli.Mirrors):
// a checkout first fetches into the mirror only what it lacks (nothing at
// all when the mirror holds the commit), then makes the workspace from the
// mirror: a local clone whose objects are copied, not hard-linked (a job,
// or a container running as root, writing into a hard-linked pack would
// change the mirror every later job reads), then the commit checked out
// detached. A shallow checkout (Depth > 0) fetches that many commits from
// the mirror instead. The workspace's origin is the repository's URL
// (never a credential), and the credential reaches git only for the
// commands that talk to the repository (see internal/gitcli).
package checkout

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-arcade/arcade/core/gitref"
	"github.com/go-arcade/arcade/internal/confine"
	"github.com/go-arcade/arcade/internal/gitcli"
)

// Spec is what to check out.
type Spec struct {
	URL string
	// Commit is the full commit id to check out.
	Commit string
	// Ref is the ref the commit was seen on ("refs/heads/main",
	// "refs/pull/5/head"); fetched besides branches and tags when it is
	// neither, so a pull request's commit is found.
	Ref string
	// Depth > 0 makes a shallow workspace of that many commits.
	Depth int
	// Submodules checks out the submodules (recursively) too.
	Submodules bool
	Auth       *gitcli.Auth
}

// Result says what a checkout did and how long each part took.
type Result struct {
	// Fetched is false when the mirror already held the commit.
	Fetched  bool
	Fetch    time.Duration
	Checkout time.Duration
}

// Checkout checks out commits from mirrors.
type Checkout struct {
	Git     *gitcli.Git
	Mirrors *gitcli.Mirrors
}

// ErrWorkspaceNotEmpty: the checkout goes first, into an empty workspace.
var ErrWorkspaceNotEmpty = errors.New("workspace is not empty")

// Run checks out spec into the empty workspace ws. note receives lines
// for the job's log (no credential is ever in them).
func (c *Checkout) Run(ctx context.Context, spec Spec, ws *confine.Dir, note func(string)) (Result, error) {
	var res Result
	if !gitcli.IsSHA(spec.Commit) {
		return res, fmt.Errorf("commit %q is not a full commit id", spec.Commit)
	}
	if ents, err := ws.ReadDir("."); err != nil {
		return res, fmt.Errorf("workspace: %w", err)
	} else if len(ents) > 0 {
		return res, ErrWorkspaceNotEmpty
	}
	// git writes only into this empty folder, which the agent made: no
	// link of a job's making is there to follow.
	dir := ws.Path()
	start := time.Now()
	mr, err := c.Mirrors.Open(ctx, spec.URL)
	if err != nil {
		return res, err
	}
	defer mr.Release()
	var extra []string
	if r := spec.Ref; strings.HasPrefix(r, "refs/") && !strings.HasPrefix(r, "refs/heads/") && !strings.HasPrefix(r, "refs/tags/") {
		extra = append(extra, r)
	}
	fr, err := mr.Fetch(ctx, spec.Auth, spec.Commit, extra...)
	if err != nil {
		return res, fmt.Errorf("fetch %s: %w", spec.URL, err)
	}
	res.Fetched, res.Fetch = fr.Fetched, time.Since(start)
	if fr.Fetched {
		note(fmt.Sprintf("fetched %s into the agent's mirror in %s", spec.URL, res.Fetch.Round(time.Millisecond)))
	} else {
		note(fmt.Sprintf("the agent's mirror of %s already holds %.12s", spec.URL, spec.Commit))
	}
	start = time.Now()
	run := func(auth *gitcli.Auth, args ...string) error {
		_, err := c.Git.Run(ctx, gitcli.Cmd{Dir: dir, Args: args, Auth: auth})
		return err
	}
	if spec.Depth > 0 {
		err = firstErr(
			func() error { return run(nil, "init", "--quiet") },
			func() error { return run(nil, "remote", "add", "origin", "--", spec.URL) },
			func() error {
				return run(nil, "fetch", "--quiet", "--no-tags", "--depth", strconv.Itoa(spec.Depth), "--no-write-fetch-head", "--", "file://"+mr.Path, spec.Commit)
			},
		)
	} else {
		err = firstErr(
			func() error {
				return run(nil, "clone", "--quiet", "--no-checkout", "--no-hardlinks", "--", mr.Path, ".")
			},
			func() error { return run(nil, "remote", "set-url", "origin", "--", spec.URL) },
		)
	}
	if err == nil {
		err = run(nil, "-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", spec.Commit)
	}
	if err == nil && spec.Submodules {
		args := []string{"submodule", "update", "--init", "--recursive", "--quiet"}
		if spec.Depth > 0 {
			args = append(args, "--depth", strconv.Itoa(spec.Depth))
		}
		if gitref.IsFile(spec.URL) {
			args = append([]string{"-c", "protocol.file.allow=always"}, args...)
		}
		err = run(spec.Auth, args...)
	}
	if err != nil {
		return res, fmt.Errorf("check out %.12s: %w", spec.Commit, err)
	}
	out, err := c.Git.Run(ctx, gitcli.Cmd{Dir: dir, Args: []string{"rev-parse", "HEAD"}})
	if err != nil {
		return res, err
	}
	if got := strings.TrimSpace(string(out)); got != spec.Commit {
		return res, fmt.Errorf("checked out %s, want %s", got, spec.Commit)
	}
	res.Checkout = time.Since(start)
	note(fmt.Sprintf("checked out %s at %s in %s", spec.URL, spec.Commit, res.Checkout.Round(time.Millisecond)))
	return res, nil
}

func firstErr(fns ...func() error) error {
	for _, f := range fns {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}
