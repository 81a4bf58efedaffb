package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uptrace/bun/driver/sqliteshim"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/internal/gittest"
	"github.com/go-arcade/arcade/server/trigger"
)

// sourcesCluster is a server with its webhook endpoint and a public URL,
// and one agent with git, keeping its workspaces (to look into them).
type sourcesCluster struct {
	*cluster
	hookURL  string
	agentDir string
}

func newSourcesCluster(t testing.TB, dsn string, serverArgs ...string) *sourcesCluster {
	t.Helper()
	_, port, _ := net.SplitHostPort(freeAddr(t))
	args := append([]string{"--webhook-port", port, "--public-url", "https://ci.example.com"}, serverArgs...)
	c := newCluster(t, dsn, args...)
	sc := &sourcesCluster{cluster: c, hookURL: "http://127.0.0.1:" + port}
	return sc
}

// startGitAgent starts an agent whose data folder the test can read.
func (sc *sourcesCluster) startGitAgent(name string, flags ...string) {
	sc.t.Helper()
	dir := sc.t.TempDir()
	sc.agentDir = dir
	sc.startAgentWith(name, 2, append([]string{"--data-dir", dir, "--keep-workspaces"}, flags...))
}

// deliver posts a delivery to /hooks/{forge} and returns the status code
// and the answer.
func (sc *sourcesCluster) deliver(forge, event, delivery, secret string, body []byte) (int, map[string]any) {
	sc.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, sc.hookURL+"/hooks/"+forge, bytes.NewReader(body))
	req.Header = gittest.Headers(forge, event, delivery, secret, body)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		sc.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(b, &out)
	if out == nil {
		out = map[string]any{"text": string(b)}
	}
	return resp.StatusCode, out
}

func runIDs(answer map[string]any) []string {
	var ids []string
	runs, _ := answer["runs"].([]any)
	for _, r := range runs {
		if m, ok := r.(map[string]any); ok {
			ids = append(ids, fmt.Sprint(m["run_id"]))
		}
	}
	return ids
}

func (sc *sourcesCluster) logText(jobID string) string {
	var b strings.Builder
	for _, l := range sc.logOf(jobID, 0) {
		b.WriteString(l.GetContent() + "\n")
	}
	return b.String()
}

