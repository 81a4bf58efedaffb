package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/go-arcade/arcade/internal/gittest"
)

// TestWebSources: the dashboard shows a pipeline's source (never its
// credential's value) and what a run built: event, ref and commit.
func TestWebSources(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	chromium := needChromium(t)
	remote := gittest.New(t)
	repo := remote.Repo("shown")
	head := repo.Commit(map[string]string{"a": "a"}, "a")
	httpAddr := freeAddr(t)
	c := newCluster(t, "sqlite://"+filepath.Join(t.TempDir(), "arcade.db"), "--http-listen", httpAddr)
	if out, err := c.cliIn("tok-never-shown\n", "secret", "set", "SHOWN_GIT"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	p := c.createPipeline(fmt.Sprintf(`name: shown
source: {url: %q, credential: SHOWN_GIT}
stages: [{name: s, jobs: [{name: j, commands: ["true"]}]}]
`, repo.FileURL()))
	r := c.trigger("shown", nil)
	b := newBrowser(t, chromium, "http://"+httpAddr)
	b.open("/pipelines")
	b.waitJS("the login page", `location.pathname === '/login' && document.querySelector('#token')`)
	b.run("log in", chromedp.SendKeys(chromedp.CSS("#token"), apiToken), chromedp.Click(chromedp.CSS(`button[type=submit]`)))
	b.waitJS("the pipelines page", `location.pathname === '/pipelines'`)
	b.open("/pipelines/" + p.GetId())
	b.waitJS("the source", `document.querySelector('[data-testid=pipeline-source]') &&
		document.querySelector('[data-testid=pipeline-source]').textContent.includes(`+js(repo.FileURL())+`) &&
		document.querySelector('[data-testid=pipeline-source]').textContent.includes('credential from secret SHOWN_GIT')`)
	if evalJS[bool](b, `document.body.textContent.includes('tok-never-shown')`) {
		t.Fatal("the page shows the credential's value")
	}
	b.open("/runs/" + r.GetId())
	b.waitJS("the commit", `document.querySelector('[data-testid=run-source]') &&
		document.querySelector('[data-testid=run-source]').textContent.includes('manual refs/heads/main at `+head[:12]+`')`)
	b.screenshot("sources-run")
}

// TestWebForkDefinition: the page of a run of a fork's pull request (which
// ran its base branch's definition) has a button that starts a run of the
// pull request's own definition, and shows that run.
func TestWebForkDefinition(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	chromium := needChromium(t)
	remote := gittest.New(t)
	repo := remote.Repo("webfork")
	h := remote.ServeHTTP("", "")
	url := h.RepoURL("webfork")
	httpAddr := freeAddr(t)
	sc := newSourcesCluster(t, "sqlite://"+filepath.Join(t.TempDir(), "arcade.db"), "--http-listen", httpAddr)
	base := repo.Commit(map[string]string{".arcade.yaml": "stages: [{name: s, jobs: [{name: from-base, commands: [\"true\"]}]}]\n"}, "pipeline file")
	sc.createPipeline(fmt.Sprintf("name: webfork\nsource: {url: %q, definition: .arcade.yaml}\ntriggers: [{type: webhook, secret: hush, events: [pull_request]}]\n", url))
	repo.Checkout("fork")
	evil := repo.Commit(map[string]string{".arcade.yaml": "stages: [{name: s, jobs: [{name: from-fork, commands: [\"true\"]}]}]\n"}, "fork")
	repo.PushRef("refs/pull/3/head")
	pv := gittest.Vars{Branch: "main", Author: "ada", Owner: "acme", Name: "webfork", RepoID: 7, CloneURL: url, WebURL: "https://forge.example.com/acme/webfork",
		Number: 3, Action: "opened", Title: "Fork", HeadRef: "fork", HeadOwner: "mallory", HeadRepoID: 666, Fork: true, Before: base, After: evil}
	code, ans := sc.deliver("github", "pull_request", "pr-3", "hush", gittest.Delivery(t, "github-pull_request", pv))
	if code != http.StatusCreated || len(runIDs(ans)) != 1 {
		t.Fatalf("fork pull request: %d %v", code, ans)
	}
	b := newBrowser(t, chromium, "http://"+httpAddr)
	b.open("/login")
	b.waitJS("the login page", `document.querySelector('#token')`)
	b.run("log in", chromedp.SendKeys(chromedp.CSS("#token"), apiToken), chromedp.Click(chromedp.CSS(`button[type=submit]`)))
	b.waitJS("logged in", `location.pathname !== '/login'`)
	b.open("/runs/" + runIDs(ans)[0])
	b.waitJS("the base branch's job and the button", `document.querySelector('[data-testid=run-jobs]') &&
		document.querySelector('[data-testid=run-jobs]').textContent.includes('from-base') && document.querySelector('#approve-definition')`)
	evalJS[bool](b, `window.prompt = () => 'read the diff', true`)
	b.run("approve the pull request's definition", chromedp.Click(chromedp.CSS("#approve-definition")))
	b.waitJS("the new run, of the pull request's own definition", `location.pathname !== `+js("/runs/"+runIDs(ans)[0])+` &&
		document.querySelector('[data-testid=run-jobs]') && document.querySelector('[data-testid=run-jobs]').textContent.includes('from-fork') &&
		document.querySelector('[data-testid=run-source]').textContent.includes('approved by')`)
	b.screenshot("sources-fork-definition")
}
