package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	secretv1 "github.com/go-arcade/arcade/api/secret/v1"
	"github.com/go-arcade/arcade/internal/gittest"
)

// Includes of a pipeline with a source come from its repository, at the
// run's exact commit, through the server's mirror: for a definition stored
// in Arcade (paths from the repository's root) and for one read from the
// repository (paths beside its file). Creating a stored one reads them at
// the default branch's head; files sent with it are refused. A missing
// include and an include cycle fail the run, naming the include and the
// commit; a pull request from a fork gets the base branch's includes.
func TestSourcesRepositoryIncludes(t *testing.T) {
	remote := gittest.New(t)
	repo := remote.Repo("inc")
	h := remote.ServeHTTP("", "")
	url := h.RepoURL("inc")
	conf := filepath.Join(t.TempDir(), "server.yaml")
	if err := os.WriteFile(conf, []byte("pipeline_limits: {jobs: 5}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sc := newSourcesCluster(t, "sqlite://"+filepath.Join(t.TempDir(), "arcade.db"), "--config", conf)
	ctx := context.Background()

	stored := fmt.Sprintf(`name: stored-inc
source: {url: %q}
triggers: [{type: webhook, secret: hush, events: [pull_request]}]
include: [ci/base.yaml]
stages: [{name: s, jobs: [{name: j, extends: show}]}]
`, url)
	// Not in the repository yet: refused, naming the include and the commit.
	empty := repo.Head()
	_, err := sc.jobs.CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Yaml: stored})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "include[0]") ||
		!strings.Contains(err.Error(), "no such file ci/base.yaml in "+url+" at "+empty[:12]) {
		t.Fatalf("create before the include exists: %v", err)
	}

	base := func(from string) string {
		return "env: {FROM: " + from + "}\ntemplates:\n  show:\n    commands: [\"echo include=$FROM\", \"git rev-parse HEAD\"]\n"
	}
	c1 := repo.Commit(map[string]string{
		"ci/base.yaml":   base("v1"),
		"ci/arcade.yaml": "include: [base.yaml]\nstages: [{name: s, jobs: [{name: j, extends: show}]}]\n",
	}, "ci files")

	// Files sent with a pipeline with a source are not what runs: refused.
	_, err = sc.jobs.CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Yaml: stored, Files: map[string]string{"ci/base.yaml": base("sent")}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "files") {
		t.Fatalf("create with files sent: %v", err)
	}
	// The CLI sends none for a file with a source (nothing beside it here).
	file := filepath.Join(t.TempDir(), "stored.yaml")
	if err := os.WriteFile(file, []byte(stored), 0o644); err != nil {
		t.Fatal(err)
	}
	sc.mustCLI(t, "pipeline", "create", "-f", file)
	sc.createPipeline(fmt.Sprintf("name: repo-inc\nsource: {url: %q, definition: ci/arcade.yaml}\n", url))
	sc.startGitAgent("ga")

	c2 := repo.Commit(map[string]string{"ci/base.yaml": base("v2")}, "v2")
	// runAt runs name at ref and returns the run and its job's log.
	runAt := func(name, ref string) (*jobv1.PipelineRun, string) {
		t.Helper()
		resp, err := sc.jobs.TriggerPipeline(ctx, &jobv1.TriggerPipelineRequest{PipelineId: name, Ref: ref})
		if err != nil {
			t.Fatalf("trigger %s at %q: %v", name, ref, err)
		}
		r := sc.waitRun(resp.GetRun().GetId())
		if j := jobsByName(r)["j"]; j != nil && j.GetId() != "" {
			return r, sc.logText(j.GetId())
		}
		return r, ""
	}
	for _, name := range []string{"stored-inc", "repo-inc"} {
		for _, at := range []struct{ ref, commit, from string }{{c1, c1, "v1"}, {"", c2, "v2"}} {
			r, log := runAt(name, at.ref)
			if r.GetStatus() != success || r.GetCommit() != at.commit || !strings.Contains(log, "include="+at.from) || !strings.Contains(log, at.commit) {
				t.Fatalf("%s at %q: %v %q commit %s\n%s", name, at.ref, r.GetStatus(), r.GetMessage(), r.GetCommit(), log)
			}
		}
	}

	// A pull request from a fork that changes the include: the base
	// branch's include runs.
	repo.Checkout("fork")
	evil := repo.Commit(map[string]string{"ci/base.yaml": base("fork")}, "fork")
	repo.PushRef("refs/pull/4/head")
	repo.Checkout("main")
	pv := gittest.Vars{Branch: "main", Author: "ada", Owner: "acme", Name: "inc", RepoID: 7, CloneURL: url, WebURL: "https://forge.example.com/acme/inc",
		Number: 4, Action: "opened", Title: "Change the include", HeadRef: "fork", HeadOwner: "mallory", HeadRepoID: 666, Fork: true, Before: c2, After: evil}
	code, ans := sc.deliver("github", "pull_request", "pr-4", "hush", gittest.Delivery(t, "github-pull_request", pv))
	if code != http.StatusCreated || len(runIDs(ans)) != 1 {
		t.Fatalf("fork pull request: %d %v", code, ans)
	}
	fr := sc.waitRun(runIDs(ans)[0])
	if l := sc.logText(jobsByName(fr)["j"].GetId()); fr.GetStatus() != success || !fr.GetUntrustedOrigin() || fr.GetCommit() != evil ||
		!strings.Contains(l, "include=v2") || strings.Contains(l, "include=fork") {
		t.Fatalf("fork run %v untrusted %v commit %s:\n%s", fr.GetStatus(), fr.GetUntrustedOrigin(), fr.GetCommit(), l)
	}

	// An include whose matrix makes more jobs than the server's
	// pipeline_limits: the run fails naming the limit.
	big := repo.Commit(map[string]string{"ci/base.yaml": base("v3") + "    matrix: {n: ['1', '2', '3', '4', '5', '6']}\n"}, "a big matrix")
	for _, name := range []string{"stored-inc", "repo-inc"} {
		r, _ := runAt(name, "")
		if r.GetStatus() != failed || r.GetCommit() != big || !strings.Contains(r.GetMessage(), "more than the limit of 5 (pipeline_limits.jobs)") {
			t.Fatalf("%s over pipeline_limits.jobs: %v %q", name, r.GetStatus(), r.GetMessage())
		}
	}
	// The include removed: each run fails at once, naming it and the commit.
	c3 := repo.Commit(map[string]string{"ci/base.yaml": ""}, "remove the include")
	r, _ := runAt("stored-inc", "")
	if r.GetStatus() != failed || !strings.Contains(r.GetMessage(), "include[0]: no such file ci/base.yaml in "+url+" at "+c3[:12]) {
		t.Fatalf("stored-inc without its include: %v %q", r.GetStatus(), r.GetMessage())
	}
	r, _ = runAt("repo-inc", "")
	if r.GetStatus() != failed || !strings.Contains(r.GetMessage(), "no such file base.yaml in "+url+" at "+c3[:12]+" (under ci/") {
		t.Fatalf("repo-inc without its include: %v %q", r.GetStatus(), r.GetMessage())
	}
	// A cycle: refused with its path.
	repo.Commit(map[string]string{"ci/base.yaml": "include: [ci/loop.yaml]\n", "ci/loop.yaml": "include: [ci/base.yaml]\n"}, "loop")
	r, _ = runAt("stored-inc", "")
	if r.GetStatus() != failed || !strings.Contains(r.GetMessage(), "include cycle: (pipeline) → ci/base.yaml → ci/loop.yaml → ci/base.yaml") {
		t.Fatalf("stored-inc with an include cycle: %v %q", r.GetStatus(), r.GetMessage())
	}
	// The sent-files path of a pipeline without a source is unchanged.
	if _, err := sc.jobs.CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Yaml: "name: plain\ninclude: [ci/base.yaml]\nstages: [{name: s, jobs: [{name: j, extends: show}]}]\n",
		Files: map[string]string{"ci/base.yaml": "templates:\n  show:\n    commands: [\"echo sent\"]\n"}}); err != nil {
		t.Fatalf("plain pipeline with files: %v", err)
	}
	if pr := sc.waitRun(sc.trigger("plain", nil).GetId()); pr.GetStatus() != success {
		t.Fatalf("plain run %v %q", pr.GetStatus(), pr.GetMessage())
	}
}

