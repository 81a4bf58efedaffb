//go:build wasip1

// Command broken is a custom plugin that breaks the contract on purpose,
// for the contract suite's own test: a version that is no version, no
// description, a status the contract does not know, and a crash on a
// request that does not parse.
package main

import (
	"encoding/json"

	"github.com/go-arcade/arcade/pdk"
)

//go:wasmexport metadata
func metadata() int32 {
	return pdk.Describe(pdk.Metadata{Name: "broken", Kind: pdk.KindCustom, Version: "latest"})
}

//go:wasmexport execute
func execute() int32 {
	if !json.Valid(pdk.Input()) {
		panic("a request that does not parse")
	}
	pdk.Output([]byte(`{"status":"STATUS_MAYBE"}`))
	return 0
}

func main() {}
