//go:build wasip1

package pdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"unsafe"
)

// call is the state of the call in progress. A plugin instance serves one
// call at a time, and Go under wasip1 runs on one thread, so no lock.
var call struct {
	arcade bool   // Arcade's host drives this instance (it called arcade_pdk_input once)
	fastIn bool   // this call's input was written by arcade_pdk_input
	inRun  bool   // inside Run: the input read is kept for the call
	in     []byte // the input, once read
	inRead bool
	out    []byte // fast-path output, kept until arcade_pdk_output
	// kernelOut: this call set its output through the kernel
	kernelOut bool
	count     uint64 // calls since the module started
	moved     int    // bytes moved since the last GC hint
}

// fastMin is the smallest output handed over through arcade_pdk_output;
// smaller ones are cheaper through the kernel. Arcade's host applies the
// same bound to inputs.
const fastMin = 512

// gcEvery and gcBytes pace the GC hint at the end of a call: every gcEvery
// calls, or once gcBytes of input and output went through. Allocation drives
// the collector anyway; the hint only bounds how long garbage lingers
// between calls. (A collection costs ≈2 ms on a small heap: every 256 calls
// it added ≈8 µs to each.)
const (
	gcEvery = 4096
	gcBytes = 32 << 20
)

// arcade_pdk_input is called by Arcade's host before a call: it allocates
// n bytes for the call's input, which the host writes there, and returns
// their address.
//
//go:wasmexport arcade_pdk_input
func arcadePDKInput(n uint32) uint32 {
	call.arcade, call.fastIn, call.out = true, true, nil
	call.in, call.inRead = make([]byte, n), true
	if n == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(call.in))))
}

// arcade_pdk_output is called by Arcade's host after a call whose input it
// wrote or whose kernel output is empty: it returns the fast output as
// address<<32 | length (0: none) and forgets the call's data, also for an
// export that does not go through Run.
//
//go:wasmexport arcade_pdk_output
func arcadePDKOutput() uint64 {
	out := call.out
	call.out, call.in, call.inRead, call.fastIn = nil, nil, false, false
	if len(out) == 0 {
		return 0
	}
	// The block stays valid until the next export runs: nothing runs in
	// between, so the collector cannot reclaim it before the host reads.
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(out))))<<32 | uint64(len(out))
}

// Transport names how the call in progress received its input: "arcade"
// when Arcade's host wrote it into the plugin's memory, "kernel" otherwise.
// For diagnostics.
func Transport() string {
	if call.fastIn {
		return "arcade"
	}
	return "kernel"
}

// Input returns the call's input. Within Run and Handle, repeated calls
// return the same bytes.
func Input() []byte {
	if call.inRead {
		return call.in
	}
	in := kernelInput()
	if call.inRun {
		call.in, call.inRead = in, true
	}
	return in
}

// InputJSON decodes the call's input into v. An empty input leaves v as is.
func InputJSON(v any) error {
	in := Input()
	if len(bytes.TrimSpace(in)) == 0 {
		return nil
	}
	if err := json.Unmarshal(in, v); err != nil {
		return fmt.Errorf("reading input: %w", err)
	}
	return nil
}

// Output sets the call's output. b must not change afterwards.
func Output(b []byte) {
	call.moved += len(b)
	if call.arcade && len(b) >= fastMin {
		if call.kernelOut {
			extismOutputSet(0, 0) // the last Output wins
			call.kernelOut = false
		}
		call.out = b
		return
	}
	call.out, call.kernelOut = nil, true
	extismOutputSet(kernelWrite(b), uint64(len(b)))
}

// OutputJSON encodes v as the call's output.
func OutputJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	Output(b)
	return nil
}

// SetError sets the call's error; the host shows its text verbatim.
//
// An error marked with Permanent is reported as permanent: Arcade does not
// retry the call.
func SetError(err error) {
	msg := "unknown error"
	if err != nil && err.Error() != "" {
		msg = err.Error()
	}
	if IsPermanent(err) {
		SetVar(PermanentVar, []byte("1"))
	}
	extismErrorSet(kernelWrite([]byte(msg)))
}

// Run runs a raw export: fn gets the input and returns the output. An error
// (or a panic) becomes the call's error and a non-zero return. Use it as
//
//	//go:wasmexport echo
//	func echo() int32 { return pdk.Run(func(in []byte) ([]byte, error) { return in, nil }) }
func Run(fn func(input []byte) ([]byte, error)) (rc int32) {
	call.inRun = true
	defer finish()
	defer func() {
		if r := recover(); r != nil {
			SetError(fmt.Errorf("plugin panicked: %v", r))
			rc = 1
		}
	}()
	in := Input()
	call.moved += len(in)
	out, err := fn(in)
	if err != nil {
		SetError(err)
		return 1
	}
	if out != nil {
		Output(out)
	}
	return 0
}

// Handle runs a typed export: the input is decoded as JSON into In and the
// Out returned is encoded as the output.
//
//	//go:wasmexport lint
//	func lint() int32 { return pdk.Handle(runLint) }
//
//	func runLint(req *pdk.StepRequest) (*pdk.StepResponse, error) { … }
func Handle[In, Out any](fn func(*In) (*Out, error)) int32 {
	return Run(func(input []byte) ([]byte, error) {
		in := new(In)
		if len(bytes.TrimSpace(input)) > 0 {
			if err := json.Unmarshal(input, in); err != nil {
				return nil, fmt.Errorf("reading input: %w", err)
			}
		}
		out, err := fn(in)
		if err != nil {
			return nil, err
		}
		if out == nil {
			return nil, errors.New("plugin returned no output")
		}
		return json.Marshal(out)
	})
}

