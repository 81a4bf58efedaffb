package checkout

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/go-arcade/arcade/internal/confine"
	"github.com/go-arcade/arcade/internal/gitcli"
	"github.com/go-arcade/arcade/internal/gittest"
)

type fixture struct {
	co    *Checkout
	cache string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	g, err := gitcli.Find()
	if err != nil {
		t.Skip("git is not installed")
	}
	tmp := t.TempDir()
	g.TempDir = tmp
	cache := filepath.Join(t.TempDir(), "mirrors")
	return &fixture{co: &Checkout{Git: g, Mirrors: &gitcli.Mirrors{Git: g, Dir: cache, MaxBytes: 1 << 30}}, cache: cache}
}

func (f *fixture) run(t *testing.T, spec Spec) (string, Result, []string, error) {
	t.Helper()
	ws := t.TempDir()
	d, err := confine.Open(ws)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var notes []string
	res, err := f.co.Run(context.Background(), spec, d, func(s string) { notes = append(notes, s) })
	return ws, res, notes, err
}

func head(t *testing.T, ws string) string {
	t.Helper()
	return gittest.Git(t, ws, "rev-parse", "HEAD")
}

// Every transport, the exact commit (not the branch head), and a second
// checkout served by the mirror without a fetch.
func TestCheckoutExactCommitOverEachTransport(t *testing.T) {
	remote := gittest.New(t)
	repo := remote.Repo("app")
	first := repo.Commit(map[string]string{"a.txt": "one\n"}, "one")
	second := repo.Commit(map[string]string{"a.txt": "two\n"}, "two")
	h := remote.ServeHTTP("", "")
	urls := map[string]string{"http": h.RepoURL("app"), "file": repo.FileURL()}
	for name, url := range urls {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			ws, res, _, err := f.run(t, Spec{URL: url, Commit: first, Ref: "refs/heads/main"})
			if err != nil {
				t.Fatal(err)
			}
			if got := head(t, ws); got != first {
				t.Fatalf("HEAD = %s, want %s (not the branch head %s)", got, first, second)
			}
			if b, _ := os.ReadFile(filepath.Join(ws, "a.txt")); string(b) != "one\n" {
				t.Fatalf("a.txt = %q", b)
			}
			if !res.Fetched {
				t.Fatal("first checkout reports no fetch")
			}
			if got := gittest.Git(t, ws, "remote", "get-url", "origin"); got != url {
				t.Fatalf("origin = %q, want %q", got, url)
			}
			ws, res, notes, err := f.run(t, Spec{URL: url, Commit: second})
			if err != nil {
				t.Fatal(err)
			}
			if head(t, ws) != second {
				t.Fatal("second checkout is not at the second commit")
			}
			if res.Fetched {
				t.Fatalf("second checkout fetched although the mirror holds the commit: %v", notes)
			}
		})
	}
}

// The mirror fetches what it lacks: a new commit pushed after the first
// checkout is fetched, and only the new objects come over the wire.
func TestCheckoutFetchesNewCommits(t *testing.T) {
	remote := gittest.New(t)
	repo := remote.Repo("app")
	h := remote.ServeHTTP("", "")
	f := newFixture(t)
	if _, _, _, err := f.run(t, Spec{URL: h.RepoURL("app"), Commit: repo.Head()}); err != nil {
		t.Fatal(err)
	}
	next := repo.Commit(map[string]string{"b.txt": "b\n"}, "b")
	ws, res, _, err := f.run(t, Spec{URL: h.RepoURL("app"), Commit: next})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Fetched || head(t, ws) != next {
		t.Fatalf("fetched=%v head=%s want %s", res.Fetched, head(t, ws), next)
	}
}

// A pull request's commit lives only under refs/pull/N/head.
func TestCheckoutPullRequestRef(t *testing.T) {
	remote := gittest.New(t)
	repo := remote.Repo("app")
	repo.Checkout("feature")
	pr := repo.Commit(map[string]string{"f.txt": "f\n"}, "feature")
	repo.PushRef("refs/pull/7/head")
	repo.DeleteBranch("feature")
	f := newFixture(t)
	ws, _, _, err := f.run(t, Spec{URL: repo.FileURL(), Commit: pr, Ref: "refs/pull/7/head"})
	if err != nil {
		t.Fatal(err)
	}
	if head(t, ws) != pr {
		t.Fatal("wrong commit")
	}
}

