//go:build wasip1

// Command bare is a test plugin that declares kind ci and the function lint
// but does not export lint: the host must refuse it.
package main

import "github.com/go-arcade/arcade/host/testdata/guest"

func main() {}

//go:wasmexport metadata
func metadata() int32 {
	return guest.OutputJSON(map[string]any{
		"name":            "bare",
		"kind":            "KIND_CI",
		"version":         "0.1.0",
		"contractVersion": "v1",
		"functions":       []string{"build", "test", "lint"},
	})
}

//go:wasmexport build
func build() int32 { return guest.OutputJSON(map[string]any{"status": "STATUS_SUCCESS"}) }

//go:wasmexport test
func test() int32 { return guest.OutputJSON(map[string]any{"status": "STATUS_SUCCESS"}) }
