//go:build wasip1

// Command trace is a test plugin that logs with pdk.Tracef, to check that
// trace lines go through log_trace and never log_error.
package main

import "github.com/go-arcade/arcade/pdk"

//go:wasmexport metadata
func metadata() int32 {
	return pdk.Describe(pdk.Metadata{Name: "trace", Kind: pdk.KindCustom, Version: "1.0.0"})
}

//go:wasmexport execute
func execute() int32 {
	return pdk.Run(func([]byte) ([]byte, error) {
		pdk.Tracef("a trace line")
		return []byte(`{"status":"STATUS_SUCCESS"}`), nil
	})
}

func main() {}