// Describe answers the metadata export. ContractVersion defaults to this
// PDK's, and Functions to those of the kind.
//
//	//go:wasmexport metadata
//	func metadata() int32 { return pdk.Describe(meta) }
func Describe(m Metadata) int32 {
	return Run(func([]byte) ([]byte, error) {
		if m.ContractVersion == "" {
			m.ContractVersion = ContractVersion
		}
		if len(m.Functions) == 0 {
			m.Functions = m.Kind.Functions()
		}
		return json.Marshal(m)
	})
}

// finish ends a call: it forgets the input and lets the runtime's other
// goroutines (the garbage collector's among them) run, which plain Go under
// wasip1 does not do once an export returns. Every gcEvery calls, or after
// gcBytes of data, it also collects.
func finish() {
	call.in, call.inRead, call.fastIn, call.inRun, call.kernelOut = nil, false, false, false, false
	call.count++
	if call.count%gcEvery == 0 || call.moved >= gcBytes {
		call.moved = 0
		runtime.GC()
	}
	runtime.Gosched()
}

// Config returns the plugin's configuration value for key (the config map
// of its plugins.yaml entry) and whether it is set.
func Config(key string) (string, bool) {
	k := kernelWrite([]byte(key))
	off := extismConfigGet(k)
	extismFree(k)
	if off == 0 {
		return "", false
	}
	v := kernelRead(off)
	extismFree(off)
	return string(v), true
}

// ConfigOr returns the configuration value for key, or def when unset.
func ConfigOr(key, def string) string {
	if v, ok := Config(key); ok {
		return v
	}
	return def
}

// Var returns the plugin variable key, nil when unset. Variables belong to
// one instance of the plugin: they do not survive a reload and are not
// shared between concurrent calls.
func Var(key string) []byte {
	k := kernelWrite([]byte(key))
	off := extismVarGet(k)
	extismFree(k)
	// Not freed: some kernels (the JavaScript runtime's) hand out the
	// variable's own block. Kernel memory is reset at every call anyway.
	return kernelRead(off)
}

// SetVar sets the plugin variable key; a nil value deletes it.
func SetVar(key string, value []byte) {
	k := kernelWrite([]byte(key))
	var v uint64
	if value != nil {
		v = kernelWrite(value)
	}
	extismVarSet(k, v)
	extismFree(k)
	// v is not freed: some kernels keep the block itself as the value.
}

// Log writes msg to the host's log at level. Under Arcade a step's plugin
// log lands in the job's log. LogTrace goes out at debug level here, so that
// a plugin using Log loads in runtimes whose kernel has no log_trace (the
// Extism JavaScript runtime 1.0); Tracef uses log_trace itself.
func Log(level LogLevel, msg string) {
	off := kernelWrite([]byte(msg)) // the kernel frees it
	switch level {
	case LogTrace, LogDebug:
		extismLogDebug(off)
	case LogWarn:
		extismLogWarn(off)
	case LogError:
		extismLogError(off)
	default:
		extismLogInfo(off)
	}
}

// Fetch makes an HTTP request through the host. The host refuses a host
// not granted in allowed_hosts: the call then fails with "host not granted"
// (it cannot be caught in the plugin). Connection failures end the call the
// same way.
func Fetch(req Request) (*Response, error) {
	return fetch(req)
}

// FetchWithHeaders is Fetch that also returns the response's headers in
// Response.Header (names in lower case, repeated values joined by commas).
// The host must enable HTTP response headers, as Arcade's does; an Extism
// runtime without the kernel's http_headers function refuses a module that
// calls this one (Fetch alone does not need it).
func FetchWithHeaders(req Request) (*Response, error) {
	resp, err := fetch(req)
	if err != nil {
		return nil, err
	}
	if off := extismHTTPHeaders(); off != 0 {
		b := kernelRead(off)
		extismFree(off)
		if err := json.Unmarshal(b, &resp.Header); err != nil {
			return nil, fmt.Errorf("http response headers: %w", err)
		}
	}
	return resp, nil
}

func fetch(req Request) (*Response, error) {
	if req.Method == "" {
		req.Method = "GET"
	}
	meta, err := json.Marshal(struct {
		URL     string            `json:"url"`
		Method  string            `json:"method"`
		Headers map[string]string `json:"headers,omitempty"`
	}{req.URL, req.Method, req.Header})
	if err != nil {
		return nil, fmt.Errorf("http request: %w", err)
	}
	m := kernelWrite(meta)
	var body uint64
	if len(req.Body) > 0 {
		body = kernelWrite(req.Body)
	}
	off := extismHTTPRequest(m, body)
	extismFree(m)
	if body != 0 {
		extismFree(body)
	}
	resp := &Response{StatusCode: int(extismHTTPStatusCode())}
	if off != 0 {
		resp.Body = kernelRead(off)
		extismFree(off)
	}
	return resp, nil
}
