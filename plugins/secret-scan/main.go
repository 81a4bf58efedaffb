//go:build wasip1

// Command secret-scan is a security plugin.
//
// scan looks for secrets in the workspace's files — private keys, cloud
// access keys, tokens — and fails the step with each finding's file and
// line. params: rules (extra rules: [{id, pattern, severity}]), allow (path
// globs to skip, e.g. "testdata/*"), allow_patterns (regexps; a match that
// also matches one is not a finding), max_file_kib (default 1024).
// A line holding "arcade:allow-secret" is skipped.
//
// audit checks a pipeline definition against a policy: forbidden commands,
// required labels, and secrets written into it (the scan rules). params:
// definition (the definition's text, as the server hands it at
// CreatePipeline/UpdatePipeline; without it the file pipeline is read),
// pipeline (path in the workspace, default .arcade.yaml; with definition,
// the name findings give), forbidden (regexps; default: piping curl/wget
// into a shell, rm -rf /, chmod 777, sudo), required_labels (label keys),
// rules and allow_patterns as for scan.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/go-arcade/arcade/pdk"
)

var meta = pdk.Metadata{
	Name:        "secret-scan",
	Kind:        pdk.KindSecurity,
	Version:     "1.0.0",
	Description: "secrets in the workspace; pipeline audit against a policy",
	Capabilities: &pdk.Capabilities{
		AllowedPaths: []pdk.PathGrant{{GuestPath: "/workspace", ReadOnly: true}},
	},
}

//go:wasmexport metadata
func metadata() int32 { return pdk.Describe(meta) }

//go:wasmexport scan
func scan() int32 { return pdk.Handle(runScan) }

//go:wasmexport audit
func audit() int32 { return pdk.Handle(runAudit) }

func main() {}

type rule struct {
	id       string
	re       *regexp.Regexp
	severity pdk.Severity
	message  string
}

