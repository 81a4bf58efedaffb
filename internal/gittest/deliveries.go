package gittest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"text/template"
)

// The payloads of testdata/deliveries are in the shape each forge
// documents (and sends) for the event, with the values a test sets.
//
//go:embed testdata/deliveries/*.json
var deliveries embed.FS

// Vars are the values a delivery is rendered with.
type Vars struct {
	// Ref defaults to refs/heads/Branch.
	Ref, Branch, Tag string
	// Before and After as the forge sends them; Commit is the commit an
	// annotated tag object points at.
	Before, After, Commit string
	Message, Author       string
	// The repository: Owner/Name, its forge id, clone and web URLs.
	Owner, Name      string
	RepoID           int64
	CloneURL, WebURL string
	Private          bool
	// Pull requests: number, action as the forge spells it, title, head
	// branch and repository (id and owner), Fork as the forge flags it,
	// OldRev for GitLab's "update".
	Number             int64
	Action, Title      string
	HeadRef, HeadOwner string
	HeadRepoID         int64
	Fork, Deleted      bool
	OldRev             string
}

// Delivery renders testdata/deliveries/NAME.json ("github-push") with v.
func Delivery(t testing.TB, name string, v Vars) []byte {
	t.Helper()
	if v.Ref == "" {
		v.Ref = "refs/heads/" + v.Branch
	}
	for _, s := range []*string{&v.Message, &v.Title, &v.Author} {
		b, _ := json.Marshal(*s)
		*s = string(b[1 : len(b)-1])
	}
	tmpl, err := template.ParseFS(deliveries, "testdata/deliveries/"+name+".json")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, v); err != nil {
		t.Fatal(err)
	}
	var check any
	if err := json.Unmarshal(buf.Bytes(), &check); err != nil {
		t.Fatalf("delivery %s is not JSON: %v\n%s", name, err, buf.String())
	}
	return buf.Bytes()
}

// Headers are the headers forge sends with a delivery of event (the
// forge's own name: "push", "pull_request", "delete", "Push Hook"…),
// signed with secret as that forge signs.
func Headers(forge, event, delivery, secret string, body []byte) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	hexMAC256 := func() string {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(body)
		return hex.EncodeToString(m.Sum(nil))
	}
	hexMAC1 := func() string {
		m := hmac.New(sha1.New, []byte(secret))
		m.Write(body)
		return hex.EncodeToString(m.Sum(nil))
	}
	switch forge {
	case "github":
		h.Set("User-Agent", "GitHub-Hookshot/2f3d1a7")
		h.Set("X-GitHub-Event", event)
		h.Set("X-GitHub-Delivery", delivery)
		h.Set("X-GitHub-Hook-ID", "482910331")
		h.Set("X-GitHub-Hook-Installation-Target-Type", "repository")
		h.Set("X-Hub-Signature", "sha1="+hexMAC1())
		h.Set("X-Hub-Signature-256", "sha256="+hexMAC256())
	case "gitea", "forgejo":
		h.Set("User-Agent", "Go-http-client/1.1")
		for _, p := range []string{"X-Gitea-", "X-Gogs-"} {
			h.Set(p+"Event", event)
			h.Set(p+"Delivery", delivery)
			h.Set(p+"Signature", hexMAC256())
		}
		h.Set("X-Gitea-Event-Type", event)
		h.Set("X-Hub-Signature-256", "sha256="+hexMAC256())
		if forge == "forgejo" {
			h.Set("X-Forgejo-Event", event)
			h.Set("X-Forgejo-Event-Type", event)
			h.Set("X-Forgejo-Delivery", delivery)
			h.Set("X-Forgejo-Signature", hexMAC256())
		}
	case "gitlab":
		h.Set("User-Agent", "GitLab/17.6.1")
		h.Set("X-Gitlab-Event", event)
		h.Set("X-Gitlab-Token", secret)
		h.Set("X-Gitlab-Event-UUID", delivery)
		h.Set("X-Gitlab-Webhook-UUID", "6a9f0c4e-1d2b-4e8f-9a7c-5b3d2e1f0a9b")
		h.Set("X-Gitlab-Instance", "https://gitlab.example.com")
		h.Set("Idempotency-Key", delivery)
	default:
		panic(fmt.Sprintf("unknown forge %q", forge))
	}
	return h
}