// A push to a private repository served over HTTP with basic auth: the
// GitHub delivery starts the pipeline whose source it is, the agent checks
// out that exact commit (the job prints git rev-parse HEAD), and the run
// records what started it. Bad signatures, replays and other branches start
// nothing. The credential is in no log line, no file of the agent's (mirror,
// workspace and its .git/config), no process's command line or environment
// while git runs, and not in the database file.
func TestSourcesPushToCheckout(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		const token = "ghp_e2eSourceToken7f3a9c1d"
		remote := gittest.New(t)
		repo := remote.Repo("app")
		h := remote.ServeHTTP("ci", token)
		h.Private("app")
		var mu sync.Mutex
		var leaks []string
		h.OnRequest(func(*http.Request) {
			if l := gittest.ProcessesHolding(token); len(l) > 0 {
				mu.Lock()
				leaks = append(leaks, l...)
				mu.Unlock()
			}
		})
		sc := newSourcesCluster(t, dsn)
		if out, err := sc.cliIn("ci:"+token+"\n", "secret", "set", "APP_GIT"); err != nil {
			t.Fatalf("secret set: %v\n%s", err, out)
		}
		sc.createPipeline(fmt.Sprintf(`name: app
source: {url: %q, credential: APP_GIT}
triggers:
  - {type: webhook, secret: hush, branches: [main, "release/*"]}
stages:
  - name: build
    jobs:
      - name: show
        commands: ["git rev-parse HEAD", "cat a.txt", "echo event=$ARCADE_EVENT ref=$ARCADE_REF", "git config --list --local"]
      - name: nocheckout
        checkout: false
        commands: ["test ! -e .git && echo no-checkout-here"]
`, h.RepoURL("app")))
		// The CLI shows the source, naming the credential's secret only.
		if out := sc.mustCLI(t, "pipeline", "get", "app"); !strings.Contains(out, "source: "+h.RepoURL("app")+", branch main, credential from secret APP_GIT") || strings.Contains(out, token) {
			t.Fatalf("pipeline get:\n%s", out)
		}
		sc.startGitAgent("git-agent")
		first := repo.Head()
		commit := repo.Commit(map[string]string{"a.txt": "v1\n"}, "first change")
		v := gittest.Vars{Branch: "main", Before: first, After: commit, Message: "first change", Author: "ada", Owner: "acme", Name: "app",
			RepoID: 101, CloneURL: h.RepoURL("app"), WebURL: "https://github.com/acme/app", Private: true}
		body := gittest.Delivery(t, "github-push", v)

		if code, ans := sc.deliver("github", "push", "d-bad", "wrong", body); code != http.StatusUnauthorized {
			t.Fatalf("bad signature: %d %v", code, ans)
		}
		if n := len(sc.runs("app")); n != 0 {
			t.Fatalf("a bad signature started %d run(s)", n)
		}
		code, ans := sc.deliver("github", "push", "d-1", "hush", body)
		if code != http.StatusCreated || len(runIDs(ans)) != 1 {
			t.Fatalf("push: %d %v", code, ans)
		}
		// The same delivery again: answered, nothing started.
		if code, ans := sc.deliver("github", "push", "d-1", "hush", body); code != http.StatusOK || ans["replayed"] != true {
			t.Fatalf("replay: %d %v", code, ans)
		}
		// Sent again under another id (the id is not signed): a replay too.
		if code, ans := sc.deliver("github", "push", "d-1-again", "hush", body); code != http.StatusOK || ans["replayed"] != true {
			t.Fatalf("replay under a new delivery id: %d %v", code, ans)
		}
		// Another branch: filtered out.
		repo.Checkout("topic")
		topic := repo.Commit(map[string]string{"b.txt": "b\n"}, "topic")
		v2 := v
		v2.Ref, v2.Before, v2.After = "refs/heads/topic", commit, topic
		if code, ans := sc.deliver("github", "push", "d-2", "hush", gittest.Delivery(t, "github-push", v2)); code != http.StatusAccepted || len(runIDs(ans)) != 0 {
			t.Fatalf("push to topic: %d %v", code, ans)
		}
		if n := len(sc.runs("app")); n != 1 {
			t.Fatalf("%d runs, want 1", n)
		}

		r := sc.waitRun(runIDs(ans)[0])
		if r.GetStatus() != success {
			t.Fatalf("run %v: %s", r.GetStatus(), r.GetMessage())
		}
		if r.GetCommit() != commit || r.GetEvent() != "push" || r.GetRef() != "refs/heads/main" || r.GetAuthor() != "ada" || r.GetBranch() != "main" {
			t.Fatalf("run records %q %q %q %q %q", r.GetEvent(), r.GetRef(), r.GetCommit(), r.GetAuthor(), r.GetBranch())
		}
		if r.GetUrl() != "https://ci.example.com/runs/"+r.GetId() {
			t.Fatalf("run url %q", r.GetUrl())
		}
		js := jobsByName(r)
		log := sc.logText(js["show"].GetId())
		for _, want := range []string{commit, "v1", "event=push ref=refs/heads/main", "remote.origin.url=" + h.RepoURL("app")} {
			if !strings.Contains(log, want) {
				t.Errorf("log lacks %q:\n%s", want, log)
			}
		}
		if l := sc.logText(js["nocheckout"].GetId()); !strings.Contains(l, "no-checkout-here") {
			t.Errorf("checkout: false job:\n%s", l)
		}
		// A manual run builds the default branch's head now.
		repo.Checkout("main")
		head := repo.Commit(map[string]string{"a.txt": "v2\n"}, "second change")
		mr := sc.waitRun(sc.trigger("app", nil).GetId())
		if mr.GetCommit() != head || mr.GetStatus() != success || !strings.Contains(sc.logText(jobsByName(mr)["show"].GetId()), head) {
			t.Fatalf("manual run at %s (%v), want %s", mr.GetCommit(), mr.GetStatus(), head)
		}
		// --ref picks another.
		out := sc.mustCLI(t, "pipeline", "trigger", "app", "--ref", "topic", "--wait")
		if !strings.Contains(out, topic) {
			t.Fatalf("trigger --ref topic:\n%s", out)
		}
		if _, err := sc.jobs.TriggerPipeline(context.Background(), &jobv1.TriggerPipelineRequest{PipelineId: "app", Ref: "no-such-branch"}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "ref") {
			t.Fatalf("unknown ref: %v", err)
		}

		// The credential is nowhere it must not be.
		mu.Lock()
		if len(leaks) > 0 {
			t.Errorf("token in the process list while git ran:\n%s", strings.Join(leaks, "\n"))
		}
		mu.Unlock()
		for _, rr := range sc.runs("app") {
			for _, j := range sc.run(rr.GetId()).GetJobs() {
				if strings.Contains(sc.logText(j.GetId()), token) {
					t.Errorf("job %s log holds the token", j.GetName())
				}
			}
		}
		for _, dir := range []string{sc.agentDir, sc.dataDir} {
			filesHolding(t, dir, token)
		}
		if db, ok := strings.CutPrefix(dsn, "sqlite://"); ok {
			filesHolding(t, filepath.Dir(db), token) // the database, its WAL
		}
	})
}

// filesHolding fails for each file under dir that holds s.
func filesHolding(t *testing.T, dir, s string) {
	t.Helper()
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds the credential", p)
			}
		}
		return nil
	})
}