// A pull request from a fork restores the job cache but never saves it:
// its run is of untrusted origin, which hands its jobs cache_read_only (the
// one flag for it). The next trusted run misses, then saves.
func TestSourcesForkCacheReadOnly(t *testing.T) {
	remote := gittest.New(t)
	repo := remote.Repo("cached")
	h := remote.ServeHTTP("", "")
	url := h.RepoURL("cached")
	_, port, _ := net.SplitHostPort(freeAddr(t))
	c := storeCluster(t, "sqlite://"+filepath.Join(t.TempDir(), "arcade.db"), t.TempDir(), "--webhook-port", port)
	sc := &sourcesCluster{cluster: c, hookURL: "http://127.0.0.1:" + port}
	base := repo.Commit(map[string]string{"go.sum": "v1\n"}, "start")
	sc.createPipeline(fmt.Sprintf(`name: cached
source: {url: %q}
triggers: [{type: webhook, secret: hush, events: [pull_request]}]
stages:
  - name: s
    jobs:
      - name: j
        cache: {key: deps, paths: [c]}
        commands: ["mkdir -p c && echo kept > c/f"]
`, url))
	sc.startGitAgent("ga")
	repo.Checkout("fork")
	evil := repo.Commit(map[string]string{"go.sum": "fork\n"}, "fork")
	repo.PushRef("refs/pull/5/head")
	repo.Checkout("main")
	pv := gittest.Vars{Branch: "main", Author: "ada", Owner: "acme", Name: "cached", RepoID: 7, CloneURL: url, WebURL: "https://forge.example.com/acme/cached",
		Number: 5, Action: "opened", Title: "Fork", HeadRef: "fork", HeadOwner: "mallory", HeadRepoID: 666, Fork: true, Before: base, After: evil}
	code, ans := sc.deliver("github", "pull_request", "pr-5", "hush", gittest.Delivery(t, "github-pull_request", pv))
	if code != http.StatusCreated || len(runIDs(ans)) != 1 {
		t.Fatalf("fork pull request: %d %v", code, ans)
	}
	fr := sc.waitRun(runIDs(ans)[0])
	if l := sc.logText(jobsByName(fr)["j"].GetId()); fr.GetStatus() != success || !fr.GetUntrustedOrigin() ||
		!strings.Contains(l, "cache not saved: a run of untrusted origin writes no shared cache") || strings.Contains(l, "cache saved") {
		t.Fatalf("fork run %v untrusted %v:\n%s", fr.GetStatus(), fr.GetUntrustedOrigin(), l)
	}
	r := sc.waitRun(sc.trigger("cached", nil).GetId())
	if l := sc.logText(jobsByName(r)["j"].GetId()); r.GetStatus() != success || !strings.Contains(l, "cache miss") || !strings.Contains(l, "cache saved: key deps") {
		t.Fatalf("trusted run after the fork's %v:\n%s", r.GetStatus(), l)
	}
}

