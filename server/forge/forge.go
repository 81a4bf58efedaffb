// Package forge reads webhook deliveries as GitHub, Gitea, Forgejo and
// GitLab send them: which forge, the delivery id, the signature check of
// each, and the event (push, tag, pull request, branch deletion) in one
// shape. It does no I/O; the server finds pipelines, filters and starts
// runs (server/sources.go).
//
// Real deliveries differ from the documentation in places, and this reads
// what forges send:
//   - Gitea and Forgejo announce a deleted branch with a "delete" event
//     (ref_type "branch", ref without refs/heads/), not a push with a zero
//     "after"; both shapes are read as a deletion.
//   - Gitea and Forgejo name the pull request update action
//     "synchronized" (GitHub: "synchronize") and send no before/after;
//     GitLab's is action "update" with "oldrev" (an update without oldrev
//     changes no code: title, labels).
//   - A pull request from a fork is told by repository ids (head repository
//     id ≠ base repository id; GitLab source_project_id ≠
//     target_project_id), not by names, which a fork may share.
//   - For an annotated tag, "after" is the tag object, not a commit: the
//     server peels it in its mirror (Event.Peel).
package forge

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Forge is a forge's kind.
type Forge string

// The forges whose deliveries are read.
const (
	GitHub  Forge = "github"
	Gitea   Forge = "gitea"
	Forgejo Forge = "forgejo"
	GitLab  Forge = "gitlab"
)

// Forges are the names of POST /hooks/{forge}.
var Forges = []Forge{GitHub, Gitea, Forgejo, GitLab}

// Known reports whether name is a forge's.
func Known(name string) (Forge, bool) {
	for _, f := range Forges {
		if string(f) == name {
			return f, true
		}
	}
	return "", false
}

// Kind is what happened.
type Kind string

// The kinds of event. They are also the names webhook triggers filter on
// ("events: [push, tag, pull_request]").
const (
	Push        Kind = "push"
	Tag         Kind = "tag"
	PullRequest Kind = "pull_request"
	// Deleted: a branch or tag was deleted; nothing is built.
	Deleted Kind = "deleted"
	// Ignored: an event that builds nothing (a ping, a closed pull
	// request, a title edit); Why says which.
	Ignored Kind = "ignored"
)

// Event is a delivery read.
type Event struct {
	Forge Forge
	// Delivery is the forge's id of the delivery ("" when it sends none).
	Delivery string
	Kind     Kind
	// Why says why an Ignored or Deleted event builds nothing.
	Why string
	// Ref is the full ref built ("refs/heads/main", "refs/tags/v1",
	// "refs/pull/5/head"); Branch or Tag its short name (for a pull
	// request, Branch is the base branch).
	Ref, Branch, Tag string
	// Before is the commit before a push (all zeros or "" for a new
	// branch); After the commit (or, for an annotated tag, the tag
	// object) the event is about.
	Before, After string
	// Peel: After may be a tag object; the commit is what it points at.
	Peel bool
	// Author is who made the commit or opened the pull request.
	Author  string
	Message string
	// Repository is the repository the webhook is of: its clone URLs (any
	// may be the one a pipeline's source names) and its forge id.
	Repository Repo
	// PR is set for pull request events.
	PR *PR
}

// Repo is a forge repository.
type Repo struct {
	ID       int64
	FullName string
	URLs     []string
	WebURL   string
}

// PR is a pull (merge) request.
type PR struct {
	Number int64
	Title  string
	Action string
	// HeadRef and HeadRepo are where its commits come from; BaseBranch
	// the branch it merges into, BaseSHA that branch's commit.
	HeadRef    string
	HeadRepo   Repo
	BaseBranch string
	BaseSHA    string
	// Fork: the head repository is not the base repository (told by
	// ids).
	Fork bool
}

// Describe is the event for people ("push to main by Ada (1a2b3c4d5e6f)").
func (e *Event) Describe() string {
	short := e.After
	if len(short) > 12 {
		short = short[:12]
	}
	switch e.Kind {
	case PullRequest:
		from := ""
		if e.PR.Fork {
			from = " from fork " + e.PR.HeadRepo.FullName
		}
		return fmt.Sprintf("pull request #%d %q %s by %s%s (%s)", e.PR.Number, e.PR.Title, e.PR.Action, e.Author, from, short)
	case Tag:
		return fmt.Sprintf("tag %s by %s (%s)", e.Tag, e.Author, short)
	}
	return fmt.Sprintf("%s to %s by %s (%s)", e.Kind, e.Branch, e.Author, short)
}