// Forge events beyond a push: filters on changed paths over more than 20
// commits, branch deletions on each forge, tags, a pull request from a
// fork (the base branch's definition, no secret values, no trusted agents,
// no cache writes) beside one from the repository itself, and a broken
// .arcade.yaml (a FAILED run saying why).
func TestSourcesForgeEvents(t *testing.T) {
	remote := gittest.New(t)
	repo := remote.Repo("svc")
	h := remote.ServeHTTP("", "")
	url := h.RepoURL("svc")
	sc := newSourcesCluster(t, "sqlite://"+filepath.Join(t.TempDir(), "arcade.db"))
	if out, err := sc.cliIn("s3cr3t-deploy-value\n", "secret", "set", "DEPLOY_KEY"); err != nil {
		t.Fatalf("secret set: %v\n%s", err, out)
	}
	base := repo.Commit(map[string]string{".arcade.yaml": `stages:
  - name: s
    jobs:
      - {name: def, commands: ["echo from-base key=${DEPLOY_KEY:-none}"], secrets: [DEPLOY_KEY]}
`}, "pipeline file")
	sc.createPipeline(fmt.Sprintf(`name: paths
source: {url: %q}
triggers: [{type: webhook, secret: hush, events: [push, pull_request], paths: ["src/**"]}]
stages: [{name: s, jobs: [{name: j, commands: ["git log --oneline -1"]}]}]
`, url))
	sc.createPipeline(fmt.Sprintf(`name: repo-def
source: {url: %q, definition: .arcade.yaml}
triggers: [{type: webhook, secret: hush, branches: [main], tags: ["v*"]}]
`, url))
	sc.startGitAgent("ga")
	vars := func(kind string) gittest.Vars {
		return gittest.Vars{Branch: "main", Author: "ada", Owner: "acme", Name: "svc", RepoID: 7, CloneURL: url, WebURL: "https://forge.example.com/acme/svc"}
	}

	// 25 commits touching docs only: the paths pipeline skips; the repo-def
	// pipeline (no path filter) runs.
	before := base
	for i := range 25 {
		repo.Commit(map[string]string{"docs/n.txt": fmt.Sprint(i)}, "docs")
	}
	v := vars("push")
	v.Before, v.After = before, repo.Head()
	code, ans := sc.deliver("github", "push", "p-1", "hush", gittest.Delivery(t, "github-push", v))
	if code != http.StatusCreated || len(runIDs(ans)) != 1 || !strings.Contains(fmt.Sprint(ans["skipped"]), "none of the 1 changed files matches src/**") {
		t.Fatalf("docs push: %d %v", code, ans)
	}
	r := sc.waitRun(runIDs(ans)[0])
	if r.GetPipelineName() != "repo-def" || r.GetStatus() != success || !strings.Contains(r.GetDefinition(), ".arcade.yaml at") {
		t.Fatalf("repo-def run %s %v %q %q", r.GetPipelineName(), r.GetStatus(), r.GetDefinition(), r.GetMessage())
	}
	if l := sc.logText(jobsByName(r)["def"].GetId()); !strings.Contains(l, "from-base key=***") {
		t.Fatalf("repo-def log:\n%s", l)
	}
	// 25 more, one of them (not the last) touching src/: both run.
	before = repo.Head()
	for i := range 25 {
		files := map[string]string{"docs/n.txt": fmt.Sprint("again", i)}
		if i == 3 {
			files["src/main.go"] = "package main\n"
		}
		repo.Commit(files, "more")
	}
	v.Before, v.After = before, repo.Head()
	code, ans = sc.deliver("gitea", "push", "p-2", "hush", gittest.Delivery(t, "gitea-push", v))
	if code != http.StatusCreated || len(runIDs(ans)) != 2 {
		t.Fatalf("src push: %d %v", code, ans)
	}
	for _, id := range runIDs(ans) {
		if r := sc.waitRun(id); r.GetStatus() != success {
			t.Fatalf("run %s: %v %s", r.GetPipelineName(), r.GetStatus(), r.GetMessage())
		}
	}

	// Branch deletions on each forge start nothing.
	nruns := len(sc.runs("repo-def"))
	repo.Checkout("doomed")
	doomed := repo.Commit(map[string]string{"x": "x"}, "doomed")
	repo.DeleteBranch("doomed")
	dv := vars("delete")
	dv.Branch, dv.Before, dv.Deleted = "doomed", doomed, true
	for _, d := range []struct{ forge, event, file string }{
		{"github", "push", "github-push-delete"}, {"gitea", "delete", "gitea-delete"}, {"forgejo", "delete", "gitea-delete"}, {"gitlab", "Push Hook", "gitlab-push"},
	} {
		dv := dv
		if d.forge == "gitlab" {
			dv.After = strings.Repeat("0", 40)
		}
		code, ans := sc.deliver(d.forge, d.event, "del-"+d.forge, "hush", gittest.Delivery(t, d.file, dv))
		if code != http.StatusOK || ans["event"] != "deleted" || len(runIDs(ans)) != 0 {
			t.Errorf("%s branch deletion: %d %v", d.forge, code, ans)
		}
	}
	if n := len(sc.runs("repo-def")); n != nruns {
		t.Fatalf("deletions started %d run(s)", n-nruns)
	}

	// An annotated tag: after is the tag object; the run builds its commit.
	repo.Checkout("main")
	tagged := repo.Head()
	tv := vars("tag")
	tv.Tag, tv.Commit = "v1.2.0", tagged
	tv.After = repo.Tag("v1.2.0", "release")
	code, ans = sc.deliver("github", "push", "tag-1", "hush", gittest.Delivery(t, "github-tag", tv))
	if code != http.StatusCreated || len(runIDs(ans)) != 1 {
		t.Fatalf("tag: %d %v", code, ans)
	}
	if r := sc.waitRun(runIDs(ans)[0]); r.GetCommit() != tagged || r.GetEvent() != "tag" || r.GetRef() != "refs/tags/v1.2.0" {
		t.Fatalf("tag run at %s (%s %s), want %s", r.GetCommit(), r.GetEvent(), r.GetRef(), tagged)
	}

	// An admin allows repo-def on trusted agents: a pull request from the
	// repository keeps that, one from a fork loses it.
	sc.mustCLI(t, "pipeline", "trust", "repo-def")

	// A pull request from a fork changes the definition to print the
	// secret: the base branch's runs instead, without the secret.
	repo.Checkout("evil")
	evil := repo.Commit(map[string]string{".arcade.yaml": `stages:
  - name: s
    jobs:
      - {name: def, commands: ["echo from-fork key=$DEPLOY_KEY"], secrets: [DEPLOY_KEY]}
`, "src/evil.go": "package evil\n"}, "evil")
	repo.PushRef("refs/pull/9/head")
	pv := vars("pr")
	pv.Number, pv.Action, pv.Title, pv.HeadRef, pv.HeadOwner, pv.HeadRepoID, pv.Fork, pv.Before, pv.After = 9, "opened", "Improve things", "evil", "mallory", 666, true, tagged, evil
	code, ans = sc.deliver("github", "pull_request", "pr-9", "hush", gittest.Delivery(t, "github-pull_request", pv))
	if code != http.StatusCreated || len(runIDs(ans)) != 2 {
		t.Fatalf("fork pull request: %d %v", code, ans)
	}
	for _, id := range runIDs(ans) {
		r := sc.waitRun(id)
		if !r.GetUntrustedOrigin() || r.GetTrustedAgents() || r.GetPullRequest() != 9 || r.GetCommit() != evil || r.GetEvent() != "pull_request" {
			t.Fatalf("fork run: untrusted %v trusted-agents %v pr %d commit %s", r.GetUntrustedOrigin(), r.GetTrustedAgents(), r.GetPullRequest(), r.GetCommit())
		}
		if r.GetPipelineName() != "repo-def" {
			continue
		}
		if r.GetStatus() != success || !strings.Contains(r.GetDefinition(), "base branch main") {
			t.Fatalf("fork run %v %q %q", r.GetStatus(), r.GetDefinition(), r.GetMessage())
		}
		l := sc.logText(jobsByName(r)["def"].GetId())
		if !strings.Contains(l, "from-base key=none") || strings.Contains(l, "from-fork") || strings.Contains(l, "s3cr3t") {
			t.Fatalf("fork run log:\n%s", l)
		}
	}
	// The same change from a branch of the repository itself runs its own
	// definition, with the secret (masked).
	pv.HeadOwner, pv.HeadRepoID, pv.Fork, pv.Action = "acme", 7, false, "synchronize"
	code, ans = sc.deliver("github", "pull_request", "pr-9b", "hush", gittest.Delivery(t, "github-pull_request", pv))
	if code != http.StatusCreated {
		t.Fatalf("own pull request: %d %v", code, ans)
	}
	for _, id := range runIDs(ans) {
		r := sc.waitRun(id)
		if r.GetPipelineName() == "repo-def" {
			if l := sc.logText(jobsByName(r)["def"].GetId()); r.GetUntrustedOrigin() || !r.GetTrustedAgents() || !strings.Contains(l, "from-fork key=***") {
				t.Fatalf("own pull request run (untrusted %v, trusted agents %v):\n%s", r.GetUntrustedOrigin(), r.GetTrustedAgents(), l)
			}
		}
	}

	// A broken .arcade.yaml on main: a FAILED run saying why.
	repo.Checkout("main")
	broken := repo.Commit(map[string]string{".arcade.yaml": "stages:\n  - name: s\n    jobs:\n      - {name: a, commands: [x], depends_on: [ghost]}\n"}, "break it")
	bv := vars("push")
	bv.Before, bv.After = tagged, broken
	code, ans = sc.deliver("gitlab", "Push Hook", "b-1", "hush", gittest.Delivery(t, "gitlab-push", bv))
	if code != http.StatusCreated || len(runIDs(ans)) != 1 {
		t.Fatalf("broken push: %d %v", code, ans)
	}
	r = sc.waitRun(runIDs(ans)[0])
	if r.GetStatus() != failed || !strings.Contains(r.GetMessage(), ".arcade.yaml at") || !strings.Contains(r.GetMessage(), "ghost") {
		t.Fatalf("broken definition run: %v %q", r.GetStatus(), r.GetMessage())
	}
}

