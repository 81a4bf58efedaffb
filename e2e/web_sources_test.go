package e2e

import (
	"fmt"
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