var builtin = []rule{
	{"private-key", regexp.MustCompile(`-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY( BLOCK)?-----`), pdk.SeverityCritical, "private key"},
	{"aws-access-key-id", regexp.MustCompile(`\b(?:AKIA|ASIA)[0-9A-Z]{16}\b`), pdk.SeverityCritical, "AWS access key id"},
	{"aws-secret-access-key", regexp.MustCompile(`(?i)aws_?secret_?access_?key\s*[:=]\s*["']?[A-Za-z0-9/+]{40}\b`), pdk.SeverityCritical, "AWS secret access key"},
	{"gcp-service-account", regexp.MustCompile(`"type"\s*:\s*"service_account"`), pdk.SeverityHigh, "Google Cloud service account key"},
	{"github-token", regexp.MustCompile(`\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}\b|\bgithub_pat_[A-Za-z0-9_]{82}\b`), pdk.SeverityCritical, "GitHub token"},
	{"gitlab-token", regexp.MustCompile(`\bglpat-[A-Za-z0-9_-]{20}\b`), pdk.SeverityCritical, "GitLab token"},
	{"slack-token", regexp.MustCompile(`\bxox[baprs]-[A-Za-z0-9-]{10,}\b`), pdk.SeverityHigh, "Slack token"},
	{"slack-webhook", regexp.MustCompile(`https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+`), pdk.SeverityHigh, "Slack webhook URL"},
	{"stripe-key", regexp.MustCompile(`\b(?:sk|rk)_live_[A-Za-z0-9]{24,}\b`), pdk.SeverityCritical, "Stripe live key"},
	{"jwt", regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\b`), pdk.SeverityMedium, "JSON web token"},
	{"generic-secret", regexp.MustCompile(`(?i)\b(?:password|passwd|secret|api_?key|access_?token)\s*[:=]\s*["'][^"'\s]{12,}["']`), pdk.SeverityMedium, "hard-coded credential"},
}

const allowMarker = "arcade:allow-secret"

func root(c *pdk.StepContext) string {
	if c != nil && c.Workspace != "" {
		return c.Workspace
	}
	return "/workspace"
}

// scanRules reads the rules and allow_patterns params shared by scan and
// audit.
func scanRules(params pdk.Params) ([]rule, []*regexp.Regexp, error) {
	rules, err := rulesFrom(params)
	if err != nil {
		return nil, nil, err
	}
	var allow []*regexp.Regexp
	for _, p := range params.Strings("allow_patterns") {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, nil, fmt.Errorf("secret-scan: allow_patterns %q: %w", p, err)
		}
		allow = append(allow, re)
	}
	return rules, allow, nil
}

func runScan(req *pdk.StepRequest) (*pdk.StepResponse, error) {
	rules, allowRes, err := scanRules(req.Params)
	if err != nil {
		return nil, err
	}
	allowPaths := req.Params.Strings("allow")
	maxSize := int64(req.Params.Number("max_file_kib", 1024)) << 10
	base := root(req.Context)
	resp := &pdk.StepResponse{Status: pdk.StatusSuccess}
	scanned := 0
	err = filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if d.Name() == ".git" || d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		if allowed(rel, allowPaths) || !d.Type().IsRegular() {
			return nil
		}
		if info, err := d.Info(); err != nil || info.Size() > maxSize {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.IndexByte(data[:min(len(data), 8000)], 0) >= 0 {
			return nil // binary
		}
		scanned++
		resp.Findings = append(resp.Findings, scanFile(rel, data, rules, allowRes)...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("secret-scan: %w", err)
	}
	resp.Metrics = map[string]float64{"files_scanned": float64(scanned), "findings": float64(len(resp.Findings))}
	if n := len(resp.Findings); n > 0 {
		resp.Status = pdk.StatusFailure
		resp.Summary = fmt.Sprintf("%d possible secrets in %d files scanned", n, scanned)
		for _, f := range resp.Findings {
			resp.Messages = append(resp.Messages, pdk.Message{Severity: f.Severity,
				Text: fmt.Sprintf("%s:%d: %s", f.File, f.Line, f.Message)})
		}
	} else {
		resp.Summary = fmt.Sprintf("no secrets in %d files scanned", scanned)
	}
	return resp, nil
}

func scanFile(rel string, data []byte, rules []rule, allow []*regexp.Regexp) []pdk.Finding {
	var out []pdk.Finding
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	line := int32(0)
	for sc.Scan() {
		line++
		text := sc.Text()
		if strings.Contains(text, allowMarker) {
			continue
		}
	rules:
		for _, r := range rules {
			loc := r.re.FindStringIndex(text)
			if loc == nil {
				continue
			}
			for _, a := range allow {
				if a.MatchString(text[loc[0]:loc[1]]) {
					continue rules
				}
			}
			out = append(out, pdk.Finding{Rule: r.id, Severity: r.severity, File: rel, Line: line,
				Column: int32(loc[0] + 1), Message: r.message + " (" + redact(text[loc[0]:loc[1]]) + ")"})
		}
	}
	return out
}

// redact keeps the start of a match, enough to find it, not to use it.
func redact(s string) string {
	if len(s) <= 8 {
		return "****"
	}
	return s[:min(8, len(s)/3)] + "****"
}

func allowed(rel string, globs []string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, rel); ok {
			return true
		}
		if strings.HasSuffix(g, "/*") && strings.HasPrefix(rel, strings.TrimSuffix(g, "*")) {
			return true
		}
	}
	return false
}

func rulesFrom(p pdk.Params) ([]rule, error) {
	rules := builtin
	extra, _ := p["rules"].([]any)
	for i, e := range extra {
		m, _ := e.(map[string]any)
		id, _ := m["id"].(string)
		pat, _ := m["pattern"].(string)
		if id == "" || pat == "" {
			return nil, fmt.Errorf("secret-scan: rules[%d] needs an id and a pattern", i)
		}
		re, err := regexp.Compile(pat)
		if err != nil {
			return nil, fmt.Errorf("secret-scan: rule %s: %w", id, err)
		}
		sev := pdk.Severity(strings.ToUpper(fmt.Sprint(m["severity"])))
		if !strings.HasPrefix(string(sev), "SEVERITY_") {
			sev = "SEVERITY_" + sev
		}
		switch sev {
		case pdk.SeverityLow, pdk.SeverityMedium, pdk.SeverityHigh, pdk.SeverityCritical, pdk.SeverityInfo:
		default:
			sev = pdk.SeverityHigh
		}
		rules = append(rules, rule{id: id, re: re, severity: sev, message: "matches rule " + id})
	}
	return rules, nil
}

var defaultForbidden = []string{
	`(curl|wget)\b[^|]*\|\s*(sudo\s+)?(ba|z)?sh\b`,
	`rm\s+-[a-zA-Z]*r[a-zA-Z]*f?\s+/(\s|$)`,
	`chmod\s+(-R\s+)?777\b`,
	`\bsudo\b`,
}

func runAudit(req *pdk.StepRequest) (*pdk.StepResponse, error) {
	rel := req.Params.String("pipeline", ".arcade.yaml")
	data := []byte(req.Params.String("definition", ""))
	if len(data) == 0 {
		p := rel
		if !strings.HasPrefix(p, "/") {
			p = filepath.Join(root(req.Context), rel)
		}
		var err error
		data, err = os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("secret-scan: audit: pipeline %s not found", rel)
		}
		if err != nil {
			return nil, fmt.Errorf("secret-scan: audit: %w", err)
		}
	}
	rules, allowRes, err := scanRules(req.Params)
	if err != nil {
		return nil, err
	}
	forbidden := req.Params.Strings("forbidden")
	if len(forbidden) == 0 {
		forbidden = defaultForbidden
	}
	var res []*regexp.Regexp
	for _, f := range forbidden {
		re, err := regexp.Compile(f)
		if err != nil {
			return nil, fmt.Errorf("secret-scan: audit: forbidden %q: %w", f, err)
		}
		res = append(res, re)
	}
	resp := &pdk.StepResponse{Status: pdk.StatusSuccess}
	labels := map[string]bool{}
	inLabels, labelIndent := false, 0
	for i, line := range strings.Split(string(data), "\n") {
		n := int32(i + 1)
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		if inLabels && indent <= labelIndent {
			inLabels = false
		}
		if inLabels {
			if k, _, ok := strings.Cut(trimmed, ":"); ok {
				labels[strings.Trim(strings.TrimSpace(k), `"'`)] = true
			}
		}
		if trimmed == "labels:" || strings.HasSuffix(trimmed, " labels:") || strings.HasPrefix(trimmed, "labels:") {
			inLabels, labelIndent = true, indent
			if _, rest, _ := strings.Cut(trimmed, ":"); strings.HasPrefix(strings.TrimSpace(rest), "{") {
				for _, kv := range strings.Split(strings.Trim(strings.TrimSpace(rest), "{}"), ",") {
					if k, _, ok := strings.Cut(kv, ":"); ok {
						labels[strings.Trim(strings.TrimSpace(k), `"'`)] = true
					}
				}
				inLabels = false
			}
		}
		for j, re := range res {
			if re.MatchString(line) {
				resp.Findings = append(resp.Findings, pdk.Finding{Rule: "forbidden-command", Severity: pdk.SeverityHigh,
					File: rel, Line: n, Message: fmt.Sprintf("forbidden by policy (%s): %s", forbidden[j], trimmed)})
			}
		}
	}
	resp.Findings = append(resp.Findings, scanFile(rel, data, rules, allowRes)...)
	for _, l := range req.Params.Strings("required_labels") {
		if !labels[l] {
			resp.Findings = append(resp.Findings, pdk.Finding{Rule: "required-label", Severity: pdk.SeverityMedium,
				File: rel, Message: "required label " + l + " is missing"})
		}
	}
	if len(resp.Findings) > 0 {
		resp.Status = pdk.StatusFailure
		resp.Summary = fmt.Sprintf("%s breaks the policy %d times", rel, len(resp.Findings))
	} else {
		resp.Summary = rel + " meets the policy"
	}
	return resp, nil
}