// Bad sources are refused naming the field, and change nothing.
func TestSourcesBadInput(t *testing.T) {
	sc := newSourcesCluster(t, "sqlite://"+filepath.Join(t.TempDir(), "arcade.db"))
	for _, tc := range []struct{ yaml, field string }{
		{`source: {url: "ftp://example.com/app.git"}`, "source.url"},
		{`source: {url: "https://example.com/app.git", credential: NO_SUCH_SECRET}`, "source.credential"},
		{`source: {url: "https://example.com/app.git", branch: "a..b"}`, "source.default_branch"},
		{`source: {url: "https://user:pw@example.com/app.git"}`, "source.url"},
		{"source: {url: \"https://example.com/app.git\"}\ntriggers: [{type: webhook, secret: s, branches: [\"release/[0-9\"]}]", "triggers[0].branches[0]"},
		{"source: {url: \"https://example.com/app.git\"}\ntriggers: [{type: webhook, secret: s, events: [merge]}]", "triggers[0].events[0]"},
	} {
		_, err := sc.jobs.CreatePipeline(context.Background(), &jobv1.CreatePipelineRequest{Yaml: "name: bad\n" + tc.yaml + "\nstages: [{name: s, jobs: [{name: j, commands: [x]}]}]\n"})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v, want InvalidArgument naming %s", tc.yaml, err, tc.field)
		}
	}
	// /hooks/gitlab is GitLab's: a pipeline of that name takes no webhook.
	_, err := sc.jobs.CreatePipeline(context.Background(), &jobv1.CreatePipelineRequest{Yaml: "name: gitlab\ntriggers: [{type: webhook, secret: s}]\nstages: [{name: s, jobs: [{name: j, commands: [x]}]}]\n"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "triggers[0]") || !strings.Contains(err.Error(), "/hooks/gitlab") {
		t.Errorf("a pipeline named gitlab with a webhook trigger: %v", err)
	}
	resp, err := sc.jobs.ListPipelines(context.Background(), &jobv1.ListPipelinesRequest{})
	if err != nil || len(resp.GetPipelines()) != 0 {
		t.Fatalf("pipelines after refusals: %v %v", resp.GetPipelines(), err)
	}
}

