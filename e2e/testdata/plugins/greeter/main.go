//go:build wasip1

// Command greeter is a tiny custom plugin for the end-to-end tests: the
// action "greet" answers "hello, NAME" for params.name, "fail" fails, and
// any other action is refused.
package main

import (
	"fmt"

	"github.com/go-arcade/arcade/pdk"
)

var meta = pdk.Metadata{Name: "greeter", Kind: pdk.KindCustom, Version: "0.1.0", Description: "says hello"}

//go:wasmexport metadata
func metadata() int32 { return pdk.Describe(meta) }

//go:wasmexport execute
func execute() int32 { return pdk.Handle(run) }

func run(req *pdk.ExecuteRequest) (*pdk.ExecuteResponse, error) {
	switch req.Action {
	case "greet":
		greeting := fmt.Sprintf("%s, %s", req.Params.String("greeting", "hello"), req.Params.String("name", "world"))
		return &pdk.ExecuteResponse{Status: pdk.StatusSuccess, Result: pdk.Params{"greeting": greeting}}, nil
	case "fail":
		return &pdk.ExecuteResponse{Status: pdk.StatusFailure, Messages: []pdk.Message{{Severity: pdk.SeverityHigh, Text: "asked to fail"}}}, nil
	}
	return nil, fmt.Errorf("greeter: unknown action %q (want greet or fail)", req.Action)
}

func main() {}