// ErrBadSignature is the error of a delivery whose signature (or GitLab
// token) is missing or wrong for a secret.
var ErrBadSignature = errors.New("bad or missing signature")

// Verify checks a delivery of forge f against secret.
func Verify(f Forge, h http.Header, body []byte, secret string) error {
	if secret == "" {
		return ErrBadSignature
	}
	switch f {
	case GitHub:
		sig := h.Get("X-Hub-Signature-256")
		if !hmac.Equal([]byte(sig), []byte("sha256="+hexHMAC(secret, body))) {
			return ErrBadSignature
		}
	case Gitea, Forgejo:
		sig := h.Get("X-Forgejo-Signature")
		if sig == "" {
			sig = h.Get("X-Gitea-Signature")
		}
		if !hmac.Equal([]byte(strings.ToLower(sig)), []byte(hexHMAC(secret, body))) {
			return ErrBadSignature
		}
	case GitLab:
		tok := h.Get("X-Gitlab-Token")
		if subtle.ConstantTimeCompare([]byte(tok), []byte(secret)) != 1 {
			return ErrBadSignature
		}
	default:
		return ErrBadSignature
	}
	return nil
}

// Sign returns the headers forge f signs body with under secret (for tests
// and for people checking their forge's set-up).
func Sign(f Forge, secret string, body []byte) http.Header {
	h := http.Header{}
	switch f {
	case GitHub:
		h.Set("X-Hub-Signature-256", "sha256="+hexHMAC(secret, body))
	case Gitea:
		h.Set("X-Gitea-Signature", hexHMAC(secret, body))
	case Forgejo:
		h.Set("X-Forgejo-Signature", hexHMAC(secret, body))
		h.Set("X-Gitea-Signature", hexHMAC(secret, body))
	case GitLab:
		h.Set("X-Gitlab-Token", secret)
	}
	return h
}