// statusReceiver stands in for the forges' commit status APIs: it records
// each status as it arrives. Pending statuses are answered slowly.
type statusReceiver struct {
	URL  string
	slow time.Duration
	mu   sync.Mutex
	got  []receivedStatus
}

type receivedStatus struct {
	Path, Auth, State, Context, TargetURL, Description string
}

func newStatusReceiver(t *testing.T, slowPending time.Duration) *statusReceiver {
	sr := &statusReceiver{slow: slowPending}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		json.NewDecoder(r.Body).Decode(&body)
		auth := r.Header.Get("Authorization")
		if auth == "" {
			auth = "PRIVATE-TOKEN " + r.Header.Get("PRIVATE-TOKEN")
		}
		ctx := body["context"]
		if ctx == "" {
			ctx = body["name"]
		}
		if body["state"] == "pending" && sr.slow > 0 {
			time.Sleep(sr.slow)
		}
		sr.mu.Lock()
		sr.got = append(sr.got, receivedStatus{Path: r.URL.Path, Auth: auth, State: body["state"], Context: ctx,
			TargetURL: body["target_url"], Description: body["description"]})
		sr.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id": 1}`)
	}))
	t.Cleanup(srv.Close)
	sr.URL = srv.URL
	return sr
}

// states are the states received for a context, in arrival order.
func (sr *statusReceiver) states(context string) ([]string, []receivedStatus) {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	var out []string
	var all []receivedStatus
	for _, s := range sr.got {
		if s.Context == context {
			out = append(out, s.State)
			all = append(all, s)
		}
	}
	return out, all
}

// Each run reports its states to the forge through the forge-status
// plugin, in order, the last one winning, with the run's page and the
// source's token: GitHub and Gitea get pending, pending (running),
// success; GitLab pending, running, success. A slow "pending" call holds
// the later states back rather than letting them pass it. A broken
// .arcade.yaml reports a failure.
func TestSourcesCommitStatuses(t *testing.T) {
	const token = "glpat-statusToken42"
	dir := t.TempDir()
	wasm := filepath.Join(dir, "forge-status.wasm")
	buildPlugin(t, "../plugins/forge-status", wasm)
	rcv := newStatusReceiver(t, 1500*time.Millisecond)
	var plugins strings.Builder
	plugins.WriteString("plugins:\n")
	for _, f := range []string{"github", "gitea", "gitlab"} {
		fmt.Fprintf(&plugins, `  - name: forge-status-%s
    path: %s
    kind: notify
    config: {forge: %s, api_url: "%s/api/%s"}
    grants: {allowed_hosts: [127.0.0.1], timeout: 10s, memory_limit_mib: 32, max_instances: 2}
`, f, wasm, f, rcv.URL, f)
	}
	pluginsPath := filepath.Join(dir, "plugins.yaml")
	os.WriteFile(pluginsPath, []byte(plugins.String()), 0o644)
	remote := gittest.New(t)
	repo := remote.Repo("web")
	h := remote.ServeHTTP("", "")
	url := h.RepoURL("web")
	sc := newSourcesCluster(t, "sqlite://"+filepath.Join(t.TempDir(), "arcade.db"), "--plugins-config", pluginsPath)
	if out, err := sc.cliIn(token+"\n", "secret", "set", "WEB_TOKEN"); err != nil {
		t.Fatalf("secret set: %v\n%s", err, out)
	}
	repo.Commit(map[string]string{".arcade.yaml": "stages: [{name: s, jobs: [{name: j, commands: [\"git rev-parse HEAD\"]}]}]\n"}, "pipeline")
	for _, f := range []string{"github", "gitea", "gitlab"} {
		def := ""
		if f == "github" {
			def = ", definition: .arcade.yaml"
		}
		sc.createPipeline(fmt.Sprintf(`name: web-%s
source: {url: %q, credential: WEB_TOKEN, status_plugin: forge-status-%s%s}
triggers: [{type: webhook, secret: hush}]
stages: [{name: s, jobs: [{name: j, commands: ["sleep 0.2"]}]}]
`, f, url, f, def))
	}
	sc.startGitAgent("ga")
	commit := repo.Commit(map[string]string{"x.txt": "1"}, "change")
	v := gittest.Vars{Branch: "main", After: commit, Before: strings.Repeat("0", 40), Author: "ada", Owner: "acme", Name: "web", RepoID: 3, CloneURL: url, WebURL: "https://forge.example.com/acme/web"}
	code, ans := sc.deliver("github", "push", "s-1", "hush", gittest.Delivery(t, "github-push", v))
	if code != http.StatusCreated || len(runIDs(ans)) != 3 {
		t.Fatalf("push: %d %v", code, ans)
	}
	for _, id := range runIDs(ans) {
		if r := sc.waitRun(id); r.GetStatus() != success {
			t.Fatalf("run %s %v %s", r.GetPipelineName(), r.GetStatus(), r.GetMessage())
		}
	}
	want := map[string][]string{"github": {"pending", "pending", "success"}, "gitea": {"pending", "pending", "success"}, "gitlab": {"pending", "running", "success"}}
	paths := map[string]string{"github": "/api/github/repos/web/statuses/" + commit, "gitea": "/api/gitea/repos/web/statuses/" + commit,
		"gitlab": "/api/gitlab/projects/web/statuses/" + commit}
	auths := map[string]string{"github": "Bearer " + token, "gitea": "token " + token, "gitlab": "PRIVATE-TOKEN " + token}
	for f, w := range want {
		ctx := "arcade/web-" + f
		sc.waitFor(ctx+" statuses", func() bool { s, _ := rcv.states(ctx); return len(s) >= len(w) })
		time.Sleep(200 * time.Millisecond) // nothing more comes
		got, all := rcv.states(ctx)
		if strings.Join(got, ",") != strings.Join(w, ",") {
			t.Errorf("%s: states %v, want %v", f, got, w)
			continue
		}
		for _, s := range all {
			if s.Path != paths[f] || s.Auth != auths[f] || !strings.HasPrefix(s.TargetURL, "https://ci.example.com/runs/") {
				t.Errorf("%s: status %+v", f, s)
			}
		}
		if !strings.Contains(all[1].Description, "running") {
			t.Errorf("%s: running status says %q", f, all[1].Description)
		}
	}
	// A broken definition: pending, then failure.
	broken := repo.Commit(map[string]string{".arcade.yaml": "stages: [{name: s, jobs: []}]\n"}, "break")
	v.Before, v.After = commit, broken
	code, ans = sc.deliver("github", "push", "s-2", "hush", gittest.Delivery(t, "github-push", v))
	if code != http.StatusCreated {
		t.Fatalf("push: %d %v", code, ans)
	}
	sc.waitFor("failure status", func() bool {
		_, all := rcv.states("arcade/web-github")
		return len(all) >= 5
	})
	_, all := rcv.states("arcade/web-github")
	if all[3].State != "pending" || all[4].State != "failure" || !strings.HasSuffix(all[4].Path, broken) || !strings.Contains(all[4].Description, ".arcade.yaml") {
		t.Fatalf("broken definition statuses: %+v", all[3:])
	}
	// The token is not in the server's log.
	if b, _ := os.ReadFile(sc.server.logPath); bytes.Contains(b, []byte(token)) {
		t.Fatal("the server log holds the token")
	}
}

