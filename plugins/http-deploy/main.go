//go:build wasip1

// Command http-deploy is a cd plugin that deploys and rolls back through an
// HTTP endpoint: it POSTs the release to ENDPOINT/deploy or
// ENDPOINT/rollback and reports what was deployed where.
//
// config: endpoint (required, e.g. https://deploy.example.com/api), token
// (sent as a bearer token), service (the deployed service's name).
// The endpoint's host must be granted in allowed_hosts.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/go-arcade/arcade/pdk"
)

var meta = pdk.Metadata{
	Name:        "http-deploy",
	Kind:        pdk.KindCD,
	Version:     "1.0.0",
	Description: "deploy and roll back through an HTTP endpoint",
	Capabilities: &pdk.Capabilities{
		ConfigKeys: []string{"endpoint", "token", "service"},
	},
}

//go:wasmexport metadata
func metadata() int32 { return pdk.Describe(meta) }

//go:wasmexport deploy
func deploy() int32 {
	return pdk.Handle(func(r *pdk.DeployRequest) (*pdk.StepResponse, error) { return call("deploy", r) })
}

//go:wasmexport rollback
func rollback() int32 {
	return pdk.Handle(func(r *pdk.DeployRequest) (*pdk.StepResponse, error) { return call("rollback", r) })
}

func main() {}

// release is what the endpoint receives.
type release struct {
	Action      string            `json:"action"`
	Service     string            `json:"service,omitempty"`
	Environment string            `json:"environment"`
	Version     string            `json:"version"`
	Artifacts   []string          `json:"artifacts,omitempty"`
	Commit      string            `json:"commit,omitempty"`
	Ref         string            `json:"ref,omitempty"`
	Repository  string            `json:"repository,omitempty"`
	JobID       string            `json:"job_id,omitempty"`
	Params      map[string]any    `json:"params,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
}

// answer is what the endpoint may reply; every field is optional.
type answer struct {
	ID      string `json:"id"`
	URL     string `json:"url"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

func call(action string, r *pdk.DeployRequest) (*pdk.StepResponse, error) {
	endpoint, ok := pdk.Config("endpoint")
	if !ok || endpoint == "" {
		return nil, errors.New("http-deploy: config endpoint is not set")
	}
	if r.Environment == "" {
		return nil, errors.New("http-deploy: " + action + " needs an environment")
	}
	if r.Version == "" && action == "deploy" {
		return nil, errors.New("http-deploy: deploy needs a version")
	}
	rel := release{Action: action, Service: pdk.ConfigOr("service", ""), Environment: r.Environment,
		Version: r.Version, Artifacts: r.Artifacts, Params: r.Params}
	if c := r.Context; c != nil {
		rel.Commit, rel.Ref, rel.Repository, rel.JobID = c.Commit, c.Ref, c.Repository, c.JobID
	}
	body, err := json.Marshal(rel)
	if err != nil {
		return nil, fmt.Errorf("http-deploy: %w", err)
	}
	header := map[string]string{"Content-Type": "application/json", "User-Agent": "arcade-http-deploy/1.0"}
	if tok := pdk.ConfigOr("token", ""); tok != "" {
		header["Authorization"] = "Bearer " + tok
	}
	url := strings.TrimRight(endpoint, "/") + "/" + action
	pdk.Infof("%s %s %s to %s via %s", action, rel.Service, r.Version, r.Environment, url)
	resp, err := pdk.Fetch(pdk.Request{Method: "POST", URL: url, Header: header, Body: body})
	if err != nil {
		return nil, fmt.Errorf("http-deploy: %w", err)
	}
	what := strings.TrimSpace(fmt.Sprintf("%s %s", rel.Service, r.Version))
	if what == "" {
		what = "previous release"
	}
	if err := resp.Err(); err != nil {
		return &pdk.StepResponse{Status: pdk.StatusFailure,
			Summary:  fmt.Sprintf("%s of %s to %s refused: %v", action, what, r.Environment, err),
			Messages: []pdk.Message{{Severity: pdk.SeverityHigh, Text: err.Error()}}}, nil
	}
	var a answer
	_ = json.Unmarshal(resp.Body, &a) // the reply's body is optional
	verb := map[string]string{"deploy": "deployed", "rollback": "rolled back"}[action]
	out := &pdk.StepResponse{Status: pdk.StatusSuccess,
		Summary: fmt.Sprintf("%s %s to %s", verb, what, r.Environment),
		Outputs: map[string]string{"environment": r.Environment, "version": r.Version, "action": action}}
	if a.ID != "" {
		out.Outputs["deployment_id"] = a.ID
		out.Summary += " (deployment " + a.ID + ")"
	}
	if a.URL != "" {
		out.Outputs["url"] = a.URL
		out.Summary += " at " + a.URL
	}
	for _, art := range r.Artifacts {
		out.Messages = append(out.Messages, pdk.Message{Severity: pdk.SeverityInfo, Text: "artifact " + art})
	}
	if a.Message != "" {
		out.Messages = append(out.Messages, pdk.Message{Severity: pdk.SeverityInfo, Text: a.Message})
	}
	return out, nil
}
