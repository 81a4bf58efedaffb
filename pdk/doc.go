// Package pdk is Arcade's plugin development kit for Go.
//
// A plugin is a WebAssembly module built by the standard Go toolchain:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o my.wasm .
//
// It speaks the Extism kernel ABI (imports from extism:host/env) and WASI,
// nothing else, so it loads unchanged in any Extism runtime; messages are the
// arcade.plugin.v1 contract as JSON. The package imports only the standard
// library: the contract's messages are mirrored here as plain Go types
// (StepRequest, StepResponse, …) whose JSON is the contract's protojson.
//
// A plugin exports the metadata function and its kind's functions, each a
// one-liner over Describe and Handle:
//
//	var meta = pdk.Metadata{Name: "hello", Kind: pdk.KindCustom, Version: "0.1.0"}
//
//	//go:wasmexport metadata
//	func metadata() int32 { return pdk.Describe(meta) }
//
//	//go:wasmexport execute
//	func execute() int32 { return pdk.Handle(run) }
//
//	func run(req *pdk.ExecuteRequest) (*pdk.ExecuteResponse, error) { … }
//
//	func main() {}
//
// An error returned by a handler is shown to users verbatim. Handle also
// yields to the Go scheduler after every call so that the garbage collector
// runs (plain Go under wasip1 runs no other goroutine once an export
// returns; without this, memory grows under load).
//
// Under Arcade's host, large inputs and outputs skip the kernel's
// 8-bytes-per-call copy: the host writes the input straight into the
// plugin's memory and reads the output straight out of it through two extra
// exports (arcade_pdk_input, arcade_pdk_output; see host/fastpath.go). Any
// other Extism runtime ignores them and goes through the kernel as usual.
//
// Files are plain os calls on the folders granted in plugins.yaml (WASI);
// HTTP goes through the host (Fetch), which refuses hosts not granted.
package pdk
