//go:build wasip1

// Command junit is a ci plugin that reads JUnit XML test reports and turns
// them into a pass/fail summary with counts; each failing or erroring test
// case is a finding.
//
// test params: reports (glob patterns relative to the workspace; default
// every *.xml file holding <testsuites> or <testsuite>), allow_empty (do not
// fail when no report is found).
package main

import (
	"encoding/xml"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/go-arcade/arcade/pdk"
)

var meta = pdk.Metadata{
	Name:        "junit",
	Kind:        pdk.KindCI,
	Version:     "1.0.0",
	Description: "JUnit XML reports to a pass/fail summary with counts",
	Capabilities: &pdk.Capabilities{
		AllowedPaths: []pdk.PathGrant{{GuestPath: "/workspace", ReadOnly: true}},
	},
}

//go:wasmexport metadata
func metadata() int32 { return pdk.Describe(meta) }

//go:wasmexport test
func test() int32 { return pdk.Handle(runTest) }

//go:wasmexport build
func build() int32 { return pdk.Handle(skip("build")) }

//go:wasmexport lint
func lint() int32 { return pdk.Handle(skip("lint")) }

func main() {}

func skip(fn string) func(*pdk.StepRequest) (*pdk.StepResponse, error) {
	return func(*pdk.StepRequest) (*pdk.StepResponse, error) {
		return &pdk.StepResponse{Status: pdk.StatusSkipped, Summary: "junit has no " + fn + "; use test"}, nil
	}
}

type suites struct {
	Suites []suite `xml:"testsuite"`
}

type suite struct {
	Name   string     `xml:"name,attr"`
	File   string     `xml:"file,attr"`
	Cases  []testCase `xml:"testcase"`
	Suites []suite    `xml:"testsuite"` // nested suites
}

type testCase struct {
	Name      string   `xml:"name,attr"`
	Classname string   `xml:"classname,attr"`
	File      string   `xml:"file,attr"`
	Line      int32    `xml:"line,attr"`
	Time      float64  `xml:"time,attr"`
	Failure   *problem `xml:"failure"`
	Error     *problem `xml:"error"`
	Skipped   *problem `xml:"skipped"`
}

type problem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

type counts struct{ tests, failures, errors, skipped int }

func runTest(req *pdk.StepRequest) (*pdk.StepResponse, error) {
	root := "/workspace"
	if req.Context != nil && req.Context.Workspace != "" {
		root = req.Context.Workspace
	}
	patterns := req.Params.Strings("reports")
	reports, err := findReports(root, patterns)
	if err != nil {
		return nil, fmt.Errorf("junit: %w", err)
	}
	resp := &pdk.StepResponse{}
	if len(reports) == 0 {
		if req.Params.Bool("allow_empty", false) {
			resp.Status, resp.Summary = pdk.StatusSkipped, "no JUnit report found"
			return resp, nil
		}
		resp.Status, resp.Summary = pdk.StatusFailure, "no JUnit report found under "+root
		return resp, nil
	}
	var c counts
	for _, rel := range reports {
		data, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			return nil, fmt.Errorf("junit: %w", err)
		}
		all, err := parse(data)
		if err != nil {
			return nil, fmt.Errorf("junit: %s: %w", rel, err)
		}
		for _, s := range all {
			walk(s, rel, &c, resp)
		}
		resp.Files = append(resp.Files, pdk.File{Path: rel, Size: pdk.Int64(len(data)), ContentType: "application/xml", Kind: "junit"})
	}
	passed := c.tests - c.failures - c.errors - c.skipped
	resp.Metrics = map[string]float64{"tests": float64(c.tests), "passed": float64(passed),
		"failures": float64(c.failures), "errors": float64(c.errors), "skipped": float64(c.skipped)}
	resp.Summary = fmt.Sprintf("%d tests: %d passed, %d failed, %d errors, %d skipped (%d reports)",
		c.tests, passed, c.failures, c.errors, c.skipped, len(reports))
	resp.Status = pdk.StatusSuccess
	if c.failures+c.errors > 0 {
		resp.Status = pdk.StatusFailure
	}
	return resp, nil
}

// parse reads a report whose root is <testsuites> or a single <testsuite>.
func parse(data []byte) ([]suite, error) {
	var all suites
	if err := xml.Unmarshal(data, &all); err == nil && len(all.Suites) > 0 {
		return all.Suites, nil
	}
	var one suite
	if err := xml.Unmarshal(data, &one); err != nil {
		return nil, err
	}
	return []suite{one}, nil
}

func walk(s suite, report string, c *counts, resp *pdk.StepResponse) {
	for _, tc := range s.Cases {
		c.tests++
		name := tc.Name
		if tc.Classname != "" {
			name = tc.Classname + "." + tc.Name
		}
		file := tc.File
		if file == "" {
			file = s.File
		}
		if file == "" {
			file = report
		}
		switch {
		case tc.Failure != nil:
			c.failures++
			resp.Findings = append(resp.Findings, pdk.Finding{Rule: "test-failure", Severity: pdk.SeverityHigh,
				File: file, Line: tc.Line, Message: name + ": " + firstLine(tc.Failure)})
		case tc.Error != nil:
			c.errors++
			resp.Findings = append(resp.Findings, pdk.Finding{Rule: "test-error", Severity: pdk.SeverityHigh,
				File: file, Line: tc.Line, Message: name + ": " + firstLine(tc.Error)})
		case tc.Skipped != nil:
			c.skipped++
		}
	}
	for _, n := range s.Suites {
		walk(n, report, c, resp)
	}
}

func firstLine(p *problem) string {
	s := p.Message
	if s == "" {
		s = strings.TrimSpace(p.Text)
	}
	s, _, _ = strings.Cut(s, "\n")
	if s == "" {
		s = p.Type
	}
	return s
}

// findReports lists the reports (relative to root) matching patterns, or
// every .xml file with a JUnit root element when there are none.
func findReports(root string, patterns []string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if len(patterns) > 0 {
			for _, pat := range patterns {
				if ok, _ := path.Match(pat, rel); ok {
					out = append(out, rel)
					return nil
				}
			}
			return nil
		}
		if strings.HasSuffix(rel, ".xml") && looksLikeJUnit(p) {
			out = append(out, rel)
		}
		return nil
	})
	return out, err
}

func looksLikeJUnit(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := f.Read(head)
	s := string(head[:n])
	return strings.Contains(s, "<testsuites") || strings.Contains(s, "<testsuite")
}
