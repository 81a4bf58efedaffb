package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/internal/gittest"
)

// sourcesCluster is a server with its webhook endpoint and a public URL,
// and one agent with git, keeping its workspaces (to look into them).
type sourcesCluster struct {
	*cluster
	hookURL  string
	agentDir string
}

func newSourcesCluster(t *testing.T, dsn string, serverArgs ...string) *sourcesCluster {
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
		h.OnRequest = func(*http.Request) {
			if l := gittest.ProcessesHolding(token); len(l) > 0 {
				mu.Lock()
				leaks = append(leaks, l...)
				mu.Unlock()
			}
		}
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

var _ = agentv1.JobStatus_JOB_STATUS_SUCCESS