// Webhook secrets stored in plain by earlier versions (in pipelines.spec,
// and copied into every pipeline_runs.spec) are sealed, or stripped from
// runs, when the server starts: afterwards no database file holds the
// secret, and the webhook still answers to it.
func TestSourcesTriggerSecretsSealed(t *testing.T) {
	const secret = "plain-hook-secret-5e1f0c"
	dbPath := filepath.Join(t.TempDir(), "arcade.db")
	_, port, _ := net.SplitHostPort(freeAddr(t))
	c := newCluster(t, "sqlite://"+dbPath, "--webhook-port", port)
	p := c.createPipeline(`name: legacy
triggers: [{type: webhook, secret: other-secret, branches: [main]}]
stages: [{name: s, jobs: [{name: j, commands: ["true"]}]}]
`)
	c.trigger("legacy", nil)
	c.server.stop(syscall.SIGTERM)

	// Put the database back as an earlier version left it.
	db, err := sql.Open(sqliteshim.ShimName, "file:"+dbPath)
	if err != nil {
		t.Fatal(err)
	}
	plain := fmt.Sprintf(`{"name":"legacy","triggers":[{"type":"TRIGGER_TYPE_WEBHOOK","branches":["main"],"secret":%q}],"stages":[{"name":"s","jobs":[{"name":"j","commands":["true"]}]}]}`, secret)
	for _, q := range []string{
		"UPDATE pipelines SET spec = ?, trigger_secrets = NULL WHERE id = ?",
		"UPDATE pipeline_runs SET spec = ? WHERE pipeline_id = ?",
	} {
		if _, err := db.Exec(q, plain, p.GetId()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec("DELETE FROM bun_migrations WHERE name = '20261206080000'"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if !dirHolds(filepath.Dir(dbPath), secret) {
		t.Fatal("the set-up did not write the secret in plain")
	}

	c.startServer()
	payload := []byte(`{"ref":"refs/heads/main","after":"0123456789abcdef0123456789abcdef01234567","repository":{"full_name":"o/r"}}`)
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:"+port+"/hooks/legacy", bytes.NewReader(payload))
	req.Header.Set(trigger.SignatureHeader, trigger.Sign(secret, payload))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("webhook signed with the sealed secret answered %d", resp.StatusCode)
	}
	got, err := c.jobs.GetPipeline(context.Background(), &jobv1.GetPipelineRequest{PipelineId: "legacy"})
	if err != nil || !got.GetPipeline().GetTriggers()[0].GetHasSecret() || got.GetPipeline().GetTriggers()[0].GetSecret() != "" {
		t.Fatalf("pipeline after sealing: %v %v", got.GetPipeline().GetTriggers(), err)
	}
	c.server.stop(syscall.SIGTERM)
	if dirHolds(filepath.Dir(dbPath), secret) {
		t.Fatal("a database file still holds the webhook secret")
	}
	filesHolding(t, c.dataDir, secret)
}

// dirHolds reports whether any file under dir holds s.
func dirHolds(dir, s string) bool {
	found := false
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(s)) {
				found = true
			}
		}
		return nil
	})
	return found
}