func hexHMAC(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// EventName is the forge's name of the event in its headers.
func EventName(f Forge, h http.Header) string {
	switch f {
	case GitHub:
		return h.Get("X-GitHub-Event")
	case Gitea, Forgejo:
		if v := h.Get("X-Forgejo-Event"); v != "" {
			return v
		}
		return h.Get("X-Gitea-Event")
	case GitLab:
		return h.Get("X-Gitlab-Event")
	}
	return ""
}

// DeliveryID is the forge's id of the delivery.
func DeliveryID(f Forge, h http.Header) string {
	var id string
	switch f {
	case GitHub:
		id = h.Get("X-GitHub-Delivery")
	case Gitea, Forgejo:
		if id = h.Get("X-Forgejo-Delivery"); id == "" {
			id = h.Get("X-Gitea-Delivery")
		}
	case GitLab:
		// X-Gitlab-Event-UUID is one delivery (the same on a redelivery);
		// Idempotency-Key is set by newer GitLab for the same purpose.
		if id = h.Get("Idempotency-Key"); id == "" {
			id = h.Get("X-Gitlab-Event-UUID")
		}
	}
	if len(id) > 200 {
		id = id[:200]
	}
	return id
}

// RepoURLs reads only the repository of a delivery (its clone URLs), to find
// the pipelines it may be for before its signature is checked.
func RepoURLs(body []byte) ([]string, error) {
	var p struct {
		Repository repoJSON `json:"repository"`
		Project    repoJSON `json:"project"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("payload is not JSON: %w", err)
	}
	urls := append(p.Repository.urls(), p.Project.urls()...)
	if len(urls) == 0 {
		return nil, errors.New("payload names no repository")
	}
	return urls, nil
}

// Parse reads a delivery of forge f.
func Parse(f Forge, h http.Header, body []byte) (*Event, error) {
	name := EventName(f, h)
	var ev *Event
	var err error
	switch f {
	case GitHub:
		ev, err = parseGitHub(name, body)
	case Gitea, Forgejo:
		ev, err = parseGitea(name, body)
	case GitLab:
		ev, err = parseGitLab(name, body)
	default:
		return nil, fmt.Errorf("unknown forge %q", f)
	}
	if err != nil {
		return nil, err
	}
	ev.Forge, ev.Delivery = f, DeliveryID(f, h)
	return ev, nil
}

// IsZero reports whether a commit id is absent or all zeros (a branch
// created or deleted).
func IsZero(sha string) bool { return strings.Trim(sha, "0") == "" }

// repoJSON is a repository as GitHub, Gitea and GitLab (project) describe
// it.
type repoJSON struct {
	ID                json.Number `json:"id"`
	Name              string      `json:"name"`
	FullName          string      `json:"full_name"`
	PathWithNamespace string      `json:"path_with_namespace"`
	CloneURL          string      `json:"clone_url"`
	SSHURL            string      `json:"ssh_url"`
	HTMLURL           string      `json:"html_url"`
	GitHTTPURL        string      `json:"git_http_url"`
	GitSSHURL         string      `json:"git_ssh_url"`
	WebURL            string      `json:"web_url"`
	Homepage          string      `json:"homepage"`
}

func (r repoJSON) urls() []string {
	var out []string
	for _, u := range []string{r.CloneURL, r.SSHURL, r.GitHTTPURL, r.GitSSHURL, r.HTMLURL, r.WebURL, r.Homepage} {
		if u != "" {
			out = append(out, u)
		}
	}
	return out
}

func (r repoJSON) repo() Repo {
	id, _ := strconv.ParseInt(r.ID.String(), 10, 64)
	name := r.FullName
	if name == "" {
		name = r.PathWithNamespace
	}
	web := r.HTMLURL
	if web == "" {
		web = r.WebURL
	}
	return Repo{ID: id, FullName: name, URLs: r.urls(), WebURL: web}
}

type userJSON struct {
	Login    string `json:"login"`
	Username string `json:"username"`
	Name     string `json:"name"`
	Email    string `json:"email"`
}

func (u userJSON) who() string {
	for _, s := range []string{u.Login, u.Username, u.Name} {
		if s != "" {
			return s
		}
	}
	return ""
}

type commitJSON struct {
	ID      string   `json:"id"`
	Message string   `json:"message"`
	Author  userJSON `json:"author"`
}

func decode(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("payload does not parse: %w", err)
	}
	return nil
}

// pushFields fills a push or tag event from its ref and commits.
func pushEvent(ref, before, after string, head *commitJSON, pusher string, repo Repo) *Event {
	ev := &Event{Ref: ref, Before: before, After: after, Repository: repo, Author: pusher}
	if head != nil {
		ev.Message = head.Message
		if a := head.Author.who(); a != "" {
			ev.Author = a
		}
	}
	switch {
	case strings.HasPrefix(ref, "refs/tags/"):
		ev.Kind, ev.Tag, ev.Peel = Tag, strings.TrimPrefix(ref, "refs/tags/"), true
	case strings.HasPrefix(ref, "refs/heads/"):
		ev.Kind, ev.Branch = Push, strings.TrimPrefix(ref, "refs/heads/")
	default:
		ev.Kind, ev.Why = Ignored, "push to "+ref+", neither a branch nor a tag"
	}
	if IsZero(after) {
		ev.Kind, ev.Why = Deleted, ref+" deleted"
	}
	return ev
}

func parseGitHub(name string, body []byte) (*Event, error) {
	switch name {
	case "push":
		var p struct {
			Ref        string      `json:"ref"`
			Before     string      `json:"before"`
			After      string      `json:"after"`
			Deleted    bool        `json:"deleted"`
			HeadCommit *commitJSON `json:"head_commit"`
			Pusher     userJSON    `json:"pusher"`
			Repository repoJSON    `json:"repository"`
		}
		if err := decode(body, &p); err != nil {
			return nil, err
		}
		ev := pushEvent(p.Ref, p.Before, p.After, p.HeadCommit, p.Pusher.who(), p.Repository.repo())
		if p.Deleted {
			ev.Kind, ev.Why = Deleted, p.Ref+" deleted"
		}
		return ev, nil
	case "pull_request":
		var p struct {
			Action      string   `json:"action"`
			Number      int64    `json:"number"`
			PullRequest prGitHub `json:"pull_request"`
			Repository  repoJSON `json:"repository"`
		}
		if err := decode(body, &p); err != nil {
			return nil, err
		}
		pr := p.PullRequest
		ev := &Event{Kind: PullRequest, Repository: p.Repository.repo(), After: pr.Head.SHA, Before: pr.Base.SHA,
			Author: pr.User.who(), Message: pr.Title, Ref: fmt.Sprintf("refs/pull/%d/head", p.Number), Branch: pr.Base.Ref,
			PR: &PR{Number: p.Number, Title: pr.Title, Action: p.Action, HeadRef: pr.Head.Ref, HeadRepo: pr.Head.Repo.repo(),
				BaseBranch: pr.Base.Ref, BaseSHA: pr.Base.SHA}}
		ev.PR.Fork = pr.Head.Repo.ID.String() != pr.Base.Repo.ID.String() || pr.Head.Repo.ID.String() == ""
		switch p.Action {
		case "opened", "reopened":
		case "synchronize":
			ev.PR.Action = "synchronized"
		default:
			ev.Kind, ev.Why = Ignored, "pull request "+p.Action
		}
		return ev, nil
	case "ping":
		return &Event{Kind: Ignored, Why: "ping"}, nil
	}
	return &Event{Kind: Ignored, Why: fmt.Sprintf("event %q is not built", name)}, nil
}

type prGitHub struct {
	Title string   `json:"title"`
	User  userJSON `json:"user"`
	Head  struct {
		Ref  string   `json:"ref"`
		SHA  string   `json:"sha"`
		Repo repoJSON `json:"repo"`
	} `json:"head"`
	Base struct {
		Ref  string   `json:"ref"`
		SHA  string   `json:"sha"`
		Repo repoJSON `json:"repo"`
	} `json:"base"`
}

func parseGitea(name string, body []byte) (*Event, error) {
	switch name {
	case "push":
		var p struct {
			Ref        string      `json:"ref"`
			Before     string      `json:"before"`
			After      string      `json:"after"`
			HeadCommit *commitJSON `json:"head_commit"`
			Pusher     userJSON    `json:"pusher"`
			Repository repoJSON    `json:"repository"`
		}
		if err := decode(body, &p); err != nil {
			return nil, err
		}
		return pushEvent(p.Ref, p.Before, p.After, p.HeadCommit, p.Pusher.who(), p.Repository.repo()), nil
	case "delete":
		var p struct {
			Ref        string   `json:"ref"`
			RefType    string   `json:"ref_type"`
			Repository repoJSON `json:"repository"`
			Sender     userJSON `json:"sender"`
		}
		if err := decode(body, &p); err != nil {
			return nil, err
		}
		ref := p.Ref
		if !strings.HasPrefix(ref, "refs/") {
			if p.RefType == "tag" {
				ref = "refs/tags/" + ref
			} else {
				ref = "refs/heads/" + ref
			}
		}
		ev := &Event{Kind: Deleted, Why: p.RefType + " " + p.Ref + " deleted", Ref: ref, Repository: p.Repository.repo(), Author: p.Sender.who()}
		if p.RefType != "tag" {
			ev.Branch = strings.TrimPrefix(ref, "refs/heads/")
		}
		return ev, nil
	case "pull_request":
		var p struct {
			Action      string   `json:"action"`
			Number      int64    `json:"number"`
			PullRequest prGitea  `json:"pull_request"`
			Repository  repoJSON `json:"repository"`
			Sender      userJSON `json:"sender"`
		}
		if err := decode(body, &p); err != nil {
			return nil, err
		}
		pr := p.PullRequest
		num := p.Number
		if num == 0 {
			num = pr.Number
		}
		headID, baseID := pr.Head.RepoID.String(), pr.Base.RepoID.String()
		if pr.Head.Repo.ID.String() != "" {
			headID = pr.Head.Repo.ID.String()
		}
		if pr.Base.Repo.ID.String() != "" {
			baseID = pr.Base.Repo.ID.String()
		}
		ev := &Event{Kind: PullRequest, Repository: p.Repository.repo(), After: pr.Head.SHA, Before: pr.Base.SHA,
			Author: pr.User.who(), Message: pr.Title, Ref: fmt.Sprintf("refs/pull/%d/head", num), Branch: pr.Base.Ref,
			PR: &PR{Number: num, Title: pr.Title, Action: p.Action, HeadRef: pr.Head.Ref, HeadRepo: pr.Head.Repo.repo(),
				BaseBranch: pr.Base.Ref, BaseSHA: pr.Base.SHA, Fork: headID != baseID || headID == "" || headID == "0"}}
		switch p.Action {
		case "opened", "reopened", "synchronized":
		default:
			ev.Kind, ev.Why = Ignored, "pull request "+p.Action
		}
		return ev, nil
	case "create":
		return &Event{Kind: Ignored, Why: "create event (the push event of the same ref builds)"}, nil
	}
	return &Event{Kind: Ignored, Why: fmt.Sprintf("event %q is not built", name)}, nil
}

type prGitea struct {
	Number int64    `json:"number"`
	Title  string   `json:"title"`
	User   userJSON `json:"user"`
	Head   struct {
		Ref    string      `json:"ref"`
		SHA    string      `json:"sha"`
		RepoID json.Number `json:"repo_id"`
		Repo   repoJSON    `json:"repo"`
	} `json:"head"`
	Base struct {
		Ref    string      `json:"ref"`
		SHA    string      `json:"sha"`
		RepoID json.Number `json:"repo_id"`
		Repo   repoJSON    `json:"repo"`
	} `json:"base"`
}

func parseGitLab(name string, body []byte) (*Event, error) {
	switch name {
	case "Push Hook", "Tag Push Hook":
		var p struct {
			ObjectKind  string       `json:"object_kind"`
			Ref         string       `json:"ref"`
			Before      string       `json:"before"`
			After       string       `json:"after"`
			CheckoutSHA string       `json:"checkout_sha"`
			UserName    string       `json:"user_name"`
			UserLogin   string       `json:"user_username"`
			Commits     []commitJSON `json:"commits"`
			Project     repoJSON     `json:"project"`
			Repository  repoJSON     `json:"repository"`
		}
		if err := decode(body, &p); err != nil {
			return nil, err
		}
		repo := p.Project.repo()
		repo.URLs = append(repo.URLs, p.Repository.urls()...)
		var head *commitJSON
		for i := range p.Commits {
			if p.Commits[i].ID == p.After || p.Commits[i].ID == p.CheckoutSHA {
				head = &p.Commits[i]
			}
		}
		who := p.UserLogin
		if who == "" {
			who = p.UserName
		}
		ev := pushEvent(p.Ref, p.Before, p.After, head, who, repo)
		if who != "" {
			ev.Author = who // a GitLab commit names its author, not their user name
		}
		if ev.Kind == Tag && p.CheckoutSHA != "" {
			ev.After, ev.Peel = p.CheckoutSHA, false
		}
		return ev, nil
	case "Merge Request Hook":
		var p struct {
			User             userJSON `json:"user"`
			Project          repoJSON `json:"project"`
			ObjectAttributes struct {
				IID             int64       `json:"iid"`
				Title           string      `json:"title"`
				Action          string      `json:"action"`
				OldRev          string      `json:"oldrev"`
				SourceBranch    string      `json:"source_branch"`
				TargetBranch    string      `json:"target_branch"`
				SourceProjectID json.Number `json:"source_project_id"`
				TargetProjectID json.Number `json:"target_project_id"`
				LastCommit      commitJSON  `json:"last_commit"`
			} `json:"object_attributes"`
			Source repoJSON `json:"source"`
			Target repoJSON `json:"target"`
		}
		if err := decode(body, &p); err != nil {
			return nil, err
		}
		oa := p.ObjectAttributes
		head := p.Source.repo()
		head.ID, _ = strconv.ParseInt(oa.SourceProjectID.String(), 10, 64)
		ev := &Event{Kind: PullRequest, Repository: p.Project.repo(), After: oa.LastCommit.ID, Author: p.User.who(),
			Message: oa.Title, Ref: fmt.Sprintf("refs/merge-requests/%d/head", oa.IID), Branch: oa.TargetBranch,
			PR: &PR{Number: oa.IID, Title: oa.Title, Action: oa.Action, HeadRef: oa.SourceBranch, HeadRepo: head,
				BaseBranch: oa.TargetBranch, Fork: oa.SourceProjectID.String() != oa.TargetProjectID.String()}}
		switch oa.Action {
		case "open":
			ev.PR.Action = "opened"
		case "reopen":
			ev.PR.Action = "reopened"
		case "update":
			if oa.OldRev == "" {
				ev.Kind, ev.Why = Ignored, "merge request updated without new commits"
			}
			ev.PR.Action = "synchronized"
		default:
			ev.Kind, ev.Why = Ignored, "merge request "+oa.Action
		}
		return ev, nil
	}
	return &Event{Kind: Ignored, Why: fmt.Sprintf("event %q is not built", name)}, nil
}
