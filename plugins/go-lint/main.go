//go:build wasip1

// Command go-lint is a ci plugin that checks the workspace's Go files: each
// file that does not parse, or that gofmt would change, is a finding.
//
// lint params: dir (default: the step's workspace), exclude (folder names
// to skip; default vendor, testdata and hidden folders).
package main

import (
	"bytes"
	"errors"
	"fmt"
	"go/format"
	"go/parser"
	"go/scanner"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/go-arcade/arcade/pdk"
)

var meta = pdk.Metadata{
	Name:        "go-lint",
	Kind:        pdk.KindCI,
	Version:     "1.0.0",
	Description: "gofmt and parse check of the workspace's Go files",
	Capabilities: &pdk.Capabilities{
		AllowedPaths: []pdk.PathGrant{{GuestPath: "/workspace", ReadOnly: true}},
	},
}

//go:wasmexport metadata
func metadata() int32 { return pdk.Describe(meta) }

//go:wasmexport lint
func lint() int32 { return pdk.Handle(runLint) }

//go:wasmexport build
func build() int32 { return pdk.Handle(skip("build")) }

//go:wasmexport test
func test() int32 { return pdk.Handle(skip("test")) }

func main() {}

func skip(fn string) func(*pdk.StepRequest) (*pdk.StepResponse, error) {
	return func(*pdk.StepRequest) (*pdk.StepResponse, error) {
		return &pdk.StepResponse{Status: pdk.StatusSkipped, Summary: "go-lint has no " + fn + "; use lint"}, nil
	}
}

func runLint(req *pdk.StepRequest) (*pdk.StepResponse, error) {
	root := workspace(req)
	root = req.Params.String("dir", root)
	exclude := req.Params.Strings("exclude")
	if len(exclude) == 0 {
		exclude = []string{"vendor", "testdata"}
	}
	resp := &pdk.StepResponse{Status: pdk.StatusSuccess}
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || slices.Contains(exclude, d.Name())) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		checked++
		rel, _ := filepath.Rel(root, path)
		f, err := checkFile(path, rel)
		if err != nil {
			return err
		}
		resp.Findings = append(resp.Findings, f...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("go-lint: %w", err)
	}
	files := map[string]bool{}
	for _, f := range resp.Findings {
		files[f.File] = true
	}
	resp.Metrics = map[string]float64{"files_checked": float64(checked), "files_with_findings": float64(len(files))}
	if len(resp.Findings) > 0 {
		resp.Status = pdk.StatusFailure
		names := make([]string, 0, len(files))
		for f := range files {
			names = append(names, f)
		}
		slices.Sort(names)
		resp.Summary = fmt.Sprintf("%d of %d Go files need attention: %s", len(files), checked, strings.Join(names, ", "))
	} else {
		resp.Summary = fmt.Sprintf("%d Go files checked, all formatted", checked)
	}
	return resp, nil
}

func workspace(req *pdk.StepRequest) string {
	if req.Context != nil && req.Context.Workspace != "" {
		return req.Context.Workspace
	}
	return "/workspace"
}

// checkFile returns the findings of one file: parse errors, else a gofmt
// difference at the first line that differs.
func checkFile(path, rel string) ([]pdk.Finding, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	if _, err := parser.ParseFile(fset, path, src, parser.ParseComments); err != nil {
		var list scanner.ErrorList
		if !errors.As(err, &list) {
			return []pdk.Finding{{Rule: "parse", Severity: pdk.SeverityHigh, File: rel, Message: err.Error()}}, nil
		}
		var out []pdk.Finding
		for _, e := range list {
			out = append(out, pdk.Finding{Rule: "parse", Severity: pdk.SeverityHigh, File: rel,
				Line: int32(e.Pos.Line), Column: int32(e.Pos.Column), Message: e.Msg})
		}
		return out, nil
	}
	formatted, err := format.Source(src)
	if err != nil {
		return []pdk.Finding{{Rule: "parse", Severity: pdk.SeverityHigh, File: rel, Message: err.Error()}}, nil
	}
	if bytes.Equal(src, formatted) {
		return nil, nil
	}
	return []pdk.Finding{{Rule: "gofmt", Severity: pdk.SeverityLow, File: rel, Line: firstDiff(src, formatted),
		Message: "not gofmt-formatted (run gofmt -w " + rel + ")"}}, nil
}

func firstDiff(a, b []byte) int32 {
	al, bl := bytes.Split(a, []byte("\n")), bytes.Split(b, []byte("\n"))
	for i := range min(len(al), len(bl)) {
		if !bytes.Equal(al[i], bl[i]) {
			return int32(i + 1)
		}
	}
	return int32(min(len(al), len(bl)))
}
