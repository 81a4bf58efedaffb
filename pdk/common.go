package pdk

import (
	"fmt"
	"strings"
)

// LogLevel is a kernel log level.
type LogLevel int

// Log levels, as the Extism kernel has them.
const (
	LogTrace LogLevel = iota
	LogDebug
	LogInfo
	LogWarn
	LogError
)

// Request is an HTTP request made through the host.
type Request struct {
	Method string // default GET
	URL    string
	Header map[string]string
	Body   []byte
}

// Response is the host's answer to a Request.
type Response struct {
	StatusCode int
	Body       []byte
	// Header holds the response's headers, names in lower case
	// (FetchWithHeaders only).
	Header map[string]string
}

// OK reports a 2xx status.
func (r *Response) OK() bool { return r.StatusCode >= 200 && r.StatusCode < 300 }

// Err returns an error naming the status and the start of the body when
// the status is not 2xx, nil otherwise.
func (r *Response) Err() error {
	if r.OK() {
		return nil
	}
	body := strings.TrimSpace(string(r.Body))
	if len(body) > 200 {
		body = body[:200] + "…"
	}
	return fmt.Errorf("HTTP %d: %s", r.StatusCode, body)
}
