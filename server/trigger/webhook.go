package trigger

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
)

// Push is what a run learns from a Git push event.
type Push struct {
	Ref        string
	Branch     string
	Commit     string
	Author     string
	Message    string
	Repository string
	// CloneURL is the repository's clone URL (GitHub/Gitea clone_url,
	// GitLab git_http_url), when the payload has one.
	CloneURL string
}

// Env is the push as run env: commit, branch and author always, the rest
// when the payload has them.
func (p Push) Env() map[string]string {
	env := map[string]string{"ARCADE_COMMIT": p.Commit, "ARCADE_BRANCH": p.Branch, "ARCADE_AUTHOR": p.Author}
	for k, v := range map[string]string{"ARCADE_REF": p.Ref, "ARCADE_REPOSITORY": p.Repository, "ARCADE_COMMIT_MESSAGE": p.Message} {
		if v != "" {
			env[k] = v
		}
	}
	return env
}

// WebhookConfig is one webhook trigger of a pipeline.
type WebhookConfig struct {
	Secret   string
	Branches []string
}

// ErrNoPipeline is returned by a WebhookTarget for an unknown pipeline.
var ErrNoPipeline = errors.New("no such pipeline")

// WebhookTarget finds a pipeline's webhook triggers and starts its runs.
type WebhookTarget interface {
	// Webhooks returns the webhook triggers of a pipeline (by id or name).
	Webhooks(ctx context.Context, pipeline string) ([]WebhookConfig, error)
	// FireWebhook starts a run and returns its id and number.
	FireWebhook(ctx context.Context, pipeline string, push Push) (string, int64, error)
}

// maxPayload caps a webhook body.
const maxPayload = 5 << 20

// SignatureHeader carries "sha256=" + hex(HMAC-SHA256(secret, body)), as
// GitHub sends it; X-Arcade-Signature is accepted too.
const SignatureHeader = "X-Hub-Signature-256"

// ParsePush reads a Git push event (GitHub, Gitea and GitLab shapes).
func ParsePush(body []byte) (Push, error) {
	var ev pushEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		return Push{}, fmt.Errorf("payload is not a JSON push event: %w", err)
	}
	push := Push{Ref: ev.Ref, Branch: strings.TrimPrefix(ev.Ref, "refs/heads/"), Commit: ev.After,
		Repository: ev.Repository.FullName}
	if push.Repository == "" {
		push.Repository = ev.Repository.Name
	}
	for _, u := range []string{ev.Repository.CloneURL, ev.Repository.GitHTTPURL, ev.Project.GitHTTPURL} {
		if push.CloneURL == "" {
			push.CloneURL = u
		}
	}
	if push.Commit == "" {
		push.Commit = ev.CheckoutSHA
	}
	if hc := ev.HeadCommit; hc != nil {
		if hc.ID != "" {
			push.Commit = hc.ID
		}
		push.Message = hc.Message
		push.Author = hc.Author.Name
		if hc.Author.Email != "" {
			push.Author += " <" + hc.Author.Email + ">"
		}
	}
	if push.Author == "" {
		push.Author = ev.Pusher.Name
	}
	if push.Author == "" {
		push.Author = ev.UserName
	}
	return push, nil
}

// Sign returns the signature header value of body under secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// pushEvent is the part of a GitHub/Gitea/GitLab-style push payload we read.
type pushEvent struct {
	Ref         string `json:"ref"`
	After       string `json:"after"`
	CheckoutSHA string `json:"checkout_sha"`
	HeadCommit  *struct {
		ID      string `json:"id"`
		Message string `json:"message"`
		Author  struct {
			Name     string `json:"name"`
			Email    string `json:"email"`
			Username string `json:"username"`
		} `json:"author"`
	} `json:"head_commit"`
	Pusher struct {
		Name string `json:"name"`
	} `json:"pusher"`
	UserName   string `json:"user_name"`
	Repository struct {
		FullName   string `json:"full_name"`
		Name       string `json:"name"`
		CloneURL   string `json:"clone_url"`
		GitHTTPURL string `json:"git_http_url"`
	} `json:"repository"`
	Project struct {
		GitHTTPURL string `json:"git_http_url"`
	} `json:"project"`
}

// WebhookHandler serves POST /hooks/{pipeline}: the body is a push event
// signed with one of the pipeline's webhook secrets. A bad or missing
// signature answers 401 and starts nothing; a push to a branch no trigger
// accepts answers 202 and starts nothing; otherwise 201 with the run.
func WebhookHandler(target WebhookTarget, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hooks/{pipeline}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("pipeline")
		body, err := io.ReadAll(io.LimitReader(r.Body, maxPayload+1))
		if err != nil || len(body) > maxPayload {
			http.Error(w, "payload unreadable or larger than 5 MiB", http.StatusRequestEntityTooLarge)
			return
		}
		hooks, err := target.Webhooks(r.Context(), name)
		switch {
		case errors.Is(err, ErrNoPipeline):
			http.Error(w, "no such pipeline", http.StatusNotFound)
			return
		case err != nil:
			logger.Warn("webhook: look up pipeline", "pipeline", name, "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		sig := r.Header.Get(SignatureHeader)
		if sig == "" {
			sig = r.Header.Get("X-Arcade-Signature")
		}
		var matched *WebhookConfig
		for i := range hooks {
			if hooks[i].Secret != "" && hmac.Equal([]byte(sig), []byte(Sign(hooks[i].Secret, body))) {
				matched = &hooks[i]
				break
			}
		}
		if matched == nil {
			logger.Warn("webhook: bad signature", "pipeline", name, "remote", r.RemoteAddr)
			http.Error(w, "bad or missing signature", http.StatusUnauthorized)
			return
		}
		push, err := ParsePush(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if len(matched.Branches) > 0 && !slices.Contains(matched.Branches, push.Branch) {
			w.WriteHeader(http.StatusAccepted)
			json.NewEncoder(w).Encode(map[string]string{"skipped": "branch " + push.Branch + " does not trigger this pipeline"}) //nolint:errcheck // best effort
			return
		}
		id, number, err := target.FireWebhook(r.Context(), name, push)
		if err != nil {
			logger.Warn("webhook: trigger", "pipeline", name, "err", err)
			http.Error(w, "trigger failed: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"run_id": id, "number": number}) //nolint:errcheck // best effort
	})
	return mux
}
