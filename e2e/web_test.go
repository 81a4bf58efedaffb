package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	coreevents "github.com/go-arcade/arcade/core/events"
)

// browser is a headless Chromium driven over the DevTools protocol, with the
// dashboard's base URL.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
	shot string // screenshot folder

	mu     sync.Mutex
	errors []string // uncaught exceptions of the page
}

func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// needChromium returns the browser's path, or skips the test without one
// (fails it with ARCADE_REQUIRE_BROWSER=1, as CI sets).
func needChromium(t *testing.T) string {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		if os.Getenv("ARCADE_REQUIRE_BROWSER") == "1" {
			t.Fatal("no chromium on PATH and ARCADE_REQUIRE_BROWSER=1 (apt-get install -y chromium)")
		}
		t.Skip("no chromium on PATH: browser tests skipped (apt-get install -y chromium; ARCADE_REQUIRE_BROWSER=1 makes this a failure)")
	}
	return path
}

func newBrowser(t *testing.T, path, base string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI containers run as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1440, 1000),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	b := &browser{t: t, ctx: ctx, base: base, shot: screenshotDir(t)}
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		cancelCtx()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	// Uncaught exceptions of the page fail the test.
	consoleDone := make(chan struct{})
	go func() {
		defer close(consoleDone)
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			if m.IsException() {
				b.mu.Lock()
				b.errors = append(b.errors, m.String())
				b.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
		<-consoleDone
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, e := range b.errors {
			t.Errorf("uncaught exception in the page: %s", e)
		}
	})
	return b
}

// screenshotDir is $ARCADE_SCREENSHOTS, or e2e/screenshots (ignored by git).
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("ARCADE_SCREENSHOTS")
	if dir == "" {
		dir = "screenshots"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	return abs
}

func (b *browser) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

func (b *browser) open(path string) {
	b.t.Helper()
	b.run("open "+path, chromedp.Navigate(b.base+path), chromedp.WaitVisible(chromedp.CSS("#main")))
}

