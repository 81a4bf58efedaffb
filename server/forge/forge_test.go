package forge

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/go-arcade/arcade/internal/gittest"
)

const (
	c1 = "1111111111111111111111111111111111111111"
	c2 = "2222222222222222222222222222222222222222"
	c3 = "3333333333333333333333333333333333333333"
)

func vars() gittest.Vars {
	return gittest.Vars{Branch: "main", Before: c1, After: c2, Message: "fix \"quotes\"", Author: "ada",
		Owner: "acme", Name: "app", RepoID: 42, CloneURL: "https://forge.example.com/acme/app.git", WebURL: "https://forge.example.com/acme/app"}
}

func parse(t *testing.T, forge Forge, file, event string, v gittest.Vars) *Event {
	t.Helper()
	body := gittest.Delivery(t, file, v)
	h := gittest.Headers(string(forge), event, "d-1", "s3cret", body)
	if err := Verify(forge, h, body, "s3cret"); err != nil {
		t.Fatalf("%s: signed delivery refused: %v", file, err)
	}
	ev, err := Parse(forge, h, body)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Delivery != "d-1" {
		t.Errorf("%s: delivery %q", file, ev.Delivery)
	}
	return ev
}

func TestPushes(t *testing.T) {
	for _, tc := range []struct {
		forge       Forge
		file, event string
	}{
		{GitHub, "github-push", "push"}, {Gitea, "gitea-push", "push"}, {Forgejo, "gitea-push", "push"}, {GitLab, "gitlab-push", "Push Hook"},
	} {
		ev := parse(t, tc.forge, tc.file, tc.event, vars())
		if ev.Kind != Push || ev.Branch != "main" || ev.Ref != "refs/heads/main" || ev.After != c2 || ev.Before != c1 || ev.Author != "ada" {
			t.Errorf("%s: %+v", tc.forge, ev)
		}
		if ev.Repository.ID != 42 || !contains(ev.Repository.URLs, "https://forge.example.com/acme/app.git") {
			t.Errorf("%s: repository %+v", tc.forge, ev.Repository)
		}
		if !strings.Contains(ev.Message, `"quotes"`) {
			t.Errorf("%s: message %q", tc.forge, ev.Message)
		}
	}
}

// A deleted branch: GitHub and GitLab send a push with a zero after;
// Gitea and Forgejo send a delete event.
func TestBranchDeletions(t *testing.T) {
	v := vars()
	v.Branch, v.Deleted = "gone", true
	for _, tc := range []struct {
		forge       Forge
		file, event string
	}{
		{GitHub, "github-push-delete", "push"}, {Gitea, "gitea-delete", "delete"}, {Forgejo, "gitea-delete", "delete"},
	} {
		ev := parse(t, tc.forge, tc.file, tc.event, v)
		if ev.Kind != Deleted || ev.Branch != "gone" {
			t.Errorf("%s: %+v", tc.forge, ev)
		}
	}
	v.After = strings.Repeat("0", 40)
	if ev := parse(t, GitLab, "gitlab-push", "Push Hook", v); ev.Kind != Deleted {
		t.Errorf("gitlab: %+v", ev)
	}
}

func TestTags(t *testing.T) {
	v := vars()
	v.Tag, v.After, v.Commit = "v1.0.0", c3, c2 // c3: the annotated tag object
	ev := parse(t, GitHub, "github-tag", "push", v)
	if ev.Kind != Tag || ev.Tag != "v1.0.0" || ev.After != c3 || !ev.Peel {
		t.Errorf("github: %+v", ev)
	}
	v.Ref = "refs/tags/v1.0.0"
	ev = parse(t, Gitea, "gitea-push", "push", v)
	if ev.Kind != Tag || !ev.Peel {
		t.Errorf("gitea: %+v", ev)
	}
	// GitLab gives the commit in checkout_sha.
	ev = parse(t, GitLab, "gitlab-tag", "Tag Push Hook", v)
	if ev.Kind != Tag || ev.After != c2 || ev.Peel {
		t.Errorf("gitlab: %+v", ev)
	}
}

