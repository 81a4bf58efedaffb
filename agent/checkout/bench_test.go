package checkout

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-arcade/arcade/internal/confine"
	"github.com/go-arcade/arcade/internal/gitcli"
	"github.com/go-arcade/arcade/internal/gittest"
)

// BenchmarkCheckout checks out a generated repository (20,000 files of 1–4
// KB, 500 commits) served over smart HTTP, twice on one agent (a commit
// pushed in between), against a plain `git clone` of the same repository
// and `git worktree add` of the same commit, in the same run. Fetch and
// checkout are reported apart, in milliseconds. Run with -benchtime 1x.
func BenchmarkCheckout(b *testing.B) {
	g, err := gitcli.Find()
	if err != nil {
		b.Skip("git is not installed")
	}
	root := b.TempDir()
	start := time.Now()
	bare := filepath.Join(root, "big.git")
	head, err := gittest.Generate(bare, 20000, 500)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("generated the repository in %s", time.Since(start).Round(time.Millisecond))
	remote := &gittest.Remote{Root: root}
	h := remote.ServeHTTPFor(b, "", "")
	url := h.RepoURL("big")
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	for range b.N {
		g.TempDir = b.TempDir()
		co := &Checkout{Git: g, Mirrors: &gitcli.Mirrors{Git: g, Dir: filepath.Join(b.TempDir(), "mirrors"), MaxBytes: 10 << 30}}
		run := func(commit string) Result {
			ws := b.TempDir()
			d, err := confine.Open(ws)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			res, err := co.Run(context.Background(), Spec{URL: url, Commit: commit}, d, func(string) {})
			if err != nil {
				b.Fatal(err)
			}
			return res
		}
		// Baseline: a plain clone over the same transport.
		t0 := time.Now()
		clone := filepath.Join(b.TempDir(), "clone")
		if out, err := exec.Command("git", "clone", "--quiet", url, clone).CombinedOutput(); err != nil {
			b.Fatalf("git clone: %v %s", err, out)
		}
		plain := time.Since(t0)
		first := run(head)
		// A new commit, then the second checkout on the same agent.
		// (the same tree: the workspace has every file again).
		next := gittest.Git(b, bare, "commit-tree", "-p", head, "-m", "next", head+"^{tree}")
		gittest.Git(b, bare, "update-ref", "refs/heads/main", next)
		second := run(next)
		// The checkout beside `git worktree add` of the same commit.
		t0 = time.Now()
		wt := filepath.Join(b.TempDir(), "wt")
		gittest.Git(b, clone, "worktree", "add", "--quiet", "--detach", wt, head)
		worktree := time.Since(t0)
		b.ReportMetric(ms(plain), "plain-clone-ms")
		b.ReportMetric(ms(first.Fetch), "first-fetch-ms")
		b.ReportMetric(ms(first.Checkout), "first-checkout-ms")
		b.ReportMetric(ms(second.Fetch), "second-fetch-ms")
		b.ReportMetric(ms(second.Checkout), "second-checkout-ms")
		b.ReportMetric(ms(worktree), "worktree-add-ms")
		b.ReportMetric(float64(second.Fetch)/float64(plain), "second-fetch/plain-clone")
		b.ReportMetric(float64(second.Checkout)/float64(worktree), "checkout/worktree-add")
		os.RemoveAll(clone)
	}
}
