package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	secretv1 "github.com/go-arcade/arcade/api/secret/v1"
)

// TestWebPipelineData drives a run's page in headless Chromium: the
// combinations of a 2x2 matrix with one exclude are drawn inside one box
// named by their matrix and listed under one row counting their statuses,
// with the edges of the matrix's dependants drawn from each combination;
// an approval job waiting shows Approve and Reject, a read token's click
// is refused and changes nothing, a write token's approves it, and the
// page then says who approved and the run goes on.
func TestWebPipelineData(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	chromium := needChromium(t)
	httpAddr := freeAddr(t)
	c := newCluster(t, "sqlite://"+filepath.Join(t.TempDir(), "arcade.db"), "--http-listen", httpAddr)
	c.startAgent("web-data", 3)
	token := func(name string, scope secretv1.TokenScope) string {
		resp, err := secretv1.NewTokenServiceClient(c.conn).CreateToken(context.Background(), &secretv1.CreateTokenRequest{Name: name, Scope: scope})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetSecret()
	}
	reader, writer := token("web-viewer", secretv1.TokenScope_TOKEN_SCOPE_READ), token("web-releaser", secretv1.TokenScope_TOKEN_SCOPE_WRITE)

	c.createPipeline(`
name: web-data
stages:
  - name: build
    jobs:
      - name: build
        matrix:
          OS: [linux, darwin]
          GO: ["1.22", "1.23"]
          exclude: [{OS: darwin, GO: "1.22"}]
        commands: ['echo "$OS $GO"']
  - name: release
    jobs:
      - name: gate
        type: approval
        depends_on: [build]
        timeout: 1h
      - name: ship
        depends_on: [gate]
        commands: [echo shipped]
`)
	run := c.trigger("web-data", nil)
	c.waitFor("the approval job to wait", func() bool {
		g := jobsByName(c.run(run.GetId()))["gate"]
		return g.GetId() != "" && g.GetHeld() != ""
	})

	b := newBrowser(t, chromium, "http://"+httpAddr)
	login := func(tok string) {
		t.Helper()
		evalJS[bool](b, `sessionStorage.clear(), localStorage.clear(), true`)
		b.open("/login")
		b.waitJS("the login page", `document.querySelector('#token')`)
		b.run("log in", chromedp.SendKeys(chromedp.CSS("#token"), tok), chromedp.Click(chromedp.CSS(`button[type=submit]`)))
		b.waitJS("logged in", `location.pathname !== '/login'`)
	}
	b.open("/login")
	login(reader)
	b.open("/runs/" + run.GetId())

	// The matrix, grouped: one head row counting three combinations, each
	// listed under it by its values, drawn inside the matrix's box.
	b.waitJS("the matrix listed", `document.querySelector('tr.matrix-head[data-matrix-group=build][data-combinations="3"]') &&
		document.querySelectorAll('tr.matrix-member[data-matrix=build][data-status=SUCCESS]').length === 3`)
	head := evalJS[string](b, `document.querySelector('tr.matrix-head[data-matrix-group=build]').innerText`)
	if !strings.Contains(head, "matrix of 3") || !strings.Contains(head, "3 success") {
		t.Errorf("the matrix row says %q", head)
	}
	members := evalJS[[]string](b, `[...document.querySelectorAll('tr.matrix-member[data-matrix=build]')].map(r => r.dataset.job)`)
	want := []string{"build (linux, 1.22)", "build (linux, 1.23)", "build (darwin, 1.23)"}
	if strings.Join(members, "|") != strings.Join(want, "|") {
		t.Errorf("combinations listed %q, want %q", members, want)
	}
	if text := evalJS[string](b, `document.querySelector('tr.matrix-member[data-job="build (darwin, 1.23)"]').innerText`); !strings.Contains(text, "OS=darwin") || !strings.Contains(text, "GO=1.23") {
		t.Errorf("a combination's row says %q, want its values", text)
	}
	inside := evalJS[bool](b, `(() => {
		const box = document.querySelector('g.matrix-group[data-matrix=build] rect').getBoundingClientRect();
		const nodes = [...document.querySelectorAll('g.node')].filter(g => g.dataset.job.startsWith('build ('));
		return nodes.length === 3 && nodes.every(g => { const r = g.getBoundingClientRect();
			return r.left >= box.left && r.right <= box.right && r.top >= box.top && r.bottom <= box.bottom; });
	})()`)
	if !inside {
		t.Error("the matrix's combinations are not drawn inside its box")
	}
	if n := evalJS[int](b, `document.querySelectorAll('path.edge').length`); n != 4 {
		t.Errorf("%d edges drawn, want 4 (each combination to gate, gate to ship)", n)
	}

	// The approval: a read token's click is refused, nothing changes.
	b.waitJS("the approve button", `document.querySelector('button[data-approve=gate]') && document.querySelector('button[data-reject=gate]')`)
	b.screenshot("pipedata-01-run")
	evalJS[bool](b, `window.prompt = () => 'release notes read', true`)
	b.run("approve as a reader", chromedp.Click(chromedp.CSS(`button[data-approve=gate]`)))
	b.waitJS("the refusal", `[...document.querySelectorAll('#toast .msg.bad')].some(m => m.textContent.includes('Not allowed'))`)
	if g := jobsByName(c.run(run.GetId()))["gate"]; g.GetStatus() != pending || g.GetApproval().GetDecision() != "" {
		t.Fatalf("after a read token's click the gate is %v %v", g.GetStatus(), g.GetApproval())
	}

	// A write token's click approves it; the page says who, the run goes on.
	login(writer)
	b.open("/runs/" + run.GetId())
	b.waitJS("the approve button", `document.querySelector('button[data-approve=gate]')`)
	evalJS[bool](b, `window.prompt = () => 'release notes read', true`)
	b.run("approve as a writer", chromedp.Click(chromedp.CSS(`button[data-approve=gate]`)))
	b.waitJS("the decision shown", `(() => { const d = document.querySelector('tr[data-job=gate] [data-decision=approved]');
		return d && d.textContent.includes('by web-releaser') && d.textContent.includes('release notes read'); })()`)
	if r := c.waitRun(run.GetId()); r.GetStatus() != success {
		t.Fatalf("run after approval: %v %s", r.GetStatus(), r.GetMessage())
	}
	b.waitJS("ship shown done", `document.querySelector('tr[data-job=ship][data-status=SUCCESS]') && !document.querySelector('button[data-approve=gate]')`)
	b.screenshot("pipedata-02-approved")
}