func TestCheckoutShallowAndSubmodules(t *testing.T) {
	remote := gittest.New(t)
	lib := remote.Repo("lib")
	libHead := lib.Commit(map[string]string{"lib.txt": "lib\n"}, "lib")
	app := remote.Repo("app")
	for i := range 5 {
		app.Commit(map[string]string{"n.txt": strings.Repeat("x", i+1)}, "n")
	}
	gittest.Git(t, app.Work, "-c", "protocol.file.allow=always", "submodule", "add", "--quiet", lib.FileURL(), "lib")
	gittest.Git(t, app.Work, "commit", "--quiet", "-m", "submodule")
	gittest.Git(t, app.Work, "push", "--quiet", "origin", "HEAD")
	top := app.Head()
	f := newFixture(t)
	ws, _, _, err := f.run(t, Spec{URL: app.FileURL(), Commit: top, Depth: 2, Submodules: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := gittest.Git(t, ws, "rev-list", "--count", "HEAD"); n != "2" {
		t.Fatalf("shallow checkout has %s commits, want 2", n)
	}
	if got := gittest.Git(t, filepath.Join(ws, "lib"), "rev-parse", "HEAD"); got != libHead {
		t.Fatalf("submodule at %s, want %s", got, libHead)
	}
	// Without the option the submodule stays empty.
	ws, _, _, err = f.run(t, Spec{URL: app.FileURL(), Commit: top})
	if err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(ws, "lib")); len(ents) != 0 {
		t.Fatalf("submodule checked out without the option: %v", ents)
	}
}

// A private repository over HTTPS: refused without its credential, checked
// out with it, and the token is in no process's command line or
// environment while git runs, nor in the workspace (its .git/config) nor
// in the mirror.
func TestCheckoutPrivateHTTP(t *testing.T) {
	const token = "tok-3b1f7c0d9e8a-private"
	remote := gittest.New(t)
	repo := remote.Repo("secret-app")
	h := remote.ServeHTTP("ci", token)
	h.Private("secret-app")
	var mu sync.Mutex
	var leaks []string
	h.OnRequest(func(*http.Request) {
		if l := gittest.ProcessesHolding(token); len(l) > 0 {
			mu.Lock()
			leaks = append(leaks, l...)
			mu.Unlock()
		}
	})
	f := newFixture(t)
	_, _, _, err := f.run(t, Spec{URL: h.RepoURL("secret-app"), Commit: repo.Head()})
	var ge *gitcli.Error
	if err == nil || !errors.As(err, &ge) {
		t.Fatalf("checkout without credential: %v, want a git error", err)
	}
	ws, _, _, err := f.run(t, Spec{URL: h.RepoURL("secret-app"), Commit: repo.Head(), Auth: &gitcli.Auth{Username: "ci", Password: token}})
	if err != nil {
		t.Fatal(err)
	}
	if !h.SawCredential() {
		t.Fatal("the server never saw the credential")
	}
	if len(leaks) > 0 {
		t.Fatalf("token visible in the process list while git ran:\n%s", strings.Join(leaks, "\n"))
	}
	for _, dir := range []string{ws, f.cache, f.co.Git.TempDir} {
		assertAbsent(t, dir, token)
	}
	// A wrong token fails, and the error does not repeat it.
	_, _, _, err = f.run(t, Spec{URL: h.RepoURL("secret-app"), Commit: repo.Commit(nil, "more"), Auth: &gitcli.Auth{Password: "wrong-" + token}})
	if err == nil || strings.Contains(err.Error(), token) {
		t.Fatalf("wrong token: %v", err)
	}
}

func TestCheckoutSSH(t *testing.T) {
	remote := gittest.New(t)
	repo := remote.Repo("app")
	srv := remote.ServeSSH()
	f := newFixture(t)
	_, _, _, err := f.run(t, Spec{URL: srv.RepoURL("app"), Commit: repo.Head()})
	if err == nil {
		t.Fatal("checkout over SSH without a key succeeded")
	}
	var leaks []string
	key := gitcli.ParseAuth(srv.ClientKey)
	if key == nil || len(key.SSHKey) == 0 {
		t.Fatal("client key not read as an SSH key")
	}
	ws, _, _, err := f.run(t, Spec{URL: srv.RepoURL("app"), Commit: repo.Head(), Auth: key})
	if err != nil {
		t.Fatal(err)
	}
	if head(t, ws) != repo.Head() {
		t.Fatal("wrong commit")
	}
	secretLine := key.Secrets()[0]
	leaks = gittest.ProcessesHolding(secretLine)
	if len(leaks) > 0 {
		t.Fatal(leaks)
	}
	for _, dir := range []string{ws, f.cache, f.co.Git.TempDir} {
		assertAbsent(t, dir, secretLine)
	}
	// The key file lived outside the workspace and is gone.
	if ents, _ := os.ReadDir(f.co.Git.TempDir); len(ents) > 1 { // known_hosts stays
		t.Fatalf("credential files left: %v", ents)
	}
}

func TestCheckoutRefusesNonEmptyWorkspaceAndBadCommit(t *testing.T) {
	remote := gittest.New(t)
	repo := remote.Repo("app")
	f := newFixture(t)
	ws := t.TempDir()
	os.WriteFile(filepath.Join(ws, "x"), nil, 0o644)
	d, _ := confine.Open(ws)
	defer d.Close()
	if _, err := f.co.Run(context.Background(), Spec{URL: repo.FileURL(), Commit: repo.Head()}, d, func(string) {}); !errors.Is(err, ErrWorkspaceNotEmpty) {
		t.Fatalf("got %v", err)
	}
	if _, _, _, err := f.run(t, Spec{URL: repo.FileURL(), Commit: strings.Repeat("ab", 20)}); !errors.Is(err, gitcli.ErrNoCommit) {
		t.Fatalf("missing commit: %v", err)
	}
	if _, _, _, err := f.run(t, Spec{URL: repo.FileURL(), Commit: "main"}); err == nil {
		t.Fatal("a branch name was taken for a commit id")
	}
}

// assertAbsent fails when any file under dir holds s.
func assertAbsent(t *testing.T, dir, s string) {
	t.Helper()
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), s) {
				t.Errorf("%s holds the credential", p)
			}
		}
		return nil
	})
}