func TestPullRequests(t *testing.T) {
	for _, tc := range []struct {
		forge             Forge
		file, event       string
		open, sync, close string
		wantRef           string
	}{
		{GitHub, "github-pull_request", "pull_request", "opened", "synchronize", "closed", "refs/pull/7/head"},
		{Gitea, "gitea-pull_request", "pull_request", "opened", "synchronized", "closed", "refs/pull/7/head"},
		{Forgejo, "gitea-pull_request", "pull_request", "reopened", "synchronized", "closed", "refs/pull/7/head"},
		{GitLab, "gitlab-merge_request", "Merge Request Hook", "open", "update", "close", "refs/merge-requests/7/head"},
	} {
		v := vars()
		v.Number, v.Title, v.HeadRef, v.HeadOwner, v.HeadRepoID, v.Author = 7, "Add things", "feature", "acme", 42, "grace"
		v.Action = tc.open
		ev := parse(t, tc.forge, tc.file, tc.event, v)
		if ev.Kind != PullRequest || ev.PR.Number != 7 || ev.Ref != tc.wantRef || ev.After != c2 || ev.Branch != "main" || ev.PR.Fork {
			t.Errorf("%s open: %+v %+v", tc.forge, ev, ev.PR)
		}
		// The same name, another repository id: a fork.
		v.HeadOwner, v.HeadRepoID, v.Fork = "mallory", 99, true
		v.Action, v.OldRev = tc.sync, c1
		ev = parse(t, tc.forge, tc.file, tc.event, v)
		if ev.Kind != PullRequest || !ev.PR.Fork || ev.PR.Action != "synchronized" {
			t.Errorf("%s sync from fork: %+v %+v", tc.forge, ev, ev.PR)
		}
		// A fork whose owner's name equals the base's is still a fork.
		v.HeadOwner = "acme"
		if ev := parse(t, tc.forge, tc.file, tc.event, v); !ev.PR.Fork {
			t.Errorf("%s: fork told by name, not id", tc.forge)
		}
		v.Action, v.OldRev = tc.close, ""
		if ev := parse(t, tc.forge, tc.file, tc.event, v); ev.Kind != Ignored {
			t.Errorf("%s close: %+v", tc.forge, ev)
		}
	}
	// GitLab: an update without oldrev changes no code.
	v := vars()
	v.Number, v.Action, v.HeadRepoID = 7, "update", 42
	if ev := parse(t, GitLab, "gitlab-merge_request", "Merge Request Hook", v); ev.Kind != Ignored {
		t.Errorf("gitlab update without oldrev: %+v", ev)
	}
}

func TestSignatures(t *testing.T) {
	body := gittest.Delivery(t, "github-push", vars())
	for _, f := range Forges {
		h := gittest.Headers(string(f), "push", "d", "right", body)
		if err := Verify(f, h, body, "right"); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		if err := Verify(f, h, body, "wrong"); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: wrong secret accepted", f)
		}
		if err := Verify(f, h, append(body, ' '), "right"); f != GitLab && !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: changed body accepted", f)
		}
		if err := Verify(f, http.Header{}, body, "right"); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: unsigned accepted", f)
		}
		if err := Verify(f, h, body, ""); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: empty secret accepted", f)
		}
	}
}

func TestRepoURLs(t *testing.T) {
	urls, err := RepoURLs(gittest.Delivery(t, "gitlab-push", vars()))
	if err != nil || !contains(urls, "https://forge.example.com/acme/app.git") {
		t.Fatalf("%v %v", urls, err)
	}
	if _, err := RepoURLs([]byte(`{"zen":"ping"}`)); err == nil {
		t.Fatal("no repository accepted")
	}
}

func FuzzParse(f *testing.F) {
	f.Add("github", "push", []byte(`{"ref":"refs/heads/main","after":"abc","repository":{"id":1}}`))
	f.Add("gitea", "pull_request", []byte(`{"action":"synchronized","number":3,"pull_request":{"head":{"repo_id":2},"base":{"repo_id":1}}}`))
	f.Add("gitlab", "Merge Request Hook", []byte(`{"object_attributes":{"iid":1,"action":"update","oldrev":"x"}}`))
	f.Add("gitea", "delete", []byte(`{"ref":"x","ref_type":"branch"}`))
	f.Fuzz(func(t *testing.T, forge, event string, body []byte) {
		fg, ok := Known(forge)
		if !ok {
			return
		}
		h := http.Header{}
		h.Set("X-GitHub-Event", event)
		h.Set("X-Gitea-Event", event)
		h.Set("X-Gitlab-Event", event)
		ev, err := Parse(fg, h, body)
		if err != nil {
			return
		}
		if ev.Kind == PullRequest && ev.PR == nil {
			t.Fatal("pull request event without PR")
		}
		_ = ev.Describe()
		RepoURLs(body) //nolint:errcheck // must not panic
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
