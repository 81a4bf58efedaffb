//go:build wasip1

// Command steptool is a ci plugin for the end-to-end tests of job steps. Its
// build (and test, lint) does what the step's "action" parameter says:
//
//   - touch (the default): log the content of /workspace/READ when "read" is
//     set, write "written by steptool VERSION" to /workspace/WRITE when
//     "write" is set, and report the version;
//   - symlink: make the link /workspace/LINK pointing at TARGET, then do
//     what touch does;
//   - env: log the value of the step env variable named by "var";
//   - fail: report a failure with a finding;
//   - loop: never return; hog: allocate until memory runs out.
//
// Its version is set at link time: -ldflags "-X main.version=2.0.0".
package main

import (
	"fmt"
	"os"
	"path"

	"github.com/go-arcade/arcade/pdk"
)

var version = "1.0.0"

var meta = pdk.Metadata{Name: "steptool", Kind: pdk.KindCI, Version: version,
	Description: "end-to-end test plugin for job steps"}

//go:wasmexport metadata
func metadata() int32 { return pdk.Describe(meta) }

//go:wasmexport build
func build() int32 { return pdk.Handle(run) }

//go:wasmexport test
func test() int32 { return pdk.Handle(run) }

//go:wasmexport lint
func lint() int32 { return pdk.Handle(run) }

func main() {}

var hoard [][]byte

func run(req *pdk.StepRequest) (*pdk.StepResponse, error) {
	ws := req.Context.Workspace
	action := req.Params.String("action", "touch")
	if action == "symlink" {
		if err := os.Symlink(req.Params.String("target", ""), path.Join(ws, req.Params.String("link", ""))); err != nil {
			return nil, err
		}
		action = "touch"
	}
	switch action {
	case "touch":
		pdk.Infof("steptool %s in step %s of job %s", version, req.Context.Step, req.Context.JobName)
		if name := req.Params.String("read", ""); name != "" {
			b, err := os.ReadFile(path.Join(ws, name))
			if err != nil {
				return nil, err
			}
			pdk.Infof("read %s: %s", name, b)
		}
		if name := req.Params.String("write", ""); name != "" {
			if err := os.WriteFile(path.Join(ws, name), []byte("written by steptool "+version), 0o644); err != nil {
				return nil, err
			}
			fmt.Println("wrote", name) // stdout goes to the job log too
		}
		return &pdk.StepResponse{Status: pdk.StatusSuccess, Summary: "steptool " + version}, nil
	case "env":
		v := req.Context.Env[req.Params.String("var", "")]
		pdk.Warnf("env %s=%s", req.Params.String("var", ""), v)
		return &pdk.StepResponse{Status: pdk.StatusSuccess}, nil
	case "fail":
		return &pdk.StepResponse{Status: pdk.StatusFailure, Summary: "1 problem",
			Findings: []pdk.Finding{{Rule: "demo", Severity: pdk.SeverityHigh, Message: "planted problem", File: "main.go", Line: 3}}}, nil
	case "loop":
		for {
		}
	case "hog":
		for {
			hoard = append(hoard, make([]byte, 1<<20))
		}
	}
	return nil, fmt.Errorf("unknown action %q", req.Params.String("action", ""))
}
