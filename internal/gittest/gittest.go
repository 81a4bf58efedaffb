// Package gittest serves real git repositories to tests: bare repositories
// in a temporary folder, reached over smart HTTP (git http-backend behind
// net/http/cgi, with basic auth for private ones), over SSH (openssh's
// sshd on a loopback port with a throwaway host key and authorized_keys)
// and over file://. Commits are made with the system git in a working
// clone and pushed, as a person would.
//
// A test without git is skipped. A test that needs SSH is skipped when
// sshd is missing, unless ARCADE_REQUIRE_GIT_SSH=1, where it fails.
package gittest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Remote is a folder of bare repositories.
type Remote struct {
	t    testing.TB
	Root string
}

// New makes an empty folder of repositories, removed with the test.
func New(t testing.TB) *Remote {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	return &Remote{t: t, Root: t.TempDir()}
}

// Repo is one bare repository of a Remote and a working clone to commit
// from.
type Repo struct {
	t    testing.TB
	Name string
	// Bare is the repository served; Work the clone commits are made in.
	Bare string
	Work string
}

// Env is the environment of every git command of the package: fixed
// identities and dates, no user or system config.
var Env = []string{
	"GIT_AUTHOR_NAME=Ada Lovelace", "GIT_AUTHOR_EMAIL=ada@example.com",
	"GIT_COMMITTER_NAME=Ada Lovelace", "GIT_COMMITTER_EMAIL=ada@example.com",
	"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0", "LC_ALL=C",
}

// Git runs git in dir and returns its trimmed output, failing the test on
// error.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := RunGit(dir, nil, args...)
	if err != nil {
		t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// RunGit runs git in dir with env added and returns its trimmed output.
func RunGit(dir string, env []string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), Env...), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%v: %s", err, errb.String())
	}
	return strings.TrimSpace(out.String()), nil
}

// Repo makes a bare repository name.git with one commit on main (a
// README), and its working clone.
func (r *Remote) Repo(name string) *Repo {
	r.t.Helper()
	bare := filepath.Join(r.Root, name+".git")
	Git(r.t, r.Root, "init", "--quiet", "--bare", "--initial-branch=main", bare)
	// Pushes over HTTP are allowed (the server checks the password).
	Git(r.t, bare, "config", "http.receivepack", "true")
	Git(r.t, bare, "config", "uploadpack.allowAnySHA1InWant", "true")
	work := filepath.Join(r.t.TempDir(), name)
	Git(r.t, r.Root, "init", "--quiet", "--initial-branch=main", work)
	Git(r.t, work, "remote", "add", "origin", bare)
	repo := &Repo{t: r.t, Name: name, Bare: bare, Work: work}
	repo.Commit(map[string]string{"README.md": "# " + name + "\n"}, "first commit")
	return repo
}

// FileURL is the file:// URL of a repository.
func (r *Repo) FileURL() string { return "file://" + r.Bare }

// Commit writes files (relative names; "" content removes a file) in the
// working clone, commits them on the current branch, pushes the branch
// and returns the commit id.
func (r *Repo) Commit(files map[string]string, msg string) string {
	r.t.Helper()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := filepath.Join(r.Work, filepath.FromSlash(n))
		if files[n] == "" {
			Git(r.t, r.Work, "rm", "--quiet", "--", n)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(files[n]), 0o644); err != nil {
			r.t.Fatal(err)
		}
		Git(r.t, r.Work, "add", "--", n)
	}
	Git(r.t, r.Work, "commit", "--quiet", "--allow-empty", "-m", msg)
	Git(r.t, r.Work, "push", "--quiet", "origin", "HEAD")
	return r.Head()
}

// Head is the commit of the working clone's HEAD.
func (r *Repo) Head() string {
	r.t.Helper()
	return Git(r.t, r.Work, "rev-parse", "HEAD")
}

// Checkout switches the working clone to branch, making it from HEAD when
// it does not exist.
func (r *Repo) Checkout(branch string) {
	r.t.Helper()
	if _, err := RunGit(r.Work, nil, "rev-parse", "--verify", "--quiet", "refs/heads/"+branch); err == nil {
		Git(r.t, r.Work, "checkout", "--quiet", branch)
		return
	}
	Git(r.t, r.Work, "checkout", "--quiet", "-b", branch)
}

// Tag makes an annotated tag of HEAD, pushes it and returns the tag
// object's id (what a forge puts in "after" for an annotated tag).
func (r *Repo) Tag(name, msg string) string {
	r.t.Helper()
	Git(r.t, r.Work, "tag", "-a", name, "-m", msg)
	Git(r.t, r.Work, "push", "--quiet", "origin", "refs/tags/"+name)
	return Git(r.t, r.Work, "rev-parse", "refs/tags/"+name)
}

// DeleteBranch deletes a branch of the bare repository.
func (r *Repo) DeleteBranch(branch string) {
	r.t.Helper()
	Git(r.t, r.Work, "push", "--quiet", "origin", "--delete", branch)
}

// PushRef pushes the working clone's HEAD to ref of the bare repository
// (a pull request's head, "refs/pull/5/head").
func (r *Repo) PushRef(ref string) {
	r.t.Helper()
	Git(r.t, r.Work, "push", "--quiet", "--force", "origin", "HEAD:"+ref)
}
