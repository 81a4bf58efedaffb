//go:build wasip1

// Command probe is the PDK's test plugin: a custom plugin whose execute
// actions exercise each PDK facility, plus raw echo and noop exports for
// the data-path tests and benchmarks.
package main

import (
	"errors"
	"os"
	"runtime"
	"strings"

	"github.com/go-arcade/arcade/pdk"
)

var meta = pdk.Metadata{
	Name:      "probe",
	Kind:      pdk.KindCustom,
	Version:   "1.0.0",
	Functions: []string{"execute", "echo", "noop", "churn", "rawecho"},
}

//go:wasmexport metadata
func metadata() int32 { return pdk.Describe(meta) }

//go:wasmexport echo
func echo() int32 { return pdk.Run(func(in []byte) ([]byte, error) { return in, nil }) }

// rawecho echoes without Run, as a hand-written export may.
//
//go:wasmexport rawecho
func rawecho() int32 {
	pdk.Output(pdk.Input())
	return 0
}

//go:wasmexport noop
func noop() int32 { return pdk.Run(func([]byte) ([]byte, error) { return nil, nil }) }

// done counts the background jobs churn started that have run.
var done int

// churn echoes its input and, like much real code (a timer, a pipe, a
// logger's flusher), leaves work to a goroutine: one holding 64 KiB that
// ends as soon as it is scheduled.
//
//go:wasmexport churn
func churn() int32 {
	return pdk.Run(func(in []byte) ([]byte, error) {
		buf := make([]byte, 64<<10)
		go func() {
			buf[len(buf)-1] = 1
			done++
		}()
		return in, nil
	})
}

//go:wasmexport execute
func execute() int32 { return pdk.Handle(run) }

func run(req *pdk.ExecuteRequest) (*pdk.ExecuteResponse, error) {
	p := req.Params
	result := pdk.Params{}
	switch req.Action {
	case "transport":
		result["transport"] = pdk.Transport()
	case "fail":
		err := errors.New(p.String("message", "failed"))
		if p.Bool("permanent", false) {
			return nil, pdk.Permanent(err)
		}
		return nil, err
	case "exit":
		os.Exit(3)
	case "panic":
		panic("probe panicked on purpose")
	case "config":
		v, ok := pdk.Config(p.String("key", ""))
		result["value"], result["set"] = v, ok
	case "setvar":
		pdk.SetVar(p.String("key", ""), []byte(p.String("value", "")))
	case "getvar":
		result["value"] = string(pdk.Var(p.String("key", "")))
	case "log":
		msg := p.String("message", "hello")
		switch p.String("level", "info") {
		case "trace":
			pdk.Log(pdk.LogTrace, msg)
		case "debug":
			pdk.Debugf("%s", msg)
		case "warn":
			pdk.Warnf("%s", msg)
		case "error":
			pdk.Errorf("%s", msg)
		default:
			pdk.Infof("%s", msg)
		}
	case "http":
		resp, err := pdk.Fetch(pdk.Request{Method: p.String("method", "GET"), URL: p.String("url", ""),
			Header: map[string]string{"X-Probe": "1"}, Body: []byte(p.String("body", ""))})
		if err != nil {
			return nil, err
		}
		result["status"], result["body"] = float64(resp.StatusCode), string(resp.Body)
	case "read":
		b, err := os.ReadFile(p.String("path", ""))
		if err != nil {
			return nil, err
		}
		result["content"] = string(b)
	case "write":
		if err := os.WriteFile(p.String("path", ""), []byte(p.String("content", "")), 0o644); err != nil {
			return nil, err
		}
	case "stats":
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		result["heap_sys"], result["sys"], result["num_gc"] = float64(ms.HeapSys), float64(ms.Sys), float64(ms.NumGC)
		result["goroutines"], result["done"] = float64(runtime.NumGoroutine()), float64(done)
	case "repeat":
		result["text"] = strings.Repeat(p.String("text", ""), int(p.Number("n", 1)))
	case "upper":
		result["text"] = strings.ToUpper(p.String("text", ""))
	default:
		return nil, errors.New("unknown action " + req.Action)
	}
	return &pdk.ExecuteResponse{Status: pdk.StatusSuccess, Result: result}, nil
}

func main() {}