// A pull request from a fork runs its base branch's definition; once a
// write-scope caller approves (arcade pipeline approve-definition), a new
// run of the same commit follows the pull request's own, still of
// untrusted origin: no secret value. A run that is not a fork's is refused.
func TestSourcesForkOwnDefinition(t *testing.T) {
	remote := gittest.New(t)
	repo := remote.Repo("own")
	h := remote.ServeHTTP("", "")
	url := h.RepoURL("own")
	sc := newSourcesCluster(t, "sqlite://"+filepath.Join(t.TempDir(), "arcade.db"))
	ctx := context.Background()
	if out, err := sc.cliIn("own-s3cr3t-value\n", "secret", "set", "DEPLOY_KEY"); err != nil {
		t.Fatalf("secret set: %v\n%s", err, out)
	}
	def := func(who string) string {
		return "stages: [{name: s, jobs: [{name: def, secrets: [DEPLOY_KEY], commands: [\"echo from-" + who + " key=${DEPLOY_KEY:-none}\"]}]}]\n"
	}
	base := repo.Commit(map[string]string{".arcade.yaml": def("base")}, "pipeline file")
	sc.createPipeline(fmt.Sprintf("name: own\nsource: {url: %q, definition: .arcade.yaml}\ntriggers: [{type: webhook, secret: hush, events: [pull_request]}]\n", url))
	sc.startGitAgent("ga")
	repo.Checkout("fork")
	evil := repo.Commit(map[string]string{".arcade.yaml": def("fork")}, "fork")
	repo.PushRef("refs/pull/6/head")
	repo.Checkout("main")
	pv := gittest.Vars{Branch: "main", Author: "ada", Owner: "acme", Name: "own", RepoID: 7, CloneURL: url, WebURL: "https://forge.example.com/acme/own",
		Number: 6, Action: "opened", Title: "Fork", HeadRef: "fork", HeadOwner: "mallory", HeadRepoID: 666, Fork: true, Before: base, After: evil}
	code, ans := sc.deliver("github", "pull_request", "pr-6", "hush", gittest.Delivery(t, "github-pull_request", pv))
	if code != http.StatusCreated || len(runIDs(ans)) != 1 {
		t.Fatalf("fork pull request: %d %v", code, ans)
	}
	fr := sc.waitRun(runIDs(ans)[0])
	if l := sc.logText(jobsByName(fr)["def"].GetId()); fr.GetStatus() != success || !strings.Contains(l, "from-base key=none") {
		t.Fatalf("fork run %v %q:\n%s", fr.GetStatus(), fr.GetDefinition(), l)
	}
	// Approved, as the --help example says.
	out := sc.mustCLI(t, "pipeline", "approve-definition", fr.GetId(), "--comment", "read the diff")
	id, _, ok := strings.Cut(strings.TrimPrefix(out, "run "), " ")
	if !strings.HasPrefix(out, "run ") || !ok || !strings.Contains(out, "started: .arcade.yaml at "+evil[:12]) {
		t.Fatalf("approve-definition:\n%s", out)
	}
	ar := sc.waitRun(id)
	l := sc.logText(jobsByName(ar)["def"].GetId())
	if ar.GetStatus() != success || !ar.GetUntrustedOrigin() || ar.GetTrustedAgents() || ar.GetCommit() != evil || ar.GetPullRequest() != 6 ||
		!strings.Contains(ar.GetDefinition(), "its own definition, approved by") || !strings.Contains(l, "from-fork key=none") || strings.Contains(l, "s3cr3t") {
		t.Fatalf("approved run %v untrusted %v trusted agents %v commit %s definition %q:\n%s", ar.GetStatus(), ar.GetUntrustedOrigin(), ar.GetTrustedAgents(), ar.GetCommit(), ar.GetDefinition(), l)
	}
	// A read token is refused; a named write token is recorded.
	reader := tokenConn(t, sc.cluster, "viewer", secretv1.TokenScope_TOKEN_SCOPE_READ)
	if _, err := reader.ApproveRunDefinition(ctx, &jobv1.ApproveRunDefinitionRequest{RunId: fr.GetId()}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a read token approved: %v", err)
	}
	reviewer := tokenConn(t, sc.cluster, "reviewer", secretv1.TokenScope_TOKEN_SCOPE_WRITE)
	resp, err := reviewer.ApproveRunDefinition(ctx, &jobv1.ApproveRunDefinitionRequest{RunId: fr.GetId(), Comment: "looked"})
	if err != nil || !strings.Contains(resp.GetRun().GetDefinition(), "approved by reviewer") || !strings.Contains(resp.GetRun().GetTriggeredBy(), "approved by reviewer: looked") {
		t.Fatalf("approved by a named token: %v %q %q", err, resp.GetRun().GetDefinition(), resp.GetRun().GetTriggeredBy())
	}
	sc.waitRun(resp.GetRun().GetId())
	// A run that is not a fork's: refused, changing nothing.
	mr := sc.waitRun(sc.trigger("own", nil).GetId())
	n := len(sc.runs("own"))
	if _, err := sc.jobs.ApproveRunDefinition(ctx, &jobv1.ApproveRunDefinitionRequest{RunId: mr.GetId()}); status.Code(err) != codes.FailedPrecondition ||
		!strings.Contains(err.Error(), "not of a pull request from a fork") {
		t.Fatalf("approve a manual run's definition: %v", err)
	}
	if len(sc.runs("own")) != n {
		t.Fatal("a refused approval started a run")
	}
}
