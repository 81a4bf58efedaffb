//go:build wasip1

// Command semver is a custom plugin: the next semantic version and a
// changelog from conventional commit messages.
//
// execute actions:
//
//	next       the next version. params: current (e.g. "v1.4.2"; default
//	           config current or 0.0.0), and bump (major|minor|patch) to
//	           choose the step, or commits (list of messages) or commits_file
//	           (a file in the workspace, messages separated by lines holding
//	           "---" or one per line) to derive it; prerelease (e.g. "rc.1").
//	           result: previous, next, bump (major|minor|patch|none), tag
//	bump       the same as next (its older name)
//	changelog  the same params; result: markdown (sections Breaking changes,
//	           Features, Fixes, Other), next
//
// Rules: "type!:" or a "BREAKING CHANGE:" footer → major (minor while below
// 1.0.0); feat → minor; fix and perf → patch; anything else changes nothing.
// An unknown action or param is refused, naming what is accepted.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/go-arcade/arcade/pdk"
)

var meta = pdk.Metadata{
	Name:        "semver",
	Kind:        pdk.KindCustom,
	Version:     "1.0.0",
	Description: "next semantic version and changelog from conventional commits",
}

//go:wasmexport metadata
func metadata() int32 { return pdk.Describe(meta) }

//go:wasmexport execute
func execute() int32 { return pdk.Handle(run) }

func main() {}

type version struct {
	major, minor, patch int
	prefix              string
}

var versionRe = regexp.MustCompile(`^(v?)(\d+)\.(\d+)\.(\d+)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$`)

func parseVersion(s string) (version, error) {
	m := versionRe.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return version{}, fmt.Errorf("semver: %q is not a semantic version", s)
	}
	a, _ := strconv.Atoi(m[2])
	b, _ := strconv.Atoi(m[3])
	c, _ := strconv.Atoi(m[4])
	return version{a, b, c, m[1]}, nil
}

func (v version) String() string {
	return fmt.Sprintf("%s%d.%d.%d", v.prefix, v.major, v.minor, v.patch)
}

var headerRe = regexp.MustCompile(`^(\w+)(?:\(([^)]*)\))?(!)?:\s*(.+)$`)

type commit struct {
	typ, scope, subject string
	breaking            bool
}

func parseCommit(msg string) commit {
	msg = strings.TrimSpace(msg)
	header, body, _ := strings.Cut(msg, "\n")
	c := commit{subject: header}
	if m := headerRe.FindStringSubmatch(header); m != nil {
		c.typ, c.scope, c.breaking, c.subject = strings.ToLower(m[1]), m[2], m[3] == "!", m[4]
	}
	if strings.Contains(body, "BREAKING CHANGE:") || strings.Contains(body, "BREAKING-CHANGE:") {
		c.breaking = true
	}
	return c
}

func commits(req *pdk.ExecuteRequest) ([]string, error) {
	msgs := req.Params.Strings("commits")
	if f := req.Params.String("commits_file", ""); f != "" {
		if !strings.HasPrefix(f, "/") {
			ws := "/workspace"
			if req.Context != nil && req.Context.Workspace != "" {
				ws = req.Context.Workspace
			}
			f = filepath.Join(ws, f)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("semver: commits_file: %w", err)
		}
		text := string(b)
		if strings.Contains(text, "\n---\n") {
			msgs = append(msgs, strings.Split(text, "\n---\n")...)
		} else {
			msgs = append(msgs, strings.Split(strings.TrimSpace(text), "\n")...)
		}
	}
	return msgs, nil
}

// params are the params execute reads.
var params = []string{"current", "bump", "commits", "commits_file", "prerelease"}

// levels are the bumps, by level.
var levels = []string{"none", "patch", "minor", "major"}

func run(req *pdk.ExecuteRequest) (*pdk.ExecuteResponse, error) {
	switch req.Action {
	case "next", "bump", "changelog", "":
	default:
		return nil, errors.New("semver: unknown action " + req.Action + " (want next, bump or changelog)")
	}
	for k := range req.Params {
		if !slices.Contains(params, k) {
			return nil, fmt.Errorf("semver: unknown param %q (want %s)", k, strings.Join(params, ", "))
		}
	}
	cur := req.Params.String("current", pdk.ConfigOr("current", "0.0.0"))
	prev, err := parseVersion(cur)
	if err != nil {
		return nil, err
	}
	msgs, err := commits(req)
	if err != nil {
		return nil, err
	}
	var parsed []commit
	level := 0 // 0 none, 1 patch, 2 minor, 3 major
	for _, m := range msgs {
		if strings.TrimSpace(m) == "" {
			continue
		}
		c := parseCommit(m)
		parsed = append(parsed, c)
		switch {
		case c.breaking:
			level = max(level, 3)
		case c.typ == "feat":
			level = max(level, 2)
		case c.typ == "fix" || c.typ == "perf":
			level = max(level, 1)
		}
	}
	if b := req.Params.String("bump", ""); b != "" {
		i := slices.Index(levels, strings.ToLower(b))
		if i < 1 {
			return nil, fmt.Errorf("semver: bump %q: want major, minor or patch", b)
		}
		if len(parsed) > 0 {
			return nil, errors.New("semver: give bump or commits, not both")
		}
		level = i
	}
	next := prev
	bump := levels[level]
	switch {
	case level == 3 && prev.major == 0:
		next.minor, next.patch = next.minor+1, 0
	case level == 3:
		next.major, next.minor, next.patch = next.major+1, 0, 0
	case level == 2:
		next.minor, next.patch = next.minor+1, 0
	case level == 1:
		next.patch++
	}
	nextS := next.String()
	if pre := req.Params.String("prerelease", ""); pre != "" && level > 0 {
		nextS += "-" + pre
	}
	result := pdk.Params{"previous": prev.String(), "next": nextS, "bump": bump, "tag": nextS, "commits": float64(len(parsed))}
	if req.Action == "changelog" {
		result["markdown"] = changelog(nextS, parsed)
	}
	return &pdk.ExecuteResponse{Status: pdk.StatusSuccess, Result: result,
		Messages: []pdk.Message{{Severity: pdk.SeverityInfo, Text: fmt.Sprintf("%s → %s (%s, %d commits)", prev, nextS, bump, len(parsed))}}}, nil
}

func changelog(next string, cs []commit) string {
	sections := []struct {
		title string
		match func(commit) bool
	}{
		{"Breaking changes", func(c commit) bool { return c.breaking }},
		{"Features", func(c commit) bool { return !c.breaking && c.typ == "feat" }},
		{"Fixes", func(c commit) bool { return !c.breaking && (c.typ == "fix" || c.typ == "perf") }},
		{"Other", func(c commit) bool { return !c.breaking && c.typ != "feat" && c.typ != "fix" && c.typ != "perf" }},
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "## %s\n", next)
	for _, s := range sections {
		var lines []string
		for _, c := range cs {
			if s.match(c) {
				line := "- " + c.subject
				if c.scope != "" {
					line = "- **" + c.scope + ":** " + c.subject
				}
				lines = append(lines, line)
			}
		}
		if len(lines) > 0 {
			fmt.Fprintf(&sb, "\n### %s\n\n%s\n", s.title, strings.Join(lines, "\n"))
		}
	}
	return sb.String()
}