// arcade run builds the working tree: a tracked file with an uncommitted
// change, an untracked file, and not an ignored one; it exits with the
// run's outcome, and the repository is left as it was.
func TestRunLocalWorkingTree(t *testing.T) {
	remote := gittest.New(t)
	repo := remote.Repo("local")
	repo.Commit(map[string]string{"a.txt": "committed\n", ".gitignore": "*.log\n"}, "base")
	os.WriteFile(filepath.Join(repo.Work, "a.txt"), []byte("changed, not committed\n"), 0o644)
	os.WriteFile(filepath.Join(repo.Work, "new.txt"), []byte("untracked\n"), 0o644)
	os.WriteFile(filepath.Join(repo.Work, "noise.log"), []byte("ignored\n"), 0o644)
	os.WriteFile(filepath.Join(repo.Work, ".arcade.yaml"), []byte(`name: local
stages:
  - name: check
    jobs:
      - name: tree
        commands: ["cat a.txt new.txt", "test ! -e noise.log && echo no-ignored-file", "git rev-parse HEAD"]
`), 0o644)
	os.WriteFile(filepath.Join(repo.Work, "fails.arcade.yaml"), []byte(`stages: [{name: s, jobs: [{name: boom, commands: ["echo about to fail", "exit 3"]}]}]
`), 0o644)
	// A file in a folder including one beside it (neither committed).
	os.MkdirAll(filepath.Join(repo.Work, "ci"), 0o755)
	os.WriteFile(filepath.Join(repo.Work, "ci", "inc.arcade.yaml"), []byte("include: [parts.yaml]\nstages: [{name: s, jobs: [{name: j, extends: show}]}]\n"), 0o644)
	os.WriteFile(filepath.Join(repo.Work, "ci", "parts.yaml"), []byte("templates: {show: {commands: [\"echo included-part\", \"cat a.txt\"]}}\n"), 0o644)
	status := gittest.Git(t, repo.Work, "status", "--porcelain")
	run := func(args ...string) (string, error) {
		cmd := exec.Command(arcadeBin, append([]string{"run"}, args...)...)
		cmd.Dir = repo.Work
		cmd.Env = append(os.Environ(), "ARCADE_CONTAINER_RUNTIME=none")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	out, err := run("--config", os.DevNull, "--plugins-config", os.DevNull, "--log-format", "text")
	if err != nil {
		t.Fatalf("arcade run: %v\n%s", err, out)
	}
	for _, want := range []string{"changed, not committed", "untracked", "no-ignored-file", "local run #1  SUCCESS"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, err = run("fails.arcade.yaml", "--config", os.DevNull, "--plugins-config", os.DevNull, "--log-format", "text")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out, "about to fail") || !strings.Contains(out, "FAILED") {
		t.Fatalf("failing run: %v\n%s", err, out)
	}
	out, err = run("ci/inc.arcade.yaml", "--config", os.DevNull, "--plugins-config", os.DevNull, "--log-format", "text")
	if err != nil || !strings.Contains(out, "included-part") || !strings.Contains(out, "changed, not committed") {
		t.Fatalf("run of a file with an include beside it: %v\n%s", err, out)
	}
	if got := gittest.Git(t, repo.Work, "status", "--porcelain"); got != status {
		t.Fatalf("the repository changed:\n%s\nwas:\n%s", got, status)
	}

	// A uses: step runs the plugin the embedded server's plugin config
	// names, on the working tree (here reading the uncommitted change).
	plugins := t.TempDir()
	buildPlugin(t, "./testdata/steptool", filepath.Join(plugins, "steptool.wasm"))
	cfg := filepath.Join(plugins, "plugins.yaml")
	os.WriteFile(cfg, []byte("plugins:\n  - {name: steptool, path: "+filepath.Join(plugins, "steptool.wasm")+", kind: ci}\n"), 0o644)
	plug := filepath.Join(t.TempDir(), "plugin.arcade.yaml")
	os.WriteFile(plug, []byte(`stages: [{name: s, jobs: [{name: tool, steps: [{uses: steptool, with: {read: a.txt}}]}]}]
`), 0o644)
	out, err = run(plug, "--config", os.DevNull, "--plugins-config", cfg, "--plugin-dirs", plugins, "--log-format", "text")
	if err != nil || !strings.Contains(out, "steptool 1.0.0") || !strings.Contains(out, "changed, not committed") {
		t.Fatalf("run with a plugin step: %v\n%s", err, out)
	}
}

// A source over SSH with a deploy key: refused without the key, checked
// out with it; an agent without git is not handed the job.
func TestSourcesSSH(t *testing.T) {
	remote := gittest.New(t)
	repo := remote.Repo("ops")
	srv := remote.ServeSSH()
	head := repo.Commit(map[string]string{"deploy.sh": "echo deploy\n"}, "deploy script")
	sc := newSourcesCluster(t, "sqlite://"+filepath.Join(t.TempDir(), "arcade.db"))
	sc.createPipeline(fmt.Sprintf(`name: nokey
source: {url: %q}
stages: [{name: s, jobs: [{name: j, commands: ["true"]}]}]
`, srv.RepoURL("ops")))
	if _, err := sc.jobs.TriggerPipeline(context.Background(), &jobv1.TriggerPipelineRequest{PipelineId: "nokey"}); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "source") {
		t.Fatalf("private repository without its key: %v", err)
	}
	if out, err := sc.cliIn(srv.ClientKey, "secret", "set", "OPS_KEY"); err != nil {
		t.Fatalf("secret set: %v\n%s", err, out)
	}
	sc.createPipeline(fmt.Sprintf(`name: ops
source: {url: %q, credential: OPS_KEY}
stages: [{name: s, jobs: [{name: j, commands: ["git rev-parse HEAD", "sh deploy.sh"]}]}]
`, srv.RepoURL("ops")))
	sc.startAgentWith("nogit", 1, []string{"--git", "none"})
	if a := sc.agent("nogit"); a.GetLabels()["git"] != "" {
		t.Fatalf("agent without git carries the git label: %v", a.GetLabels())
	}
	r := sc.trigger("ops", nil)
	if r.GetCommit() != head {
		t.Fatalf("run at %s, want %s", r.GetCommit(), head)
	}
	time.Sleep(time.Second)
	j := sc.run(r.GetId()).GetJobs()[0]
	if j.GetStatus() != pending {
		t.Fatalf("job %v on an agent without git", j.GetStatus())
	}
	ex, err := sc.jobs.ExplainJob(context.Background(), &jobv1.ExplainJobRequest{JobId: j.GetId()})
	if err != nil || !strings.Contains(fmt.Sprint(ex.GetAgents()), "no git label") {
		t.Fatalf("explain: %v %v", ex, err)
	}
	sc.startGitAgent("withgit")
	r = sc.waitRun(r.GetId())
	log := sc.logText(jobsByName(r)["j"].GetId())
	if r.GetStatus() != success || !strings.Contains(log, head) || !strings.Contains(log, "deploy") {
		t.Fatalf("run %v:\n%s", r.GetStatus(), log)
	}
	keyLine := strings.Split(strings.TrimSpace(srv.ClientKey), "\n")[2]
	if strings.Contains(log, keyLine) {
		t.Fatal("the log holds the key")
	}
	filesHolding(t, sc.agentDir, keyLine)
	filesHolding(t, sc.dataDir, keyLine)
}