// evalJS evaluates a JavaScript expression.
func evalJS[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS polls a JavaScript expression until it is true.
func (b *browser) waitJS(what, expr string) {
	b.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("Boolean("+expr+")"))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.getElementById('main').innerText.slice(0, 2000)`))
			b.screenshot("failed-" + strings.ReplaceAll(what, " ", "-"))
			b.t.Fatalf("timed out waiting for %s (%s): %v\npage:\n%s", what, expr, err, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(b.shot, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	b.t.Logf("screenshot %s", path)
}

func js(v any) string {
	out, _ := json.Marshal(v)
	return string(out)
}

// buildKitchen builds the host's test plugin at a version.
func buildKitchen(out, version string) error {
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "-ldflags", "-X main.version="+version, "../host/testdata/kitchen")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build kitchen %s: %v\n%s", version, err, b)
	}
	return nil
}

// TestWebDashboard drives the dashboard in headless Chromium against a real
// server and agent: log in, create and trigger the example pipeline and watch
// its jobs turn green, follow a log live, read a 100,000-line log, edit an
// agent's labels and see it go offline, see a plugin reload when its file
// is replaced, and the event feed. Each view is saved as a screenshot.
func TestWebDashboard(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	chromium := needChromium(t)
	dir := t.TempDir()
	pluginDir := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Two versions of a plugin, built while the cluster starts.
	v1, v2 := filepath.Join(dir, "kitchen-1.wasm"), filepath.Join(dir, "kitchen-2.wasm")
	var buildErr [2]error
	var builds sync.WaitGroup
	builds.Go(func() { buildErr[0] = buildKitchen(v1, "1.0.0") })
	builds.Go(func() { buildErr[1] = buildKitchen(v2, "2.0.0") })

	httpAddr := freeAddr(t)
	c := newCluster(t, "sqlite://"+filepath.Join(dir, "arcade.db"), "--http-listen", httpAddr, "--plugin-dirs", pluginDir)
	agent := c.startAgent("web-agent", 2)
	b := newBrowser(t, chromium, "http://"+httpAddr)

	// Log in: a wrong token is refused, the API token is accepted.
	b.open("/pipelines")
	b.waitJS("the login page", `location.pathname === '/login' && document.querySelector('#token')`)
	b.run("wrong token", chromedp.SendKeys(chromedp.CSS("#token"), "not-the-token"), chromedp.Click(chromedp.CSS(`button[type=submit]`)))
	b.waitJS("the refusal", `document.querySelector('#login-error').textContent.includes('Invalid token')`)
	// This server's token comes from the environment: the page does not
	// send anyone to a credentials file.
	b.waitJS("the login hint", `document.querySelector('[data-testid=login-hint]').textContent.includes('ARCADE_API_TOKEN')`)
	if hint := evalJS[string](b, `document.querySelector('[data-testid=login-hint]').textContent`); strings.Contains(hint, "credentials.env") {
		t.Errorf("the login page points to credentials.env although the token comes from the environment: %q", hint)
	}
	b.screenshot("01-login")
	evalJS[bool](b, `document.querySelector('#token').value = '', true`)
	b.run("log in", chromedp.SendKeys(chromedp.CSS("#token"), apiToken), chromedp.Click(chromedp.CSS(`button[type=submit]`)))
	b.waitJS("the pipelines page", `location.pathname === '/pipelines' && document.querySelector('[data-testid=pipelines]')`)

	// Create the example pipeline from its file, then trigger it.
	yaml, err := os.ReadFile(filepath.Join("..", "examples", "pipelines", "build-test-deploy.arcade.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	b.run("open the new pipeline dialog", chromedp.Click(chromedp.CSS("#new-pipeline")), chromedp.WaitVisible(chromedp.CSS("#pipeline-yaml")))
	evalJS[bool](b, `document.querySelector('#pipeline-yaml').value = `+js(string(yaml))+`, true`)
	b.run("create", chromedp.Click(chromedp.CSS("#create-pipeline")))
	b.waitJS("the pipeline page", `location.pathname.startsWith('/pipelines/') && document.querySelector('h1') && document.querySelector('h1').textContent === 'build-test-deploy'`)
	b.run("open the trigger dialog", chromedp.Click(chromedp.CSS(`.head button.primary`)), chromedp.WaitVisible(chromedp.CSS("#trigger-params")))
	b.run("trigger", chromedp.SendKeys(chromedp.CSS("#trigger-params"), "GREETING=bonjour"), chromedp.Click(chromedp.CSS("#trigger-run")))
	b.waitJS("the run page", `location.pathname.startsWith('/runs/') && document.querySelectorAll('[data-testid=run-graph] .node').length === 7`)
	runID := evalJS[string](b, `location.pathname.split('/')[2]`)
	c.waitFor("the run to end", func() bool {
		r, err := c.jobs.GetPipelineRun(context.Background(), &jobv1.GetPipelineRunRequest{RunId: runID})
		if err != nil {
			t.Fatal(err)
		}
		s := r.GetRun().GetStatus()
		return s != agentv1.JobStatus_JOB_STATUS_PENDING && s != agentv1.JobStatus_JOB_STATUS_RUNNING
	})
	// Every job that runs turns green on the page; notify-failure (when:
	// on_failure) is skipped. The page is never reloaded.
	b.waitJS("every job green", `[...document.querySelectorAll('[data-testid=run-graph] .node')].every(n =>
		n.dataset.job === 'notify-failure' ? n.dataset.status === 'SKIPPED' : n.dataset.status === 'SUCCESS')`)
	b.waitJS("the run to succeed", `document.querySelector('h1 .badge').dataset.status === 'SUCCESS'`)
	edges := evalJS[int](b, `document.querySelectorAll('[data-testid=run-graph] path.edge').length`)
	// compile→unit, lint, integration; each deploy-stage job after the three tests.
	if edges != 3+3*3 {
		t.Errorf("graph has %d edges, want 12 (depends_on and stage order)", edges)
	}
	run, err := c.jobs.GetPipelineRun(context.Background(), &jobv1.GetPipelineRunRequest{RunId: runID})
	if err != nil || run.GetRun().GetStatus() != agentv1.JobStatus_JOB_STATUS_SUCCESS || run.GetRun().GetParams()["GREETING"] != "bonjour" {
		t.Fatalf("the run as the API sees it: %v %v", run, err)
	}
	// What started the run, in one phrase (not "manual run by api by …").
	if by := evalJS[string](b, `document.querySelector('[data-testid=run-trigger]').textContent`); !strings.HasPrefix(by, "manual (api by ") || strings.Contains(by, "by api by") {
		t.Errorf("the run page says it was started by %q", by)
	}
	b.screenshot("02-run")
	b.open("/pipelines/build-test-deploy")
	b.waitJS("the run listed with what started it", `(() => { const c = document.querySelector('[data-testid=run-trigger]'); return c && c.textContent.startsWith('manual (api by ') && !c.textContent.includes('by api by') })()`)
	b.open("/pipelines")
	b.waitJS("statistics", `document.querySelector('tr[data-pipeline=build-test-deploy] .badge') && document.querySelector('tr[data-pipeline=build-test-deploy] .badge').dataset.status === 'SUCCESS'`)
	b.screenshot("03-pipelines")

	// A job that prints slowly: its lines arrive on the open page.
	stop := filepath.Join(dir, "stop-ticking")
	slow := c.create(&jobv1.CreateJobRequest{Name: "ticker", Commands: []string{
		`printf '\033[32mgreen start\033[0m\n'; echo "to stderr" >&2; echo '<b>not bold</b>'; printf '\033]0;a title\007\033[2Kafter escapes\n'`,
		fmt.Sprintf(`i=0; while [ ! -e %s ] && [ $i -lt 3000 ]; do i=$((i+1)); echo "tick $i"; sleep 0.1; done`, stop),
	}})
	b.open("/jobs/" + slow.GetId())
	b.waitJS("the first ticks", `[...document.querySelectorAll('[data-testid=log] .line')].some(l => l.textContent.endsWith('tick 3'))`)
	if j := c.get(slow.GetId()); j.GetStatus() != agentv1.JobStatus_JOB_STATUS_RUNNING {
		t.Fatalf("ticker is %v while its first lines show", j.GetStatus())
	}
	first := evalJS[int](b, `Number(document.querySelector('[data-testid=log]').dataset.lines)`)
	b.waitJS("more lines, live", fmt.Sprintf(`Number(document.querySelector('[data-testid=log]').dataset.lines) >= %d`, first+10))
	b.waitJS("the stderr line marked", `[...document.querySelectorAll('[data-testid=log] .line.stderr')].some(l => l.textContent.includes('to stderr'))`)
	b.waitJS("ANSI colour rendered", `[...document.querySelectorAll('[data-testid=log] .a-f2')].some(s => s.textContent === 'green start')`)
	b.waitJS("other escapes dropped", `[...document.querySelectorAll('[data-testid=log] .line')].some(l => l.textContent.endsWith('after escapes') && !l.textContent.includes('title') && !l.textContent.includes('\u001b'))`)
	b.waitJS("markup shown as text", `[...document.querySelectorAll('[data-testid=log] .line')].some(l => l.textContent.endsWith('<b>not bold</b>')) &&
		!document.querySelector('[data-testid=log] b')`)
	b.waitJS("the badge running", `document.querySelector('h1 .badge').dataset.status === 'RUNNING'`)
	b.screenshot("04-job-live")
	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b.waitJS("the job to end on the page", `document.querySelector('h1 .badge').dataset.status === 'SUCCESS'`)
	// Line anchors: /jobs/ID#L2 opens with line 2 marked.
	b.open("/jobs/" + slow.GetId() + "#L2")
	b.waitJS("line 2 marked", `document.querySelector('[data-testid=log] .line.target') && document.querySelector('[data-testid=log] .line.target').dataset.line === '2'`)

	// A job that fails once: retried from its page, the second attempt is
	// followed there, log and all.
	marker := filepath.Join(dir, "tried-once")
	flaky := c.create(&jobv1.CreateJobRequest{Name: "flaky", Commands: []string{
		fmt.Sprintf(`if [ -e %[1]s ]; then echo "second try"; else touch %[1]s; echo "first try"; exit 3; fi`, marker),
	}})
	c.waitStatus(flaky.GetId(), agentv1.JobStatus_JOB_STATUS_FAILED)
	b.open("/jobs/" + flaky.GetId())
	b.waitJS("the failure shown", `document.querySelector('h1 .badge').dataset.status === 'FAILED' && document.querySelector('#retry-job')`)
	b.run("retry", chromedp.Click(chromedp.CSS("#retry-job")))
	b.waitJS("the second attempt green", `document.querySelector('h1 .badge').dataset.status === 'SUCCESS' &&
		[...document.querySelectorAll('[data-testid=log] .line')].some(l => l.textContent.endsWith('second try'))`)
	if j := c.get(flaky.GetId()); j.GetAttempt() != 2 || j.GetStatus() != agentv1.JobStatus_JOB_STATUS_SUCCESS {
		t.Fatalf("after the retry: attempt %d %v", j.GetAttempt(), j.GetStatus())
	}
	b.screenshot("05-job-retried")

	// Stop a run from its page: what runs is cancelled, what waits never
	// starts.
	if _, err := c.jobs.CreatePipeline(context.Background(), &jobv1.CreatePipelineRequest{Yaml: `name: long
stages:
  - name: wait
    jobs:
      - name: sleeper
        commands: ["sleep 120"]
  - name: after
    jobs:
      - name: never
        commands: ["true"]
`}); err != nil {
		t.Fatal(err)
	}
	long, err := c.jobs.TriggerPipeline(context.Background(), &jobv1.TriggerPipelineRequest{PipelineId: "long"})
	if err != nil {
		t.Fatal(err)
	}
	b.open("/runs/" + long.GetRun().GetId())
	b.waitJS("the sleeper running", `document.querySelector('[data-testid=run-graph] .node[data-job=sleeper]') &&
		document.querySelector('[data-testid=run-graph] .node[data-job=sleeper]').dataset.status === 'RUNNING'`)
	b.run("stop the run", chromedp.Click(chromedp.CSS("#stop-run")))
	b.waitJS("the run stopped", `document.querySelector('h1 .badge').dataset.status === 'CANCELLED' &&
		document.querySelector('[data-testid=run-graph] .node[data-job=sleeper]').dataset.status === 'CANCELLED' &&
		document.querySelector('[data-testid=run-graph] .node[data-job=never]').dataset.status !== 'SUCCESS' && !document.querySelector('#stop-run')`)

	// A 100,000-line log: the DOM holds only what is visible, and the end
	// is reached by scrolling.
	big := c.create(&jobv1.CreateJobRequest{Name: "big-log", Commands: []string{"seq 1 100000 | sed 's/^/row /'"}})
	c.waitStatus(big.GetId(), agentv1.JobStatus_JOB_STATUS_SUCCESS)
	// The agent echoes the command first: 100,001 lines in all.
	all := c.logOf(big.GetId(), 0)
	if len(all) != 100001 || all[len(all)-1].GetContent() != "row 100000" {
		t.Fatalf("the big log has %d lines", len(all))
	}
	start := time.Now()
	b.open("/jobs/" + big.GetId())
	b.waitJS("100,000 lines loaded", `document.querySelector('[data-testid=log]') && document.querySelector('[data-testid=log]').dataset.lines === '100001'`)
	loaded := time.Since(start)
	rows := evalJS[int](b, `document.querySelectorAll('[data-testid=log] .line').length`)
	if rows == 0 || rows > 200 {
		t.Fatalf("the log view holds %d rows in the DOM, want a bounded window", rows)
	}
	evalJS[bool](b, `document.querySelector('[data-testid=log]').scrollTop = 0, true`)
	b.waitJS("the first line at the top", `document.querySelector('[data-testid=log] .line[data-line="1"]')`)
	start = time.Now()
	evalJS[bool](b, `(() => { const s = document.querySelector('[data-testid=log]'); s.scrollTop = s.scrollHeight; return true })()`)
	b.waitJS("the last line after scrolling", `[...document.querySelectorAll('[data-testid=log] .line')].some(l => l.dataset.line === '100001' && l.textContent.endsWith('row 100000'))`)
	scrolled := time.Since(start)
	rows = evalJS[int](b, `document.querySelectorAll('[data-testid=log] .line').length`)
	if rows > 200 {
		t.Fatalf("after scrolling, %d rows in the DOM", rows)
	}
	// Search finds a line far up and brings it into view.
	b.run("search", chromedp.SendKeys(chromedp.CSS(`input[type=search]`), "row 4242\n"))
	b.waitJS("the match shown", `[...document.querySelectorAll('[data-testid=log] .line.cur')].some(l => l.textContent.endsWith('row 4242'))`)
	hits := evalJS[string](b, `document.querySelector('[data-testid=log-hits]').textContent`)
	if hits != "1/11" { // row 4242 and row 42420…42429
		t.Errorf("search shows %q, want 1/11", hits)
	}
	t.Logf("100,000-line log: shown in %v, end reached in %v, %d rows in the DOM", loaded.Round(time.Millisecond), scrolled.Round(time.Millisecond), rows)
	b.screenshot("06-job-100k")

	// Plugins: a plugin dropped in the watched folder appears; replacing
	// its file shows the reload in the live feed.
	for _, err := range buildErr {
		if builds.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	b.open("/plugins")
	b.waitJS("the plugin feed live", `document.querySelector('[data-testid=stream-state]').textContent.includes('live')`)
	target := filepath.Join(pluginDir, "kitchen.wasm")
	place := func(src string) string {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "kitchen.tmp")
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, target); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		return hex.EncodeToString(sum[:])
	}
	sum1 := place(v1)
	b.waitJS("kitchen loaded", `document.querySelector('tr[data-plugin=kitchen]') && document.querySelector('tr[data-plugin=kitchen]').dataset.sha256 === `+js(sum1))
	b.waitJS("the load event", `[...document.querySelectorAll('[data-testid=plugin-feed] li')].some(li => li.dataset.resource === 'kitchen' && li.textContent.includes('loaded'))`)
	sum2 := place(v2)
	b.waitJS("the reload event", `[...document.querySelectorAll('[data-testid=plugin-feed] li')].some(li => li.dataset.resource === 'kitchen' && li.textContent.includes('reloaded') && li.textContent.includes(`+js(sum2[:12])+`))`)
	b.waitJS("the new version listed", `document.querySelector('tr[data-plugin=kitchen]').dataset.sha256 === `+js(sum2)+` && document.querySelector('tr[data-plugin=kitchen]').textContent.includes('2.0.0')`)
	b.screenshot("07-plugins")

	// Events: the page starts with the history the server keeps (the jobs
	// created above), then live events, filtered by name; every name of
	// the filter is in sight; a filter nothing matches says so.
	b.open("/events?name=notification.dropped")
	b.waitJS("the empty-state text", `(() => { const e = document.querySelector('[data-testid=events-empty]'); return e && !e.hidden && e.textContent.includes('No event matches') })()`)
	b.open("/events?name=job.created")
	b.waitJS("the events feed live", `document.querySelector('[data-testid=stream-state]').textContent.includes('live')`)
	b.waitJS("past job.created events", `[...document.querySelectorAll('[data-testid=events] li')].some(li => li.dataset.name === 'job.created' && li.dataset.past === 'true')`)
	ev := c.create(&jobv1.CreateJobRequest{Name: "event-source", Commands: []string{"true"}})
	b.waitJS("the live job.created event", `[...document.querySelectorAll('[data-testid=events] li')].some(li => li.dataset.name === 'job.created' && li.dataset.past === 'false' && li.dataset.resource === `+js(ev.GetId())+`)`)
	c.waitStatus(ev.GetId(), agentv1.JobStatus_JOB_STATUS_SUCCESS)
	if evalJS[bool](b, `[...document.querySelectorAll('[data-testid=events] li')].some(li => li.dataset.name !== 'job.created')`) {
		t.Error("the feed filtered on job.created shows other events")
	}
	if n := evalJS[int](b, `document.querySelectorAll('[data-testid=event-names] input[type=checkbox]').length`); n != len(coreevents.Defs()) {
		t.Errorf("the filter offers %d names, want %d", n, len(coreevents.Defs()))
	}
	if hidden := evalJS[[]string](b, `[...document.querySelectorAll('[data-testid=event-names] label')].filter(l => {
		const r = l.getBoundingClientRect(); return r.width === 0 || r.right > window.innerWidth || r.left < 0 }).map(l => l.textContent)`); len(hidden) > 0 {
		t.Errorf("event names cut off in the filter: %v", hidden)
	}
	b.screenshot("08-events")

	// A job no agent can take: its page says why it waits (or that the
	// server cannot explain it), and the page of a finished job lists its
	// artifacts (or says the server does not).
	waiting := c.create(&jobv1.CreateJobRequest{Name: "needs-gpu", Commands: []string{"true"}, Selector: "gpu"})
	b.open("/jobs/" + waiting.GetId())
	b.waitJS("the pending explanation", `(() => { const e = document.querySelector('[data-testid=explain]');
		return e && !e.hidden && e.textContent.startsWith('Why pending?') && e.textContent.length > 'Why pending? '.length })()`)
	b.screenshot("09-job-pending")
	if _, err := c.jobs.CancelJob(context.Background(), &jobv1.CancelJobRequest{JobId: waiting.GetId()}); err != nil {
		t.Fatal(err)
	}
	b.waitJS("the cancel shown", `document.querySelector('h1 .badge').dataset.status === 'CANCELLED' && document.querySelector('[data-testid=explain]').hidden`)
	compile := ""
	for _, j := range run.GetRun().GetJobs() {
		if j.GetName() == "compile" {
			compile = j.GetId()
		}
	}
	b.open("/jobs/" + compile)
	b.waitJS("the artifacts answered", `(() => { const a = document.querySelector('[data-testid=artifacts]');
		return a.querySelector('td.mono') ? a.textContent.includes('out/app') : /artifacts|No artifacts/.test(a.textContent) && !a.textContent.includes('Loading') })()`)

	// Agents: edit labels (merge), then stop the agent and see it offline.
	b.open("/agents")
	b.waitJS("the agent listed", `document.querySelector('tr[data-agent=web-agent]') && document.querySelector('[data-testid=stream-state]').textContent.includes('live')`)
	b.run("edit labels", chromedp.Click(chromedp.CSS(`button[data-edit-labels=web-agent]`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid=labels-text]`)))
	evalJS[bool](b, `document.querySelector('[data-testid=labels-text]').value = 'zone=eu-west', true`)
	b.run("save labels", chromedp.Click(chromedp.CSS(`[data-testid=save-labels]`)))
	b.waitJS("the new label shown", `[...document.querySelectorAll('tr[data-agent=web-agent] .chip')].some(c => c.textContent === 'zone=eu-west')`)
	if a := c.agent("web-agent"); a.GetLabels()["zone"] != "eu-west" || a.GetLabels()["os"] == "" {
		t.Errorf("labels after a merge: %v, want zone=eu-west added to the rest", a.GetLabels())
	}
	b.screenshot("10-agents")
	agent.stop(syscall.SIGTERM)
	b.waitJS("the agent offline", `document.querySelector('tr[data-agent=web-agent]').dataset.status === 'OFFLINE'`)
	b.screenshot("11-agent-offline")

	// The same pages in the dark: the theme follows the system setting.
	b.run("prefer dark", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
		return err
	}))
	b.open("/runs/" + runID)
	b.waitJS("the dark run page", `getComputedStyle(document.body).backgroundColor === 'rgb(14, 17, 23)' &&
		document.querySelectorAll('[data-testid=run-graph] .node[data-status=SUCCESS]').length === 6`)
	b.screenshot("12-run-dark")
	b.open("/jobs/" + slow.GetId())
	b.waitJS("the dark job page", `document.querySelector('[data-testid=log] .line')`)
	b.screenshot("13-job-dark")
}
