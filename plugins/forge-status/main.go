//go:build wasip1

// Command forge-status is a notify plugin that sets commit statuses on
// GitHub, Gitea (and Forgejo) and GitLab: the server hands it each state of
// a run (pending, running, success, failure, cancelled) with the
// repository, the commit, the context, the run's page and the source's
// credential, in order (see server/sources/status.go).
//
// config: forge (github | gitea | gitlab; default github), api_url (the
// forge's API; default https://api.github.com for GitHub, else
// SCHEME://HOST/api/v1 for Gitea and /api/v4 for GitLab, from the
// repository's URL), token (used when the source has no token credential,
// e.g. an SSH key: plugins.yaml "secrets: {token: NAME}").
//
// Grant it only the forge's API host (allowed_hosts).
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/go-arcade/arcade/pdk"
)

var meta = pdk.Metadata{
	Name:        "forge-status",
	Kind:        pdk.KindNotify,
	Version:     "1.0.0",
	Description: "Commit statuses on GitHub, Gitea/Forgejo and GitLab for each run",
	Capabilities: &pdk.Capabilities{
		ConfigKeys: []string{"forge", "api_url", "token"},
	},
}

//go:wasmexport metadata
func metadata() int32 { return pdk.Describe(meta) }

//go:wasmexport send
func send() int32 { return pdk.Handle(runSend) }

// send_template takes the same values from the template request's data
// (repository, commit, state, context, target_url, description), so a
// notification rule may set a status too.
//
//go:wasmexport send_template
func sendTemplate() int32 { return pdk.Handle(runSendTemplate) }

func runSendTemplate(r *pdk.SendTemplateRequest) (*pdk.SendResponse, error) {
	meta := map[string]string{}
	for k, v := range r.Data {
		if s, ok := v.(string); ok {
			meta[k] = s
		}
	}
	delete(meta, "token") // a token comes from the server or the plugin's config only
	return runSend(&pdk.SendRequest{Metadata: meta, Event: r.Event})
}

func main() {}

func runSend(r *pdk.SendRequest) (*pdk.SendResponse, error) {
	m := r.Metadata
	for _, k := range []string{"repository", "commit", "state"} {
		if m[k] == "" {
			return nil, fmt.Errorf("forge-status: metadata %s is missing (the server sends it with each commit status)", k)
		}
	}
	forge := pdk.ConfigOr("forge", "github")
	path, host, err := repoPath(m["repository"])
	if err != nil {
		return nil, err
	}
	api := strings.TrimSuffix(pdk.ConfigOr("api_url", ""), "/")
	token := m["token"]
	if token == "" {
		token = pdk.ConfigOr("token", "")
	}
	if token == "" {
		return nil, errors.New("forge-status: no token: give the source an HTTPS token credential, or the plugin a token (plugins.yaml secrets: {token: NAME})")
	}
	ctx := m["context"]
	if ctx == "" {
		ctx = "arcade"
	}
	desc := m["description"]
	if len(desc) > 140 {
		desc = desc[:137] + "..."
	}
	var target string
	var body map[string]any
	header := map[string]string{"Content-Type": "application/json", "User-Agent": "arcade-forge-status/1.0"}
	switch forge {
	case "github":
		if api == "" {
			api = "https://api.github.com"
		}
		target = fmt.Sprintf("%s/repos/%s/statuses/%s", api, path, m["commit"])
		body = map[string]any{"state": githubState(m["state"]), "context": ctx, "description": desc}
		header["Authorization"] = "Bearer " + token
		header["Accept"] = "application/vnd.github+json"
		header["X-GitHub-Api-Version"] = "2022-11-28"
	case "gitea", "forgejo":
		if api == "" {
			api = host + "/api/v1"
		}
		target = fmt.Sprintf("%s/repos/%s/statuses/%s", api, path, m["commit"])
		body = map[string]any{"state": githubState(m["state"]), "context": ctx, "description": desc}
		header["Authorization"] = "token " + token
	case "gitlab":
		if api == "" {
			api = host + "/api/v4"
		}
		target = fmt.Sprintf("%s/projects/%s/statuses/%s", api, url.PathEscape(path), m["commit"])
		body = map[string]any{"state": gitlabState(m["state"]), "name": ctx, "description": desc}
		header["PRIVATE-TOKEN"] = token
	default:
		return nil, fmt.Errorf("forge-status: unknown forge %q (want github, gitea, forgejo or gitlab)", forge)
	}
	if u := m["target_url"]; u != "" {
		body["target_url"] = u
	}
	payload, _ := json.Marshal(body)
	resp, err := pdk.Fetch(pdk.Request{Method: "POST", URL: target, Header: header, Body: payload})
	if err != nil {
		return nil, fmt.Errorf("forge-status: %w", err)
	}
	if err := resp.Err(); err != nil {
		return nil, fmt.Errorf("forge-status: %s answered %w", forge, err)
	}
	return &pdk.SendResponse{Status: pdk.StatusSuccess,
		Messages: []pdk.Message{{Severity: pdk.SeverityInfo, Text: fmt.Sprintf("%s %s: %s on %.12s", forge, path, body["state"], m["commit"])}}}, nil
}

// githubState: GitHub and Gitea know pending, success, failure and error;
// a running run is pending still, a cancelled one an error.
func githubState(s string) string {
	switch s {
	case "running":
		return "pending"
	case "cancelled":
		return "error"
	}
	return s
}

// gitlabState: GitLab knows pending, running, success, failed, canceled.
func gitlabState(s string) string {
	switch s {
	case "failure":
		return "failed"
	case "cancelled":
		return "canceled"
	}
	return s
}

// repoPath is the owner/name path of a repository URL (https://, ssh://
// or user@host:path) and its host's https:// address.
func repoPath(raw string) (string, string, error) {
	var host, p string
	if _, rest, ok := strings.Cut(raw, "://"); ok {
		u, err := url.Parse(raw)
		if err != nil {
			return "", "", fmt.Errorf("forge-status: repository %q: %w", raw, err)
		}
		scheme := u.Scheme
		if scheme != "http" {
			scheme = "https"
		}
		host, p = scheme+"://"+u.Host, u.Path
		_ = rest
	} else if at, colon := strings.Index(raw, "@"), strings.Index(raw, ":"); colon > 0 && at < colon {
		host, p = "https://"+raw[at+1:colon], raw[colon+1:]
	} else {
		return "", "", fmt.Errorf("forge-status: repository %q is not a URL", raw)
	}
	p = strings.TrimSuffix(strings.Trim(p, "/"), ".git")
	if p == "" {
		return "", "", fmt.Errorf("forge-status: repository %q names no path", raw)
	}
	return p, host, nil
}