// A container job gets the checkout on the host, mounted into its image:
// the image (busybox) has no git.
func TestSourcesContainerJob(t *testing.T) {
	e := containerEngine(t)
	remote := gittest.New(t)
	repo := remote.Repo("boxed")
	repo.Commit(map[string]string{"src/hello.txt": "checked out on the host\n"}, "hello")
	c := newCluster(t, "sqlite://"+filepath.Join(t.TempDir(), "arcade.db"))
	c.startAgentWith("box", 2, engineFlags(e))
	c.createPipeline(fmt.Sprintf(`name: boxed
source: {url: %q}
stages: [{name: s, jobs: [{name: j, image: %q, commands: ["cat src/hello.txt", "test -d .git && echo has-git-dir", "command -v git || echo no-git-in-image"]}]}]
`, repo.FileURL(), testImage))
	r := c.waitRun(c.trigger("boxed", nil).GetId())
	log := c.logText(jobsByName(r)["j"].GetId(), 0)
	if r.GetStatus() != success || !strings.Contains(log, "checked out on the host") || !strings.Contains(log, "has-git-dir") || !strings.Contains(log, "no-git-in-image") {
		t.Fatalf("run %v:\n%s", r.GetStatus(), log)
	}
}

// A forge that stalls holds nothing: the server's fetch stops at its
// git_timeout, the run is refused saying so (a delivery is answered 503
// and not remembered, so the forge's redelivery starts the run), and once
// the forge answers again the mirror the stopped fetch left serves the
// next runs.
func TestSourcesStalledForge(t *testing.T) {
	remote := gittest.New(t)
	repo := remote.Repo("slow")
	head := repo.Commit(map[string]string{"a.txt": "a\n"}, "a")
	h := remote.ServeHTTP("", "")
	var stalled sync.Map
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	h.OnRequest(func(r *http.Request) {
		if _, ok := stalled.Load("on"); ok {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}
	})
	sc := newSourcesCluster(t, "sqlite://"+filepath.Join(t.TempDir(), "arcade.db"), "--git-timeout", "2s")
	sc.createPipeline(fmt.Sprintf(`name: slow
source: {url: %q}
triggers: [{type: webhook, secret: hush}]
stages: [{name: s, jobs: [{name: j, commands: ["git rev-parse HEAD"]}]}]
`, h.RepoURL("slow")))
	stalled.Store("on", true)
	// A push delivered while the forge stalls: the run cannot start, the
	// forge is told (503), and the delivery is not remembered as seen.
	next := repo.Commit(map[string]string{"a.txt": "b\n"}, "b")
	v := gittest.Vars{Branch: "main", Before: head, After: next, Author: "ada", Owner: "acme", Name: "slow", RepoID: 3, CloneURL: h.RepoURL("slow"), WebURL: "https://github.com/acme/slow"}
	body := gittest.Delivery(t, "github-push", v)
	if code, ans := sc.deliver("github", "push", "s-1", "hush", body); code != http.StatusServiceUnavailable || !strings.Contains(fmt.Sprint(ans["skipped"]), "git_timeout") {
		t.Fatalf("delivery while the forge stalls: %d %v", code, ans)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := sc.jobs.TriggerPipeline(ctx, &jobv1.TriggerPipelineRequest{PipelineId: "slow"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "git_timeout") {
		t.Fatalf("trigger against a stalled forge: %v", err)
	}
	stalled.Delete("on")
	sc.startGitAgent("ga")
	// The forge's redelivery (same id, same body) starts the run; a
	// second one is a replay.
	code, ans := sc.deliver("github", "push", "s-1", "hush", body)
	if code != http.StatusCreated || len(runIDs(ans)) != 1 {
		t.Fatalf("redelivery after the stall: %d %v", code, ans)
	}
	if code, ans := sc.deliver("github", "push", "s-1", "hush", body); code != http.StatusOK || ans["replayed"] != true {
		t.Fatalf("second redelivery: %d %v", code, ans)
	}
	r := sc.waitRun(runIDs(ans)[0])
	if r.GetStatus() != success || r.GetCommit() != next || !strings.Contains(sc.logText(jobsByName(r)["j"].GetId()), next) {
		t.Fatalf("run of the redelivery: %v at %s: %s", r.GetStatus(), r.GetCommit(), r.GetMessage())
	}
	r = sc.waitRun(sc.trigger("slow", nil).GetId())
	if r.GetStatus() != success || r.GetCommit() != next {
		t.Fatalf("run after the stall: %v at %s: %s", r.GetStatus(), r.GetCommit(), r.GetMessage())
	}
}
