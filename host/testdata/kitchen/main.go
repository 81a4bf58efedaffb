//go:build wasip1

// Command kitchen is the host's test plugin: it exports every function of
// every kind, and a custom "execute" whose actions include deliberately
// hostile ones (loop, hog, read, write, http, panic, trap) and each file
// operation a plugin may try on its grants (symlink, link, rename, list…).
// Its kind and name come from its config ("kind", "name") so one module
// serves every typed face; its version is set at link time with
// -X main.version=….
package main

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/go-arcade/arcade/host/testdata/guest"
)

// version and contract are set with -ldflags "-X main.version=…".
var (
	version  = "1.0.0"
	contract = "v1"
)

var functionsByKind = map[string][]string{
	"KIND_CI":       {"build", "test", "lint"},
	"KIND_CD":       {"deploy", "rollback"},
	"KIND_SECURITY": {"scan", "audit"},
	"KIND_NOTIFY":   {"send", "send_template"},
	"KIND_STORAGE":  {"save", "load", "delete", "list"},
	"KIND_CUSTOM":   {"execute"},
}

func main() {}

//go:wasmexport metadata
func metadata() int32 {
	kind, ok := guest.Config("kind")
	if !ok {
		kind = "KIND_CUSTOM"
	}
	name, ok := guest.Config("name")
	if !ok {
		name = "kitchen"
	}
	contractVersion := contract
	if c, ok := guest.Config("contract"); ok {
		contractVersion = c
	}
	fns := functionsByKind[kind]
	if s, ok := guest.Config("functions"); ok {
		fns = strings.Split(s, ",")
	}
	md := map[string]any{
		"name":            name,
		"kind":            kind,
		"version":         version,
		"contractVersion": contractVersion,
		"functions":       fns,
		"capabilities": map[string]any{
			"allowedHosts": []string{"127.0.0.1"},
			"allowedPaths": []map[string]any{{"guestPath": "/workspace"}},
		},
		"description": "test plugin",
	}
	// "storage": storage features, as JSON.
	if s, ok := guest.Config("storage"); ok {
		md["storage"] = json.RawMessage(s)
	}
	return guest.OutputJSON(md)
}

// reply answers a kind function with its name and this module's version.
func reply(fn string) int32 {
	in := guest.Input()
	return guest.OutputJSON(map[string]any{
		"status":    "STATUS_SUCCESS",
		"summary":   fn + " " + version,
		"messageId": "kitchen-" + version,
		"messages":  []map[string]any{{"severity": "SEVERITY_INFO", "text": fn + " " + version + " " + string(in)}},
	})
}

//go:wasmexport build
func build() int32 { return reply("build") }

//go:wasmexport test
func test() int32 { return reply("test") }

//go:wasmexport lint
func lint() int32 { return reply("lint") }

//go:wasmexport deploy
func deploy() int32 { return reply("deploy") }

//go:wasmexport rollback
func rollback() int32 { return reply("rollback") }

//go:wasmexport scan
func scan() int32 { return reply("scan") }

//go:wasmexport audit
func audit() int32 { return reply("audit") }

//go:wasmexport send
func send() int32 { return reply("send") }

//go:wasmexport send_template
func sendTemplate() int32 { return reply("send_template") }

//go:wasmexport save
func save() int32 { return reply("save") }

//go:wasmexport load
func load() int32 { return reply("load") }

//go:wasmexport delete
func del() int32 { return reply("delete") }

//go:wasmexport list
func list() int32 { return reply("list") }

type executeRequest struct {
	Action string         `json:"action"`
	Params map[string]any `json:"params"`
}

var hoard [][]byte

//go:wasmexport execute
func execute() int32 {
	var req executeRequest
	if err := guest.InputJSON(&req); err != nil {
		return guest.Fail("bad input: " + err.Error())
	}
	param := func(k string) string { s, _ := req.Params[k].(string); return s }
	result := map[string]any{"version": version}
	switch req.Action {
	case "echo":
		result["params"] = req.Params
	case "spin":
		ms, _ := strconv.Atoi(param("ms"))
		for end := time.Now().Add(time.Duration(ms) * time.Millisecond); time.Now().Before(end); {
		}
	case "loop":
		for {
		}
	case "hog":
		for {
			hoard = append(hoard, make([]byte, 1<<20))
		}
	case "read":
		b, err := os.ReadFile(param("path"))
		if err != nil {
			return guest.Fail(err.Error())
		}
		result["content"] = string(b)
	case "write":
		if err := os.WriteFile(param("path"), []byte(param("content")), 0o644); err != nil {
			return guest.Fail(err.Error())
		}
	case "symlink":
		if err := os.Symlink(param("target"), param("path")); err != nil {
			return guest.Fail(err.Error())
		}
	case "link":
		if err := os.Link(param("from"), param("path")); err != nil {
			return guest.Fail(err.Error())
		}
	case "rename":
		if err := os.Rename(param("from"), param("path")); err != nil {
			return guest.Fail(err.Error())
		}
	case "mkdir":
		if err := os.Mkdir(param("path"), 0o755); err != nil {
			return guest.Fail(err.Error())
		}
	case "remove":
		if err := os.Remove(param("path")); err != nil {
			return guest.Fail(err.Error())
		}
	case "readlink":
		target, err := os.Readlink(param("path"))
		if err != nil {
			return guest.Fail(err.Error())
		}
		result["target"] = target
	case "list":
		entries, err := os.ReadDir(param("path"))
		if err != nil {
			return guest.Fail(err.Error())
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		result["names"] = strings.Join(names, ",")
	case "readall":
		// Reads every file of a directory: the mount's cost per file.
		entries, err := os.ReadDir(param("path"))
		if err != nil {
			return guest.Fail(err.Error())
		}
		total := 0
		for _, e := range entries {
			b, err := os.ReadFile(param("path") + "/" + e.Name())
			if err != nil {
				return guest.Fail(err.Error())
			}
			total += len(b)
		}
		result["files"] = strconv.Itoa(len(entries))
		result["bytes"] = strconv.Itoa(total)
	case "http":
		code, body := guest.HTTPGet(param("url"))
		result["code"] = code
		result["body"] = string(body)
	case "panic":
		panic("boom")
	case "trap":
		// An address past the end of linear memory: a real wasm trap.
		*(*int64)(unsafe.Add(unsafe.Pointer(nil), 0xFFFFFFF0)) = 1
	case "log":
		for _, l := range []string{"debug", "info", "warn", "error"} {
			guest.Log(l, l+" from kitchen "+version)
		}
	case "config":
		v, _ := guest.Config(param("key"))
		result["value"] = v
	case "fail":
		return guest.Fail("refusing: " + param("reason"))
	default:
		return guest.Fail("unknown action " + req.Action)
	}
	return guest.OutputJSON(map[string]any{"status": "STATUS_SUCCESS", "result": result})
}
