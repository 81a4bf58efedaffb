//go:build wasip1

package guest

import (
	"encoding/binary"
	"encoding/json"
)

// Input returns the call's input.
func Input() []byte {
	n := inputLength()
	buf := make([]byte, n)
	var i uint64
	for ; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(buf[i:], inputLoadU64(i))
	}
	for ; i < n; i++ {
		buf[i] = byte(inputLoadU8(i))
	}
	return buf
}

// InputJSON decodes the call's input into v.
func InputJSON(v any) error {
	return json.Unmarshal(Input(), v)
}

// write copies b into kernel memory and returns its offset.
func write(b []byte) uint64 {
	n := uint64(len(b))
	off := alloc(n)
	var i uint64
	for ; i+8 <= n; i += 8 {
		storeU64(off+i, binary.LittleEndian.Uint64(b[i:]))
	}
	for ; i < n; i++ {
		storeU8(off+i, uint32(b[i]))
	}
	return off
}

// read copies a kernel memory block out.
func read(off uint64) []byte {
	if off == 0 {
		return nil
	}
	n := length(off)
	buf := make([]byte, n)
	var i uint64
	for ; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(buf[i:], loadU64(off+i))
	}
	for ; i < n; i++ {
		buf[i] = byte(loadU8(off + i))
	}
	return buf
}

// Output sets the call's output.
func Output(b []byte) {
	outputSet(write(b), uint64(len(b)))
}

// OutputJSON encodes v as the call's output; it returns 0, or 1 after
// setting an error when v does not encode.
func OutputJSON(v any) int32 {
	b, err := json.Marshal(v)
	if err != nil {
		return Fail(err.Error())
	}
	Output(b)
	return 0
}

// Fail sets msg as the call's error and returns the non-zero code an
// export returns with it.
func Fail(msg string) int32 {
	errorSet(write([]byte(msg)))
	return 1
}

// Config returns a configuration value and whether it is set.
func Config(key string) (string, bool) {
	k := write([]byte(key))
	off := configGet(k)
	free(k)
	if off == 0 {
		return "", false
	}
	v := read(off)
	free(off)
	return string(v), true
}

// Var returns a plugin variable.
func Var(key string) []byte {
	k := write([]byte(key))
	off := varGet(k)
	free(k)
	v := read(off)
	if off != 0 {
		free(off)
	}
	return v
}

// SetVar sets a plugin variable.
func SetVar(key string, value []byte) {
	varSet(write([]byte(key)), write(value))
}

// Log writes a log line at level "debug", "info", "warn" or "error".
func Log(level, msg string) {
	off := write([]byte(msg))
	switch level {
	case "debug":
		logDebug(off)
	case "warn":
		logWarn(off)
	case "error":
		logError(off)
	default:
		logInfo(off)
	}
}

// HTTPGet asks the host to GET url and returns the status code and body.
func HTTPGet(url string) (int32, []byte) {
	req, _ := json.Marshal(map[string]any{"url": url, "method": "GET"})
	off := httpRequest(write(req), 0)
	body := read(off)
	return httpStatusCode(), body
}
