//go:build wasip1

// Command stuck is a test plugin that does not end: in metadata (as its
// config "stuck" says) or in execute (as the action says) it sleeps, spins,
// polls stdin, waits on an HTTP server that never answers, logs without
// end, or recurses until its stack runs out.
package main

import (
	"encoding/binary"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/go-arcade/arcade/host/testdata/guest"
)

func main() {}

//go:wasmexport metadata
func metadata() int32 {
	if how, ok := guest.Config("stuck"); ok {
		url, _ := guest.Config("url")
		ms, _ := guest.Config("ms")
		stick(how, url, ms)
	}
	return guest.OutputJSON(map[string]any{
		"name":            "stuck",
		"kind":            "KIND_CUSTOM",
		"version":         "1.0.0",
		"contractVersion": "v1",
		"functions":       []string{"execute"},
	})
}

// stick does not end (or ends after ms milliseconds, for a sleep).
func stick(how, url, ms string) {
	switch how {
	case "sleep":
		d := time.Hour
		if n, err := strconv.Atoi(ms); err == nil {
			d = time.Duration(n) * time.Millisecond
		}
		time.Sleep(d)
	case "busy":
		for {
		}
	case "stdin":
		pollStdin()
	case "http":
		guest.HTTPGet(url)
	}
}

//go:wasmimport wasi_snapshot_preview1 poll_oneoff
func pollOneoff(in, out unsafe.Pointer, n uint32, nevents unsafe.Pointer) uint32

// pollStdin waits for stdin to have data (or an hour to pass), again and
// again, reading what it gets.
func pollStdin() {
	var subs [2][48]byte
	subs[0][8] = 1                                 // fd_read, on fd 0
	binary.LittleEndian.PutUint32(subs[1][16:], 1) // clock: monotonic,
	binary.LittleEndian.PutUint64(subs[1][24:], uint64(time.Hour))
	var events [2][32]byte
	var n uint32
	buf := make([]byte, 64)
	for {
		pollOneoff(unsafe.Pointer(&subs[0][0]), unsafe.Pointer(&events[0][0]), 2, unsafe.Pointer(&n))
		os.Stdin.Read(buf) //nolint:errcheck // EOF or data, again
	}
}

type request struct {
	Action string         `json:"action"`
	Params map[string]any `json:"params"`
}

func deeper(n int) int {
	var pad [64]byte
	pad[n%64] = byte(n)
	return deeper(n+1) + int(pad[0])
}

//go:wasmexport execute
func execute() int32 {
	var req request
	if err := guest.InputJSON(&req); err != nil {
		return guest.Fail("bad input: " + err.Error())
	}
	param := func(k string) string { s, _ := req.Params[k].(string); return s }
	switch req.Action {
	case "ok":
	case "logflood":
		n, _ := strconv.Atoi(param("lines"))
		size, _ := strconv.Atoi(param("bytes"))
		line := strings.Repeat("x", size)
		for i := range n {
			guest.Log("info", strconv.Itoa(i)+" "+line)
		}
	case "overflow":
		deeper(0)
	default:
		stick(req.Action, param("url"), param("ms"))
	}
	return guest.OutputJSON(map[string]any{"status": "STATUS_SUCCESS"})
}
